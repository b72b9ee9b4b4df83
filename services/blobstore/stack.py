"""The blob-store stacks, composed here and nowhere else.

    edge (gateway):   CacheMetrics → CompletenessChecking → RecentlyPresent → EmptyBlobHandling → Cluster
    Cluster:          ShardedBlobAccess + Replicator over a pool of member stores
    member stores:    RemoteBlobAccess (a `bbapi cas` process) in a cluster,
                      the LocalBlobAccess itself in the all-in-one (one member, in process)
    shard process:    EmptyBlobHandling → LocalBlobAccess, behind the internal gRPC contract

`bbapi serve` thus runs exactly the decorators of a cluster of one, and its blob bytes never cross
a socket between the public stream and the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.blobstore.access import BlobAccess
from services.blobstore.cluster import membership as membership_file
from services.blobstore.cluster.membership import Member, Membership
from services.blobstore.cluster.owner import Cluster
from services.blobstore.completeness import CompletenessChecking
from services.blobstore.empty import EmptyBlobHandling
from services.blobstore.local.store import LocalBlobAccess
from services.blobstore.local.volume import DEFAULT_MIN_FREE
from services.blobstore.metrics import CacheMetrics
from services.blobstore.presence import TTL_SECONDS, RecentlyPresent
from services.blobstore.remote.client import RemoteBlobAccess
from services.common.rpc import insecure_channel

IN_PROCESS = "in-process"  # the address of the all-in-one's one member


@dataclass(frozen=True)
class DiskSettings:
    """A local store: where, and its budget (see services.blobstore.local.index)."""

    root: Path
    max_size_bytes: int
    low_water_fraction: float = 0.9
    min_age_seconds: float = 3 * 3600
    min_free_bytes: int = DEFAULT_MIN_FREE


@dataclass
class Stack:
    """What a gateway serves blobs from (`blobs`) and the cluster behind it (status, readiness)."""

    blobs: BlobAccess
    cluster: Cluster

    async def close(self) -> None:
        await self.blobs.close()


def edge(backend: BlobAccess, presence_ttl: float = TTL_SECONDS) -> BlobAccess:
    """RecentlyPresent sits below completeness checking, so the outputs an action-cache hit was just
    checked for are answered from memory when Bazel's build-event uploader asks about them."""
    return CacheMetrics(CompletenessChecking(RecentlyPresent(EmptyBlobHandling(backend), presence_ttl)))


async def open_disk(settings: DiskSettings) -> LocalBlobAccess:
    store = LocalBlobAccess(settings.root, settings.max_size_bytes, settings.low_water_fraction,
                            settings.min_age_seconds, settings.min_free_bytes)
    await store.start()
    return store


def shard(store: LocalBlobAccess) -> BlobAccess:
    """What one CAS shard process serves over the internal contract."""
    return EmptyBlobHandling(store)


def remote_member(member: Member) -> BlobAccess:
    return RemoteBlobAccess(member.address, insecure_channel(member.address))  # reconnects within 1 s


async def cluster_gateway(membership_path: Path) -> Stack:
    """A gateway of a cluster: the members named in the membership file, over internal gRPC."""
    cluster = await Cluster.start(membership_file.load(membership_path), remote_member, membership_path)
    return Stack(edge(cluster), cluster)


async def all_in_one(settings: DiskSettings) -> Stack:
    """The all-in-one: a cluster of one member, the local disk store, in this process."""
    store = await open_disk(settings)
    membership = Membership(members=(Member(id="local", address=IN_PROCESS),), replication=1)
    cluster = await Cluster.start(membership, lambda _member: store)
    return Stack(edge(cluster, min(TTL_SECONDS, settings.min_age_seconds)), cluster)
