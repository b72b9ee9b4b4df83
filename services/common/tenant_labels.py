"""A bounded `tenant` label for Prometheus counters, so the hit ratio per team is one query.

Tenants are few, but a key store may hold many: the first `limit` tenants a process sees get a
label value of their own and the rest share `OTHER`, so the series count stays bounded whatever
clients do. `OTHER` starts with `_`, which no tenant name may, so it never merges with a real one.
Children are cached per label values: a counted call costs two dict look-ups, never `.labels()`.
"""

from __future__ import annotations

from prometheus_client import Counter

OTHER = "_other"
DEFAULT_LIMIT = 50


class TenantLabels:
    """Which tenants are labelled by name (the first `limit` seen) and which fold into `OTHER`."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._named: set[str] = set()

    def of(self, tenant: str) -> str:
        if tenant in self._named:
            return tenant
        if len(self._named) < self.limit:
            self._named.add(tenant)
            return tenant
        return OTHER


TENANTS = TenantLabels()  # one per process, like the metrics registry; the edge sets its limit


def limit_tenants(limit: int) -> None:
    """Cap the distinct tenants labelled from now on (tenants already labelled keep their name)."""
    TENANTS.limit = limit


class TenantCounter:
    """The children of `counter`, whose last label is `tenant`, cached by their label values."""

    def __init__(self, counter: Counter, tenants: TenantLabels = TENANTS) -> None:
        self._counter = counter
        self._tenants = tenants
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, tenant: str, *labels: str) -> Counter:
        key = (*labels, self._tenants.of(tenant))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._counter.labels(*key)
        return child
