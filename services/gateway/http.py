"""The public HTTP side of the gateway (FastAPI): health, readiness, Prometheus metrics, API docs.

Every error, including the router's own (unknown paths), is the API's `{code, message}` body
with the gRPC code its status stands for. `/docs` is Swagger UI served from the assets the
swagger-ui-py package ships, so it works without internet access.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from services.common.errors import grpc_code, http_status

Readiness = Callable[[], Awaitable[dict[str, bool]]]
SWAGGER_ASSETS = str(files("swagger_ui") / "static")


def error_response(code: grpc.StatusCode, message: str, status: int | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code.value[0], "message": message}, status_code=status or http_status(code),
                        headers=headers)


def create_app(readiness: Readiness) -> FastAPI:
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
