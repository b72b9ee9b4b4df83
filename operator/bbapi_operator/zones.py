"""Which zone each CAS shard runs in: its pod's node label `topology.kubernetes.io/zone`.

The membership document names a zone per shard so placement can keep a key's replicas in
distinct zones (services.blobstore.cluster.placement). A shard keeps the zone the document
already gives it while its pod is not scheduled or its node has no label, so a pod that is
being rescheduled moves no data; a pod that comes back in another zone changes the document,
and the change is copied like a resize. Nodes are cluster-scoped: reading them needs `get` on
`nodes` (the chart grants it); without it the shards simply have no zones.
"""

from __future__ import annotations

import logging

from kubernetes.client.exceptions import ApiException

from bbapi_operator.kube import KINDS, KubeApi
from bbapi_operator.meta import Owner, label_selector
from services.blobstore.cluster import resize

log = logging.getLogger(__name__)
ZONE_LABEL = "topology.kubernetes.io/zone"
FORBIDDEN = 403


def discover(api: KubeApi, owner: Owner) -> dict[str, str]:
    """Shard pod name (= member id) -> zone, for the scheduled pods whose node names one."""
    zones: dict[str, str] = {}
    nodes: dict[str, str | None] = {}
    for pod in api.list(KINDS["Pod"], owner.namespace, label_selector(owner.selector("cas"))):
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            continue
        if node not in nodes:
            try:
                found = api.get(KINDS["Node"], "", node) or {}
            except ApiException as error:
                if error.status != FORBIDDEN:
                    raise
                log.warning("%s/%s: may not read nodes, so CAS shards get no zones", owner.namespace, owner.name)
                return {}
            nodes[node] = ((found.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)
        if zone := nodes[node]:
            zones[pod["metadata"]["name"]] = zone
    return zones


def known(discovered: dict[str, str], current_text: str | None) -> dict[str, str]:
    """Member id -> zone: where its pod runs now, else what the current document says."""
    document = resize.decode(current_text)
    written = {m.id: m.zone for m in document.everyone() if m.zone} if document else {}
    return written | discovered
