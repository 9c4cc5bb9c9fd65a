"""Headers on every response of the app, whoever answers: an endpoint, the body limit, the
response cache, the docs' static files or Starlette's own 500.

- `X-Content-Type-Options: nosniff`: a browser takes each answer as the type it says it is
  (a JSON error is never run as a script or rendered as HTML).
- CORS, when SYNCD_CORS_ORIGINS is set (none by default: no CORS headers at all): preflight
  OPTIONS from an allowed origin is answered here, before authentication (a browser sends no
  token in a preflight); every answer to an allowed origin carries
  Access-Control-Allow-Origin and exposes X-Result-Count, Link and Retry-After, so a web UI
  on another origin can page through lists. `*` answers `*` and never allows credentials
  (refused at start-up by `syncd.config.check_cors`); listed origins are echoed with
  `Vary: Origin`.

Both wrap the whole middleware stack, outside the response cache (a cached answer is shared
by every origin; the CORS headers are added per request) and outside Starlette's error
middleware (a 500 is still readable by the UI that caused it).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.config import Settings, check_cors

NOSNIFF = (b"x-content-type-options", b"nosniff")
# Headers a cross-origin page may read besides the CORS-safelisted ones: the list count and
# pages (Waldur's clients read both), and how long to wait after a 503.
EXPOSED_HEADERS = ("X-Result-Count", "Link", "Retry-After")
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE_SECONDS = 600


class NosniffMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the cache replays its stored header list, which must not grow.
                headers = [h for h in message.get("headers", ()) if h[0].lower() != NOSNIFF[0]]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def cors_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` behind Starlette's CORS middleware as SYNCD_CORS_* configure it; `app` itself
    when no origin is configured."""
    check_cors(settings.cors_origins, settings.cors_allow_credentials)
    if not settings.cors_origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=settings.cors_origins,
        allow_methods=CORS_METHODS,
        # Any header a page asks for: the origin check is what guards the API (a token is
        # sent in Authorization, which a literal `*` would not cover).
        allow_headers=["*"],
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )


def install_response_headers(app: FastAPI, settings: Settings) -> None:
    """Wrap `app`'s whole middleware stack (built on its first request) with CORS and
    nosniff. Raises ValueError for a CORS setting `check_cors` refuses."""
    check_cors(settings.cors_origins, settings.cors_allow_credentials)
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return NosniffMiddleware(cors_middleware(build(), settings))

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
