"""Ports: internal servers never share one; only the public gateway port is meant to be shared."""

from __future__ import annotations

import pytest

from services.cluster.supervisor import free_port
from services.common.exclusive import PortInUse
from services.common.server import start_grpc
from services.gateway.front import Front
from services.gen.bbapi.internal.v1 import cas_pb2

SERVICE = cas_pb2.DESCRIPTOR.services_by_name["CasShard"]


async def test_an_internal_server_refuses_a_port_another_server_holds() -> None:
    first = await start_grpc("first", "127.0.0.1", 0, [])
    try:
        with pytest.raises(PortInUse, match=f"127.0.0.1:{first.port}: the port is in use .*--port$"):
            second = await start_grpc("second", "127.0.0.1", first.port, [])
            await second.stop(0)
    finally:
        await first.stop(0)


async def _authenticate(_ctx: object) -> None:
    return None


async def test_gateway_fronts_share_their_public_port_when_told() -> None:
    first, second = Front(_authenticate), Front(_authenticate)
    port = await first.start("127.0.0.1", 0, share_port=True)
    try:
        assert await second.start("127.0.0.1", port, share_port=True) == port
        await second.stop(0)
    finally:
        await first.stop(0)


@pytest.mark.parametrize("first_shares", [False, True])
async def test_a_gateway_front_that_does_not_share_refuses_a_taken_port(first_shares: bool) -> None:
    first, second = Front(_authenticate), Front(_authenticate)
    port = await first.start("127.0.0.1", 0, share_port=first_shares)
    try:
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port}: the port is in use .*--grpc-port$"):
            await second.start("127.0.0.1", port)
    finally:
        await first.stop(0)


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
