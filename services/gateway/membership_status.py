"""`GET /status/membership`: which membership document this gateway runs and how its copy is going.

The Kubernetes operator and `bbapi cluster` poll it and drop `previous` from the document only
once the gateways report `migrating: false` for exactly that generation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fastapi import APIRouter

from services.blobstore.cluster.membership import Progress

PATH = "/status/membership"


def membership_router(progress: Callable[[], Progress]) -> APIRouter:
    router = APIRouter()

    @router.get(PATH, include_in_schema=False)
    async def status() -> dict[str, object]:
        return dataclasses.asdict(progress())

    return router
