"""The Build Event Service's knobs, apart from the servicer so settings can build them without importing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BesOptions:
    """How the gateway batches build events and how long it rides out a backend outage."""

    linger: float = 0.5
    retry_seconds: float = 60.0
    allow_anonymous: bool = False
