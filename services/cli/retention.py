"""`bbapi retention show|set|run`: per-tenant retention, directly on the database (like `bbapi keys`).

`run` sweeps once as the services' janitors do (metadata first, then logs), with this command's
defaults (`--invocation-retention`, `--audit-retention`, or their BBAPI_* variables: give it the
services' values); `--dry-run` prints what it would delete and deletes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from pydantic import Field

from services.allinone.settings import EmbeddedDatabase
from services.common import db
from services.common.db import now_usec
from services.common.durations import Duration
from services.common.errors import ApiError, InvalidArgument
from services.common.janitor import JanitorSettings, Sweep
from services.common.retention import Override, RetentionSettings
from services.common.settings import add_arguments, from_args
from services.logs.db import migrate as migrate_logs
from services.logs.expiry import LogExpiry
from services.metadata.db import migrate as migrate_metadata
from services.metadata.retention import policies
from services.metadata.retention.expiry import MetadataExpiry

DEFAULT = "default"
_NOT_FLAGS = ("janitor", "janitor_interval_seconds", "janitor_dry_run")  # the background loop's, not a run's


class RetentionCliSettings(EmbeddedDatabase, RetentionSettings, JanitorSettings):
    tenant: str = Field("", description="the tenant to show or set")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("retention", help="how long each tenant's builds and audit log are kept")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the defaults and every tenant's overrides")
    add_arguments(show, RetentionCliSettings, exclude=_NOT_FLAGS)
    show.set_defaults(run=_command(_show))
    change = actions.add_parser("set", help="override a tenant's windows (30d, 12h, 0 = forever, default)")
    change.add_argument("--invocations", help="how long the tenant's invocations and logs are kept")
    change.add_argument("--audit", help="how long the tenant's audit entries are kept")
    add_arguments(change, RetentionCliSettings, exclude=_NOT_FLAGS)
    change.set_defaults(run=_command(_set))
    run = actions.add_parser("run", help="delete what has expired now, as the janitors do")
    run.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    add_arguments(run, RetentionCliSettings, exclude=(*_NOT_FLAGS, "tenant"))
    run.set_defaults(run=_command(_run))


@asynccontextmanager
async def _databases(settings: RetentionCliSettings) -> AsyncIterator[tuple[db.Sessions, db.Sessions]]:
    """Sessions on the metadata and the logs database (one database when --database is given)."""
    urls = settings.database_url("metadata"), settings.database_url("logs")
    await migrate_metadata(urls[0])
    await migrate_logs(urls[1])
    engines = [db.create_engine(url, pool_size=1) for url in urls]
    try:
        yield db.sessions(engines[0]), db.sessions(engines[1])
    finally:
        for engine in engines:
            await engine.dispose()


Action = Callable[[db.Sessions, db.Sessions, RetentionCliSettings, argparse.Namespace], Awaitable[None]]


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def go() -> None:
            settings = from_args(RetentionCliSettings, args)
            async with _databases(settings) as (metadata, logs):
                await action(metadata, logs, settings, args)

        try:
            asyncio.run(go())
        except ApiError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
        except ValueError as err:  # a setting that does not parse
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    return run


def _window(own: Duration | None, default: Duration) -> str:
    return f"{DEFAULT} ({default.describe()})" if own is None else own.describe()


async def _show(metadata: db.Sessions, _logs: db.Sessions, settings: RetentionCliSettings,
                _args: argparse.Namespace) -> None:
    rules = await policies.policies(metadata, settings)
    print(f"defaults: invocations {rules.invocations.describe()}, audit {rules.audit.describe()} "
          "(time counts from an invocation's last activity)")
    shown = {settings.tenant: rules.overrides.get(settings.tenant, Override())} if settings.tenant else rules.overrides
    print(f"{'TENANT':<24} {'INVOCATIONS':<20} AUDIT")
    for tenant, own in shown.items():
        print(f"{tenant:<24} {_window(own.invocations, rules.invocations):<20} {_window(own.audit, rules.audit)}")


def _change(text: str | None) -> policies.Change:
    if text is None:
        return policies.Keep.UNCHANGED
    if text == DEFAULT:
        return None
    try:
        return Duration.parse(text)
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


async def _set(metadata: db.Sessions, _logs: db.Sessions, settings: RetentionCliSettings,
               args: argparse.Namespace) -> None:
    if not settings.tenant:
        raise InvalidArgument("--tenant is required")
    if args.invocations is None and args.audit is None:
        raise InvalidArgument("give --invocations and/or --audit (e.g. 14d, 0 for forever, or default)")
    own = await policies.set_override(metadata, settings.tenant, _change(args.invocations), _change(args.audit))
    print(f"tenant {settings.tenant}: invocations {_window(own.invocations, settings.invocation_retention)}, "
          f"audit {_window(own.audit, settings.audit_retention)}")


async def _run(metadata: db.Sessions, logs: db.Sessions, settings: RetentionCliSettings,
               args: argparse.Namespace) -> None:
    now = now_usec()
    expiry = MetadataExpiry(metadata, settings, settings)
    done = await expiry.sweep(now, args.dry_run)
    done.merge(await LogExpiry(logs, expiry, settings).sweep(now, args.dry_run))
    _print(done)


def _print(done: Sweep) -> None:
    print(done.summary())
    if done.rows:
        print(f"{'TENANT':<24} {'TABLE':<28} ROWS")
        for tenant, tables in sorted(done.rows.items()):
            for table, count in sorted(tables.items()):
                print(f"{tenant:<24} {table:<28} {count}")
