"""The target status machine (reference §2.4), one event at a time, as pure functions on a row.

BUILDING when configured, BUILT or FAILED_TO_BUILD when completed, then the test outcome from
TestSummary, which no later build event overrides. Unlike the reference, events for a label that was
never configured create the target (what the event says is all there is), and Aborted events end a
target as SKIPPED, CANCELLED or FAILED_TO_BUILD instead of leaving it BUILDING forever.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from services.gen.api.v1 import common_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.bep import usec

Status = common_pb2.Status
_TEST_STATUS = {
    bes.PASSED: Status.PASSED, bes.FLAKY: Status.FLAKY, bes.TIMEOUT: Status.TIMED_OUT, bes.FAILED: Status.FAILED,
    bes.INCOMPLETE: Status.INCOMPLETE, bes.REMOTE_FAILURE: Status.TOOL_FAILED,
    bes.FAILED_TO_BUILD: Status.FAILED_TO_BUILD, bes.TOOL_HALTED_BEFORE_TESTING: Status.CANCELLED,
}
_ABORTED = {bes.Aborted.SKIPPED: Status.SKIPPED, bes.Aborted.USER_INTERRUPTED: Status.CANCELLED}
_OPEN = (Status.STATUS_UNSPECIFIED, Status.BUILDING)


@dataclasses.dataclass
class TargetRow:
    label: str
    status: int = Status.STATUS_UNSPECIFIED
    rule_type: str = ""
    language: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    start_usec: int | None = None
    duration_usec: int | None = None

    @property
    def tested(self) -> bool:
        """A TestSummary decided the status (only tests have timing)."""
        return self.duration_usec is not None

    def columns(self) -> dict[str, Any]:
        return dict(vars(self))  # not dataclasses.asdict: its deep copies cost more than the whole insert

    def copy(self) -> TargetRow:
        return dataclasses.replace(self, tags=list(self.tags))


def target_label(event: bes.BuildEvent) -> str | None:
    """The label of a target event (not of aspects, which are not targets), else None."""
    kind = event.id.WhichOneof("id")
    if kind == "target_configured" and not event.id.target_configured.aspect:
        return event.id.target_configured.label
    if kind == "target_completed" and not event.id.target_completed.aspect:
        return event.id.target_completed.label
    if kind == "test_summary" and event.HasField("test_summary"):
        return event.id.test_summary.label
    return None


def apply(row: TargetRow | None, label: str, event: bes.BuildEvent) -> TargetRow:
    """The row after `event`, whose target_label is `label`."""
    row = row or TargetRow(label)
    kind = event.WhichOneof("payload")
    if kind == "configured":
        _kind(row, event.configured.target_kind)
        row.tags = list(event.configured.tag)
        if row.status == Status.STATUS_UNSPECIFIED:
            row.status = Status.BUILDING
    elif kind == "completed":
        if not row.rule_type:
            _kind(row, event.completed.target_kind)
        row.tags = row.tags or list(event.completed.tag)
        if not row.tested and row.status != Status.FAILED_TO_BUILD:
            row.status = Status.BUILT if event.completed.success else Status.FAILED_TO_BUILD
    elif kind == "aborted":
        if row.status in _OPEN:
            row.status = _ABORTED.get(event.aborted.reason, Status.FAILED_TO_BUILD)
    elif kind == "test_summary":
        _tested(row, event.test_summary)
    return row


def _kind(row: TargetRow, target_kind: str) -> None:
    """rule_type drops " rule"; language is what precedes the first "_" ("sh_test rule" -> "sh")."""
    row.rule_type = target_kind.replace(" rule", "")
    first, underscore, _ = target_kind.partition("_")
    row.language = first if underscore else ""


def _tested(row: TargetRow, summary: bes.TestSummary) -> None:
    row.status = _TEST_STATUS.get(summary.overall_status, Status.STATUS_UNSPECIFIED)
    row.start_usec = usec(summary.first_start_time, summary.first_start_time_millis)
    row.duration_usec = usec(summary.total_run_duration, summary.total_run_duration_millis)
