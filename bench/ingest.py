"""Build-event ingestion through the real gRPC port: a synthetic 10,000-target build.

    python bench/ingest.py [--targets 10000] [--log-mib 50] [--database postgresql://...] [--readers N]

Starts `bbapi serve`, streams one invocation the way Bazel does (configured, completed and
test-result events for every target, named sets, ~50 MB of console output in Progress events),
waits for every acknowledgement (each means "stored durably") and prints events/s, log MB/s and
the server's peak RSS (VmHWM) before and after, which shows memory does not grow with the build.
With --readers N, N clients call GetInvocation on the build in a loop while it streams (what a
dashboard polling a running build does) and their latency percentiles are printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from services.gen.api.v1 import invocation_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from services.gen.build_event_stream import build_event_stream_pb2 as bep
from tests.support.bes import Publisher, progress
from tests.support.servers import ServeProcess


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--log-mib", type=int, default=50)
    parser.add_argument("--database", default="", help="database URL for bbapi serve (default: SQLite)")
    parser.add_argument("--readers", type=int, default=0, help="clients polling GetInvocation meanwhile")
    args = parser.parse_args()
    invocation_id = str(uuid.uuid4())
    events, log_bytes = synthetic_build_and_log_bytes(invocation_id, args.targets, args.log_mib * 1024 * 1024)
    env = {"BBAPI_DATABASE": args.database} if args.database else {}
    with tempfile.TemporaryDirectory() as data_dir:
        serve = ServeProcess(Path(data_dir), extra=["--log-level", "warning"], env=env).start()
        try:
            assert serve.proc is not None
            idle_rss = peak_rss_mib(serve.proc.pid)
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
            peak = peak_rss_mib(serve.proc.pid)
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
