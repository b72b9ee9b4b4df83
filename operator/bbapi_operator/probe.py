"""Asking the gateways how far a CAS membership copy has got.

Every ready gateway pod is asked directly (not through the Service), because each one must
have loaded the new document and finished before a shard may be dropped. The reconciler takes
any `GatewayProbe`, so tests drive the protocol without a network.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from bbapi_operator.kube import KINDS, KubeApi
from bbapi_operator.meta import Owner, label_selector
from services.blobstore.cluster.membership import Progress

log = logging.getLogger(__name__)
STATUS_PATH = "/status/membership"


class GatewayProbe(Protocol):
    def __call__(self, owner: Owner, port: int) -> list[Progress]:
        """One report per gateway that should be copying (asked on its admin `port`); an
        unreachable one reads as busy."""
        ...


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))


class PodProbe:
    """The real probe: list the gateway pods, GET /status/membership from each ready one."""

    def __init__(self, api: KubeApi, timeout: float) -> None:
        self._api = api
        self._timeout = timeout

    def __call__(self, owner: Owner, port: int) -> list[Progress]:
        listed = self._api.list(KINDS["Pod"], owner.namespace, label_selector(owner.selector("gateway")))
        pods = [pod for pod in listed if _ready(pod)]
        return [self._ask(pod["status"]["podIP"], port) for pod in pods]

    def _ask(self, ip: str, port: int) -> Progress:
        host = f"[{ip}]" if ":" in ip else ip
        try:
            response = httpx.get(f"http://{host}:{port}{STATUS_PATH}", timeout=self._timeout)
            response.raise_for_status()
            return Progress.parse(response.json())
        except (httpx.HTTPError, ValueError, KeyError) as error:
            log.warning("gateway %s did not report membership progress: %s", ip, error)
            return Progress(generation="", migrating=True)
