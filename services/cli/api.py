"""`bbapi api METHOD --json '{...}'`: call any public API method over HTTP, like curl would: BuildBuddy's
(`/api/v1/`) and bbapi's own InsightsService (`/api/bbapi/v1/`).

GetFile writes the file's bytes to --output (stdout if unset) with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO

import httpx
from pydantic import Field, SecretStr
from tqdm import tqdm

from services.cli import exits
from services.common.settings import CommonSettings, add_arguments, from_args
from services.gen.api.v1 import service_pb2
from services.gen.bbapi.api.v1 import insights_pb2

# every method by name, with the HTTP prefix that serves it
PREFIXES = {**{m.name: "/api/v1" for m in service_pb2.DESCRIPTOR.services_by_name["ApiService"].methods},
            **{m.name: "/api/bbapi/v1" for m in insights_pb2.DESCRIPTOR.services_by_name["InsightsService"].methods}}
METHODS = list(PREFIXES)


class ApiClientSettings(CommonSettings):
    server: str = Field("http://localhost:8080", description="bbapi HTTP address")
    api_key: SecretStr | None = Field(None, description="API key sent as x-buildbuddy-api-key")
    output: str = Field("", description="GetFile: write the bytes here instead of stdout")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("api", help="call a public API method (GetInvocation, GetLog, GetFile, "
                                "SearchInvocations, ...)")
    parser.add_argument("method", choices=METHODS, metavar="METHOD", help=" | ".join(METHODS))
    parser.add_argument("--json", default="{}", help="request body as JSON ('-' reads stdin)")
    add_arguments(parser, ApiClientSettings)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = from_args(ApiClientSettings, args)
    body = sys.stdin.read() if args.json == "-" else args.json
    try:
        json.loads(body)
    except json.JSONDecodeError as err:
        return exits.fail(f"--json is not valid JSON: {err}", exits.USAGE)
    headers = {"content-type": "application/json"}
    if settings.api_key is not None:
        headers["x-buildbuddy-api-key"] = settings.api_key.get_secret_value()
    url = f"{settings.server.rstrip('/')}{PREFIXES[args.method]}/{args.method}"
    try:
        return _call(url, body, headers, args.method, settings.output)
    except httpx.TransportError as err:
        return exits.fail(f"cannot reach bbapi at {settings.server}: {err or type(err).__name__} "
                          "(is it running? --server names it)", exits.UNAVAILABLE)


def _call(url: str, body: str, headers: dict[str, str], method: str, output: str) -> int:
    with httpx.Client(timeout=httpx.Timeout(60.0, read=None)) as client, \
            client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            response.read()
            return exits.fail(f"HTTP {response.status_code}: {_message(response)}", exits.FAILED)
        if method == "GetFile":
            return _save(response, output)
        response.read()
        print(json.dumps(response.json(), indent=2))
    return exits.OK


def _message(response: httpx.Response) -> str:
    """The message of the server's `{code, message}` error body; any other body as it is."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase


def _save(response: httpx.Response, output: str) -> int:
    size = response.headers.get("content-length")
    sink: BinaryIO = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115 - closed below
    try:
        with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, file=sys.stderr,
                  disable=not output) as progress:
            for chunk in response.iter_bytes(1024 * 1024):
                sink.write(chunk)
                progress.update(len(chunk))
    finally:
        if output:
            sink.close()
    return 0
