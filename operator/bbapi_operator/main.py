"""`bbapi operator`: run the operator in this process until it is stopped."""

from __future__ import annotations

import asyncio

import kopf

from bbapi_operator.controller import register
from bbapi_operator.settings import OperatorSettings


def run(config: OperatorSettings | None = None) -> None:
    """Block running the operator. `config.watch_namespace` (BBAPI_WATCH_NAMESPACE) limits it to
    one namespace; empty watches them all. Standalone: one replica, no kopf peering objects."""
    config = config or OperatorSettings()
    watched = config.watch_namespace
    kopf.configure(verbose=False)
    registry = kopf.get_default_registry()  # includes kopf's login through the kubernetes client
    register(registry, config)
    asyncio.run(kopf.operator(
        registry=registry, standalone=True, clusterwide=not watched, namespaces=[watched] if watched else [],
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz"))
