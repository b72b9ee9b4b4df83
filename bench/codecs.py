"""The in-process costs the design leans on: protobuf vs hand framing of bulk bytes, placement tables.

    python bench/codecs.py [--runs 50]

Prints the median time to serialize and parse a message with one large `bytes` field through
protobuf (upb) and through services.common.wire (why ByteStream, the CAS shard's Read/Write and
GetFile frame their bulk messages by hand), and the time to build a placement table for 3, 10
and 30 members (paid once per membership change), without zones and with the members in 3 zones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.blobstore.cluster.membership import Member
from services.blobstore.cluster.placement import Placement
from services.blobstore.remote import codec as cas_codec
from services.gen.bbapi.internal.v1 import cas_pb2


def median_us(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    print(f"\nOne ReadResponse{{bytes data}}, median of {args.runs} (us)\n")
    print(f"{'size':>10}{'protobuf ser':>14}{'wire ser':>10}{'protobuf parse':>16}{'wire parse':>12}")
    for size in (255 * 1024, 1024 * 1024):
        data = bytes(range(256)) * (size // 256)
        message = cas_pb2.ReadResponse(data=data)
        raw = message.SerializeToString()
        assert cas_codec.encode_read(data) == raw and cas_codec.decode_read(raw) == data
        print(f"{size // 1024:>8}Ki"
              f"{median_us(message.SerializeToString, args.runs):>14.0f}"
              f"{median_us(partial(cas_codec.encode_read, data), args.runs):>10.0f}"
              f"{median_us(partial(cas_pb2.ReadResponse.FromString, raw), args.runs):>16.0f}"
              f"{median_us(partial(cas_codec.decode_read, raw), args.runs):>12.0f}")

    print("\nPlacement table (65,536 slots), median of 3 builds (ms)\n")
    print(f"{'members':>8}{'build':>10}{'per member':>12}{'3 zones':>10}{'per member':>12}")
    for count in (3, 10, 30):
        members = [Member(id=f"cas-{i}", address=f"10.0.0.{i}:1986", weight=1.0) for i in range(count)]
        zoned = [m.model_copy(update={"zone": f"zone-{i % 3}"}) for i, m in enumerate(members)]
        build_ms = median_us(partial(Placement.build, members, 2), 3) / 1000
        zoned_ms = median_us(partial(Placement.build, zoned, 2), 3) / 1000
        print(f"{count:>8}{build_ms:>10.0f}{build_ms / count:>12.1f}{zoned_ms:>10.0f}{zoned_ms / count:>12.1f}")


if __name__ == "__main__":
    main()
