"""The gateway over TLS: gRPC and HTTP from a certificate and key file, renewed without a restart."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pydantic
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from services.allinone.settings import ServeSettings
from services.gateway.tls import Certificate, TlsSettings
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from tests.support.servers import StackServer
from tests.support.tls import Authority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Path, Path]:
    directory = tmp_path_factory.mktemp("pki")
    authority = Authority.create(directory)
    cert, key = directory / "tls.crt", directory / "tls.key"
    authority.issue("first", cert, key)
    return authority, cert, key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: tuple[Authority, Path, Path]) -> Iterator[StackServer]:
    _authority, cert, key = pki
    running = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                        http_port=0, tls_cert=cert, tls_key=key)).start()
    yield running
    running.stop()


def served_name(port: int, ca: Path, alpn: str) -> str:
    """The common name of the certificate a new connection to `port` is given."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols([alpn])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    (name,) = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(name.value)


def capabilities(channel: grpc.Channel, key: str) -> re_pb2.ServerCapabilities:
    stub = re_grpc.CapabilitiesStub(channel)
    reply: re_pb2.ServerCapabilities = stub.GetCapabilities(re_pb2.GetCapabilitiesRequest(), timeout=10,
                                                            metadata=[("x-buildbuddy-api-key", key)])
    return reply


def secure(server: StackServer, ca: Path) -> grpc.Channel:
    assert server.running is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.secure_channel(f"localhost:{server.running.grpc_port}", credentials)


def test_grpc_and_http_are_served_over_tls_only(server: StackServer, pki: tuple[Authority, Path, Path]) -> None:
    authority = pki[0]
    assert server.running is not None
    with secure(server, authority.ca_file) as channel:
        assert capabilities(channel, server.admin_key).cache_capabilities.digest_functions
    trusting = ssl.create_default_context(cafile=str(authority.ca_file))
    response = httpx.get(f"https://localhost:{server.running.http_port}/healthz", verify=trusting)
    assert response.status_code == 200
    with grpc.insecure_channel(server.grpc_target) as plaintext, pytest.raises(grpc.RpcError) as refused:
        capabilities(plaintext, server.admin_key)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.running.http_port}/healthz")


def test_a_renewed_certificate_is_served_without_a_restart(server: StackServer,
                                                           pki: tuple[Authority, Path, Path]) -> None:
    authority, cert, key = pki
    assert server.running is not None
    ports = {"h2": server.running.grpc_port, "http/1.1": server.running.http_port}
    assert {served_name(port, authority.ca_file, alpn) for alpn, port in ports.items()} == {"first"}
    with secure(server, authority.ca_file) as open_channel:
        capabilities(open_channel, server.admin_key)
        authority.issue("second", cert, key)  # as cert-manager renews a mounted Secret
        for alpn, port in ports.items():
            deadline = time.monotonic() + 30
            while served_name(port, authority.ca_file, alpn) != "second":
                assert time.monotonic() < deadline, f"{alpn} port still serves the old certificate"
                time.sleep(0.2)
        capabilities(open_channel, server.admin_key)  # a connection from before keeps working


def test_a_broken_renewal_keeps_the_old_pair(tmp_path: Path) -> None:
    authority = Authority.create(tmp_path)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    authority.issue("good", cert, key)
    now = [0.0]
    pair = Certificate(cert, key, clock=lambda: now[0])
    served = pair.pem
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot really\n")  # a writer caught half way
    now[0] += 2
    assert not pair.refresh() and pair.pem == served
    authority.issue("renewed", cert, key)
    assert not pair.refresh()  # checked a moment ago: the files are not looked at on every handshake
    now[0] += 2
    assert pair.refresh() and pair.pem != served


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="go together"):
        TlsSettings(tls_cert=tmp_path / "tls.crt")
    assert TlsSettings().tls_cert is None  # plaintext unless asked
