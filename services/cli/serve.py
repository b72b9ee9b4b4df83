"""`bbapi serve`: the all-in-one stack on embedded defaults."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from services.allinone import stack
from services.allinone.settings import ServeSettings
from services.cli.runtime import run_until_signal, setup_process
from services.common.settings import add_arguments, from_args


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("serve", help="run every service in one process (SQLite, a local directory)")
    add_arguments(parser, ServeSettings)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = from_args(ServeSettings, args)
    setup_process(settings, "serve")

    async def start() -> Callable[[], Awaitable[None]]:
        running = await stack.start(settings)
        host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
        grpc, http = ("grpcs", "https") if settings.tls_cert else ("grpc", "http")
        print(f"bbapi serving (data in {settings.data_dir.resolve()})")
        print(f"  gRPC  {grpc}://{host}:{running.grpc_port}   (remote cache, Build Event Service, api.v1)")
        print(f"  HTTP  {http}://{host}:{running.http_port}   (/api/v1/<Method>, /metrics, /docs)")
        if running.admin_key:
            print("Admin API key for tenant 'default' (shown only now, keep it):")
            print(f"  {running.admin_key}")
        target = f"{grpc}://{host}:{running.grpc_port}"
        print("Build with it (build events and cache; bbapi also reads the key for the events from --remote_header):")
        print(f"  bazel build --bes_backend={target} --remote_cache={target} "
              f"--remote_header=x-buildbuddy-api-key={running.admin_key or 'YOUR_KEY'} //...")
        print("Press Ctrl-C to stop.", flush=True)
        return running.stop

    return run_until_signal(start)
