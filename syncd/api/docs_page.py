"""The interactive API docs (Swagger UI), served whole from the installed packages.

FastAPI's own page loads Swagger UI's script, stylesheet and icon from a CDN, so a site
without internet access (or one whose policy blocks third-party scripts) sees a blank page.
Here they come from the files the fastapi-offline package ships (Swagger UI's release build),
under DOCS_STATIC_URL, next to the page.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs/"
DOCS_STATIC_URL = "/api/docs/static"
ASSETS = files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon.png


def install_docs(app: FastAPI) -> None:
    """The docs page at DOCS_URL and its assets; call with the app built with docs_url=None."""
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=str(ASSETS)), name="docs-static")
    schema_url = app.openapi_url or ""

    @app.api_route(DOCS_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{schema_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
