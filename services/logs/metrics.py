"""Prometheus figures of the logs service."""

from prometheus_client import Counter

LOG_BYTES = Counter("bbapi_logs_written_bytes", "Console text bytes appended to build logs")
