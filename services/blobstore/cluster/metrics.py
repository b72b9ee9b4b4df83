"""Prometheus figures of the sharded CAS as one gateway sees it (labels: `shard` = member id).

Stored bytes and entries per shard are each shard's own `bbapi_cas_stored_*` gauges (on its
metrics port); these count what this gateway sent where and how it coped with failures.
"""

from prometheus_client import Counter, Gauge

SHARD_UP = Gauge("bbapi_cluster_shard_up", "1 while this gateway considers the shard reachable", ["shard"])
WRITTEN_BYTES = Counter("bbapi_cluster_shard_written_bytes", "Blob bytes stored on a shard (replica writes)",
                        ["shard"])
WRITTEN_BLOBS = Counter("bbapi_cluster_shard_written_blobs", "Blobs and action results stored on a shard",
                        ["shard"])
REPLICA_WRITES = Counter("bbapi_cluster_replica_writes", "Replica writes by shard and result (ok, existed, failed)",
                         ["shard", "result"])
FAILOVERS = Counter("bbapi_cluster_failovers", "Requests that skipped a shard that was down or failed", ["shard"])
HANDOFFS_QUEUED = Counter("bbapi_cluster_handoffs_queued", "Hinted hand-offs recorded for a shard", ["shard"])
HANDOFFS_REPLAYED = Counter("bbapi_cluster_handoffs_replayed", "Hinted hand-offs delivered to their shard",
                            ["shard"])
HANDOFFS_DROPPED = Counter("bbapi_cluster_handoffs_dropped",
                           "Hinted hand-offs given up (queue full, or the data was gone); read repair covers them",
                           ["shard"])
HANDOFFS_PENDING = Gauge("bbapi_cluster_handoffs_pending", "Hinted hand-offs waiting for their shard", ["shard"])
READ_REPAIRS = Counter("bbapi_cluster_read_repairs", "Copies made to replicas that missed a blob on read",
                       ["shard"])
REPAIRS_DROPPED = Counter("bbapi_cluster_read_repairs_dropped", "Read repairs skipped because the queue was full")
MIGRATING = Gauge("bbapi_cluster_migrating", "1 while data is being copied to a new membership")
MIGRATION_SCANNED = Gauge("bbapi_cluster_migration_scanned_keys", "Keys listed so far by the running migration")
MIGRATION_COPIED = Gauge("bbapi_cluster_migration_copied_keys", "Keys copied to their new owners so far")
MIGRATION_REMOVED = Gauge("bbapi_cluster_migration_removed_keys", "Keys removed from shards that no longer own them")
