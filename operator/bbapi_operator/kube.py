"""A thin JSON adapter over the official client: plain dicts in and out, for any kind we manage.

Only GET, POST, merge-PATCH, DELETE and LIST: no PUT and no server-side apply, which keeps the
operator runnable against test API servers that emulate just those verbs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from bbapi_operator import crd

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """API group; empty for the core group."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = ["namespaces", namespace] if self.namespaced else []
        parts = [root, *scope, self.plural, name, subresource]
        return "/".join(part for part in parts if part)


KINDS = {kind.kind: kind for kind in (
    Kind(crd.API_VERSION, crd.KIND, crd.PLURAL),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "Service", "services"),
    Kind("v1", "Pod", "pods"),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("v1", "Node", "nodes", namespaced=False),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
)}


def kind_of(obj: dict[str, Any]) -> Kind:
    return KINDS[obj["kind"]]


def connect() -> kubernetes.client.ApiClient:
    """In-cluster service account first, else $KUBECONFIG (read now, not at import time)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration,
            persist_config=False)
    return kubernetes.client.ApiClient(configuration)


class KubeApi:
    """Namespaced CRUD over raw JSON. A missing object reads as None, not as an exception."""

    def __init__(self, client: kubernetes.client.ApiClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, content_type: str | None = None,
              query: list[tuple[str, str]] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(method=method, resource_path=path, query_params=query,
                                               header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self._client.call_api(*request, _request_timeout=self._timeout)
        response.read()  # type: ignore[no-untyped-call]
        return self._client.response_deserialize(response, {"2XX": "object"}).data

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call("GET", kind.path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def list(self, kind: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = self._call("GET", kind.path(namespace), query=[("labelSelector", selector)])
        return list(found.get("items") or [])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._call("POST", kind_of(obj).path(obj["metadata"]["namespace"]), body=obj)
        return created

    def create_if_absent(self, obj: dict[str, Any]) -> bool:
        """Create `obj` unless one with its name exists; never reads or changes an existing one."""
        try:
            self.create(obj)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any],
              subresource: str | None = None) -> dict[str, Any]:
        patched: dict[str, Any] = self._call("PATCH", kind.path(namespace, name, subresource), body=patch,
                                             content_type=MERGE_PATCH)
        return patched

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", kind.path(namespace, name))
        except ApiException as error:
            if error.status != 404:
                raise
