"""The cluster supervisor: starts every service as its own process, watches them, changes the shard count.

Start order: database migrations and the first admin key (in this process), metadata and logs
replicas, CAS shards, the membership file, gateways. Each internal service gets its own loopback
port; the gateways share the public gRPC and HTTP ports (SO_REUSEPORT, the kernel spreads
connections over them), so clients see one address as they would a Kubernetes Service. Each
gateway also has an admin port of its own (metrics, readiness, membership status), so the
supervisor hears every gateway, not whichever the kernel picks.

Stopping or restarting a gateway (`bbapi cluster restart`) drains it as Kubernetes would: it
gets `--drain-seconds` plus a margin before SIGKILL.

A shard-count (or replication) change runs the operator's own plan (services.blobstore.cluster
.resize) on one machine: start the shards it asks for, write the document it gives, ask the
gateways how the copy goes, and stop shards only once the settled document no longer names them.
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
from services.blobstore.cluster import resize
from services.blobstore.cluster.membership import Member, MemberList, Membership, Progress
from services.blobstore.cluster.placement import MAX_MEMBERS
from services.cluster import probes
from services.cluster.children import STOP_GRACE, Child, bbapi
from services.cluster.control import Report
from services.cluster.settings import ClusterSettings
from services.common import db
from services.common.auth import Capability
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.exclusive import listen
from services.logs import db as logs_db
from services.metadata import db as metadata_db
from services.metadata import keys

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MEMBERSHIP_FILE = "membership.json"


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
    _addresses: dict[str, str] = field(default_factory=dict)  # shard id -> its port, chosen once per run
    _gateway_admin: dict[str, str] = field(default_factory=dict)  # gateway name -> its admin URL
    _changing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    @property
    def membership_path(self) -> Path:
        return self.data_dir / MEMBERSHIP_FILE

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
        self._check_public_ports()
        await self._prepare_databases()
        metadata = await self._start_replicas("metadata", self.settings.metadata)
        logs = await self._start_replicas("logs", self.settings.logs, ["--metadata-target", metadata])
        existing = self._existing_membership()
        ids = ([m.id for m in existing.everyone()] if existing
               else [shard_id(i) for i in range(self.settings.cas_shards)])
        await asyncio.gather(*(self._start_shard(i) for i in ids))
        if existing is None:
            self._write(resize.plan(self.members(ids), self.settings.replication, None, len(ids)).text)
        else:  # the shards of the last run (and their zones), on this run's addresses; _converge then
            # finishes any change it left and moves to this run's shards and zones through a copy
            self._write(membership_file.encode(Membership(
                members=self._readdressed(existing.members), replication=existing.replication,
                previous=MemberList(members=self._readdressed(existing.previous.members))
                if existing.previous else None)))
        await self._start_gateways(metadata, logs)
        await self._converge(self.settings.cas_shards, None)

    def _check_public_ports(self) -> None:
        """Fail now, not in a restart loop, when another server holds a public port: the
        gateways share it among themselves (SO_REUSEPORT), which would let them join a stranger's."""
        for port, flag in ((self.grpc_port, "--grpc-port"), (self.http_port, "--http-port")):
            listen(self.settings.host, port, flag).close()

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

    def _child(self, name: str, args: list[str], address: str, stop_grace: float = STOP_GRACE) -> Child:
        child = Child(name, bbapi(*args, "--log-level", self.settings.log_level),
                      self.data_dir / "logs" / f"{name}.log", self.settings.restart_delay_seconds, address,
                      stop_grace)
        self.children[name] = child
        return child

    async def _start_replicas(self, kind: str, count: int, extra: list[str] | None = None) -> str:
        """`count` processes of `bbapi metadata|logs`; returns the gRPC target naming them all. Settings
        not given here (retention, the janitor) reach them as BBAPI_* variables of this process."""
        addresses = []
        for index in range(count):
            port = free_port()
            address = f"{LOOPBACK}:{port}"
            child = self._child(f"{kind}-{index}", [kind, "--host", LOOPBACK, "--port", str(port), "--database",
                                                     self._database(kind), "--metrics-port", "0", *(extra or [])],
                                address)
            await child.start()
            await probes.wait_serving(child, address)
            addresses.append(address)
        return "ipv4:" + ",".join(addresses)

    def _address(self, member_id: str) -> str:
        if member_id not in self._addresses:
            self._addresses[member_id] = f"{LOOPBACK}:{free_port()}"
        return self._addresses[member_id]

    async def _start_shard(self, member_id: str) -> None:
        address, metrics_port = self._address(member_id), free_port()
        port = address.rpartition(":")[2]
        child = self._child(member_id, [
            "cas", "--host", LOOPBACK, "--port", port, "--data-dir", str(self.data_dir / member_id),
            "--shard-id", member_id, "--metrics-port", str(metrics_port),
            "--max-size-bytes", str(int(self.settings.max_size_bytes)),
            "--min-age-seconds", str(self.settings.min_age_seconds),
            "--min-free-bytes", str(int(self.settings.min_free_bytes))], address)
        self._shard_metrics[member_id] = metrics_port
        await child.start()
        await probes.wait_serving(child, address)

    async def _start_gateways(self, metadata: str, logs: str) -> None:
        args = ["gateway", "--host", self.settings.host, "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port), "--share-ports", "--metadata-target", metadata,
                "--membership-file", str(self.membership_path),
                "--key-cache-seconds", str(self.settings.key_cache_seconds), "--logs-target", logs,
                "--drain-seconds", str(self.settings.drain_seconds)]
        for index in range(self.settings.gateways):
            name, admin = f"gateway-{index}", free_port()
            self._gateway_admin[name] = f"http://{LOOPBACK}:{admin}"
            await self._child(name, [*args, "--admin-port", str(admin)], f"{self.settings.host}:{self.grpc_port}",
                              stop_grace=self.settings.drain_seconds + STOP_GRACE).start()
        assert self.membership is not None
        await self._await_gateways(self.membership.generation, deadline=time.monotonic() + probes.START_TIMEOUT)

    # ----- membership --------------------------------------------------------------------------

    def _existing_membership(self) -> Membership | None:
        if not self.membership_path.exists():
            return None
        return membership_file.load(self.membership_path)

    def members(self, ids: list[str]) -> tuple[Member, ...]:
        """Shards `cas-N` as configured now: their address and zone (`--zones`, round robin)."""
        zones = self.settings.zone_list()
        return tuple(Member(id=i, address=self._address(i), zone=zones[int(i.removeprefix("cas-")) % len(zones)]
                            if zones else None) for i in ids)

    def _readdressed(self, members: tuple[Member, ...]) -> tuple[Member, ...]:
        return tuple(m.model_copy(update={"address": self._address(m.id)}) for m in members)

    def _write(self, text: str) -> str:
        self.membership = membership_file.parse(text)
        generation = membership_file.replace(self.membership_path, text)
        previous = self.membership.previous
        log.info("membership %s: %s%s", generation[:12], ", ".join(m.id for m in self.membership.members),
                 f" (migrating from {', '.join(m.id for m in previous.members)})" if previous else "")
        return generation

    async def _gateway_statuses(self) -> list[dict[str, Any] | None]:
        """Every gateway's `/status/membership` (None for one that did not answer)."""
        return list(await asyncio.gather(*(probes.gateway_status(url) for url in self._gateway_admin.values())))

    async def _await_gateways(self, generation: str, deadline: float | None = None) -> None:
        """Until every gateway runs `generation`."""
        while not all(s is not None and s["generation"] == generation for s in await self._gateway_statuses()):
            self._check_gateways(deadline)
            await asyncio.sleep(probes.POLL_SECONDS)

    async def _reports(self) -> list[Progress]:
        """Every gateway's progress; none if one did not answer (a copy is done only when all say so)."""
        statuses = await self._gateway_statuses()
        return [Progress.parse(s) for s in statuses if s is not None] if all(statuses) else []

    def _check_gateways(self, deadline: float | None) -> None:
        gateways = [c for n, c in self.children.items() if n.startswith("gateway-")]
        if deadline is not None and time.monotonic() > deadline:
            raise FailedPrecondition(f"the gateways did not become ready in time:\n{gateways[0].tail()}")
        if gateways and not any(c.running() for c in gateways) and all(c.restarts == 0 for c in gateways):
            raise FailedPrecondition(f"the gateways exited:\n{gateways[0].tail()}")

    async def _converge(self, shards: int, report: Report | None) -> None:
        """Step through the shared plan until the document names exactly cas-0..cas-{shards-1}."""
        target = self.members([shard_id(i) for i in range(shards)])
        reported: dict[str, Any] = {}
        while True:
            text = self.membership_path.read_text()
            reports = await self._reports() if resize.in_flight(text) else []
            step = resize.plan(target, self.settings.replication, text, sum(m.id in self.children for m in target),
                               reports)
            await asyncio.gather(*(self._start_shard(shard_id(i)) for i in range(step.replicas)
                                   if shard_id(i) not in self.children))
            if step.text != text:
                await self._await_gateways(self._write(step.text))
            progress = {"migrating": True, "copied": step.copied, "scanned": step.scanned}
            if report is not None and step.copied is not None and progress != reported:
                await report(progress)
                reported = progress
            if step.settled:
                break
            if step.phase is not resize.Phase.WAITING_FOR_SHARDS and step.text == text:
                await asyncio.sleep(probes.POLL_SECONDS)
        for member_id in [n for n in self.children if n.startswith("cas-") and n not in {m.id for m in target}]:
            await self.children.pop(member_id).stop()
            self._shard_metrics.pop(member_id, None)

    async def scale(self, shards: int, report: Report | None = None) -> dict[str, Any]:
        """Move to `shards` CAS shards without losing data (ids cas-0..cas-N-1, like a StatefulSet)."""
        if not 1 <= shards <= MAX_MEMBERS:
            raise InvalidArgument(f"--cas-shards {shards}: between 1 and {MAX_MEMBERS} shards are supported")
        if self._changing.locked():
            raise FailedPrecondition("a membership change is already in progress")
        async with self._changing:
            await self._converge(shards, report)
        return self.describe_membership()

    async def restart(self, name: str) -> dict[str, Any]:
        """Stop one process as Kubernetes stops a pod (a gateway drains), start it again, wait until it serves."""
        child = self.children.get(name)
        if child is None:
            raise InvalidArgument(f"no process {name!r} (`bbapi cluster status` lists them)")
        await child.restart()
        if name in self._gateway_admin:
            await probes.wait_ready(child, self._gateway_admin[name])
        else:
            await probes.wait_serving(child, child.address)
        return {"name": name, "pid": child.pid, "restarts": child.restarts}

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
            "migration": next(filter(None, await self._gateway_statuses()), None),
            "processes": [p | {"stored": by_shard.get(p["name"])} for p in self.processes()],
        }

    def processes(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "pid": c.pid, "restarts": c.restarts, "address": c.address,
                 "admin": self._gateway_admin.get(c.name)} for c in self.children.values()]

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
        if command == "restart":
            return await self.restart(str(message["process"]))
        raise InvalidArgument(f"unknown command {command!r}")

    async def stop(self) -> None:
        """Gateways first (no new requests; running builds get the drain), then the services behind them."""
        order: list[Callable[[str], bool]] = [lambda n: n.startswith("gateway-"), lambda n: n.startswith("cas-"),
                                              lambda n: True]
        for wanted in order:
            stopping = [c for n, c in list(self.children.items()) if wanted(n)]
            await asyncio.gather(*(c.stop() for c in stopping))
            for child in stopping:
                self.children.pop(child.name, None)
