"""Memory the local store's index takes per stored blob.

    python bench/index_memory.py [--blobs 1000000]

Fills an index (services.blobstore.local.index) the way a restart does, with blobs of a few
tenants and instance names, and measures the Python heap it holds with tracemalloc (the names
given to it are freed before the measurement; only what the index keeps counts). The goal is
at most 150 bytes per blob, so a shard of 10 million blobs needs ~1.5 GiB for its index.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.blobstore.access import Kind, Scope
from services.blobstore.local.index import LruIndex
from services.blobstore.local.layout import prefix_of

GOAL = 150
SCOPES = [Scope("default"), Scope("default", "linux-x86"), Scope("team-a"), Scope("team-b", "ci")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    args = parser.parse_args()
    prefixes = [prefix_of(scope, kind) for scope in SCOPES for kind in (Kind.CAS, Kind.AC)]
    now = time.time()

    def found() -> object:
        for n in range(args.blobs):
            digest = hashlib.sha256(n.to_bytes(8, "little")).hexdigest()
            size = 1000 + n % 60000  # as the name says: the index matches a blob's size against its name's
            # small blobs and action results, packed: each with its sequence number in the packed store
            yield f"{prefixes[n % len(prefixes)]}{digest[:2]}/{digest}-{size}", size, now - n, n + 1

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = LruIndex(1 << 50, 0.9, 0)
    for name, size, used, seq in found():  # type: ignore[attr-defined]
        index.add(name, size, used, seq)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_blob = held / len(index)
    print(f"index of {len(index):,} blobs: {held / 2**20:,.1f} MiB, {per_blob:.0f} bytes per blob "
          f"(goal <= {GOAL}: {'met' if per_blob <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
