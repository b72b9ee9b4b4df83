"""`completeness`: an action result is a hit only while every blob it references exists.

Bazel trusts a cache hit and downloads (or, with --remote_download_minimal, merely references)
the outputs; a result whose outputs were evicted would fail the build later. So a lookup checks
output files, stdout/stderr and every file inside output-directory trees, and reports NOT_FOUND
when any is gone; Bazel then re-runs the action and uploads again. The check also refreshes the
outputs' recency, keeping a used result's blobs alive together.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from services.blobstore.access import BlobAccessDecorator, Scope, read_all
from services.common.convert import digest_in
from services.common.errors import ApiError, NotFound
from services.common.resources import Digest
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

log = logging.getLogger(__name__)


class CompletenessChecking(BlobAccessDecorator):
    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        data = await self.backend.get_action_result(scope, action)
        try:
            result = re_pb2.ActionResult.FromString(data)
            referenced = await self._referenced(scope, result)
        except (DecodeError, ApiError) as err:
            log.warning("action result %s is unusable: %s", action, err)
            raise NotFound(f"no usable action result for {action}") from None
        missing = await self.backend.find_missing(scope, referenced)
        if missing:
            raise NotFound(f"action result for {action} references {len(missing)} blobs that are gone "
                           f"(e.g. {missing[0]})")
        return data

    async def _referenced(self, scope: Scope, result: re_pb2.ActionResult) -> list[Digest]:
        function = scope.function
        digests = [digest_in(f.digest, function) for f in result.output_files]
        for std in (result.stdout_digest, result.stderr_digest):
            if std.hash:
                digests.append(digest_in(std, function))
        for directory in result.output_directories:
            if directory.HasField("tree_digest"):
                tree_digest = digest_in(directory.tree_digest, function)
                tree = re_pb2.Tree.FromString(await read_all(self.backend, scope, tree_digest))
                digests.append(tree_digest)
                for node in [tree.root, *tree.children]:
                    digests.extend(digest_in(f.digest, function) for f in node.files)
            if directory.HasField("root_directory_digest"):
                digests.append(digest_in(directory.root_directory_digest, function))
        return list(dict.fromkeys(digests))
