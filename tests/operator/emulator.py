"""A kmock API server that behaves a little more like kube-apiserver.

kmock 0.8 stores objects as given. This subclass adds what the operator and kopf rely on:
uid, creationTimestamp and generation on create; a new resourceVersion on every write;
generation bumps on spec changes; and the garbage collector's cascade through owner
references, so deleting a BuildBuddyAPI really removes its children (and a child created for
an owner that is already gone is removed too, as the real collector does); equality-based
`labelSelector`s on LIST and WATCH, so callers get only the objects they asked for; and the
PersistentVolumeClaimResize admission check: a claim grows only if its StorageClass has
`allowVolumeExpansion: true`, else 403 as kube-apiserver answers. And a `Gate` a test can put
in front of some requests, to hold the operator in the middle of a pass.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp.web
from kmock import KubernetesEmulator
from kmock._internal import enums, rendering

WRITES = (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE)


def selects(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether an equality-based label selector (`a=b,c!=d,e,!f`) matches `labels`."""
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            name, value = (side.strip() for side in term.split("!=", 1))
            ok = labels.get(name) != value
        elif "=" in term:
            name, value = (side.strip() for side in term.split("==" if "==" in term else "=", 1))
            ok = labels.get(name) == value
        elif term.startswith("!"):
            ok = term[1:].strip() not in labels
        else:
            assert " " not in term, f"set-based selectors are not emulated: {selector!r}"
            ok = term in labels
        if not ok:
            return False
    return True


def _selected(request: rendering.Request, obj: Any) -> bool:
    meta = (obj.get("metadata") or {}) if isinstance(obj, Mapping) else {}
    return selects(request.params.get("labelSelector", ""), meta.get("labels") or {})


class Gate:
    """Holds the requests it matches until the test lets them through, one at a time."""

    def __init__(self, matches: Callable[[rendering.Request], bool]) -> None:
        self.matches = matches
        self.waiting = 0
        self._passes = asyncio.Semaphore(0)

    async def wait(self, request: rendering.Request) -> None:
        if self.matches(request):
            self.waiting += 1
            await self._passes.acquire()

    def let_one_through(self) -> None:
        self.waiting -= 1
        self._passes.release()


class ApiServer(KubernetesEmulator):
    _versions = itertools.count(1)
    gate: Gate | None = None

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self.gate is not None:
            await self.gate.wait(request)
        if self._resize_refused(request):
            return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                              "reason": "Forbidden", "code": 403,
                                              "message": "only dynamically provisioned pvc can be resized and "
                                                         "the storageclass that provisions the pvc must support "
                                                         "resize"}, status=403)
        version = str(next(self._versions))
        if request.resource is not None and request.action == enums.action.CREATE:
            self._stamp_new(request.data, version)
        elif request.resource is not None and request.action == enums.action.UPDATE and request.name:
            self._stamp_change(request, version)
        response: aiohttp.web.StreamResponse = await super()._handle(request)
        if request.resource is not None and request.action in WRITES:
            await self._collect_garbage()
        return response

    def _resize_refused(self, request: rendering.Request) -> bool:
        resource = request.resource
        if (resource is None or resource.plural != "persistentvolumeclaims" or request.action != enums.action.UPDATE
                or request.subresource is not None or request.name is None or not isinstance(request.data, dict)):
            return False
        wanted = ((request.data.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        try:
            claim = self.objects[resource, request.namespace, request.name].last.raw
        except KeyError:
            return False
        if wanted is None or wanted == claim["spec"]["resources"]["requests"]["storage"]:
            return False
        classes = [obj.raw for (res, _, name), obj in self.objects.items()
                   if res.plural == "storageclasses" and name == claim["spec"].get("storageClassName")
                   and not obj.deleted]
        return not (classes and classes[0].get("allowVolumeExpansion"))

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        listed = await super()._serve_list(request)
        assert isinstance(listed, dict)
        return listed | {"items": [obj for obj in listed["items"] if _selected(request, obj)]}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        async for event in super()._serve_watch(request):
            if not isinstance(event, Mapping) or _selected(request, event.get("object")):
                yield event

    @staticmethod
    def _stamp_new(data: dict[str, Any], version: str) -> None:
        meta = data.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = version
        meta["generation"] = 1

    def _stamp_change(self, request: rendering.Request, version: str) -> None:
        assert request.resource is not None and request.name is not None
        try:
            current = self.objects[request.resource, request.namespace, request.name]
            generation = current.last.raw.get("metadata", {}).get("generation", 1)
        except (KeyError, ValueError):
            return  # the parent answers 404
        if isinstance(request.data, list):  # JSON patch
            spec_changed = any(op.get("path", "").startswith("/spec") for op in request.data)
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
            if spec_changed:
                request.data.append({"op": "add", "path": "/metadata/generation", "value": generation + 1})
        elif isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {}) or {}
            request.data["metadata"] = meta
            meta["resourceVersion"] = version
            if "spec" in request.data and request.subresource is None:
                meta["generation"] = generation + 1

    async def _collect_garbage(self) -> None:
        """Delete, transitively, every object whose controller owner no longer exists."""
        while True:
            alive = {obj.raw["metadata"].get("uid") for _, obj in self.objects.items() if not obj.deleted}
            orphans = [(key, obj) for key, obj in self.objects.items() if not obj.deleted and any(
                ref.get("uid") not in alive for ref in obj.raw["metadata"].get("ownerReferences", []))]
            if not orphans:
                return
            for (resource, _, _), obj in orphans:
                raw = obj.raw
                obj.delete()
                await self._buses[resource].put({"type": "DELETED", "object": raw})
