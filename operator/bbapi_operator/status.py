"""The status a BuildBuddyAPI reports: per-component pod counts and standard conditions."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bbapi_operator.meta import LABEL_COMPONENT
from bbapi_operator.spec import SecretRef
from services.blobstore.cluster.resize import Phase, Plan

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class ComponentState:
    """Pod counts of one Deployment or StatefulSet, as its controller reports them."""

    name: str
    desired: int
    ready: int
    updated: int
    observed: bool  # the controller has seen the latest spec
    stuck: str | None = None  # why the rollout cannot proceed, if it cannot

    @classmethod
    def of(cls, workload: Mapping[str, Any]) -> ComponentState:
        meta, spec, status = workload["metadata"], workload.get("spec", {}), workload.get("status") or {}
        return cls(name=meta["labels"][LABEL_COMPONENT], desired=spec.get("replicas", 1),
                   ready=status.get("readyReplicas", 0), updated=status.get("updatedReplicas", 0),
                   observed=status.get("observedGeneration", 0) >= meta.get("generation", 0),
                   stuck=_stuck(status.get("conditions", [])))

    @property
    def rolled_out(self) -> bool:
        return self.observed and self.updated >= self.desired

    @property
    def available(self) -> bool:
        return self.ready >= self.desired

    def summary(self) -> str:
        return f"{self.name} {self.ready}/{self.desired} ready"


@dataclass(frozen=True)
class Problem:
    """Something the operator itself could not do; it makes the object Degraded."""

    reason: str  # e.g. InvalidSpec, ReconcileFailed, ModeChangeRefused, VolumeExpansionRefused
    message: str


def _stuck(workload_conditions: Sequence[Mapping[str, Any]]) -> str | None:
    """A Deployment past its progress deadline, or one whose pods cannot be created."""
    for c in workload_conditions:
        deadline = (c.get("type"), c.get("status"), c.get("reason")) == ("Progressing", "False",
                                                                           "ProgressDeadlineExceeded")
        if deadline or (c.get("type"), c.get("status")) == ("ReplicaFailure", "True"):
            return f"{c.get('reason')}: {c.get('message', '')}"
    return None


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def conditions(components: Sequence[ComponentState], plan: Plan | None,
               problems: Sequence[Problem] = ()) -> list[dict[str, Any]]:
    """Ready: every component has its pods. Progressing: a rollout or a shard change is under way.
    Degraded: a rollout is stuck, or part of the spec could not be applied (`problems`, e.g. a
    volume the StorageClass cannot expand). (When the operator cannot act at all, see `failure`.)"""
    waiting = [c for c in components if not (c.available and c.rolled_out)]
    if waiting or not components:
        ready = _condition("Ready", False, "ComponentsNotReady", ", ".join(c.summary() for c in waiting))
    else:
        ready = _condition("Ready", True, "AllComponentsReady", ", ".join(c.summary() for c in components))

    if plan is not None and plan.phase is not Phase.STABLE:
        progressing = _condition("Progressing", True, plan.phase.value,
                                 f"CAS membership {plan.shards} -> {plan.target} shards")
    elif waiting:
        progressing = _condition("Progressing", True, "RollingOut", ", ".join(c.summary() for c in waiting))
    else:
        progressing = _condition("Progressing", False, "Stable", "nothing to roll out")

    stuck = [f"{c.name}: {c.stuck}" for c in components if c.stuck]
    if stuck:
        degraded = _condition("Degraded", True, "RolloutStuck", "; ".join(stuck))
    elif problems:
        degraded = _condition("Degraded", True, problems[0].reason, "; ".join(p.message for p in problems))
    else:
        degraded = _condition("Degraded", False, "AsExpected", "")
    return [ready, progressing, degraded]


def stamp(fresh: list[dict[str, Any]], previous: Sequence[Mapping[str, Any]], generation: int,
          now: datetime.datetime) -> list[dict[str, Any]]:
    """Add observedGeneration and lastTransitionTime, keeping the time while a status holds."""
    before = {c.get("type"): c for c in previous}
    stamped = []
    for condition in fresh:
        old = before.get(condition["type"])
        since = old.get("lastTransitionTime") if old and old.get("status") == condition["status"] else None
        stamped.append(condition | {"observedGeneration": generation,
                                    "lastTransitionTime": since or now.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return stamped


def report(body: Mapping[str, Any], components: Sequence[ComponentState], plan: Plan | None,
           api_key: SecretRef, endpoints: dict[str, str], now: datetime.datetime,
           problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The whole `status`. Absent parts are explicit nulls so a merge-patch clears stale values."""
    generation = body["metadata"].get("generation", 0)
    previous = (body.get("status") or {}).get("conditions") or []
    cas = None if plan is None else {"shards": plan.shards, "desiredShards": plan.target,
                                     "phase": plan.phase.value, "copied": plan.copied, "scanned": plan.scanned}
    return {
        "observedGeneration": generation,
        "conditions": stamp(conditions(components, plan, problems), previous, generation, now),
        "components": [{"name": c.name, "desired": c.desired, "ready": c.ready, "updated": c.updated}
                       for c in components],
        "cas": cas,
        "apiKeySecret": {"name": api_key.name, "key": api_key.key},
        "endpoints": endpoints,
    }


def failure(body: Mapping[str, Any], problem: Problem, now: datetime.datetime) -> dict[str, Any]:
    """A status patch for when the operator could not act: only Degraded changes, the rest of
    the status still describes what runs (a transient API error must not flip Ready)."""
    generation = body["metadata"].get("generation", 0)
    previous = (body.get("status") or {}).get("conditions") or []
    kept = [c for c in previous if c.get("type") != "Degraded"]
    fresh = [_condition("Degraded", True, problem.reason, problem.message)]
    if not any(c.get("type") == "Ready" for c in kept):  # never ran: say so
        fresh.insert(0, _condition("Ready", False, problem.reason, problem.message))
    return {"conditions": kept + stamp(fresh, previous, generation, now)}
