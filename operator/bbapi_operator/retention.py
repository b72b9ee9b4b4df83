"""The spec's retention section as the settings (BBAPI_* variables) of the processes that expire data."""

from __future__ import annotations

from bbapi_operator.pods import Env, env
from bbapi_operator.spec import Spec


def _flag(value: bool) -> str:
    return "true" if value else "false"


def janitor_env(spec: Spec) -> list[Env]:
    """The janitor's settings: the metadata and logs processes each run one."""
    retention = spec.retention
    return [env("JANITOR", _flag(retention.janitor)), env("JANITOR_INTERVAL_SECONDS", retention.interval_seconds),
            env("JANITOR_BATCH", retention.batch), env("JANITOR_DRY_RUN", _flag(retention.dry_run))]


def policy_env(spec: Spec) -> list[Env]:
    """The default windows, which the metadata process holds (and serves to the logs processes)."""
    return [env("INVOCATION_RETENTION", spec.retention.invocations), env("AUDIT_RETENTION", spec.retention.audit)]
