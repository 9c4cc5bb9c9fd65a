"""Errors in the shapes Django REST framework answers with, which Waldur's clients parse.

400 {"field": ["message"]} or ["message"]; 401/403/404/405/413 {"detail": "..."}. FastAPI's
own 422 validation errors are translated here into DRF-style 400s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from syncd import metrics
from syncd.db.statement_timeout import is_statement_timeout

NOT_FOUND = "Not found."
INVALID_PAGE = "Invalid page."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
INVALID_TOKEN = "Invalid token."
PERMISSION_DENIED = "You do not have permission to perform this action."
UNIQUE_CATALOG = "The fields name, version, catalog_type must make a unique set."


class ApiError(Exception):
    """An answer other than success; `body` is sent as JSON as it is."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> ApiError:
    return ApiError(404, {"detail": NOT_FOUND})


def invalid_page() -> ApiError:
    return ApiError(404, {"detail": INVALID_PAGE})


def not_authenticated(detail: str = NOT_AUTHENTICATED) -> ApiError:
    # DRF's TokenAuthentication answers 401 with this challenge.
    return ApiError(401, {"detail": detail}, {"WWW-Authenticate": "Token"})


def permission_denied() -> ApiError:
    return ApiError(403, {"detail": PERMISSION_DENIED})


def field_error(field: str, message: str) -> ApiError:
    return ApiError(400, {field: [message]})


def general_error(message: str) -> ApiError:
    return ApiError(400, [message])


# Seconds a client is asked to wait after a 503: a restarting broker or database is back
# within a few seconds in the cases the reliability suite measures.
RETRY_AFTER_SECONDS = "5"


def unavailable(message: str) -> ApiError:
    return ApiError(503, {"detail": message}, headers={"Retry-After": RETRY_AFTER_SECONDS})


# SQLite refuses some statements because of what the client sent, not because it is down:
# these are 400s. (The filter length and `o` caps keep a client from reaching them.)
SQLITE_CLIENT_ERRORS: dict[str, ApiError] = {
    "LIKE or GLOB pattern too complex": general_error(
        "A filter value is too complex a pattern for the database to match; shorten it."
    ),
    "too many terms in ORDER BY clause": field_error("o", "Too many ordering terms."),
}


def client_error(error: BaseException) -> ApiError | None:
    """The 400 for a database error the client's input caused; None for any other error."""
    original = getattr(error, "orig", error)
    if isinstance(original, sqlite3.OperationalError):
        return SQLITE_CLIENT_ERRORS.get(str(original))
    return None


def statement_timeout(timeout_ms: int) -> ApiError:
    return unavailable(
        f"The query took longer than {timeout_ms} ms and was cancelled; narrow the filters."
    )


# SQLite has one writer at a time. A write waits for the lock (busy_timeout, 30 s: see
# syncd/db/engine.py), and a sync holds it only for its set-based diff (seconds for a full
# catalog), so this answer means a sync's diff outlasted that wait: contention, not an outage.
SQLITE_BUSY = (
    "The database is busy: a catalog sync holds SQLite's write lock. Nothing was changed; "
    "try again shortly."
)


POOL_EXHAUSTED = "The API is busy: no database connection was free in time; try again shortly."


def _is_sqlite_lock_wait(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def _message(error: dict[str, Any]) -> str:
    """DRF's wording for the pydantic errors a client can cause."""
    kind = error.get("type", "")
    in_query = tuple(error.get("loc", ()))[:1] == ("query",)
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "This field is required."
    if error.get("input", "") is None and kind.endswith("_type"):
        return "This field may not be null."
    # A trimmed text field reports its length as too_short/too_long (the trim runs first).
    text = isinstance(error.get("input"), str)
    if kind == "string_too_short" or (kind == "too_short" and text):
        return "This field may not be blank."
    if kind == "string_too_long" and in_query:
        # A filter: django-filter's form field answers with Django's MaxLengthValidator.
        length = len(str(error.get("input", "")))
        limit = ctx.get("max_length")
        return f"Ensure this value has at most {limit} characters (it has {length})."
    if kind == "string_too_long" or (kind == "too_long" and text):
        return f"Ensure this field has no more than {ctx.get('max_length')} characters."
    if kind == "too_long":
        # A list (a multi-valued filter): DRF's ListField wording, as for `o`.
        return f"Ensure this field has no more than {ctx.get('max_length')} elements."
    if kind == "enum" and in_query:
        # A choice filter: django-filter's form field answers with Django's ChoiceField.
        value = error.get("input")
        return f"Select a valid choice. {value} is not one of the available choices."
    if kind == "enum":
        return f'"{error.get("input")}" is not a valid choice.'
    if kind in {"bool_parsing", "bool_type"}:
        return "Must be a valid boolean."
    if kind in {"int_parsing", "int_type"}:
        return "A valid integer is required."
    if kind in {"uuid_parsing", "uuid_type"}:
        return "Enter a valid UUID."
    if kind in {"date_parsing", "date_from_datetime_parsing", "date_type"}:
        return "Enter a valid date."
    if kind.startswith("datetime_") or kind in {"timezone_aware", "timezone_naive"}:
        return "Enter a valid date/time."
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_type":
        return "Not a valid string."
    return str(error.get("msg", "Invalid value."))


def validation_body(errors: Sequence[Any]) -> Any:
    """Translate FastAPI's validation errors into a DRF 400 body."""
    fields: dict[str, list[str]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        kind = error.get("type", "")
        if kind == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "invalid JSON")
            return {"detail": f"JSON parse error - {detail}"}
        if loc and loc[0] == "body" and len(loc) == 1:
            if kind == "missing":
                return {"non_field_errors": ["No data provided"]}
            got = type(error.get("input")).__name__
            return {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
        # ("query", "o", 0) -> "o"; ("body", "name") -> "name"
        name = loc[1] if len(loc) > 1 else (loc[0] if loc else "non_field_errors")
        fields.setdefault(name, []).append(_message(error))
    return fields or {"non_field_errors": ["Invalid data."]}


def _is_bad_page(errors: Sequence[Any]) -> bool:
    return any(tuple(e.get("loc", ()))[:2] == ("query", "page") for e in errors)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if _is_bad_page(errors):
            # DRF: a page that is not a positive integer is the same as a page past the end.
            return JSONResponse({"detail": INVALID_PAGE}, status_code=404)
        return JSONResponse(validation_body(errors), status_code=400)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            body: dict[str, Any] = {"detail": NOT_FOUND}
        elif exc.status_code == 405:
            body = {"detail": f'Method "{_request.method}" not allowed.'}
        else:
            body = {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        refused = client_error(exc)
        if refused is not None:
            return await on_api_error(request, refused)
        if is_statement_timeout(exc):
            timeout_ms = request.app.state.ctx.settings.api_statement_timeout_ms
            metrics.API_STATEMENT_TIMEOUTS.inc()
            structlog.get_logger("syncd.api").warning(
                "api_statement_timeout", path=request.url.path, timeout_ms=timeout_ms
            )
            return await on_api_error(request, statement_timeout(timeout_ms))
        if _is_sqlite_lock_wait(exc):
            structlog.get_logger("syncd.api").warning("database_busy", path=request.url.path)
            return await on_api_error(request, unavailable(SQLITE_BUSY))
        # A database that refuses connections is an outage, not a bug: say so as the broker
        # case does (503 + Retry-After) and log one line instead of a traceback per request.
        structlog.get_logger("syncd.api").warning(
            "database_unavailable", path=request.url.path, error=str(exc).splitlines()[0]
        )
        return JSONResponse(
            {"detail": "The database is unavailable; try again shortly."},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    async def on_pool_timeout(request: Request, exc: Exception) -> JSONResponse:
        # Every connection of the pool was in use for SYNCD_API_POOL_TIMEOUT_SECONDS: the API
        # is overloaded, which a client can wait out (a plain-text 500 said it was a bug).
        structlog.get_logger("syncd.api").warning("database_pool_timeout", path=request.url.path)
        return await on_api_error(request, unavailable(POOL_EXHAUSTED))

    app.add_exception_handler(OperationalError, on_database_error)
    app.add_exception_handler(PoolTimeoutError, on_pool_timeout)
    app.add_exception_handler(psycopg.OperationalError, on_database_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
