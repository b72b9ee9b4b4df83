#!/bin/sh
echo "shard ${TEST_SHARD_INDEX} of ${TEST_TOTAL_SHARDS}"
touch "${TEST_SHARD_STATUS_FILE:-/dev/null}"
exit 0
