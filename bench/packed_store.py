"""The packed store's group commit: items appended by sequence number next to the layout keyed by name.

    python bench/packed_store.py [--group 1000] [--fills 5000,15000,100000] [--runs 9]

For each fill (items already stored, 1 KiB each), the median time to commit one more group of
GROUP x 1 KiB items, durably: with `PackedStore.put` (services.blobstore.local.packed: appended
under sequence numbers), and with the layout it replaced, which stored each item under its name
(a random hash) in `blobs` and its last use in `used`, written here with LMDB as that code did.
Then the time `PackedStore` takes to convert a store of the largest fill from that layout when
it opens (the one-off migration).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.blobstore.local.packed import PackedStore

ITEM = 1024
BUDGET = 1 << 31


def group(size: int) -> list[tuple[str, bytes]]:
    return [(f"default/_/cas/{h[:2]}/{h}-{ITEM}", os.urandom(ITEM))
            for h in (hashlib.sha256(os.urandom(16)).hexdigest() for _ in range(size))]


def by_name(path: Path) -> tuple[Callable[[list[tuple[str, bytes]]], None], Callable[[], None]]:
    """The layout keyed by name: one transaction per group, putmulti into `blobs` and `used`."""
    env = lmdb.open(str(path), map_size=2 * BUDGET, max_dbs=2, readahead=False)
    blobs, used = env.open_db(b"blobs"), env.open_db(b"used")

    def put(items: list[tuple[str, bytes]]) -> None:
        keys = [name.encode() for name, _ in items]
        stamp = struct.pack("<d", time.time())
        with env.begin(write=True) as txn:
            txn.cursor(blobs).putmulti(zip(keys, [data for _, data in items], strict=True))
            txn.cursor(used).putmulti((key, stamp) for key in keys)
    return put, env.close


def appended(path: Path) -> tuple[Callable[[list[tuple[str, bytes]]], None], Callable[[], None]]:
    store = PackedStore(path, BUDGET)

    def put(items: list[tuple[str, bytes]]) -> None:
        store.put(items, time.time())
    return put, store.close


def median_commit(layout: Callable[[Path], tuple[Callable[[list[tuple[str, bytes]]], None], Callable[[], None]]],
                  root: Path, fill: int, size: int, runs: int) -> tuple[float, Path]:
    path = Path(tempfile.mkdtemp(dir=root))
    put, close = layout(path)
    for start in range(0, fill, size):
        put(group(min(size, fill - start)))
    times = []
    for _ in range(runs):
        items = group(size)
        start = time.perf_counter()
        put(items)
        times.append(time.perf_counter() - start)
    close()
    return statistics.median(times) * 1000, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", type=int, default=1000)
    parser.add_argument("--fills", default="5000,15000,100000")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    fills = [int(fill) for fill in args.fills.split(",")]
    print(f"\ncommit of {args.group:,} x 1 KiB items, median of {args.runs}; load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| items stored | keyed by name | appended by sequence number | ratio |\n| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # the disk under test, not a tmpfs /tmp
        root = Path(tmp)
        legacy: list[Path] = []
        for fill in fills:
            named, path = median_commit(by_name, root, fill, args.group, args.runs)
            legacy.append(path)
            fast, _ = median_commit(appended, root, fill, args.group, args.runs)
            print(f"| {fill:,} | {named:.1f} ms | {fast:.1f} ms | {fast / named:.2f}x |")
        items = fills[-1] + args.group * args.runs
        start = time.perf_counter()
        PackedStore(legacy[-1], BUDGET).close()  # converts the largest store keyed by name as it opens
        elapsed = time.perf_counter() - start
        print(f"\nconverting {items:,} items keyed by name when the store opens: {elapsed:.1f} s, "
              f"{items / elapsed:,.0f} items/s")


if __name__ == "__main__":
    main()
