"""Finding the API key a build carries, and redacting every secret from an event."""

from __future__ import annotations

from google.protobuf import any_pb2

from services.common.bep_keys import find_api_key, needs_redaction, redact
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.gen.command_line import command_line_pb2

KEY, OTHER = "A" * 10 + "0123456789", "B" * 10 + "0123456789"
HEADER = "--remote_header=x-buildbuddy-api-key="


def option_events(value: str) -> list[bes.BuildEvent]:
    structured = command_line_pb2.CommandLine(sections=[command_line_pb2.CommandLineSection(
        option_list=command_line_pb2.OptionList(option=[command_line_pb2.Option(
            option_name="remote_header", option_value=value.removeprefix("--remote_header="))]))])
    return [bes.BuildEvent(started=bes.BuildStarted(options_description=f"--foo {value} --bar")),
            bes.BuildEvent(options_parsed=bes.OptionsParsed(explicit_cmd_line=[value])),
            bes.BuildEvent(unstructured_command_line=bes.UnstructuredCommandLine(args=["build", value])),
            bes.BuildEvent(structured_command_line=structured)]


def test_the_key_is_found_in_every_options_event_and_the_last_one_wins() -> None:
    for event in option_events(HEADER + KEY):
        assert find_api_key(event) == KEY
    both = bes.BuildEvent(options_parsed=bes.OptionsParsed(cmd_line=[HEADER + OTHER], explicit_cmd_line=[HEADER + KEY]))
    assert find_api_key(both) == KEY
    assert find_api_key(bes.BuildEvent(started=bes.BuildStarted(options_description=HEADER + KEY + "X"))) is None
    assert find_api_key(bes.BuildEvent(progress=bes.Progress(stderr=HEADER + KEY))) is None


def test_redaction_covers_options_urls_maps_repeated_and_bytes_fields() -> None:
    for event in option_events(HEADER + KEY):
        assert KEY.encode() not in redact(event, []).SerializeToString()
    event = bes.BuildEvent(action=bes.ActionExecuted(
        command_line=["curl", f"https://user:{OTHER}@example.com/x", "grpcs://TOKEN@host:443"],
        stdout=bes.File(name="stdout", uri=f"bytestream://{KEY}@cache:1985/blobs/{'a' * 64}/1"),
        strategy_details=[any_pb2.Any(type_url="t", value=f"x-buildbuddy-api-key: {KEY}".encode())]))
    redacted = redact(event, ["TOKEN"])
    assert list(redacted.action.command_line) == ["curl", "https://<REDACTED>@example.com/x",
                                                  "grpcs://<REDACTED>@host:443"]
    assert redacted.action.stdout.uri == f"bytestream://<REDACTED>@cache:1985/blobs/{'a' * 64}/1"
    assert redacted.action.strategy_details[0].value == b"x-buildbuddy-api-key: <REDACTED>"
    assert KEY in event.action.stdout.uri, "the original is left alone"
    metadata = bes.BuildEvent(build_metadata=bes.BuildMetadata(metadata={"REPO_URL": f"https://{KEY}@git.example/r"}))
    assert redact(metadata, []).build_metadata.metadata["REPO_URL"] == "https://<REDACTED>@git.example/r"


def test_unknown_fields_survive_and_are_masked_when_they_hold_a_secret() -> None:
    known = bes.BuildEvent(progress=bes.Progress(stdout="plain")).SerializeToString()
    harmless, secret = b"future field", f"x-buildbuddy-api-key={KEY}".encode()
    for payload, expected in ((harmless, harmless), (secret, b"x-buildbuddy-api-key=" + b"*" * 20)):
        tag = bytes([0x82, 0x7D])  # field 2000 (unknown to us), length-delimited
        redacted = redact(bes.BuildEvent.FromString(known + tag + bytes([len(payload)]) + payload), [])
        assert redacted.SerializeToString() == known + tag + bytes([len(expected)]) + expected


def test_needs_redaction_is_a_cheap_prefilter() -> None:
    assert not needs_redaction(b"//pkg:target @repo//x bytestream://host/blobs/h/1", ["SECRET"])
    assert needs_redaction(b"xx SECRET xx", ["SECRET"])
    assert needs_redaction(b"grpc://k@host", [])
    assert needs_redaction(b"X-BuildBuddy-Api-Key=abc", [])
