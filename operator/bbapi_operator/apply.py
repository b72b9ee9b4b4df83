"""Idempotent apply (read, then create or merge-patch) and pruning of children no longer wanted.

A merge-patch alone never deletes a key, so each child carries the last desired state it was
patched with; keys that disappear from the desired state since then are patched to null (a
three-way merge, like `kubectl apply`). Keys nobody asked us for, such as ones another
controller set, are left alone.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from bbapi_operator import crd
from bbapi_operator.kube import KINDS, KubeApi, kind_of
from bbapi_operator.meta import Owner, owned_by

LAST_APPLIED = f"{crd.GROUP}/last-applied"
# Fields the API server refuses to change; a different value is kept as it is on the live object.
IMMUTABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "StatefulSet": (("spec", "volumeClaimTemplates"), ("spec", "serviceName"),
                    ("spec", "podManagementPolicy"), ("spec", "selector")),
    "Deployment": (("spec", "selector"),),
    # Services made before metadata and logs became headless keep their ClusterIP (the address
    # cannot change); balancing then needs the Service recreated.
    "Service": (("spec", "clusterIP"),),
}
# Kept when they vanish from the desired state: a Deployment without replicas belongs to its HPA,
# and nulling the field would reset it to one pod.
HANDED_OVER = {("spec", "replicas")}
PRUNABLE = ("Deployment", "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler")


def removals(old: Mapping[str, Any], new: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A merge-patch fragment nulling every key we set before (in `old`) that `new` no longer has."""
    patch: dict[str, Any] = {}
    for key, before in old.items():
        here = (*path, key)
        if here in HANDED_OVER:
            continue
        after = new.get(key)
        if isinstance(before, Mapping) and (after is None or isinstance(after, Mapping)):
            nested = removals(before, after or {}, here)
            if nested:
                patch[key] = nested
        elif key not in new:
            patch[key] = None
    return patch


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `overlay` wins."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def contains(live: Any, wanted: Any) -> bool:
    """Whether applying `wanted` as a merge-patch would leave `live` unchanged.

    Lists must match item by item, but items may carry extra fields the server defaulted.
    """
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key not in live if value is None else key in live and contains(live[key], value)
            for key, value in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(live, list) and len(live) == len(wanted)
                and all(contains(have, want) for have, want in zip(live, wanted, strict=True)))
    return bool(live == wanted)


def _without(obj: Mapping[str, Any], paths: Iterable[tuple[str, str]]) -> dict[str, Any]:
    trimmed = copy.deepcopy(dict(obj))
    for section, key in paths:
        trimmed.get(section, {}).pop(key, None)
    return trimmed


def _last_applied(live: Mapping[str, Any]) -> dict[str, Any]:
    recorded = live.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED)
    try:
        return dict(json.loads(recorded)) if recorded else {}
    except ValueError:
        return {}


Key = tuple[str, str]  # (kind, name)


def key(obj: Mapping[str, Any]) -> Key:
    return obj["kind"], obj["metadata"]["name"]


def live_children(api: KubeApi, owner: Owner) -> dict[Key, dict[str, Any]]:
    """The live children of `owner`: one LIST per kind instead of one GET per object.

    The label selector narrows the lists; the owner uid decides, so nothing we do not control
    is ever touched. Secrets are not listed (the operator may not read them).
    """
    found: dict[Key, dict[str, Any]] = {}
    for kind_name in PRUNABLE:
        for obj in api.list(KINDS[kind_name], owner.namespace, owner.managed_selector()):
            if owned_by(obj, owner.uid):
                found[kind_name, obj["metadata"]["name"]] = obj | {"kind": kind_name}
    return found


def _create(api: KubeApi, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create; if an object of that name exists already and is ours, return it to be patched.
    Returns the live object and whether it was just created."""
    try:
        return api.create(body), True
    except ApiException as error:
        meta = body["metadata"]
        existing = api.get(kind_of(body), meta["namespace"], meta["name"]) if error.status == 409 else None
        if existing is None or not owned_by(existing, meta["ownerReferences"][0]["uid"]):
            raise
        return existing, False


def apply(api: KubeApi, desired: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """Make the live object match `desired`; returns the live object (with its status)."""
    kind, meta = kind_of(desired), desired["metadata"]
    immutable = IMMUTABLE.get(kind.kind, ())
    body = copy.deepcopy(desired)
    record = json.dumps(_without(desired, immutable), sort_keys=True)
    body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = record
    if live is None:
        live, created = _create(api, body)
        if created:
            return live
    body = _without(body, immutable)
    patch = merge(body, removals(_without(_last_applied(live), immutable), body))
    if contains(live, patch):
        return live
    return api.patch(kind, meta["namespace"], meta["name"], patch)


def prune(api: KubeApi, owner: Owner, keep: Iterable[Mapping[str, Any]],
          live: Mapping[Key, Mapping[str, Any]]) -> list[str]:
    """Delete live children of `owner` that are not in `keep` (e.g. after switching mode).
    A generated API key Secret is never pruned: it outlives spec changes."""
    wanted = {key(obj) for obj in keep}
    deleted = []
    for kind_name, name in live:
        if (kind_name, name) not in wanted:
            api.delete(KINDS[kind_name], owner.namespace, name)
            deleted.append(f"{kind_name}/{name}")
    return deleted
