"""Test-side helpers around the emulated API server: act like a user and like the kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import kopf
from bbapi_operator import crd
from bbapi_operator.apply import PRUNABLE
from bbapi_operator.controller import register
from bbapi_operator.kube import KINDS
from bbapi_operator.meta import Owner
from bbapi_operator.settings import OperatorSettings

from services.blobstore.cluster.membership import Progress
from tests.operator.emulator import ApiServer

NAMESPACE = "builds"
SETTINGS = OperatorSettings(default_image="bbapi:test", post_events=False, poll_seconds=0.05,
                            retry_seconds=0.2, workers=2)
CHILD_KINDS = (*PRUNABLE, "Secret")  # the generated API key Secret is a child too, never pruned


class FakeProbe:
    """Stands in for the gateways' /status/membership; a test sets what they answer."""

    def __init__(self) -> None:
        self.reports: list[Progress] = []
        self.calls = 0

    def __call__(self, owner: Owner, port: int) -> list[Progress]:
        self.calls += 1
        return list(self.reports)


def _resource(kind: str) -> str:
    k = KINDS[kind]
    return f"{k.api_version}/{k.plural}"


class Cluster:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.probe = FakeProbe()

    # --- reading state -------------------------------------------------------------------
    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.server.objects[_resource(kind), NAMESPACE, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def names(self, kind: str) -> set[str]:
        wanted = _resource(kind)
        return {name for (resource, _, name), obj in self.server.objects.items()
                if not obj.deleted and f"{resource.group}/{resource.version}/{resource.plural}".lstrip("/") == wanted}

    def children(self) -> dict[str, set[str]]:
        return {kind: names for kind in CHILD_KINDS if (names := self.names(kind))}

    def writes(self, method: str) -> list[str]:
        """Paths of the requests with this method so far (e.g. POST = creations)."""
        return [str(r.url.path) for r in self.server if r.method.value == method.upper()]

    # --- acting like a user --------------------------------------------------------------
    def url(self, kind: str, name: str | None = None, subresource: str | None = None) -> str:
        return KINDS[kind].path(NAMESPACE, name, subresource)

    async def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": crd.API_VERSION, "kind": crd.KIND,
                "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
        response = await self.server.post(self.url(crd.KIND), json=body)
        assert response.status == 200, await response.text()

    async def patch(self, kind: str, name: str, patch: dict[str, Any], subresource: str | None = None) -> None:
        response = await self.server.patch(self.url(kind, name, subresource), json=patch)
        assert response.status == 200, await response.text()

    async def delete(self, kind: str, name: str) -> None:
        response = await self.server.delete(self.url(kind, name))
        assert response.status == 200, await response.text()

    # --- acting like the controllers and kubelets ----------------------------------------
    async def mark_ready(self, *, only: str | None = None) -> None:
        """Report every Deployment/StatefulSet (or the one named `only`) as fully rolled out."""
        for kind in ("Deployment", "StatefulSet"):
            for name in self.names(kind):
                obj = self.get(kind, name)
                if obj is None or (only and name != only):
                    continue
                replicas = obj["spec"].get("replicas", 1)
                await self.patch(kind, name, {"status": {
                    "observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                    "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas}},
                    subresource="status")

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        body = self.get(crd.KIND, name) or {}
        found = [c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == kind]
        return found[0] if found else {}

    @contextlib.asynccontextmanager
    async def operator(self, namespace: str | None = None) -> AsyncIterator[None]:
        """Run the real operator with a fresh registry, then stop it.

        It gets its own thread and event loop, as in production: kopf waits for every task
        created on its loop at shutdown, which would include the API server's connections.
        """
        registry = kopf.OperatorRegistry()
        kopf.on.login(registry=registry)(kopf.login_with_kubeconfig)
        register(registry, SETTINGS, probe_factory=lambda api, timeout: self.probe)
        stop = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(kopf.operator(registry=registry, standalone=True, clusterwide=namespace is None,
                                          namespaces=[namespace] if namespace else [], stop_flag=stop))
            except BaseException as error:  # surfaced in the test below
                errors.append(error)

        thread = threading.Thread(target=run, name="operator")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
            assert not thread.is_alive(), "operator did not stop"
            assert not errors, errors


async def eventually(check: Callable[[], Any], within: float = 5.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; the API server shares this event loop."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)
