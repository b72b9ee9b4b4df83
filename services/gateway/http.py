"""The gateway's HTTP apps (FastAPI): the public one, and the admin one for operators.

Health and readiness are on both (kubelet probes either). Prometheus metrics and the extra
operational routes (e.g. /status/membership, which shows internal addresses) go on the admin
app when the gateway has an admin port, else on the public one as before.

On the public app every error, including the router's own (unknown paths), is the API's
`{code, message}` body with the gRPC code its status stands for. `/docs` is Swagger UI served
from the assets the swagger-ui-py package ships, so it works without internet access.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.resources import files

import grpc
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from services.common.errors import grpc_code, http_status

SWAGGER_ASSETS = str(files("swagger_ui") / "static")


def error_response(code: grpc.StatusCode, message: str, status: int | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code.value[0], "message": message}, status_code=status or http_status(code),
                        headers=headers)


class Readiness:
    """What /readyz reports: every check, and which of them decide whether this pod takes traffic."""

    def __init__(self, checks: Callable[[], Awaitable[dict[str, bool]]], required: Sequence[str]) -> None:
        self.checks = checks
        self.required = tuple(required)

    async def __call__(self) -> tuple[bool, dict[str, bool]]:
        checks = await self.checks()
        return all(checks[name] for name in self.required), checks


def _health(app: FastAPI, readiness: Readiness) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, checks = await readiness()
        return JSONResponse({"ready": ready, "checks": checks, "required": list(readiness.required)},
                            status_code=200 if ready else 503)


def _operations(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)


def create_app(readiness: Readiness, operations: Sequence[APIRouter] | None = ()) -> FastAPI:
    """The public app; `operations=None` leaves /metrics and the operational routes to `admin_app`."""
    app = FastAPI(title="bbapi", summary="BuildBuddy Enterprise API, self-hosted", docs_url=None, redoc_url=None,
                  description="BuildBuddy's documented API at `POST /api/v1/<Method>`, authenticated by the "
                              "`x-buildbuddy-api-key` header or `Authorization: Bearer KEY`.")
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="bbapi API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(grpc_code(err.status_code), f"{request.method} {request.url.path}: {err.detail}",
                              err.status_code, err.headers)

    _health(app, readiness)
    if operations is not None:
        _operations(app, operations)
    return app


def admin_app(readiness: Readiness, operations: Sequence[APIRouter]) -> FastAPI:
    """Plaintext, unauthenticated, for the cluster only: probes, Prometheus, the operator."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    _health(app, readiness)
    _operations(app, operations)
    return app
