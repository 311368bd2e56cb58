"""Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with every asset served by the app.

FastAPI's own pages load their scripts from a public CDN, which leaves a blank page on a
site network without internet. The bundles come from the pinned ``fastapi-offline``
package instead, mounted under :data:`DOCS_ASSETS_URL`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_URL = "/docs-assets"
BUNDLES = Path(str(files("fastapi_offline") / "static"))
OPENAPI_URL = "/openapi.json"

#: The browser itself refuses anything from elsewhere: ReDoc's sidebar, for one, shows a
#: logo from its vendor's CDN (it hides itself when the image does not load).
#: The pages' own set-up scripts are inline; ReDoc runs its search in a blob: worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:"
)

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the docs pages; the app must be created with ``docs_url=redoc_url=None``."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=BUNDLES), name="docs-assets")
    app.include_router(router)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return _local_only(
        get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="Engine HA - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
        )
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return _local_only(
        get_redoc_html(
            openapi_url=OPENAPI_URL,
            title="Engine HA - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
    )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
