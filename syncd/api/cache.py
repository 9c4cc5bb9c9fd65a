"""A micro-cache of anonymous reads: a plain ASGI middleware in front of the app.

Reads vastly outnumber writes and catalogs change about daily, so the answer to an anonymous
GET/HEAD of a catalog, package, version or target list or object, or of the sync history
(runs, changes, feeds), is kept for SYNCD_API_CACHE_SECONDS and replayed as it was sent
(status, headers, body) without running FastAPI's routing, dependencies or a query. Only
requests without an Authorization header and only 200 answers are kept; the key is method,
scheme, host (links in the body are absolute), path and query string. The entries are
bounded (least recently used go first).

Every write through this process that succeeded (POST, PUT, PATCH, DELETE answered 2xx,
the import/update enqueues included) clears it, and so does a sync finishing in this process
(`syncd run`), through `syncd.cache_events`. A refused write (401, 405, 400...) does not. A
commit by another process (a separate worker, another replica) clears it when announced
(cache_invalidation.py); while nothing can announce it the cache is suspended: nothing is
kept or served. The TTL is then only a backstop and a bound on memory turnover.

Misses are filled once: while one request computes the answer for a key, the requests for
that key that arrive meanwhile wait for it instead of each running the same queries (when an
entry expires under 50 clients, up to 50 identical queries would otherwise compete for the
same cores). A waiter joins only a fill that began after the last clear, so it never gets an
answer older than a write it could have seen; when the fill yields no entry (not a 200, an
app that failed) each waiter computes its own answer.

The fill completes its entry, and hands it to the waiters, before it sends the answer to its
own client: a client that reads slowly, or never, delays only itself. A waiter also gives up
after SYNCD_API_CACHE_WAIT_SECONDS and computes its own answer, so a fill that is slow to
compute (a busy database) delays the others by that much at most.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHED_PREFIXES = (
    "/api/marketplace-software-catalogs/",
    "/api/marketplace-software-packages/",
    "/api/marketplace-software-versions/",
    "/api/marketplace-software-targets/",
    "/api/marketplace-provider-offerings/",
    "/api/marketplace-public-offerings/",
    # The sync history: a sync's commit (and a failed attempt's record) clears the cache.
    "/api/marketplace-software-catalog-runs/",
    "/api/marketplace-software-changes/",
    "/feeds/",
)
# discover answers staff only (never anonymous) and has a cache of its own.
NOT_CACHED = ("/api/marketplace-software-catalogs/discover/",)
MAX_ENTRIES = 10_000
MAX_BYTES = 64 * 1024 * 1024  # all bodies together
MAX_ENTRY_BYTES = 1024 * 1024  # a larger answer is not kept
# Larger answers are kept compressed (zlib level 1, 8x on the portal's package pages of ~180
# KB, 1-2 ms to compress once, under 1 ms to decompress per hit): 64 MB then holds the
# popular part of a portal's URLs instead of ~330 answers (docs/performance.md).
COMPRESS_ABOVE_BYTES = 16 * 1024
READS = frozenset({"GET", "HEAD"})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Key = tuple[str, str, bytes, str, bytes]


@dataclass(frozen=True)
class Entry:
    expires: float
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    compressed: bool = False  # body is zlib's; sent decompressed

    def content(self) -> bytes:
        return zlib.decompress(self.body) if self.compressed else self.body


class ResponseCache:
    """Thread-safe LRU of whole responses with a time to live. `clear()` may be called from
    any thread (a sync in a worker thread); a response computed across a clear is not kept."""

    def __init__(
        self, ttl: float, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every clear()
        # False while nothing vouches for the entries (cache_invalidation.py: the watcher of
        # other processes' writes is down): nothing is kept or served.
        self.live = True

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            if not self.live:
                return None
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: Key, entry: Entry, generation: int) -> None:
        if len(entry.body) > MAX_ENTRY_BYTES:
            return
        if len(entry.body) > COMPRESS_ABOVE_BYTES and not entry.compressed:
            body = zlib.compress(entry.body, 1)
            entry = Entry(entry.expires, entry.status, entry.headers, body, compressed=True)
        with self._lock:
            if generation != self.generation or not self.live:
                return  # data changed while this answer was computed: it may be stale
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += len(entry.body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._clear(live=None)

    def suspend(self) -> None:
        """Clear and stop caching: changes by other processes can no longer be seen."""
        self._clear(live=False)

    def resume(self) -> None:
        """Cache again, from empty: changes made while suspended were never announced."""
        self._clear(live=True)

    def _clear(self, live: bool | None) -> None:
        # One step: no answer computed before it can be kept after it.
        with self._lock:
            if live is not None:
                self.live = live
            self.generation += 1
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: Key) -> None:
        self._bytes -= len(self._entries.pop(key).body)


def _cacheable(path: str) -> bool:
    return path.startswith(CACHED_PREFIXES) and not path.startswith(NOT_CACHED)


def _key(scope: Scope, method: str) -> Key | None:
    """The cache key of an anonymous read, or None (a token, or a path not cached)."""
    host = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return None
        if name == b"host":
            host = value
    return (method, scope.get("scheme", "http"), host, scope["path"], scope["query_string"])


class ResponseCacheMiddleware:
    def __init__(self, app: ASGIApp, cache: ResponseCache, wait_seconds: float = 5.0) -> None:
        self.app = app
        self.cache = cache
        self.wait_seconds = wait_seconds
        # Fills in progress, by key and the cache generation they began in. Touched only on
        # the event loop's thread, so no lock.
        self._filling: dict[tuple[Key, int], asyncio.Future[Entry | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in WRITES:
            await self._write(scope, receive, send)
            return
        key = _key(scope, method) if method in READS and _cacheable(scope["path"]) else None
        if key is None or not self.cache.live:
            # Suspended: no fill is shared either, a waiter could miss a change unannounced.
            await self.app(scope, receive, send)
            return
        entry = self.cache.get(key)
        if entry is None:
            filling = self._filling.get((key, self.cache.generation))
            if filling is not None:
                entry = await self._wait_for(filling)
        if entry is not None:
            await self._send_entry(entry, send)
            return
        await self._fill(key, scope, receive, send)

    async def _wait_for(self, filling: asyncio.Future[Entry | None]) -> Entry | None:
        """The entry a fill in progress yields; None when it yields none or takes too long
        (the caller then computes its own answer)."""
        # shield: a waiter that goes away or times out must not cancel what others await.
        try:
            return await asyncio.wait_for(asyncio.shield(filling), self.wait_seconds)
        except TimeoutError:
            return None

    async def _write(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a write; clear the cache once it answered 2xx (after the handler committed).
        A refused write (401, 403, 404, 405, 400...) changed nothing: an anonymous caller
        must not be able to empty the cache and send every reader to the database."""
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if 200 <= status < 300:
                self.cache.clear()

    async def _fill(self, key: Key, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self.cache.generation
        flight = (key, generation)
        done: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        owner = self._filling.setdefault(flight, done) is done

        def publish(entry: Entry | None) -> None:
            """Hand the outcome to the waiters (once), before this request's own send."""
            if owner and not done.done():
                del self._filling[flight]
                done.set_result(entry)

        try:
            await self._compute(key, generation, scope, receive, send, publish)
        finally:
            publish(None)  # the app failed or was cancelled before it answered

    async def _compute(
        self,
        key: Key,
        generation: int,
        scope: Scope,
        receive: Receive,
        send: Send,
        publish: Callable[[Entry | None], None],
    ) -> None:
        """Run the app for this request. A 200 is held back until its body is complete, kept
        and published, and only then sent; any other answer is published as no entry and
        passed through. A body too large to keep is sent as it comes."""
        held: list[Message] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal size
            if not held and message["type"] == "http.response.start":
                if message["status"] != 200:
                    publish(None)
                    await send(message)
                    return
            elif not held:
                await send(message)  # passing through (not a 200, or too large to keep)
                return
            held.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.response.body":
                return
            if not message.get("more_body", False):
                entry = self._entry(held, key, generation)
                publish(entry)
                await self._send_entry(entry, send)
                held.clear()
            elif size > MAX_ENTRY_BYTES:
                publish(None)
                for kept in held:
                    await send(kept)
                held.clear()

        await self.app(scope, receive, capture)

    @staticmethod
    async def _send_entry(entry: Entry, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": entry.status, "headers": entry.headers}
        )
        await send({"type": "http.response.body", "body": entry.content()})

    def _entry(self, held: list[Message], key: Key, generation: int) -> Entry:
        start = held[0]
        body = b"".join(m.get("body", b"") for m in held[1:])
        entry = Entry(time.monotonic() + self.cache.ttl, 200, list(start.get("headers", ())), body)
        self.cache.put(key, entry, generation)
        return entry
