"""kopf wiring: what triggers a reconcile, how passes are serialised, and kopf's settings.

A reconcile runs when the BuildBuddyAPI is found at start-up or its spec has a generation no pass
has acted on yet, when any child it owns is changed or deleted (so status follows the pods, and
drift is repaired within seconds), and on a timer: while a CAS membership copy is in flight, after
a failure, and a slow resync for anything a watch missed. The trigger compares generations rather
than using kopf's create/update diff: a pass reads the live object, so kopf's idea of what was
handled can differ from what a pass saw (a spec changed and changed back while a pass ran looked
unchanged to kopf, and a refusal stayed on the status). There are no kopf timers, daemons or
change handlers: those would put a finalizer or annotations on every object, and owner references
already let the garbage collector delete the children, even while the operator is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from bbapi_operator import crd
from bbapi_operator.apply import PRUNABLE
from bbapi_operator.kube import KINDS, KubeApi, connect
from bbapi_operator.meta import LABEL_MANAGED_BY, MANAGED_BY, label_selector
from bbapi_operator.probe import GatewayProbe, PodProbe
from bbapi_operator.reconcile import Reconciler
from bbapi_operator.settings import OperatorSettings

log = logging.getLogger(__name__)
Key = tuple[str, str]
ProbeFactory = Callable[[KubeApi, float], GatewayProbe]
# Watched: every kind the operator prunes, so a deleted or edited child is put back at once.
# (The generated API key Secret is not: the operator may create Secrets but never read them.)
CHILD_KINDS = tuple(KINDS[name] for name in PRUNABLE)


class Controller:
    """Runs reconciles in worker threads, at most one per object at a time.

    Triggers that arrive while a pass runs collapse into one more pass, so a burst of child
    events costs two passes, not one per event.
    """

    def __init__(self, reconciler: Reconciler, config: OperatorSettings) -> None:
        self._reconciler = reconciler
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="reconcile")
        self._running: dict[Key, bool] = {}  # object -> another pass was asked for meanwhile
        self._acted_on: dict[Key, int] = {}  # object -> the generation its last pass read
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile now (or after the pass already running); errors propagate to the caller."""
        key = (namespace, name)
        if key in self._running:
            self._running[key] = True
            return
        self._running[key] = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                outcome = await loop.run_in_executor(self._executor, self._reconciler.reconcile, namespace, name)
                self._acted_on[key] = outcome.generation
                if not self._running[key]:
                    break
                self._running[key] = False
        finally:
            del self._running[key]
        if outcome.requeue_after is not None:
            self._schedule(key, outcome.requeue_after)

    def spec_changed(self, namespace: str, name: str, generation: int) -> bool:
        """True when no pass has read this generation of the object's spec yet."""
        return generation > self._acted_on.get((namespace, name), 0)

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone: drop what was kept about it."""
        self._acted_on.pop((namespace, name), None)

    def nudge(self, namespace: str, name: str) -> None:
        """Reconcile in the background; a failure is logged and retried later."""
        task = asyncio.get_running_loop().create_task(self._guarded(namespace, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, namespace: str, name: str) -> None:
        try:
            await self.reconcile(namespace, name)
        except Exception:
            log.exception("%s/%s: reconcile failed; retrying in %ss", namespace, name, self._config.retry_seconds)
            self._schedule((namespace, name), self._config.retry_seconds)

    def _schedule(self, key: Key, delay: float) -> None:
        """Look again after `delay`, unless a re-check is already due sooner."""
        loop = asyncio.get_running_loop()
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        del self._timers[key]
        self.nudge(*key)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)


def configure(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """kopf's settings: no scanning (least privilege), bounded waits, watches of our children only."""
    settings.posting.enabled = config.post_events
    settings.posting.level = logging.getLevelNamesMapping()[config.events_level.upper()]
    settings.scanning.disabled = True  # no cluster-wide CRD or namespace listing needed
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = config.request_timeout_seconds
    settings.networking.request_timeout = config.request_timeout_seconds
    settings.execution.max_workers = config.workers
    for kind in CHILD_KINDS:  # watch only our own children, not every workload in the cluster
        settings.watching.label_selectors[kind.group, kind.plural] = label_selector({LABEL_MANAGED_BY: MANAGED_BY})


def _owner_name(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("apiVersion") == crd.API_VERSION and ref.get("kind") == crd.KIND:
            return str(ref["name"])
    return None


class _Slot:
    """Holds the controller built at start-up (kopf runs start-up before any resource handler)."""

    controller: Controller | None = None

    def get(self) -> Controller:
        assert self.controller is not None, "kopf ran a handler before start-up"
        return self.controller


def register(registry: kopf.OperatorRegistry, config: OperatorSettings,
             probe_factory: ProbeFactory = PodProbe) -> None:
    """Register every handler in `registry`. Tests pass their own registry and gateway probe."""
    slot = _Slot()

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, config)
        api = KubeApi(connect(), config.request_timeout_seconds)
        slot.controller = Controller(Reconciler(api, probe_factory(api, config.request_timeout_seconds), config),
                                     config)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        if slot.controller is not None:  # start-up may have failed before building it
            await slot.controller.stop()

    @kopf.on.event(crd.GROUP, crd.VERSION, crd.PLURAL, id="reconcile", registry=registry)
    async def owner_event(type: str | None, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None  # BuildBuddyAPI is namespaced
        controller = slot.get()
        if type == "DELETED":
            controller.forget(namespace, name)
        elif type is None or controller.spec_changed(namespace, name, body["metadata"].get("generation", 0)):
            controller.nudge(namespace, name)  # type None: listed at start-up or after a watch restart

    async def child_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = _owner_name(body)
        if owner is not None and namespace is not None:
            slot.get().nudge(namespace, owner)

    for kind in CHILD_KINDS:
        kopf.on.event(kind.group, kind.version, kind.plural, id="child-changed", labels={LABEL_MANAGED_BY: MANAGED_BY},
                      registry=registry)(child_changed)
