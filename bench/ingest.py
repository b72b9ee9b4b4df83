"""Build-event ingestion through the real gRPC port: a synthetic 10,000-target build, or a recorded real one.

    python bench/ingest.py [--targets 10000] [--log-mib 50] [--database postgresql://...] [--readers N]
    python bench/ingest.py --bep RECORDED.bep [--rate 400] [--runs 3]   (record one: bench/record_bep.py)

Synthetic: starts `bbapi serve`, streams one invocation the way Bazel does (configured, completed and
test-result events for every target, named sets, ~50 MB of console output in Progress events),
waits for every acknowledgement (each means "stored durably") and prints events/s, log MB/s and
the server's peak RSS (VmHWM) before and after, which shows memory does not grow with the build.
With --readers N, N clients call GetInvocation on the build in a loop while it streams (what a
dashboard polling a running build does) and their latency percentiles are printed too.

Recorded (--bep): replays a real build's `--build_event_binary_file` to `bbapi serve` and, in the same
run, to a bare grpcio server that acknowledges at once and stores nothing (bench/bes_sink.py, the
floor), as fast as they take it and paced at --rate events/s (a build's own pace: Bazel sends events as
they happen and waits for acks only at the end). Prints events/s, MB/s, the ack latency p50/p99 (from
sending an event to its ack) and the server's CPU seconds per replay (what it takes from the build).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from services.cluster.supervisor import free_port
from services.gen.api.v1 import invocation_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from services.gen.build_event_stream import build_event_stream_pb2 as bep
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc
from tests.support.bes import Publisher, progress, read_bep, request
from tests.support.servers import ServeProcess


def poll_invocation(target: str, key: str, invocation_id: str, stop: threading.Event,
                    latencies: list[float]) -> None:
    """GetInvocation of the streaming build, again and again, until `stop`."""
    with grpc.insecure_channel(target) as channel:
        stub = api_grpc.ApiServiceStub(channel)
        request = invocation_pb2.GetInvocationRequest(
            selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id))
        while not stop.is_set():
            start = time.perf_counter()
            stub.GetInvocation(request, metadata=[("x-buildbuddy-api-key", key)])
            latencies.append(time.perf_counter() - start)


def synthetic_build(invocation_id: str, targets: int, log_bytes: int) -> list[bytes]:
    """The serialized events (bench/api.py ingests them too)."""
    return synthetic_build_and_log_bytes(invocation_id, targets, log_bytes)[0]


def synthetic_build_and_log_bytes(invocation_id: str, targets: int, log_bytes: int) -> tuple[list[bytes], int]:
    """The serialized events, and how many bytes of console text their Progress events carry."""
    events: list[bep.BuildEvent] = []
    started = bep.BuildEvent(started=bep.BuildStarted(uuid=invocation_id, command="test",
                                                      start_time_millis=int(time.time() * 1000),
                                                      options_description="--keep_going"))
    started.id.started.SetInParent()
    events.append(started)
    metadata = bep.BuildEvent(build_metadata=bep.BuildMetadata(metadata={"ROLE": "CI", "COMMIT_SHA": "f" * 40}))
    metadata.id.build_metadata.SetInParent()
    events.append(metadata)
    line = ("INFO: From Compiling src/lib/module.cc: warning: unused variable 'x' [-Wunused-variable] "
            * 2)[:160] + "\n"
    per_progress = 64 * 1024
    progress_events = max(1, log_bytes // per_progress)
    every = max(1, targets // progress_events)
    written = 0
    for i in range(targets):
        label = f"//pkg{i // 100}:target_{i}"
        configured = bep.BuildEvent(configured=bep.TargetConfigured(target_kind="cc_test rule", tag=["unit"]))
        configured.id.target_configured.label = label
        named = bep.BuildEvent(named_set_of_files=bep.NamedSetOfFiles(files=[bep.File(
            name=f"pkg{i // 100}/target_{i}", uri=f"bytestream://cache/blobs/{i:064x}/{1000 + i}")]))
        named.id.named_set.id = str(i)
        completed = bep.BuildEvent(completed=bep.TargetComplete(success=True))
        completed.id.target_completed.label = label
        completed.completed.output_group.add(name="default").file_sets.add(id=str(i))
        result = bep.BuildEvent(test_result=bep.TestResult(status=bep.TestStatus.PASSED,
                                                           test_attempt_duration_millis=12))
        result.id.test_result.label = label
        result.id.test_result.run = result.id.test_result.shard = result.id.test_result.attempt = 1
        result.test_result.test_action_output.add(name="test.log", uri=f"bytestream://cache/blobs/{i:064x}/77")
        summary = bep.BuildEvent(test_summary=bep.TestSummary(overall_status=bep.TestStatus.PASSED,
                                                              total_run_count=1))
        summary.id.test_summary.label = label
        events += [configured, named, completed, result, summary]
        if i % every == 0 and written < log_bytes:
            text = (line * (per_progress // len(line)))[:per_progress]
            events.append(bep.BuildEvent.FromString(progress(stderr=text, count=i)))
            written += len(text.encode())
    finished = bep.BuildEvent(finished=bep.BuildFinished(overall_success=True,
                                                         finish_time_millis=int(time.time() * 1000)))
    finished.finished.exit_code.name = "SUCCESS"
    finished.id.build_finished.SetInParent()
    events.append(finished)
    return [e.SerializeToString() for e in events], written


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def replay(target: str, key: str | None, events: list[bytes], rate: float) -> tuple[float, list[float]]:
    """Stream `events` as a new invocation (paced at `rate` events/s, or at once); (seconds, ack latencies)."""
    invocation_id, sent = str(uuid.uuid4()), {}

    def requests() -> Iterator[pbe_pb2.PublishBuildToolEventStreamRequest]:
        start = time.perf_counter()
        for sequence in range(1, len(events) + 2):
            if rate:
                time.sleep(max(0.0, start + sequence / rate - time.perf_counter()))
            sent[sequence] = time.perf_counter()
            yield request(invocation_id, sequence, events[sequence - 1] if sequence <= len(events) else None)

    latencies = []
    start = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        for response in pbe_grpc.PublishBuildEventStub(channel).PublishBuildToolEventStream(
                requests(), metadata=[("x-buildbuddy-api-key", key)] if key else []):
            latencies.append(time.perf_counter() - sent[response.sequence_number])
    assert len(latencies) == len(events) + 1, "every event must be acknowledged"
    return time.perf_counter() - start, latencies


def recorded(args: argparse.Namespace) -> None:
    events = read_bep(args.bep)
    megabytes = sum(map(len, events)) / 1e6
    env = {"BBAPI_DATABASE": args.database} if args.database else {}
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bes_sink.py")), str(sink_port)],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "serving"
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        serve = ServeProcess(Path(data_dir), extra=["--log-level", "warning"], env=env).start()
        try:
            assert serve.proc is not None
            key = serve.admin_key or serve.new_key("bench")
            peers = [("bbapi serve", serve.grpc_target, key, serve.proc.pid),
                     ("grpcio sink (floor)", f"127.0.0.1:{sink_port}", None, sink.pid)]
            for rate in (0.0, args.rate):
                for name, target, peer_key, pid in peers:
                    runs = []
                    for _ in range(args.runs):
                        cpu = cpu_seconds(pid)
                        seconds, latencies = replay(target, peer_key, events, rate)
                        runs.append((seconds, latencies, cpu_seconds(pid) - cpu))
                    rows.append((name, rate, runs))
        finally:
            serve.stop()
            sink.terminate()
            sink.wait()
    print(f"\nReplay of {args.bep.name}: {len(events)} events, {megabytes:.1f} MB, {args.runs} runs each "
          f"({'PostgreSQL' if args.database else 'SQLite'}); medians, latencies over all runs\n")
    print(f"{'server':<22}{'pace':>10}{'seconds':>9}{'events/s':>10}{'MB/s':>8}{'ack p50 ms':>12}"
          f"{'ack p99 ms':>12}{'CPU s':>8}")
    for name, rate, runs in rows:
        seconds = statistics.median(r[0] for r in runs)
        cuts = statistics.quantiles([latency for r in runs for latency in r[1]], n=100)
        pace = f"{rate:.0f}/s" if rate else "at once"
        print(f"{name:<22}{pace:>10}{seconds:>9.2f}{len(events) / seconds:>10.0f}{megabytes / seconds:>8.1f}"
              f"{cuts[49] * 1e3:>12.1f}{cuts[98] * 1e3:>12.1f}{statistics.median(r[2] for r in runs):>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--log-mib", type=int, default=50)
    parser.add_argument("--database", default="", help="database URL for bbapi serve (default: SQLite)")
    parser.add_argument("--readers", type=int, default=0, help="clients polling GetInvocation meanwhile")
    parser.add_argument("--bep", type=Path, help="replay this recorded --build_event_binary_file instead")
    parser.add_argument("--rate", type=float, default=400.0, help="events/s of the paced replay (--bep)")
    parser.add_argument("--runs", type=int, default=3, help="replays per server and pace (--bep)")
    args = parser.parse_args()
    if args.bep:
        recorded(args)
        return
    invocation_id = str(uuid.uuid4())
    events, log_bytes = synthetic_build_and_log_bytes(invocation_id, args.targets, args.log_mib * 1024 * 1024)
    env = {"BBAPI_DATABASE": args.database} if args.database else {}
    with tempfile.TemporaryDirectory() as data_dir:
        serve = ServeProcess(Path(data_dir), extra=["--log-level", "warning"], env=env).start()
        try:
            assert serve.proc is not None
            idle_rss = serve.peak_rss_mib()
            key = serve.admin_key or serve.new_key("bench")  # a used database printed no admin key
            publisher = Publisher(serve.grpc_target, key)
            stop = threading.Event()
            latencies: list[float] = []
            readers = [threading.Thread(target=poll_invocation,
                                        args=(serve.grpc_target, key, invocation_id, stop, latencies))
                       for _ in range(args.readers)]
            start = time.perf_counter()
            for reader in readers:
                reader.start()
            acked = publisher.publish(invocation_id, events)
            elapsed = time.perf_counter() - start
            stop.set()
            for reader in readers:
                reader.join()
            peak = serve.peak_rss_mib()
        finally:
            serve.stop()
    assert acked == list(range(1, len(events) + 2)), "every event must be acknowledged, in order"
    print(f"\nIngestion of one {args.targets}-target build through bbapi serve "
          f"({'PostgreSQL' if args.database else 'SQLite'})\n")
    print(f"{'events':>10}{'seconds':>10}{'events/s':>11}{'log MiB':>9}{'log MB/s':>10}"
          f"{'RSS idle MiB':>14}{'RSS peak MiB':>14}")
    print(f"{len(events):>10}{elapsed:>10.1f}{len(events) / elapsed:>11.0f}{log_bytes / 2**20:>9.1f}"
          f"{log_bytes / 1e6 / elapsed:>10.1f}{idle_rss:>14.0f}{peak:>14.0f}")
    if latencies:
        cuts = statistics.quantiles(latencies, n=100)
        print(f"\nGetInvocation while streaming ({args.readers} reader(s))\n")
        print(f"{'calls':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        print(f"{len(latencies):>10}{cuts[49] * 1e3:>10.1f}{cuts[98] * 1e3:>10.1f}{max(latencies) * 1e3:>10.1f}")


if __name__ == "__main__":
    main()
