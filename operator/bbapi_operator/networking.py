"""Services: the public gateway Service, internal ClusterIP Services and the CAS headless Service."""

from __future__ import annotations

from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.pods import CAS_PORT
from bbapi_operator.spec import Spec


def service_address(owner: Owner, component: str, number: int) -> str:
    """In-cluster `host:port` of the Service `<name>-<component>`."""
    return f"{owner.child(component)}.{owner.namespace}.svc:{number}"


def _port(name: str, number: int, protocol: str) -> dict[str, Any]:
    return {"name": name, "port": number, "targetPort": name, "protocol": "TCP", "appProtocol": protocol}


def _service(owner: Owner, component: str, selects: str, ports: list[dict[str, Any]], *,
             annotations: dict[str, str] | None = None, **spec_fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": owner.metadata(component, annotations=annotations),
            "spec": {"selector": owner.selector(selects), "ports": ports, **spec_fields}}


# Plaintext gRPC is HTTP/2 without TLS (h2c); with TLS both ports speak HTTPS (gRPC over h2).
H2C = "kubernetes.io/h2c"


def gateway(owner: Owner, spec: Spec) -> dict[str, Any]:
    """The one public Service; in embedded mode it fronts the all-in-one pod instead. The
    admin port (metrics, status) is deliberately not on it."""
    selects = "server" if spec.embedded else "gateway"
    grpc, http = ("https", "https") if spec.tls_secret else (H2C, "http")
    return _service(owner, "gateway", selects,
                    [_port("grpc", spec.service.grpc_port, grpc), _port("http", spec.service.http_port, http)],
                    type=spec.service.type, annotations=spec.service.annotations)


def balanced_address(owner: Owner, component: str, number: int) -> str:
    """A `dns:///` target for a headless Service: gRPC resolves every ready pod and spreads
    calls over them (round robin), instead of pinning each gateway to one pod per connection."""
    return f"dns:///{service_address(owner, component, number)}"


def internal(owner: Owner, component: str, number: int) -> dict[str, Any]:
    """metadata or logs, reached by the gateways over gRPC: headless, so each gateway sees (and
    balances over) every ready replica."""
    return _service(owner, component, component, [_port("grpc", number, H2C)], clusterIP="None")


def cas_headless(owner: Owner) -> dict[str, Any]:
    """Gives each shard a stable DNS name; published before ready so membership always resolves."""
    return _service(owner, "cas", "cas", [_port("grpc", CAS_PORT, H2C)],
                    clusterIP="None", publishNotReadyAddresses=True)


def endpoints(owner: Owner, spec: Spec) -> dict[str, str]:
    grpc, http = ("grpcs", "https") if spec.tls_secret else ("grpc", "http")
    return {"grpc": f"{grpc}://{service_address(owner, 'gateway', spec.service.grpc_port)}",
            "http": f"{http}://{service_address(owner, 'gateway', spec.service.http_port)}"}
