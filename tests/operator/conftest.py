"""Fixtures: an emulated API server with our CRD declared, and a kubeconfig pointing at it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from bbapi_operator import crd
from kmock import ResourceInfo

from tests.operator.cluster import Cluster
from tests.operator.emulator import ApiServer


@pytest.fixture
def kmock_options() -> dict[str, Any]:
    """Every kmock server in these tests is our stamping, garbage-collecting subclass."""
    return {"cls": ApiServer}


@pytest.fixture
def cluster(kmock: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kmock reads its bundle the old way
        kmock.resources.load_bundled()
    kmock.resources[f"{crd.API_VERSION}/{crd.PLURAL}"] = ResourceInfo(
        kind=crd.KIND, singular=crd.SINGULAR, namespaced=True, subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "delete"})
    kubeconfig = tmp_path / "kubeconfig"
    server = str(kmock.url).rstrip("/")
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return Cluster(kmock)
