"""`bbapi operator`: the Kubernetes operator (kopf) that reconciles BuildBuddyAPI objects."""

from __future__ import annotations

import argparse

from services.common.settings import add_arguments, from_args


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from bbapi_operator.settings import OperatorSettings

    parser = commands.add_parser("operator", help="run the Kubernetes operator for BuildBuddyAPI objects")
    add_arguments(parser, OperatorSettings)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bbapi_operator.main import run as run_operator
    from bbapi_operator.settings import OperatorSettings

    run_operator(config=from_args(OperatorSettings, args))
    return 0
