"""One append's events, validated, redacted and turned into the rows they add (no I/O here).

Everything that can refuse the batch (an undecodable payload) happens before anything is derived, so a
refused batch changes nothing. Target and action rows that depend on what is already stored (earlier
target state, named sets) are finished by `store.write` inside the transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from services.common.bep_keys import needs_redaction, redact, redact_text
from services.common.errors import InvalidArgument
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.actions import ActionRecord, action_of
from services.metadata.invocations.derive import Fields
from services.metadata.invocations.files import file_row
from services.metadata.invocations.metadata_order import build_metadata_entries
from services.metadata.invocations.namedsets import NamedSets, SetEntry
from services.metadata.invocations.targets import target_label
from services.metadata.models import INDEXED, LABEL

BUILD_METADATA, WORKSPACE_STATUS = 1, 2


@dataclasses.dataclass
class Batch:
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    metadata: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    named_sets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    target_events: list[tuple[str, bes.BuildEvent]] = dataclasses.field(default_factory=list)
    actions: list[ActionRecord] = dataclasses.field(default_factory=list)


def decode(events: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes, bes.BuildEvent]]:
    decoded = []
    for sequence, payload in events:
        try:
            decoded.append((sequence, payload, bes.BuildEvent.FromString(payload)))
        except DecodeError:
            raise InvalidArgument(f"event {sequence} is not a build_event_stream.BuildEvent") from None
    return decoded


def index(invocation: int, events: list[tuple[int, bytes, bes.BuildEvent]], fields: Fields,
          secrets: Collection[str], named_sets: NamedSets) -> Batch:
    """The rows of decoded events; `fields` takes what they say about the invocation."""
    batch = Batch()
    for sequence, raw, original in events:
        event, payload = _stored_form(raw, original, secrets)
        batch.events.append({"invocation": invocation, "sequence": sequence, "payload": payload})
        metadata = _metadata(raw, event, secrets)
        fields.observe(event, metadata)
        batch.metadata.extend({"invocation": invocation, "kind": kind, "sequence": sequence, "position": i,
                               "key": key, "value": value}
                              for i, (kind, key, value) in enumerate(_metadata_rows(event, metadata)))
        if event.HasField("named_set_of_files"):
            _named_set(batch, invocation, sequence, event, named_sets)
        label = target_label(event)
        if label is not None and len(label) <= LABEL:
            batch.target_events.append((label, event))
        action = action_of(sequence, event)
        if action is not None and len(action.target_label) <= LABEL:
            action.configuration_id = action.configuration_id[:INDEXED]
            action.file_sets = [set_id[:INDEXED] for set_id in action.file_sets]
            batch.actions.append(action)
    return batch


def _stored_form(raw: bytes, event: bes.BuildEvent, secrets: Collection[str]) -> tuple[bes.BuildEvent, bytes]:
    """The event as stored: Progress without its text (the logs service keeps that, redacted by the gateway),
    then redacted. The text goes first so a megabytes-long Progress is never scanned for what it won't keep."""
    if event.HasField("progress") and (event.progress.stdout or event.progress.stderr):
        event.progress.ClearField("stdout")
        event.progress.ClearField("stderr")
        raw = event.SerializeToString()
    if needs_redaction(raw, secrets):
        event = redact(event, secrets)
        return event, event.SerializeToString()
    return event, raw


def _metadata(raw: bytes, event: bes.BuildEvent, secrets: Collection[str]) -> list[tuple[str, str]]:
    if not event.HasField("build_metadata"):
        return []
    return [(redact_text(k, secrets), redact_text(v, secrets)) for k, v in build_metadata_entries(raw)]


def _metadata_rows(event: bes.BuildEvent, metadata: list[tuple[str, str]]) -> list[tuple[int, str, str]]:
    if event.HasField("workspace_status"):
        return [(WORKSPACE_STATUS, item.key, item.value) for item in event.workspace_status.item]
    return [(BUILD_METADATA, key, value) for key, value in metadata]


def _named_set(batch: Batch, invocation: int, sequence: int, event: bes.BuildEvent, named_sets: NamedSets) -> None:
    set_id = event.id.named_set.id[:INDEXED]
    files = tuple(file_row(f) for f in event.named_set_of_files.files)
    children = tuple(child.id[:INDEXED] for child in event.named_set_of_files.file_sets)
    batch.named_sets.append({"invocation": invocation, "sequence": sequence, "set_id": set_id,
                             "children": list(children)})
    batch.artifacts.extend({"invocation": invocation, "sequence": sequence, "position": i, **f._asdict()}
                           for i, f in enumerate(files))
    named_sets.remember(set_id, SetEntry(files, children))
