"""A real Prometheus scrapes a real `bbapi serve` carrying cache and build-event traffic of two
tenants: every dashboard query and every alert runs without error, names only metrics bbapi
exports, and the hit ratio per tenant is there to read."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.prometheus import MISSING, PROMETHEUS, Prometheus
from tests.observability.promql import ALERTS, alert_queries, dashboard_queries, family_of, metric_names
from tests.support.bes import Publisher, read_bep
from tests.support.clients import CacheClient
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)
BUILD = Path(__file__).parents[1] / "invocations" / "fixtures" / "build_plain.bep"
TENANTS = ("team-a", "team-b")
NEVER = "0001-01-01T00:00:00Z"  # a rule's lastEvaluation before its first


def drive(serve: ServeProcess, key: str) -> None:
    """Cache traffic (uploads, hits, a miss) and one build's events of the tenant of `key`."""
    client = CacheClient(serve.grpc_target, key)
    try:
        blobs = [os.urandom(2000) for _ in range(3)]
        for blob in blobs:
            client.upload(blob)
        assert len(client.missing(*blobs, os.urandom(8))) == 1
    finally:
        client.close()
    with Publisher(serve.grpc_target, key) as bazel:
        events = read_bep(BUILD)
        assert bazel.publish(str(uuid.uuid4()), events)[-1] == len(events) + 1


def moved(prometheus: Prometheus, expr: str, series: int) -> bool:
    """Whether `series` series of `expr` have changed within the last 5 minutes of scrapes."""
    result = prometheus.query(f"count(changes({expr}[5m]) > 0)")
    return bool(result) and int(result[0]["value"][1]) == series


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Prometheus]]:
    serve = ServeProcess(tmp_path_factory.mktemp("bbapi")).start()
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{serve.http_port}"], [ALERTS])
    try:
        prometheus.start()
        prometheus.wait_for(lambda: prometheus.query('up{job="bbapi"} == 1'), 60, "scraping bbapi")
        keys = [serve.new_key(tenant) for tenant in TENANTS]
        # Two rounds, each seen by a scrape: a series' first sample is where its rate starts, so
        # a tenant's counters move only from the second round on (as for any new series).
        for key in keys:
            drive(serve, key)
        prometheus.wait_for(lambda: prometheus.query('bbapi_gateway_cache_requests_total{tenant="team-b"}'), 60,
                            "seeing the first round")
        for key in keys:
            drive(serve, key)
        prometheus.wait_for(lambda: moved(prometheus, 'bbapi_gateway_cache_requests_total{cache="cas"}', 4), 60,
                            "seeing the second round")
        prometheus.wait_for(lambda: all(rule["lastEvaluation"] != NEVER for rule in prometheus.rules()), 60,
                            "evaluating the rules")
        yield serve, prometheus
    finally:
        prometheus.stop()
        serve.stop()


def test_every_dashboard_query_runs(scraped: tuple[ServeProcess, Prometheus]) -> None:
    _serve, prometheus = scraped
    queries = dashboard_queries()
    assert len(queries) >= 30
    answered = {name: prometheus.query(expr) for name, expr in queries.items()}
    # what the all-in-one serves has data: requests, cache, build events, its disk
    for name in ("gRPC calls by method [A]", "Build events ingested [A]", "Build event ack latency [B]",
                 "Disk use of budget by shard [A]", "Bytes streamed by tenant [A]", "$tenant"):
        assert answered[name], name


def test_the_hit_ratio_per_tenant_is_one_query(scraped: tuple[ServeProcess, Prometheus]) -> None:
    _serve, prometheus = scraped
    ratio = {sample["metric"]["tenant"]: float(sample["value"][1])
             for sample in prometheus.query(dashboard_queries()["CAS hit ratio by tenant [A]"])}
    assert ratio.keys() == set(TENANTS)
    assert all(0 < value < 1 for value in ratio.values()), ratio  # each had hits and a miss


def test_every_alert_loads_evaluates_and_stays_quiet(scraped: tuple[ServeProcess, Prometheus]) -> None:
    _serve, prometheus = scraped
    rules = {rule["name"]: rule for rule in prometheus.rules()}
    assert rules.keys() == alert_queries().keys()
    for name, rule in rules.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
        assert rule["state"] == "inactive", (name, rule["alerts"])  # a healthy server raises none
    for expr in alert_queries().values():
        assert prometheus.query(expr) == []


def test_every_metric_named_is_one_bbapi_exports(scraped: tuple[ServeProcess, Prometheus]) -> None:
    """Against the real exposition: it lists every family the process defines, those without
    series yet too (the cluster tier's hand-offs, repairs and migration), so a misspelt name fails."""
    serve, _prometheus = scraped
    text = httpx.get(f"http://127.0.0.1:{serve.http_port}/metrics").text
    served = {family.name for family in text_string_to_metric_families(text)}
    named = {where: metric_names(expr) for where, expr in {**dashboard_queries(), **alert_queries()}.items()}
    assert all(named.values())
    for where, names in named.items():
        for name in names:
            assert family_of(name, served), (where, name)
