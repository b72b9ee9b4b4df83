"""Prometheus figures of the public edge."""

from prometheus_client import Counter, Gauge, Histogram

from services.common.tenant_labels import TenantCounter

RPC_LATENCY = Histogram(
    "bbapi_gateway_rpc_seconds", "Public gRPC call latency by method and status code", ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
HTTP_LATENCY = Histogram(
    "bbapi_gateway_http_seconds", "HTTP API call latency by method and status", ["method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
STREAMED_BYTES = Counter(
    "bbapi_gateway_streamed_bytes", "Blob bytes moved through the edge by direction, wire compression and tenant",
    ["direction", "compression", "tenant"])
streamed_bytes = TenantCounter(STREAMED_BYTES)  # streamed_bytes(tenant, direction, compression).inc(n)
AUTH_FAILURES = Counter("bbapi_gateway_auth_failures", "Calls refused for a missing or invalid API key")
BES_STREAMS = Gauge("bbapi_gateway_bes_streams", "Build Event Service streams open")
BES_EVENTS = Counter("bbapi_gateway_bes_events", "Build events forwarded for storage")
BES_ACK_LATENCY = Histogram(
    "bbapi_gateway_bes_ack_seconds", "From receiving a build event to acknowledging it (stored durably)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
BES_BATCHES = Counter("bbapi_gateway_bes_batches", "Batches of build events sent for storage, by backend",
                      ["backend"])
BES_BACKEND_RETRIES = Counter(
    "bbapi_gateway_bes_backend_retries", "Build-event backend calls retried after the service was unreachable",
    ["backend"])
