"""The controller's scheduling: one pass per object at a time, bursts coalesced, timed re-checks."""

from __future__ import annotations

import asyncio
import threading

import kopf
from bbapi_operator.controller import Controller, configure
from bbapi_operator.reconcile import Outcome
from bbapi_operator.settings import OperatorSettings

from tests.operator.cluster import eventually

CONFIG = OperatorSettings(retry_seconds=0.05, workers=4)


class FakeReconciler:
    """Counts passes, can hold one open, and answers with queued outcomes or errors."""

    def __init__(self, *answers: Outcome | Exception) -> None:
        self.answers = list(answers)
        self.passes: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.release.set()
        self.overlap = 0
        self.active = 0
        self._lock = threading.Lock()

    def reconcile(self, namespace: str, name: str) -> Outcome:
        with self._lock:
            self.active += 1
            self.overlap = max(self.overlap, self.active)
        self.release.wait(5)
        with self._lock:
            self.active -= 1
            self.passes.append((namespace, name))
            answer = self.answers.pop(0) if self.answers else Outcome()
        if isinstance(answer, Exception):
            raise answer
        return answer


def controller(reconciler: FakeReconciler) -> Controller:
    return Controller(reconciler, CONFIG)  # type: ignore[arg-type]


async def test_burst_while_running_costs_one_more_pass() -> None:
    fake = FakeReconciler()
    fake.release.clear()
    subject = controller(fake)
    first = asyncio.create_task(subject.reconcile("ns", "a"))
    await eventually(lambda: fake.active == 1)
    for _ in range(5):
        await subject.reconcile("ns", "a")  # returns at once: the running pass will go again
    fake.release.set()
    await first
    assert fake.passes == [("ns", "a")] * 2 and fake.overlap == 1
    await subject.stop()


async def test_objects_run_in_parallel() -> None:
    fake = FakeReconciler()
    fake.release.clear()
    subject = controller(fake)
    tasks = [asyncio.create_task(subject.reconcile("ns", name)) for name in ("a", "b")]
    await eventually(lambda: fake.active == 2)
    fake.release.set()
    await asyncio.gather(*tasks)
    assert sorted(fake.passes) == [("ns", "a"), ("ns", "b")]
    await subject.stop()


async def test_requeue_and_retry() -> None:
    fake = FakeReconciler(Outcome(requeue_after=0.01), RuntimeError("boom"), Outcome())
    subject = controller(fake)
    await subject.reconcile("ns", "a")  # asks to be looked at again; then fails; then retried
    await eventually(lambda: len(fake.passes) == 3, what="re-check and retry")
    await asyncio.sleep(0.1)
    assert len(fake.passes) == 3  # settled: no more passes
    await subject.stop()


async def test_stop_cancels_pending_rechecks() -> None:
    fake = FakeReconciler(Outcome(requeue_after=0.05))
    subject = controller(fake)
    await subject.reconcile("ns", "a")
    await subject.stop()
    await asyncio.sleep(0.1)
    assert len(fake.passes) == 1


def test_kopf_watches_only_the_children_it_manages() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorSettings())
    managed = ["app.kubernetes.io/managed-by=bbapi-operator"]
    for group, plural in (("apps", "deployments"), ("apps", "statefulsets"), ("", "services"), ("", "configmaps"),
                          ("policy", "poddisruptionbudgets"), ("autoscaling", "horizontalpodautoscalers")):
        version = "v2" if group == "autoscaling" else "v1"
        assert settings.watching.label_selectors.collect(kopf.Resource(group, version, plural)) == managed
    assert settings.watching.label_selectors.collect(kopf.Resource("", "v1", "pods")) == []


async def test_a_sooner_recheck_replaces_a_later_one() -> None:
    fake = FakeReconciler(Outcome(requeue_after=60), Outcome(requeue_after=0.01))
    subject = controller(fake)
    await subject.reconcile("ns", "a")  # settled: the slow resync is due in a minute
    await subject.reconcile("ns", "a")  # now something is in flight: look again soon
    await eventually(lambda: len(fake.passes) == 3, what="the sooner re-check")
    await subject.stop()


async def test_a_generation_is_new_until_a_pass_has_read_it() -> None:
    subject = controller(FakeReconciler(Outcome(generation=3)))
    assert subject.spec_changed("ns", "a", 1)  # never reconciled: anything is new
    await subject.reconcile("ns", "a")
    assert not subject.spec_changed("ns", "a", 3)  # e.g. a status write: no pass needed
    assert subject.spec_changed("ns", "a", 4)
    subject.forget("ns", "a")
    assert subject.spec_changed("ns", "a", 3)  # deleted and created again under the same name
    await subject.stop()
