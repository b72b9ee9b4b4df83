"""Build events for the tests: the recorded Bazel runs, and synthetic events made to order."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.ingest import IngestStream, InvocationStore
from tests.support.bes import read_bep

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE_KEY = "FixtureKey0123456789"
Events = list[tuple[int, bytes]]


def recorded(name: str) -> Events:
    """A recorded run's events, numbered from 1 as the Build Event Service numbers them."""
    return list(enumerate(read_bep(FIXTURES / f"{name}.bep"), start=1))


def invocation_id_of(events: Events) -> str:
    return bes.BuildEvent.FromString(events[0][1]).started.uuid


def numbered(events: Sequence[bes.BuildEvent], first: int = 1) -> Events:
    return [(first + i, e.SerializeToString()) for i, e in enumerate(events)]


async def ingest(store: InvocationStore, tenant: str, events: Events, invocation_id: str | None = None,
                 batch: int = 50, secrets: Sequence[str] = (), finish: bool = True) -> IngestStream:
    stream = await store.open(tenant, invocation_id or str(uuid.uuid4()), "AKtest", secrets)
    for start in range(0, len(events), batch):
        await stream.append(events[start:start + batch])
    if finish:
        await stream.finish()
    return stream


@dataclass
class Printed:
    """What Bazel printed on the console during a recorded run."""

    targets: int
    elapsed_usec: int
    processes: int
    test_status: dict[str, str]
    failed_to_build: list[str]

    @classmethod
    def of(cls, name: str) -> Printed:
        out = (FIXTURES / f"{name}.out").read_text()

        def number(pattern: str) -> str:
            match = re.search(pattern, out)
            assert match is not None, pattern
            return match[1]

        return cls(int(number(r"Analyzed (\d+) targets")),
                   round(float(number(r"Elapsed time: ([\d.]+)s")) * 1_000_000), int(number(r"INFO: (\d+) processes")),
                   dict(re.findall(r"^(//\S+)\s+(PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS) in", out, re.MULTILINE)),
                   re.findall(r"^ERROR: .* (//\S+) failed", out, re.MULTILINE))


def started(invocation_id: str, command: str = "build") -> bes.BuildEvent:
    return bes.BuildEvent(
        id=bes.BuildEventId(started=bes.BuildEventId.BuildStartedId()),
        children=[bes.BuildEventId(pattern=bes.BuildEventId.PatternExpandedId(pattern=["//..."]))],
        started=bes.BuildStarted(uuid=invocation_id, command=command, start_time_millis=1_700_000_000_000))


def configured(label: str, kind: str = "genrule rule", tags: Sequence[str] = ()) -> bes.BuildEvent:
    return bes.BuildEvent(id=bes.BuildEventId(target_configured=bes.BuildEventId.TargetConfiguredId(label=label)),
                          configured=bes.TargetConfigured(target_kind=kind, tag=tags))


def _configuration(config: str) -> bes.BuildEventId.ConfigurationId:
    return bes.BuildEventId.ConfigurationId(id=config)


def completed(label: str, config: str = "cfg", file_sets: Sequence[str] = (), success: bool = True,
              tags: Sequence[str] = ()) -> bes.BuildEvent:
    group = bes.OutputGroup(name="default", file_sets=[bes.BuildEventId.NamedSetOfFilesId(id=i) for i in file_sets])
    return bes.BuildEvent(
        id=bes.BuildEventId(target_completed=bes.BuildEventId.TargetCompletedId(
            label=label, configuration=_configuration(config))),
        completed=bes.TargetComplete(success=success, output_group=[group], tag=tags))


def blob_uri(name: str) -> str:
    return f"bytestream://cache.example:1985/blobs/{hashlib.sha256(name.encode()).hexdigest()}/{len(name)}"


def named_set(set_id: str, names: Sequence[str], children: Sequence[str] = ()) -> bes.BuildEvent:
    return bes.BuildEvent(
        id=bes.BuildEventId(named_set=bes.BuildEventId.NamedSetOfFilesId(id=set_id)),
        named_set_of_files=bes.NamedSetOfFiles(
            files=[bes.File(name=n, uri=blob_uri(n)) for n in names],
            file_sets=[bes.BuildEventId.NamedSetOfFilesId(id=c) for c in children]))


def shard_result(label: str, shard: int, config: str = "cfg", attempt: int = 1) -> bes.BuildEvent:
    return bes.BuildEvent(
        id=bes.BuildEventId(test_result=bes.BuildEventId.TestResultId(
            label=label, configuration=_configuration(config), shard=shard, run=1, attempt=attempt)),
        test_result=bes.TestResult(status=bes.PASSED, test_action_output=[
            bes.File(name="test.log", uri=blob_uri(f"{label}/{shard}/log"))]))


def action_executed(label: str, config: str = "cfg") -> bes.BuildEvent:
    return bes.BuildEvent(
        id=bes.BuildEventId(action_completed=bes.BuildEventId.ActionCompletedId(
            label=label, configuration=_configuration(config))),
        action=bes.ActionExecuted(success=False, stderr=bes.File(name="stderr", uri=blob_uri(f"{label}/stderr"))))


def metadata(**entries: str) -> bes.BuildEvent:
    return bes.BuildEvent(id=bes.BuildEventId(build_metadata=bes.BuildEventId.BuildMetadataId()),
                          build_metadata=bes.BuildMetadata(metadata=entries))


def summary(label: str, status: bes.TestStatus.ValueType, duration_millis: int = 1500) -> bes.BuildEvent:
    summary_id = bes.BuildEventId.TestSummaryId(label=label, configuration=_configuration("cfg"))
    return bes.BuildEvent(
        id=bes.BuildEventId(test_summary=summary_id),
        test_summary=bes.TestSummary(overall_status=status, first_start_time_millis=1_700_000_000_500,
                                     total_run_duration_millis=duration_millis))


def progress(stdout: str = "", stderr: str = "") -> bes.BuildEvent:
    return bes.BuildEvent(progress=bes.Progress(stdout=stdout, stderr=stderr))


def finished(code: int = 0, name: str = "SUCCESS") -> bes.BuildEvent:
    return bes.BuildEvent(id=bes.BuildEventId(build_finished=bes.BuildEventId.BuildFinishedId()),
                          finished=bes.BuildFinished(finish_time_millis=1_700_000_002_000,
                                                     exit_code=bes.BuildFinished.ExitCode(name=name, code=code)))
