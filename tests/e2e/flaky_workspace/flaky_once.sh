#!/bin/sh
# Fails the first time it runs, passes after: MARKER_DIR (outside the sandbox) remembers the first run.
marker="$MARKER_DIR/flaky_once.ran"
if [ -e "$marker" ]; then
  exit 0
fi
touch "$marker"
echo "the first attempt fails" >&2
exit 1
