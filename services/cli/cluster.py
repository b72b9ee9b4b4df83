"""`bbapi cluster`: the whole system as separate processes on one machine; `status` and `scale` manage it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from services.cli.runtime import run_until_signal
from services.cluster import control
from services.cluster.settings import ClusterSettings, ManageSettings, RestartSettings, ScaleSettings
from services.cluster.supervisor import Cluster
from services.common.errors import ApiError
from services.common.exclusive import lock_data_dir
from services.common.settings import CommonSettings, add_arguments, from_args


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("cluster", help="run every service as its own process on this machine, supervised")
    add_arguments(parser, ClusterSettings)
    parser.set_defaults(run=_run)
    actions = parser.add_subparsers(dest="cluster_action", metavar="ACTION")
    scale = actions.add_parser("scale", help="change the CAS shard count of the running cluster; data moves along")
    add_arguments(scale, ScaleSettings)
    scale.set_defaults(run=_manage(ScaleSettings, _scale))
    status = actions.add_parser("status", help="processes, membership, migration progress and data per shard")
    add_arguments(status, ManageSettings)
    status.set_defaults(run=_manage(ManageSettings, _status))
    restart = actions.add_parser("restart", help="stop one process as Kubernetes stops a pod (a gateway drains its "
                                                 "running builds first), then start it again")
    add_arguments(restart, RestartSettings)
    restart.set_defaults(run=_manage(RestartSettings, _restart))


def _logging(settings: CommonSettings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "alembic"):  # one line per status poll or migration step
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


def _run(args: argparse.Namespace) -> int:
    settings = from_args(ClusterSettings, args)
    _logging(settings)

    async def start() -> Callable[[], Awaitable[None]]:
        lock = lock_data_dir(settings.data_dir)  # before the control socket: it would be taken over
        cluster = Cluster(settings)
        try:
            server = await control.serve(settings.data_dir, cluster.handle)
        except BaseException:
            lock.release()
            raise

        async def stop() -> None:
            server.close()
            await cluster.stop()
            control.socket_path(settings.data_dir).unlink(missing_ok=True)
            lock.release()

        try:
            await cluster.start()
        except BaseException:
            await stop()
            raise
        _banner(cluster)
        return stop

    return run_until_signal(start)


def _banner(cluster: Cluster) -> None:
    settings = cluster.settings
    host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    gateways = f"{settings.gateways} gateway{'s' if settings.gateways > 1 else ''}"
    print(f"bbapi cluster running (data in {cluster.data_dir})")
    print(f"  gRPC  grpc://{host}:{cluster.grpc_port}   ({gateways}: remote cache, Build Event Service, api.v1)")
    print(f"  HTTP  http://{host}:{cluster.http_port}   (/api/v1/<Method>, /readyz, /docs)")
    if cluster.admin_key:
        print("Admin API key for tenant 'default' (shown only now, keep it):")
        print(f"  {cluster.admin_key}")
    print("Processes:")
    for process in cluster.processes():
        admin = f"   admin {process['admin']} (/metrics, /readyz, /status/membership)" if process["admin"] else ""
        print(f"  {process['name']:<12} pid {process['pid']:<8} {process['address']}{admin}")
    _print_membership(cluster.describe_membership())
    print(f"Manage it with: bbapi cluster status|scale|restart --data-dir {cluster.data_dir}")
    print("Press Ctrl-C to stop.", flush=True)


def _print_membership(membership: dict[str, Any]) -> None:
    print(f"Membership (generation {membership['generation'][:12]}, R={membership['replication']}):")
    for member in membership["members"]:
        zone = f"   zone {member['zone']}" if member.get("zone") else ""
        print(f"  {member['id']:<12} {member['address']}{zone}")
    if membership["previous"]:
        print(f"  migrating from: {', '.join(membership['previous'])}")


def _manage(model: type[ManageSettings], action: Callable[[Any], Coroutine[Any, Any, None]]
            ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            settings = from_args(model, args)
        except ValidationError as err:
            print(f"error: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}", file=sys.stderr)
            return 2
        _logging(settings)
        try:
            asyncio.run(action(settings))
        except ApiError as err:
            print(f"error: {err.message}", file=sys.stderr)
            return 1
        return 0
    return run


async def _status(settings: ManageSettings) -> None:
    status = await control.request(settings.data_dir, {"command": "status"})
    print(f"cluster in {status['data_dir']}: gRPC port {status['grpc_port']}, HTTP port {status['http_port']}")
    _print_membership(status["membership"])
    migration = status["migration"]
    if migration is None:
        print("Migration: no gateway answered")
    else:
        state = "copying" if migration["migrating"] else "idle"
        print(f"Migration: {state} (generation {migration['generation'][:12]}, "
              f"{migration['copied']} copied of {migration['scanned']} scanned)")
    print(f"{'PROCESS':<13}{'PID':<9}{'RESTARTS':<10}{'ADDRESS':<22}STORED / ADMIN")
    for process in status["processes"]:
        stored = process["stored"]
        data = (f"{int(stored['entries'])} entries, {stored['bytes'] / 1e6:.1f} MB" if stored
                else f"admin {process['admin']}" if process["admin"] else "")
        print(f"{process['name']:<13}{process['pid'] or '-':<9}{process['restarts']:<10}{process['address']:<22}"
              f"{data}")


async def _scale(settings: ScaleSettings) -> None:
    async def progress(update: dict[str, Any]) -> None:
        print(f"  migrating: {update['copied']} copied, {update['scanned']} scanned", flush=True)

    print(f"moving to {settings.cas_shards} CAS shards ...", flush=True)
    result = await control.request(settings.data_dir, {"command": "scale", "cas_shards": settings.cas_shards},
                                   progress)
    _print_membership(result)


async def _restart(settings: RestartSettings) -> None:
    print(f"restarting {settings.process} ...", flush=True)
    result = await control.request(settings.data_dir, {"command": "restart", "process": settings.process})
    print(f"{result['name']} is serving again (pid {result['pid']}, {result['restarts']} restarts)")
