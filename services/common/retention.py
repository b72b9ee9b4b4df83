"""Retention policies: how long each tenant's invocations and audit entries are kept.

The defaults are settings of the metadata service (and of `bbapi serve`); per-tenant overrides are
rows in the metadata database (`bbapi retention set`). Time counts from an invocation's last
activity, so a build that is still streaming is never expired, however long ago it started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import Field

from services.common.durations import Duration
from services.common.settings import CommonSettings

DAY = 86_400


class RetentionSettings(CommonSettings):
    invocation_retention: Duration = Field(
        Duration(30 * DAY), description="how long an invocation and all of it (events, targets, actions, files, "
                                        "log) is kept after its last activity, e.g. 30d or 12h; 0 keeps it forever; "
                                        "`bbapi retention set` overrides it per tenant")
    audit_retention: Duration = Field(
        Duration(365 * DAY), description="how long audit log entries are kept; 0 keeps them forever")


@dataclass(frozen=True)
class Override:
    """A tenant's own windows; None leaves that one at the default."""

    invocations: Duration | None = None
    audit: Duration | None = None


@dataclass(frozen=True)
class Policies:
    invocations: Duration
    audit: Duration
    overrides: Mapping[str, Override] = field(default_factory=dict)

    @classmethod
    def defaults(cls, settings: RetentionSettings, overrides: Mapping[str, Override]) -> Policies:
        return cls(settings.invocation_retention, settings.audit_retention, overrides)

    def invocations_of(self, tenant: str) -> Duration:
        own = self.overrides.get(tenant, Override()).invocations
        return self.invocations if own is None else own

    def audit_of(self, tenant: str) -> Duration:
        own = self.overrides.get(tenant, Override()).audit
        return self.audit if own is None else own


def cutoff(now_usec: int, window: Duration) -> int | None:
    """Data whose last activity is before this has expired; None when the window is forever."""
    return None if window == 0 else now_usec - window * 1_000_000
