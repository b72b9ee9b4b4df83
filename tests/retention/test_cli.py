"""`bbapi retention` as a user runs it, on the SQLite files of a data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.common import db
from services.logs.db import migrate as migrate_logs
from services.logs.store import LogStore
from services.metadata.db import migrate as migrate_metadata
from tests.retention.support import idle_invocation, idle_log, invocations, stored_build
from tests.support.servers import bbapi

BUILDS = (("acme", 2), ("acme", 0), ("globex", 2))  # (tenant, days idle)


async def stored(data_dir: Path) -> dict[tuple[str, int], str]:
    """Builds with their logs in the data directory's two databases."""
    urls = db.sqlite_url(data_dir / "metadata.db"), db.sqlite_url(data_dir / "logs.db")
    await migrate_metadata(urls[0])
    await migrate_logs(urls[1])
    engines = [db.create_engine(url) for url in urls]
    metadata, logs = (db.sessions(engine) for engine in engines)
    builds = {}
    for tenant, days in BUILDS:
        builds[tenant, days] = name = await stored_build(metadata, tenant)
        writer = await LogStore(logs).open(tenant, name)
        await writer.append([(1, b"hello\n")])
        await writer.finish()
        await idle_invocation(metadata, tenant, name, days)
        await idle_log(logs, tenant, name, days)
    for engine in engines:
        await engine.dispose()
    return builds


async def left(data_dir: Path, tenant: str) -> set[str]:
    engine = db.create_engine(db.sqlite_url(data_dir / "metadata.db"))
    try:
        return await invocations(db.sessions(engine), tenant)
    finally:
        await engine.dispose()


def test_set_show_dry_run_and_run(tmp_path: Path) -> None:
    builds = asyncio.run(stored(tmp_path))
    where = ("--data-dir", str(tmp_path))

    changed = bbapi("retention", "set", "--tenant", "acme", "--invocations", "1d", *where)
    assert changed.returncode == 0, changed.stderr
    assert "invocations 1d, audit default (365d)" in changed.stdout
    shown = bbapi("retention", "show", *where).stdout
    assert "defaults: invocations 30d, audit 365d" in shown
    assert [line.split() for line in shown.splitlines()[2:]] == [["acme", "1d", "default", "(365d)"]]

    dry = bbapi("retention", "run", "--dry-run", *where)
    assert dry.returncode == 0, dry.stderr
    rows = {tuple(line.split()[:2]): int(line.split()[2]) for line in dry.stdout.splitlines()[2:]}
    assert rows[("acme", "invocations")] == 1 and rows[("acme", "log_streams")] == 1
    assert rows[("acme", "log_chunks")] == 1 and not any(tenant == "globex" for tenant, _ in rows)
    assert dry.stdout.startswith("would delete ")
    assert asyncio.run(left(tmp_path, "acme")) == {builds["acme", 2], builds["acme", 0]}, "a dry run deletes nothing"

    run = bbapi("retention", "run", *where)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1:] == dry.stdout.splitlines()[1:], "it deleted what the dry run said"
    assert asyncio.run(left(tmp_path, "acme")) == {builds["acme", 0]}
    assert asyncio.run(left(tmp_path, "globex")) == {builds["globex", 2]}, "30 days by default"
    assert bbapi("retention", "run", *where).stdout.startswith("deleted nothing")


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    where = ("--data-dir", str(tmp_path))
    unitless = bbapi("retention", "set", "--tenant", "acme", "--invocations", "14", *where)
    assert unitless.returncode == 1 and "invalid duration '14'" in unitless.stderr
    assert "--tenant is required" in bbapi("retention", "set", "--audit", "1d", *where).stderr
    assert "give --invocations" in bbapi("retention", "set", "--tenant", "acme", *where).stderr
    assert "invalid tenant name" in bbapi("retention", "set", "--tenant", "Bad Name", "--audit", "0", *where).stderr
    bad_default = bbapi("retention", "show", *where, env={"BBAPI_INVOCATION_RETENTION": "forever"})
    assert bad_default.returncode == 1 and "invalid duration 'forever'" in bad_default.stderr
    assert "acme" not in bbapi("retention", "show", *where).stdout, "nothing was stored"
