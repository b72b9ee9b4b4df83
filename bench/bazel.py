"""A real Bazel building a generated workspace with no cache, BuildGrid, and bbapi (with and without BES).

    python bench/bazel.py [--targets 300] [--outputs 8] [--runs 3] [--only serve,buildgrid,...]

The workspace has TARGETS genrules of OUTPUTS files each, mostly 1-64 KiB (log-uniform), and
every 50th genrule has one 4 MiB output. Columns (`--only` picks some): `nocache`; `buildgrid`
(BuildGrid from PyPI, disk storage, see bench/peers.py); `serve` and `cluster` (`bbapi serve`,
`bbapi cluster` with one gateway and one shard) as the remote cache; `serve-bes` and
`cluster-bes`, the same with `--bes_backend` too (the key as userinfo, as Bazel 4 needs); `bare`
and `bare-bes`, the bare grpc.aio server of bench/bare.py as the cache, and as a Build Event
Service that acknowledges every event at once and keeps nothing: what the cache and BES cost
Bazel itself, the floor under any server's ratio.

Every column has its own workspace copy and Bazel output root. Per run and column: a cold
build (the genrule commands carry a new salt, so every action is a cache miss and every output
is uploaded) and, after `bazel clean`, a rebuild whose every action must be a remote cache hit;
the bench fails if either is not what it claims. One untimed round warms every Bazel server
first; then runs are interleaved (the column order rotates each run) and the table gives the
medians and the ratios to BuildGrid, to no cache and to the same server without BES.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare
from bench.peers import buildgrid, start_cluster, start_serve
from tests.support.bazel import E2E, BazelRun, Workspace
from tests.support.servers import ServeProcess

COLUMNS = {"nocache": "no cache", "buildgrid": "BuildGrid 0.4.4", "bare": "bare grpc.aio", "serve": "bbapi serve",
           "cluster": "bbapi cluster", "bare-bes": "bare + BES", "serve-bes": "serve + BES",
           "cluster-bes": "cluster + BES"}
LARGE_EVERY, LARGE_SIZE = 50, 4 * 1024 * 1024
DEFS = """\
load(":salt.bzl", "SALT")

def blobs(name, sizes):
    \"\"\"A genrule writing one file per size; the salt makes its command (and bytes) new each build.\"\"\"
    outs = ["%s_%d.out" % (name, i) for i in range(len(sizes))]
    native.genrule(
        name = name,
        outs = outs,
        cmd = "; ".join(["printf '%s %s %%*s' %d '' > $(RULEDIR)/%s" % (SALT, out, size, out)
                         for out, size in zip(outs, sizes)]),
    )
"""


def generate(root: Path, targets: int, outputs: int) -> None:
    """The bench workspace: WORKSPACE and offline kit of tests/e2e, and the genrules (same sizes every time)."""
    root.mkdir(parents=True)
    shutil.copy(E2E / "workspace" / "WORKSPACE", root / "WORKSPACE")
    shutil.copytree(E2E / "third_party", root / "third_party")
    (root / "defs.bzl").write_text(DEFS)
    rng = random.Random(0)
    rules = []
    for target in range(targets):
        sizes = [int(1024 * 64 ** rng.random()) for _ in range(outputs)]
        if target % LARGE_EVERY == 0:
            sizes[0] = LARGE_SIZE
        rules.append(f"blobs(name = 't{target}', sizes = {sizes})\n")
    (root / "BUILD").write_text('load(":defs.bzl", "blobs")\n\n' + "".join(rules))
    salt(root)


def salt(root: Path) -> None:
    (root / "salt.bzl").write_text(f'SALT = "{uuid.uuid4().hex}"\n')


@dataclass
class Column:
    """One configuration: its Bazel flags, its own workspace and output root, its timings."""

    name: str
    flags: list[str]
    workspace: Workspace
    targets: int
    bes: ServeProcess | None = None  # the server the build events go to, if any
    cold: list[float] = field(default_factory=list)
    rebuild: list[float] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return any(flag.startswith("--remote_cache") for flag in self.flags)

    def build(self) -> tuple[float, BazelRun]:
        invocation_id = str(uuid.uuid4())
        start = time.perf_counter()
        run = self.workspace.bazel("build", "//...", "--symlink_prefix=/", f"--invocation_id={invocation_id}",
                                  *self.flags, timeout=1800)
        elapsed = time.perf_counter() - start
        if run.returncode != 0 or "Remote Cache:" in run.output or "Build Event Protocol upload failed" in run.output:
            raise RuntimeError(f"{self.name}: bazel build did not use its servers cleanly:\n{run.output}")
        if self.bes is not None:
            recorded(self.bes, invocation_id)
        return elapsed, run

    def round(self, timed: bool) -> None:
        """A cold build of new actions, then (with a cache) a rebuild after `bazel clean` from the cache."""
        salt(self.workspace.root)
        elapsed, run = self.build()
        processes = run.processes()
        if processes.get("remote cache hit", 0) or sum(processes.values()) - processes.get("internal", 0) \
                != self.targets:
            raise RuntimeError(f"{self.name}: the cold build did not run every action itself: {processes}")
        if timed:
            self.cold.append(elapsed)
        if not self.cached:
            return
        if self.workspace.bazel("clean").returncode != 0:
            raise RuntimeError(f"{self.name}: bazel clean failed")
        elapsed, run = self.build()
        processes = run.processes()
        if processes.get("remote cache hit", 0) != self.targets:
            raise RuntimeError(f"{self.name}: the rebuild after clean was not all remote cache hits: {processes}")
        if timed:
            self.rebuild.append(elapsed)


def recorded(server: ServeProcess, invocation_id: str, within: float = 60) -> None:
    """Fails unless GetInvocation shows the build, successful, within `within` seconds (untimed)."""
    deadline = time.monotonic() + within
    while True:
        answer = httpx.post(f"http://127.0.0.1:{server.http_port}/api/v1/GetInvocation",
                            json={"selector": {"invocation_id": invocation_id}},
                            headers={"x-buildbuddy-api-key": server.admin_key or ""}, timeout=30)
        if answer.status_code == 200 and any(i.get("success") for i in answer.json().get("invocation", [])):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"invocation {invocation_id} not recorded as a success: {answer.text[:500]}")
        time.sleep(0.2)


def bbapi_flags(server: ServeProcess, bes: bool) -> list[str]:
    assert server.admin_key is not None
    flags = [f"--remote_cache=grpc://{server.grpc_target}", f"--remote_header=x-buildbuddy-api-key={server.admin_key}"]
    return [*flags, f"--bes_backend=grpc://{server.admin_key}@{server.grpc_target}"] if bes else flags


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def seconds(values: list[float]) -> str:
    """The median, and the range when there are several runs (how noisy the machine was)."""
    if not values:
        return "-"
    spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
    return f"{statistics.median(values):.2f} s{spread}"


def table(columns: list[Column], runs: int, targets: int, outputs: int) -> str:
    """Markdown: median seconds, then each ratio a goal of issue 11 (or 12, for BES) is stated in."""
    by_name = {column.name: column for column in columns}

    def ratio(kind: str, column: Column, base_name: str) -> str:
        base = by_name.get(base_name)
        value, reference = median(getattr(column, kind)), base and median(getattr(base, kind))
        return "" if value is None or not reference or base is column else f"{value / reference:.2f}x"

    rows: list[tuple[str, list[str], str]] = []
    for kind, label in (("cold", "cold build (every output uploaded)"), ("rebuild", "rebuild after clean (all hits)")):
        rows.append((label, [seconds(getattr(c, kind)) for c in columns], ""))
        if kind == "cold":
            rows.append(("  / no cache", [ratio(kind, c, "nocache") for c in columns], "serve <= 1.5x"))
        rows.append(("  / BuildGrid", [ratio(kind, c, "buildgrid") for c in columns],
                     "serve <= 0.8x" if kind == "cold" else "serve <= 0.9x"))
        rows.append(("  / bbapi serve", [ratio(kind, c, "serve") if c.name == "cluster" else "" for c in columns],
                     "cluster <= 1.2x"))
        rows.append(("  / same without BES", [ratio(kind, c, c.name.removesuffix("-bes")) if c.name.endswith("-bes")
                                              else "" for c in columns], "BES <= 1.1x"))
    lines = [f"| {targets} genrules x {outputs} outputs, median of {runs} | "
             + " | ".join(COLUMNS[c.name] for c in columns) + " | goal |",
             "|" + " --- |" * (len(columns) + 2)]
    lines += [f"| {label} | " + " | ".join(cells) + f" | {goal} |"
              for label, cells, goal in rows if any(cell not in ("", "-") for cell in cells)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(COLUMNS), help=f"columns, comma-separated: {','.join(COLUMNS)}")
    args = parser.parse_args()
    chosen = [name for name in COLUMNS if name in args.only.split(",")]
    if unknown := set(args.only.split(",")) - set(COLUMNS):
        parser.error(f"unknown columns {sorted(unknown)}; choose from {','.join(COLUMNS)}")
    if args.runs < 1 or args.targets < 1 or args.outputs < 1:
        parser.error("--runs, --targets and --outputs must be at least 1")

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bbapi-bench-bazel-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        servers: dict[str, ServeProcess] = {}
        for kind, start in (("serve", start_serve), ("cluster", start_cluster)):
            if kind in chosen or f"{kind}-bes" in chosen:
                servers[kind] = start(root / kind)
                stack.callback(servers[kind].stop)
        flags: dict[str, list[str]] = {"nocache": []}
        if "buildgrid" in chosen:
            flags["buildgrid"] = [f"--remote_cache=grpc://{stack.enter_context(buildgrid(root / 'buildgrid'))}"]
        if "bare" in chosen or "bare-bes" in chosen:  # the floor: what Bazel itself spends on a cache and on BES
            proc, address = bare.start()
            stack.callback(proc.wait)
            stack.callback(proc.terminate)
            flags["bare"] = [f"--remote_cache=grpc://{address}"]
            flags["bare-bes"] = [*flags["bare"], f"--bes_backend=grpc://{address}"]
        for kind, server in servers.items():
            flags[kind] = bbapi_flags(server, bes=False)
            flags[f"{kind}-bes"] = bbapi_flags(server, bes=True)
        columns = []
        for name in chosen:
            generate(root / f"ws-{name}", args.targets, args.outputs)
            workspace = Workspace(root / f"ws-{name}", root / f"bazel-{name}")
            stack.callback(workspace.shutdown)
            bes = servers.get(name.removesuffix("-bes")) if name.endswith("-bes") else None  # bare keeps nothing
            columns.append(Column(name, flags[name], workspace, args.targets, bes))

        for run in range(args.runs + 1):  # run 0 starts and warms every Bazel server, untimed
            for column in columns[run % len(columns):] + columns[:run % len(columns)]:
                column.round(timed=run > 0)
            print(f"run {run}/{args.runs} done" + (" (warm-up)" if run == 0 else ""), flush=True)

    print(f"\nload average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores; "
          "seconds are medians (min-max)\n")
    print(table(columns, args.runs, args.targets, args.outputs))


if __name__ == "__main__":
    main()
