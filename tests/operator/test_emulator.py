"""The emulated API server honours label selectors, so code under test need not filter again."""

from __future__ import annotations

import asyncio

import pytest
from bbapi_operator.kube import KINDS, KubeApi, connect
from bbapi_operator.meta import Owner, label_selector

from tests.operator.cluster import NAMESPACE, Cluster
from tests.operator.emulator import selects

LABELS = {"app": "bbapi", "tier": "edge"}


@pytest.mark.parametrize(("selector", "expected"), [
    ("", True),
    ("app=bbapi", True),
    ("app==bbapi,tier=edge", True),
    ("app=bbapi,tier=core", False),
    ("app!=bbapi", False),
    ("tier!=core", True),
    ("app", True),
    ("zone", False),
    ("!zone", True),
    ("!app", False),
])
def test_equality_based_selectors(selector: str, expected: bool) -> None:
    assert selects(selector, LABELS) is expected


def test_set_based_selectors_are_refused_not_ignored() -> None:
    with pytest.raises(AssertionError, match="set-based"):
        selects("tier in (edge,core)", LABELS)


async def test_list_returns_only_the_selected_objects(cluster: Cluster) -> None:
    for owner in (Owner("demo", NAMESPACE, "u1"), Owner("other", NAMESPACE, "u2")):
        for component in ("gateway", "cas"):
            config = {"apiVersion": "v1", "kind": "ConfigMap",  # no owner reference: the owner does not exist
                      "metadata": {"name": owner.child(component), "labels": owner.labels(component)}}
            assert (await cluster.server.post(cluster.url("ConfigMap"), json=config)).status == 200
    api = KubeApi(connect(), timeout=5)
    selector = label_selector(Owner("demo", NAMESPACE, "u1").selector("gateway"))
    listed = await asyncio.to_thread(api.list, KINDS["ConfigMap"], NAMESPACE, selector)
    assert [obj["metadata"]["name"] for obj in listed] == ["demo-gateway"]
    everything = await asyncio.to_thread(api.list, KINDS["ConfigMap"], NAMESPACE, "")
    assert len(everything) == 4
