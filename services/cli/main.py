"""`bbapi`: one command line for every process and the admin tasks.

Each subcommand lives in its own module and registers itself here; every flag is also a
BBAPI_* environment variable (services.common.settings).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from services.cli import api, cluster, keys, operator_command, processes, retention, serve

Registrar = Callable[[argparse._SubParsersAction], None]  # type: ignore[type-arg]
REGISTRARS: list[Registrar] = [serve.register, keys.register, processes.register, cluster.register, api.register,
                               operator_command.register, retention.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbapi", description="Self-hosted BuildBuddy API, BES and remote cache")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
