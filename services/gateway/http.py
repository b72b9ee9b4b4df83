"""The public HTTP side of the gateway (FastAPI): health, readiness and Prometheus metrics.

Every error, including the router's own (unknown paths), is the API's `{code, message}` body
with the gRPC code its status stands for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from services.common.errors import grpc_code, http_status

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def error_response(code: grpc.StatusCode, message: str, status: int | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code.value[0], "message": message}, status_code=status or http_status(code),
                        headers=headers)


def create_app(readiness: Readiness) -> FastAPI:
    app = FastAPI(title="bbapi", summary="BuildBuddy Enterprise API, self-hosted",
                  description="BuildBuddy's documented API at `POST /api/v1/<Method>`, authenticated by the "
                              "`x-buildbuddy-api-key` header.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(grpc_code(err.status_code), f"{request.method} {request.url.path}: {err.detail}",
                              err.status_code, err.headers)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
