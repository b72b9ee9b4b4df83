"""Exit codes of every `bbapi` command, and the one-line way to fail with one.

0 and 1 as usual, 2 for usage (argparse's own), and sysexits(3) codes where a script may want to
tell the cause apart without reading the message: nothing to work on, a server out of reach,
a port or directory another process holds.
"""

from __future__ import annotations

import sys

OK = 0
FAILED = 1  # the command ran and failed: the server refused the request, no such key, ...
USAGE = 2  # bad flags or arguments
NO_INPUT = 66  # EX_NOINPUT: no bbapi data directory where one was named
UNAVAILABLE = 69  # EX_UNAVAILABLE: the server cannot be reached
IN_USE = 75  # EX_TEMPFAIL: a port or the data directory is held by another process; retry when it stops


def fail(message: str, code: int) -> int:
    """Print `error: message` as one line on stderr; returns `code` for the command to exit with."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
