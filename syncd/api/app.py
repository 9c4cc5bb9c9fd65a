"""The FastAPI application: wiring only. `create_app` takes every resource it needs as an
argument (tests pass fakes); what is not passed is built from settings.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from syncd import cache_events
from syncd.api.cache import ResponseCache, ResponseCacheMiddleware
from syncd.api.cache_invalidation import WatcherFactory, watcher_for
from syncd.api.deps import ApiContext
from syncd.api.docs_page import install_docs
from syncd.api.errors import install_error_handlers
from syncd.api.headers import install_response_headers
from syncd.api.lean import LeanListMiddleware
from syncd.api.lean.middleware import LEAN_THREADS
from syncd.api.lean.threads import ReadThreads
from syncd.api.limits import BodyLimitMiddleware
from syncd.api.methods import install_methods
from syncd.api.operations import router as operations_router
from syncd.api.routes_catalogs import router as catalogs_router
from syncd.api.routes_feeds import router as feeds_router
from syncd.api.routes_history import router as history_router
from syncd.api.routes_offerings import public_router as public_offerings_router
from syncd.api.routes_offerings import router as offerings_router
from syncd.api.routes_software import router as software_router
from syncd.api.routes_software_writes import router as software_writes_router
from syncd.api.send_timeout import protocol_with_deadlines
from syncd.config import Settings
from syncd.db.engine import make_engine, make_session_factory
from syncd.discovery import DiscoverCache

DESCRIPTION = (
    "Wire-compatible with Waldur's /api/marketplace-software-catalogs/ family. Lists are bare "
    "JSON arrays paginated by page/page_size with X-Result-Count and Link headers; "
    "`?field=a&field=b` returns only those keys; errors have Django REST framework's shapes. "
    "Authenticate with `Authorization: Token <key>`."
)


def _strip_validation_errors(app: FastAPI) -> None:
    """FastAPI documents a 422 on every route; this API answers 400 instead (DRF's shape).
    The same pass marks the list query parameters as repeated keys."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
                _explode_array_parameters(operation)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _explode_array_parameters(operation: dict[str, Any]) -> None:
    """A list query parameter arrives as repeated keys (`?cpu_family=a&cpu_family=b`, as
    Waldur's generated clients send a list): say so (OpenAPI's default, made explicit)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        kinds = [schema, *schema.get("anyOf", [])]
        if parameter.get("in") == "query" and any(k.get("type") == "array" for k in kinds):
            parameter.setdefault("style", "form")
            parameter.setdefault("explode", True)


FULL_PASS_AFTER = 1_000  # passes of the middle generation (Python's default: 10)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    broker: Any = None,
    adapters: dict[str, Any] | None = None,
    fetcher: Any = None,
    watch_changes: WatcherFactory = watcher_for,
) -> FastAPI:
    """`watch_changes` builds what clears the response cache when another process writes
    (cache_invalidation.py); a test that proves a hit by a stale answer passes one that
    returns None."""
    owns_engine = engine is None
    if engine is None:
        # One connection per handler thread (see lifespan): none is opened per request.
        # Every statement is time-limited: an anonymous filter must not tie up the database.
        # A request that cannot get a connection soon is answered 503 (see errors.py).
        engine = make_engine(
            settings.database_url,
            pool_size=settings.api_threads,
            pool_timeout=settings.api_pool_timeout_seconds,
            statement_timeout_ms=settings.api_statement_timeout_ms,
        )
    if broker is None:
        from syncd.broker import make_broker

        broker = make_broker(settings)
    if adapters is None:
        from adapters.base import load_adapters

        adapters = dict(load_adapters(settings))
    owns_fetcher = fetcher is None
    if fetcher is None:
        from adapters.fetch import Fetcher

        fetcher = Fetcher(settings)

    cache = ResponseCache(settings.api_cache_seconds) if settings.api_cache_seconds > 0 else None
    unsubscribe = _clear_on_data_change(cache) if cache is not None else None
    watcher = watch_changes(engine, cache) if cache is not None else None
    # The lean list answers' threads (lean/middleware.py); their connections are within
    # the engine's overflow (db/engine.py DEFAULT_MAX_OVERFLOW) beyond SYNCD_API_THREADS.
    lean_threads = ReadThreads(LEAN_THREADS, "syncd-lean")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync handlers run in anyio's thread pool: as many threads as the pool has
        # connections (SYNCD_API_THREADS; anyio's default is 40).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if watcher is not None:
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        lean_threads.shutdown()
        if unsubscribe is not None:
            unsubscribe()
        # Close only what this app built; passed-in resources belong to the caller.
        if owns_fetcher:
            fetcher.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="syncd",
        summary="HPC software catalogs (EESSI, Spack, ...) kept current and served over HTTP",
        description=DESCRIPTION,
        version="0.1.0",
        openapi_url="/api/schema/",
        docs_url=None,  # install_docs: served without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ApiContext(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        broker=broker,
        adapters=adapters,
        fetcher=fetcher,
        discover_cache=DiscoverCache(settings.discover_cache_seconds),
    )
    install_error_handlers(app)
    app.include_router(catalogs_router)
    app.include_router(software_router)
    app.include_router(offerings_router)
    app.include_router(public_offerings_router)
    app.include_router(software_writes_router)
    app.include_router(history_router)
    app.include_router(feeds_router)
    app.include_router(operations_router)
    install_docs(app)
    # Innermost of ours: behind the cache, the allowed methods and the headers, as a route.
    app.add_middleware(LeanListMiddleware, threads=lean_threads)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body limit: a method the URL does not serve is refused without its body.
    install_methods(app)
    if cache is not None:
        # Outermost of ours: a hit skips routing, dependencies and the database.
        app.add_middleware(
            ResponseCacheMiddleware, cache=cache, wait_seconds=settings.api_cache_wait_seconds
        )
    app.state.response_cache = cache
    # Around everything above, Starlette's 500 included: nosniff, and CORS when configured.
    install_response_headers(app, settings)
    _strip_validation_errors(app)
    return app


def _clear_on_data_change(cache: ResponseCache) -> Callable[[], None]:
    """Clear `cache` whenever a sync in this process committed (`syncd run`). Holds the cache
    weakly: an app that is dropped without its lifespan ending does not stay alive."""
    ref = weakref.ref(cache)

    def clear() -> None:
        alive = ref()
        if alive is not None:
            alive.clear()

    return cache_events.on_data_changed(clear)


def freeze_startup_heap() -> None:
    """Keep the garbage collector's full passes out of the requests of a serving process.

    What the process built before its first request (modules, routes, schemas, the engine:
    ~150,000 objects) is frozen, and a full pass waits for 1,000 passes of the middle
    generation instead of 10: in bench_portal's single mode each run had one full pass in
    the middle of a request (75 ms, over 219,000 objects), and with the startup heap frozen
    alone two (14-20 ms) still did. The young generations keep their defaults, so a
    request's cyclic garbage is still collected young. Called by the entry points that
    serve, not by create_app: a test process builds hundreds of apps and must collect them.
    """
    gc.collect()  # what is garbage already is not frozen
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_AFTER)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from syncd.broker import make_publisher_broker
    from syncd.logging import configure_logging

    configure_logging(settings, "api")
    app = create_app(settings, broker=make_publisher_broker(settings))
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port if port is not None else settings.api_port,
        log_config=None,  # uvicorn keeps our structlog handlers (see syncd.logging)
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        http=protocol_with_deadlines(
            settings.api_header_timeout_seconds, settings.api_send_timeout_seconds
        ),
    )
