"""Actions from build events (reference §2.5): what each event contributes to GetAction.

ActionExecuted gives its stderr and stdout; a successful TargetComplete its outputs (the files of its
output groups' named sets, which the ingest resolves, then directory and important outputs); a
TestResult its test outputs (test.log, test.xml, ...) with shard, run and attempt.
"""

from __future__ import annotations

import dataclasses

from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations import ids
from services.metadata.invocations.files import FileRow, file_row


@dataclasses.dataclass
class ActionRecord:
    sequence: int
    target_label: str
    configuration_id: str
    action_key: str
    shard: int = 0
    run: int = 0
    attempt: int = 0
    files: list[FileRow] = dataclasses.field(default_factory=list)
    file_sets: list[str] = dataclasses.field(default_factory=list)  # named sets still to resolve


def action_of(sequence: int, event: bes.BuildEvent) -> ActionRecord | None:
    kind = event.WhichOneof("payload")
    if kind == "action":
        return _executed(sequence, event)
    if kind == "completed" and event.completed.success:
        return _completed(sequence, event)
    if kind == "test_result":
        return _tested(sequence, event)
    return None


def _executed(sequence: int, event: bes.BuildEvent) -> ActionRecord:
    action, key = event.action, event.id.action_completed
    record = ActionRecord(sequence, key.label or action.label,
                          key.configuration.id or action.configuration.id, ids.BUILD_ACTION)
    record.files = [file_row(f) for f in (action.stderr, action.stdout) if f.name or f.WhichOneof("file")]
    return record


def _completed(sequence: int, event: bes.BuildEvent) -> ActionRecord:
    completed, key = event.completed, event.id.target_completed
    record = ActionRecord(sequence, key.label, key.configuration.id, ids.BUILD_ACTION)
    for group in completed.output_group:
        record.file_sets.extend(s.id for s in group.file_sets)
        record.files.extend(file_row(f) for f in group.inline_files)
    record.files.extend(file_row(f) for f in (*completed.directory_output, *completed.important_output))
    return record


def _tested(sequence: int, event: bes.BuildEvent) -> ActionRecord:
    key = event.id.test_result
    return ActionRecord(sequence, key.label, key.configuration.id, ids.test_run(key.shard, key.run, key.attempt),
                        key.shard, key.run, key.attempt, [file_row(f) for f in event.test_result.test_action_output])
