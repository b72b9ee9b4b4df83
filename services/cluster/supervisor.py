"""The cluster supervisor: starts every service as its own process, watches them, changes the shard count.

Start order: database migrations and the first admin key (in this process), metadata and logs
replicas, CAS shards, the membership file, gateways. Each internal service gets its own loopback
port; the gateways share the public gRPC and HTTP ports (SO_REUSEPORT, the kernel spreads
connections over them), so clients see one address as they would a Kubernetes Service.

A shard-count change is the operator's protocol on one machine: start the new shards, write the
new members with `previous` set, wait until the gateways report the copy done for that document,
write it without `previous`, and only then stop shards that left.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.blobstore.cluster import membership as membership_file
from services.blobstore.cluster.membership import Member, MemberList, Membership
from services.blobstore.cluster.placement import MAX_MEMBERS
from services.cluster import probes
from services.cluster.children import Child, bbapi
from services.cluster.control import Report
from services.cluster.settings import ClusterSettings
from services.common import db
from services.common.auth import Capability
from services.common.errors import FailedPrecondition, InvalidArgument
from services.logs import db as logs_db
from services.metadata import db as metadata_db
from services.metadata import keys

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MEMBERSHIP_FILE = "membership.json"
CONFIRMATIONS_PER_GATEWAY = 3  # consecutive answers asked for, so every gateway is likely heard


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one handed out before: children bind theirs only later,
    and the kernel may offer a just-closed port again to the next caller."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def shard_id(index: int) -> str:
    return f"cas-{index}"


@dataclass
class Cluster:
    settings: ClusterSettings
    children: dict[str, Child] = field(default_factory=dict)
    membership: Membership | None = None
    admin_key: str | None = None
    grpc_port: int = 0
    http_port: int = 0
    _shard_metrics: dict[str, int] = field(default_factory=dict)
    _changing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    @property
    def membership_path(self) -> Path:
        return self.data_dir / MEMBERSHIP_FILE

    @property
    def http_url(self) -> str:
        host = LOOPBACK if self.settings.host in ("0.0.0.0", "::", "") else self.settings.host
        return f"http://{host}:{self.http_port}"

    # ----- start -----------------------------------------------------------------------------

    def _database(self, name: str) -> str:
        if self.settings.database:
            return self.settings.database
        return db.sqlite_url(self.data_dir / f"{name}.db")

    def _check(self) -> None:
        if not self.settings.database:
            for kind, count in (("metadata", self.settings.metadata), ("logs", self.settings.logs)):
                if count > 1:
                    raise InvalidArgument(f"--{kind} {count}: SQLite allows only one {kind} process; give "
                                          "--database postgresql://... to run several")

    async def start(self) -> None:
        self._check()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.grpc_port = self.settings.grpc_port or free_port()
        self.http_port = self.settings.http_port or free_port()
        await self._prepare_databases()
        metadata = await self._start_replicas("metadata", self.settings.metadata)
        logs = await self._start_replicas("logs", self.settings.logs)
        existing = self._existing_membership()
        ids = ([m.id for m in existing.everyone()] if existing
               else [shard_id(i) for i in range(self.settings.cas_shards)])
        await asyncio.gather(*(self._start_shard(i) for i in ids))
        if existing is None:
            self._write_membership(ids)
        else:  # the shards of the last run, on this run's addresses, finishing any change it left
            current = [m.id for m in existing.members]
            old = [m.id for m in existing.previous.members] if existing.previous else None
            if old is None and existing.replication != self.settings.replication:
                old = current  # a copy pass gives every key its new number of replicas
            self._write_membership(current, old)
        await self._start_gateways(metadata, logs)
        await self._finish_migration(None)
        if len(self._current_ids()) != self.settings.cas_shards:
            log.info("the data directory holds %d shards; moving to %d", len(self._current_ids()),
                     self.settings.cas_shards)
            await self.scale(self.settings.cas_shards)

    async def _prepare_databases(self) -> None:
        """Migrate once here (replicas then only find the schema current) and create the first key."""
        await metadata_db.migrate(self._database("metadata"))
        await logs_db.migrate(self._database("logs"))
        engine = db.create_engine(self._database("metadata"), pool_size=1)
        try:
            sessions = db.sessions(engine)
            if not await keys.any_keys(sessions):
                _info, self.admin_key = await keys.create_key(sessions, "default", Capability.ADMIN,
                                                              label="first admin key")
        finally:
            await engine.dispose()

    def _child(self, name: str, args: list[str], address: str) -> Child:
        child = Child(name, bbapi(*args, "--log-level", self.settings.log_level),
                      self.data_dir / "logs" / f"{name}.log", self.settings.restart_delay_seconds, address)
        self.children[name] = child
        return child

    async def _start_replicas(self, kind: str, count: int) -> str:
        """`count` processes of `bbapi metadata|logs`; returns the gRPC target naming them all."""
        addresses = []
        for index in range(count):
            port = free_port()
            address = f"{LOOPBACK}:{port}"
            child = self._child(f"{kind}-{index}", [kind, "--host", LOOPBACK, "--port", str(port), "--database",
                                                     self._database(kind), "--metrics-port", "0"], address)
            await child.start()
            await probes.wait_serving(child, address)
            addresses.append(address)
        return "ipv4:" + ",".join(addresses)

    async def _start_shard(self, member_id: str) -> None:
        port, metrics_port = free_port(), free_port()
        address = f"{LOOPBACK}:{port}"
        child = self._child(member_id, [
            "cas", "--host", LOOPBACK, "--port", str(port), "--data-dir", str(self.data_dir / member_id),
            "--shard-id", member_id, "--metrics-port", str(metrics_port),
            "--max-size-bytes", str(int(self.settings.max_size_bytes)),
            "--min-age-seconds", str(self.settings.min_age_seconds)], address)
        self._shard_metrics[member_id] = metrics_port
        await child.start()
        await probes.wait_serving(child, address)

    async def _start_gateways(self, metadata: str, logs: str) -> None:
        args = ["gateway", "--host", self.settings.host, "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port), "--metadata-target", metadata,
                "--membership-file", str(self.membership_path),
                "--key-cache-seconds", str(self.settings.key_cache_seconds), "--logs-target", logs]
        for index in range(self.settings.gateways):
            await self._child(f"gateway-{index}", args, f"{self.settings.host}:{self.grpc_port}").start()
        assert self.membership is not None
        await self._await_gateways(self.membership.generation, None, deadline=time.monotonic() + probes.START_TIMEOUT)

    # ----- membership --------------------------------------------------------------------------

    def _existing_membership(self) -> Membership | None:
        if not self.membership_path.exists():
            return None
        return membership_file.load(self.membership_path)

    def _current_ids(self) -> list[str]:
        assert self.membership is not None
        return [m.id for m in self.membership.members]

    def _member(self, member_id: str) -> Member:
        return Member(id=member_id, address=self.children[member_id].address)

    def _write_membership(self, ids: list[str], previous: list[str] | None = None) -> str:
        self.membership = Membership(
            members=tuple(self._member(i) for i in ids), replication=self.settings.replication,
            previous=MemberList(members=tuple(self._member(i) for i in previous)) if previous else None)
        generation = membership_file.write(self.membership_path, self.membership)
        log.info("membership %s: %s%s", generation[:12], ", ".join(ids),
                 f" (migrating from {', '.join(previous)})" if previous else "")
        return generation

    async def _await_gateways(self, generation: str, report: Report | None, migrated: bool = False,
                              deadline: float | None = None) -> None:
        """Until the gateways run `generation` (and, with `migrated`, finished copying for it)."""
        needed = CONFIRMATIONS_PER_GATEWAY * self.settings.gateways
        confirmed = 0
        reported: dict[str, Any] = {}
        while confirmed < needed:
            status = await probes.gateway_status(self.http_url)
            done = status is not None and status["generation"] == generation and not (
                migrated and status["migrating"])
            confirmed = confirmed + 1 if done else 0
            if status is not None and report is not None and status["generation"] == generation:
                progress = {name: status[name] for name in ("migrating", "copied", "scanned")}
                if progress != reported:
                    await report(progress)
                    reported = progress
            if not done:
                self._check_gateways(deadline)
                await asyncio.sleep(probes.POLL_SECONDS)

    def _check_gateways(self, deadline: float | None) -> None:
        gateways = [c for n, c in self.children.items() if n.startswith("gateway-")]
        if deadline is not None and time.monotonic() > deadline:
            raise FailedPrecondition(f"the gateways did not become ready in time:\n{gateways[0].tail()}")
        if gateways and not any(c.running() for c in gateways) and all(c.restarts == 0 for c in gateways):
            raise FailedPrecondition(f"the gateways exited:\n{gateways[0].tail()}")

    async def _finish_migration(self, report: Report | None) -> None:
        """If the document names `previous`: wait for the copy, then drop it and the shards that left."""
        assert self.membership is not None
        if self.membership.previous is None:
            return
        leaving = [m.id for m in self.membership.previous.members if m.id not in self._current_ids()]
        await self._await_gateways(self.membership.generation, report, migrated=True)
        final = self._write_membership(self._current_ids())
        await self._await_gateways(final, None)
        for member_id in leaving:
            await self.children.pop(member_id).stop()
            self._shard_metrics.pop(member_id, None)

    async def scale(self, shards: int, report: Report | None = None) -> dict[str, Any]:
        """Move to `shards` CAS shards without losing data (ids cas-0..cas-N-1, like a StatefulSet)."""
        if not 1 <= shards <= MAX_MEMBERS:
            raise InvalidArgument(f"--cas-shards {shards}: between 1 and {MAX_MEMBERS} shards are supported")
        if self._changing.locked():
            raise FailedPrecondition("a membership change is already in progress")
        async with self._changing:
            current = self._current_ids()
            target = [shard_id(i) for i in range(shards)]
            if target != current:
                await asyncio.gather(*(self._start_shard(i) for i in target if i not in self.children))
                self._write_membership(target, current)
                await self._finish_migration(report)
        return self.describe_membership()

    # ----- status and stop -----------------------------------------------------------------------

    def describe_membership(self) -> dict[str, Any]:
        assert self.membership is not None
        return {"generation": self.membership.generation, "replication": self.membership.replication,
                "members": [m.model_dump() for m in self.membership.members],
                "previous": [m.id for m in self.membership.previous.members] if self.membership.previous else None}

    async def status(self) -> dict[str, Any]:
        stored = await asyncio.gather(*(probes.shard_stored(f"http://{LOOPBACK}:{port}/metrics")
                                        for port in self._shard_metrics.values()))
        by_shard = dict(zip(self._shard_metrics, stored, strict=True))
        return {
            "grpc_port": self.grpc_port, "http_port": self.http_port, "data_dir": str(self.data_dir),
            "membership": self.describe_membership(),
            "migration": await probes.gateway_status(self.http_url),
            "processes": [{"name": c.name, "pid": c.pid, "restarts": c.restarts, "address": c.address,
                           "stored": by_shard.get(c.name)} for c in self.children.values()],
        }

    async def handle(self, message: dict[str, Any], report: Report) -> dict[str, Any]:
        """A control request (services.cluster.control)."""
        command = message.get("command")
        if command == "ping":
            return {}
        if self.membership is None:
            raise FailedPrecondition("the cluster is still starting")
        if command == "status":
            return await self.status()
        if command == "scale":
            return await self.scale(int(message["cas_shards"]), report)
        raise InvalidArgument(f"unknown command {command!r}")

    async def stop(self) -> None:
        """Gateways first (no new requests), then the services behind them."""
        order: list[Callable[[str], bool]] = [lambda n: n.startswith("gateway-"), lambda n: n.startswith("cas-"),
                                              lambda n: True]
        for wanted in order:
            stopping = [c for n, c in list(self.children.items()) if wanted(n)]
            await asyncio.gather(*(c.stop() for c in stopping))
            for child in stopping:
                self.children.pop(child.name, None)
