"""Status: component counts from workloads, conditions, and their transition times."""

from __future__ import annotations

import datetime
from typing import Any

from bbapi_operator import membership
from bbapi_operator.meta import Owner
from bbapi_operator.spec import SecretRef
from bbapi_operator.status import ComponentState, Problem, conditions, failure, report, stamp

from services.blobstore.cluster import resize
from services.blobstore.cluster.resize import Phase

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
OWNER = Owner(name="demo", namespace="builds", uid="uid-1")


def workload(name: str, replicas: int = 2, ready: int = 2, updated: int = 2, generation: int = 1,
             observed: int = 1, workload_conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "Deployment",
            "metadata": {"name": f"demo-{name}", "generation": generation,
                         "labels": {"app.kubernetes.io/component": name}},
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed,
                       "conditions": workload_conditions or []}}


def by_type(found: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def test_component_state_reads_the_controller_status() -> None:
    state = ComponentState.of(workload("gateway", replicas=3, ready=2, updated=3, generation=4, observed=3))
    assert (state.name, state.desired, state.ready, state.updated) == ("gateway", 3, 2, 3)
    assert not state.observed and not state.rolled_out and not state.available
    fresh = ComponentState.of({"kind": "StatefulSet", "metadata": {"labels": {"app.kubernetes.io/component": "cas"}},
                               "spec": {"replicas": 3}})
    assert (fresh.ready, fresh.updated, fresh.available) == (0, 0, False)


def test_all_ready() -> None:
    found = conditions([ComponentState.of(workload("gateway")), ComponentState.of(workload("cas"))], None)
    assert by_type(found) == {"Ready": ("True", "AllComponentsReady"), "Progressing": ("False", "Stable"),
                              "Degraded": ("False", "AsExpected")}


def test_rolling_out() -> None:
    found = conditions([ComponentState.of(workload("gateway", ready=1)), ComponentState.of(workload("cas"))], None)
    assert by_type(found)["Ready"] == ("False", "ComponentsNotReady")
    assert by_type(found)["Progressing"] == ("True", "RollingOut")
    assert "gateway 1/2 ready" in found[0]["message"] and "cas" not in found[0]["message"]


def test_new_spec_not_yet_observed_is_progressing() -> None:
    found = conditions([ComponentState.of(workload("gateway", generation=2, observed=1))], None)
    assert by_type(found)["Progressing"] == ("True", "RollingOut")


def test_membership_change_is_progressing() -> None:
    plan = membership.plan(OWNER, 4, 2, resize.document(2, membership.members(OWNER, 3), None), 3)
    assert plan.phase is Phase.WAITING_FOR_SHARDS
    found = conditions([ComponentState.of(workload("cas"))], plan)
    assert by_type(found)["Progressing"] == ("True", "WaitingForShards")
    assert by_type(found)["Ready"] == ("True", "AllComponentsReady")  # serving throughout


def test_stuck_rollout_is_degraded() -> None:
    stuck = workload("gateway", ready=1, workload_conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}])
    failing = workload("logs", workload_conditions=[
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}])
    found = conditions([ComponentState.of(stuck), ComponentState.of(failing)], None)
    assert by_type(found)["Degraded"] == ("True", "RolloutStuck")
    degraded = found[2]["message"]
    assert "gateway: ProgressDeadlineExceeded: too slow" in degraded and "logs: FailedCreate: quota" in degraded


def test_transition_time_holds_while_status_holds() -> None:
    first = stamp(conditions([ComponentState.of(workload("gateway", ready=0))], None), [], 1, T0)
    same = stamp(conditions([ComponentState.of(workload("gateway", ready=1))], None), first, 2, T1)
    flipped = stamp(conditions([ComponentState.of(workload("gateway"))], None), same, 2, T1)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_report_is_complete_and_clears_stale_parts() -> None:
    body = {"metadata": {"generation": 7}, "status": {"conditions": []}}
    status = report(body, [ComponentState.of(workload("server", replicas=1, ready=1, updated=1))], None,
                    SecretRef("demo-api-key", "api-key"), {"grpc": "grpc://x:1985", "http": "http://x:8080"}, T0)
    assert status["observedGeneration"] == 7
    assert status["components"] == [{"name": "server", "desired": 1, "ready": 1, "updated": 1}]
    assert status["cas"] is None  # explicit null: a merge-patch removes the distributed mode's figures
    assert status["apiKeySecret"] == {"name": "demo-api-key", "key": "api-key"}
    assert by_type(status["conditions"])["Ready"] == ("True", "AllComponentsReady")


def test_failure_changes_only_degraded() -> None:
    ready = stamp(conditions([ComponentState.of(workload("gateway"))], None), [], 1, T0)
    body = {"metadata": {"generation": 2}, "status": {"conditions": ready}}
    patch = failure(body, Problem("ReconcileFailed", "API answered 500"), T1)
    assert by_type(patch["conditions"]) == {"Ready": ("True", "AllComponentsReady"),
                                            "Progressing": ("False", "Stable"),
                                            "Degraded": ("True", "ReconcileFailed")}
    assert set(patch) == {"conditions"}


def test_failure_on_a_new_object_says_not_ready() -> None:
    patch = failure({"metadata": {"generation": 1}}, Problem("InvalidSpec", "bad"), T0)
    assert by_type(patch["conditions"]) == {"Ready": ("False", "InvalidSpec"), "Degraded": ("True", "InvalidSpec")}
