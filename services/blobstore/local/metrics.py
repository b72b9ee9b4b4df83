"""Prometheus figures of one CAS shard's local store."""

from prometheus_client import Counter, Gauge

STORED_BYTES = Gauge("bbapi_cas_stored_bytes", "Bytes of blobs and action results on this shard's disk")
BUDGET_BYTES = Gauge("bbapi_cas_budget_bytes", "This shard's size budget: eviction keeps stored bytes under it")
STORED_ENTRIES = Gauge("bbapi_cas_stored_entries", "Blobs and action results on this shard's disk")
WRITTEN_BYTES = Counter("bbapi_cas_written_bytes", "Verified blob bytes committed to disk")
EVICTED_ENTRIES = Counter("bbapi_cas_evicted_entries", "Entries removed by LRU eviction")
EVICTED_BYTES = Counter("bbapi_cas_evicted_bytes", "Bytes freed by LRU eviction")
WRITES_REFUSED = Counter("bbapi_cas_writes_refused",
                         "Writes refused because only data younger than the minimum age was left")
