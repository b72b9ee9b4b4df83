"""One reconcile pass: read the object, converge its children, report status.

Level-triggered: it reads everything it decides on (the object, and all its children with one
LIST per kind) fresh from the API server, so it can run after a create, an update, a child's
change, an operator restart or a timed re-check with the same result.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from bbapi_operator import apikey, crd, desired, guards, membership, networking, volumes, zones
from bbapi_operator.apply import Key, apply, contains, key, live_children, prune
from bbapi_operator.kube import KINDS, KubeApi
from bbapi_operator.meta import Owner
from bbapi_operator.pods import ADMIN_PORT
from bbapi_operator.probe import GatewayProbe
from bbapi_operator.settings import OperatorSettings
from bbapi_operator.spec import InvalidSpec, Spec, check_name, parse
from bbapi_operator.status import WORKLOAD_KINDS, ComponentState, Problem, failure, report
from services.blobstore.cluster import resize

log = logging.getLogger(__name__)
OWNER_KIND = KINDS[crd.KIND]
CLAIM_KIND = KINDS["PersistentVolumeClaim"]
EXPANSION_REFUSED = (403, 422)  # the StorageClass does not allow it, or we may not


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Outcome:
    """When to look again without being told: soon while a copy is in flight or after a failure,
    the slow resync once settled; None = only on change (the object is gone or invalid)."""

    requeue_after: float | None = None
    generation: int = 0  # the object's metadata.generation this pass acted on (0: it was gone)


@dataclass(frozen=True)
class Converged:
    components: list[ComponentState]
    plan: resize.Plan | None
    problems: list[Problem]  # parts of the spec that could not be applied
    settled: bool  # no membership copy in flight and no volume still growing


class Refused(Exception):
    """The spec asks for a change that would destroy or strand data (see guards)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class Reconciler:
    def __init__(self, api: KubeApi, probe: GatewayProbe, settings: OperatorSettings,
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self._api = api
        self._probe = probe
        self._settings = settings
        self._clock = clock
        self._keys_created: set[str] = set()  # owner uids whose generated key Secret exists

    def reconcile(self, namespace: str, name: str) -> Outcome:
        body = self._api.get(OWNER_KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome()  # gone or going: the garbage collector removes the children
        owner = Owner.of(body)
        generation = int(body["metadata"].get("generation", 0))
        try:
            check_name(name)
            spec = parse(body.get("spec"), self._settings.default_image)
        except InvalidSpec as error:
            log.warning("%s/%s: invalid spec: %s", namespace, name, error)
            self._write_status(body, failure(body, Problem("InvalidSpec", str(error)), self._clock()))
            return Outcome(generation=generation)
        try:
            done = self._converge(owner, spec)
        except Refused as refused:
            log.warning("%s/%s: refused: %s", namespace, name, refused.problem.message)
            self._write_status(body, failure(body, refused.problem, self._clock()))
            return Outcome(self._settings.resync_seconds, generation)
        except ApiException as error:
            log.warning("%s/%s: reconcile failed: %s %s", namespace, name, error.status, error.reason)
            problem = Problem("ReconcileFailed", f"Kubernetes API answered {error.status} {error.reason}")
            self._write_status(body, failure(body, problem, self._clock()))
            return Outcome(self._settings.retry_seconds, generation)
        self._write_status(body, report(body, done.components, done.plan, apikey.secret_ref(owner, spec),
                                        networking.endpoints(owner, spec), self._clock(), done.problems))
        return Outcome(self._settings.resync_seconds if done.settled else self._settings.poll_seconds, generation)

    def _converge(self, owner: Owner, spec: Spec) -> Converged:
        self._ensure_api_key(owner, spec)
        live = live_children(self._api, owner)
        storage = owner.child(guards.storage_workload(spec))
        claims = self._claims(owner, storage)
        problem = guards.refusal(owner, spec, live, claims)
        if problem is not None:
            raise Refused(problem)
        problems = self._expand(owner, spec, claims)
        plan = None if spec.embedded else self._plan(owner, spec, live)
        budget = None if plan is None else volumes.cache_budget(
            claims, storage, plan.replicas, volumes.template_size(live.get(("StatefulSet", storage)),
                                                                  spec.cas.volume_size))
        wanted = desired.children(owner, spec, plan, budget)
        applied = [apply(self._api, obj, live.get(key(obj))) for obj in wanted]
        for gone in prune(self._api, owner, wanted, live):
            log.info("%s/%s: deleted %s, no longer in spec", owner.namespace, owner.name, gone)
        return Converged([ComponentState.of(obj) for obj in applied if obj["kind"] in WORKLOAD_KINDS], plan,
                         problems, settled=(plan is None or plan.settled) and not volumes.expanding(claims))

    def _claims(self, owner: Owner, statefulset: str) -> dict[str, dict[str, Any]]:
        """The data volume claims the StatefulSet controller made for `statefulset`'s pods."""
        prefix = f"{volumes.DATA_VOLUME}-{statefulset}-"
        return {claim["metadata"]["name"]: claim
                for claim in self._api.list(CLAIM_KIND, owner.namespace, owner.managed_selector())
                if claim["metadata"]["name"].startswith(prefix)}

    def _expand(self, owner: Owner, spec: Spec, claims: dict[str, dict[str, Any]]) -> list[Problem]:
        """Grow claims below cas.volumeSize; `claims` is updated with the answers."""
        problems = []
        wanted = spec.cas.volume_size
        for name in volumes.too_small(claims, wanted):
            try:
                claims[name] = self._api.patch(CLAIM_KIND, owner.namespace, name, volumes.expansion(wanted))
            except ApiException as error:
                if error.status not in EXPANSION_REFUSED:
                    raise
                problems.append(Problem("VolumeExpansionRefused", f"{name} cannot grow to {wanted}: "
                                        f"{error.status} {error.reason} (does its StorageClass allow expansion?)"))
            else:
                log.info("%s/%s: expanding %s to %s", owner.namespace, owner.name, name, wanted)
        return problems

    def _ensure_api_key(self, owner: Owner, spec: Spec) -> None:
        """Create `<name>-api-key` once; an existing Secret is never read or replaced, so the
        operator needs no permission to read Secrets and the key never changes."""
        if spec.api_key_secret is not None or owner.uid in self._keys_created:
            return
        if self._api.create_if_absent(apikey.secret(owner, apikey.generate_key())):
            log.info("%s/%s: created API key Secret %s", owner.namespace, owner.name, owner.child("api-key"))
        self._keys_created.add(owner.uid)

    def _plan(self, owner: Owner, spec: Spec, live: dict[Key, dict[str, Any]]) -> resize.Plan:
        configmap = live.get(("ConfigMap", membership.configmap_name(owner))) or {}
        text = (configmap.get("data") or {}).get(membership.CONFIG_KEY)
        shards = live.get(("StatefulSet", owner.child("cas"))) or {}
        ready = (shards.get("status") or {}).get("readyReplicas", 0)
        reports = self._probe(owner, ADMIN_PORT) if resize.in_flight(text) else []
        plan = membership.plan(owner, spec.cas.shards, spec.cas.replication, text, ready, reports,
                               zones.known(zones.discover(self._api, owner), text))
        if plan.text != text:
            log.info("%s/%s: CAS membership -> %d shards (%s)", owner.namespace, owner.name, plan.shards,
                     plan.phase.value)
        return plan

    def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Patch the status subresource, unless it already says exactly this."""
        if contains(body.get("status") or {}, status):
            return
        meta = body["metadata"]
        try:
            self._api.patch(OWNER_KIND, meta["namespace"], meta["name"], {"status": status}, subresource="status")
        except ApiException as error:
            if error.status != 404:  # deleted during the pass: nothing left to report on
                raise
