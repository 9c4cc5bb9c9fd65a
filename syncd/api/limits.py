"""Request bodies: the caller is authenticated before a byte of the body is read.

- Anonymous callers may only read, so their body limit is 0: the body of an anonymous write
  is never read, and the app answers it (401 from the endpoint's authentication, or the
  routing's 404/405) as if it had none. A flood of large anonymous bodies costs nothing but
  the bytes the server discards.
- A token is checked first (one query, off the event loop); a bad token is the app's 401,
  still without reading. The identity is kept for the endpoint (`deps.identify`).
- An authenticated body larger than SYNCD_MAX_BODY_BYTES is a 413; JSON nested deeper than
  MAX_JSON_DEPTH a 400 (Python's parser would otherwise recurse until it fails with a 500).

The depth check runs in native code (bytes methods, no per-byte Python loop), in a worker
thread for large bodies. A pure ASGI middleware: it reads the bounded body once and replays
it to the app.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from fastapi import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.api.deps import identify

MAX_JSON_DEPTH = 32
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Larger bodies are checked in a worker thread; smaller ones cost microseconds on the loop.
OFF_LOOP_BYTES = 64 * 1024
DEPTH_THREADS = 2  # a burst of large bodies must not take every handler thread

_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _as_utf8(body: bytes) -> bytes | None:
    """`body` in UTF-8, as json.loads would decode it (it also takes UTF-16 and UTF-32);
    None when it does not decode (the parser refuses it before nesting anything)."""
    encoding = json.detect_encoding(body)
    if encoding.startswith("utf-8"):
        return body  # UTF-8 multi-byte sequences hold no ASCII byte: brackets are exact
    try:
        return body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeError:
        return None


def _outside_strings(text: bytes) -> bytes:
    """The JSON text without its string literals: brackets inside strings do not nest.

    Escapes go first: `\\\\` pairs, then escaped quotes (a backslash run inside a string
    starts at an escape, so pairing from the left is how the parser reads it). What is left
    between quotes alternates outside/inside, as the parser pairs them."""
    if b'"' not in text:
        return text
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(unescaped.split(b'"')[::2])


def nested_deeper_than(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays/objects more than `limit` levels deep.

    Exact for valid JSON. For invalid JSON it answers so that the parser, which fails on
    it anyway, never recurses more than 2 x `limit` levels first: unmatched openers count
    as nesting. Linear time in native code: one pass per level removes every innermost
    `[]` pair, so `limit` passes clear any valid text that is not too deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot be deeper: skip the scan
    text = _as_utf8(body)
    if text is None:
        return False
    brackets = _outside_strings(text).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    # Left: pairs nested deeper than `limit`, and brackets never matched ("]]][[[").
    return b"[]" in brackets or brackets.count(b"[") > limit


def _too_deep_detail() -> dict[str, str]:
    return {"detail": f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"}


async def _app_answer(request: Request, error: Exception) -> Response:
    """The app's own answer to `error` (its exception handlers: a bad token is a 401, a
    database that is down a 503), so a refusal here reads as one from an endpoint."""
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = (
        request.app.exception_handlers
    )
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            return await handler(request, error)
    raise error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._depth_threads: anyio.CapacityLimiter | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            identity = await identify(request)
        except Exception as error:
            answer = await _app_answer(request, error)
            await answer(scope, receive, send)
            return
        if identity is None:
            await self.app(scope, _replay(b"", receive), send)  # the body stays unread
            return
        body = await self._read(scope, receive, send)
        if body is None:
            return
        if await self._too_deep(body):
            await JSONResponse(_too_deep_detail(), status_code=400)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body; None when it was refused (413, answered here) or the client left."""
        too_large = JSONResponse(
            {"detail": f"Request body is larger than {self.max_bytes} bytes."}, status_code=413
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(scope, receive, send)
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_deep(self, body: bytes) -> bool:
        if len(body) <= OFF_LOOP_BYTES:
            return nested_deeper_than(body)
        if self._depth_threads is None:
            self._depth_threads = anyio.CapacityLimiter(DEPTH_THREADS)
        return await anyio.to_thread.run_sync(nested_deeper_than, body, limiter=self._depth_threads)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's receive: `body` whole, then the connection's own messages (its disconnect);
    body chunks still coming (an anonymous write's, never read) are skipped, not handed on."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return replay
