"""kill -9 in the middle of group commits loses only unacknowledged writes and leaves nothing partial."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import grpc

from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.support.clients import CacheClient, digest
from tests.support.servers import ServeProcess

WRITERS = 3


def _write_until_killed(client: CacheClient, attempted: dict[str, bytes], acked: dict[str, bytes],
                        lock: threading.Lock, stop: threading.Event) -> None:
    """Batches of small blobs and single small uploads, back to back, until the server dies."""
    while not stop.is_set():
        blobs = [os.urandom(random.randint(1, 8192)) for _ in range(40)]
        with lock:
            attempted.update((digest(b).hash, b) for b in blobs)
        try:
            if random.random() < 0.5:
                request = re_pb2.BatchUpdateBlobsRequest(requests=[
                    re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in blobs])
                answer = client.cas.BatchUpdateBlobs(request, metadata=client.metadata, timeout=10)
                stored = [b for b, r in zip(blobs, answer.responses, strict=True) if r.status.code == 0]
            else:
                stored = []
                for blob in blobs[:5]:
                    client.upload(blob)
                    stored.append(blob)
        except grpc.RpcError:
            return
        with lock:
            acked.update((digest(b).hash, b) for b in stored)


def test_kill_9_during_group_commits_keeps_every_acknowledged_blob_whole(tmp_path: Path) -> None:
    key = None
    for _round in range(3):
        serve = ServeProcess(tmp_path).start()
        key = key or serve.admin_key
        assert key is not None
        attempted: dict[str, bytes] = {}
        acked: dict[str, bytes] = {}
        lock, stop = threading.Lock(), threading.Event()
        clients = [CacheClient(serve.grpc_target, key) for _ in range(WRITERS)]
        threads = [threading.Thread(target=_write_until_killed, args=(c, attempted, acked, lock, stop))
                   for c in clients]
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(0.5, 1.5))
        serve.stop(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(30)
        for c in clients:
            c.close()
        assert acked, "the writers should have stored something before the kill"

        restarted = ServeProcess(tmp_path).start()
        try:
            _check(restarted, key, attempted, acked)
        finally:
            assert restarted.stop() == 0


def _check(server: ServeProcess, key: str, attempted: dict[str, bytes], acked: dict[str, bytes]) -> None:
    """Every acknowledged blob is there, and every blob that is there is whole."""
    check = CacheClient(server.grpc_target, key)
    try:
        request = re_pb2.FindMissingBlobsRequest(blob_digests=[digest(b) for b in attempted.values()])
        missing = {d.hash for d in check.cas.FindMissingBlobs(request, metadata=check.metadata).missing_blob_digests}
        assert not missing & set(acked), "an acknowledged blob was lost"
        present = [b for h, b in attempted.items() if h not in missing]
        for start in range(0, len(present), 200):  # batches stay under the 4 MiB limit
            part = present[start:start + 200]
            read = re_pb2.BatchReadBlobsRequest(digests=[digest(b) for b in part])
            for blob, response in zip(part, check.cas.BatchReadBlobs(read, metadata=check.metadata).responses,
                                      strict=True):
                assert response.status.code == 0 and response.data == blob  # whole, never partial
    finally:
        check.close()
