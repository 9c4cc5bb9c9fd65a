"""The API's response cache (syncd/api/cache.py) and the data-changed hook
(syncd/cache_events.py), without a server."""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.types import Message, Receive, Scope, Send

from syncd import cache_events
from syncd.api.cache import Entry, Key, ResponseCache, ResponseCacheMiddleware


def _key(n: int) -> Key:
    return ("GET", "http", b"testserver", f"/api/marketplace-software-packages/{n}/", b"")


def _entry(body: bytes = b"[]", ttl: float = 60.0) -> Entry:
    return Entry(time.monotonic() + ttl, 200, [(b"x-result-count", b"0")], body)


def test_least_recently_used_go_first() -> None:
    cache = ResponseCache(60.0, max_entries=3)
    for n in range(3):
        cache.put(_key(n), _entry(), cache.generation)
    assert cache.get(_key(0)) is not None  # 0 is now the most recently used
    cache.put(_key(3), _entry(), cache.generation)
    assert len(cache) == 3
    assert cache.get(_key(1)) is None
    assert all(cache.get(_key(n)) is not None for n in (0, 2, 3))


def test_bounded_in_bytes_and_expiry() -> None:
    cache = ResponseCache(60.0, max_entries=100, max_bytes=10)
    cache.put(_key(0), _entry(b"123456"), cache.generation)
    cache.put(_key(1), _entry(b"123456"), cache.generation)
    assert cache.get(_key(0)) is None and cache.get(_key(1)) is not None
    cache.put(_key(2), _entry(ttl=-1.0), cache.generation)
    assert cache.get(_key(2)) is None


def test_an_answer_computed_across_a_clear_is_not_kept() -> None:
    cache = ResponseCache(60.0)
    generation = cache.generation
    cache.clear()  # a write committed while the answer was being computed
    cache.put(_key(0), _entry(), generation)
    assert cache.get(_key(0)) is None
    cache.put(_key(0), _entry(), cache.generation)
    assert cache.get(_key(0)) is not None


def test_large_answers_are_kept_compressed() -> None:
    """A portal's package pages average ~180 KB: kept as they are, 64 MB held ~330 of them."""
    body = b'[{"name": "gromacs", "versions": ["2024.1", "2023.3"]}, ' * 2_000 + b"{}]"
    cache = ResponseCache(60.0, max_bytes=len(body))  # room for one uncompressed
    for n in range(4):
        cache.put(_key(n), _entry(body), cache.generation)
    assert len(cache) == 4  # all four fit, compressed
    entry = cache.get(_key(0))
    assert entry is not None and entry.compressed and len(entry.body) < len(body) / 4
    assert entry.content() == body
    small = _entry(b"[]")
    cache.put(_key(9), small, cache.generation)
    assert cache.get(_key(9)) == small  # a small answer is kept as it is


def test_suspended_it_keeps_and_serves_nothing() -> None:
    """While nothing vouches for the entries (the watcher of other processes is down)."""
    cache = ResponseCache(60.0)
    cache.put(_key(0), _entry(), cache.generation)
    generation = cache.generation
    cache.suspend()
    assert cache.get(_key(0)) is None
    cache.put(_key(1), _entry(), cache.generation)
    assert len(cache) == 0
    cache.resume()
    cache.put(_key(2), _entry(), generation)  # computed before the outage: not kept
    assert cache.get(_key(2)) is None
    cache.put(_key(2), _entry(), cache.generation)
    assert cache.get(_key(2)) is not None


def test_data_changed_calls_subscribers_until_they_unsubscribe() -> None:
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("a subscriber's bug does not stop the others")

    off_broken = cache_events.on_data_changed(broken)
    off = cache_events.on_data_changed(lambda: calls.append(threading.current_thread().name))
    try:
        cache_events.data_changed()
        thread = threading.Thread(target=cache_events.data_changed, name="sync-thread")
        thread.start()
        thread.join()
        assert calls == ["MainThread", "sync-thread"]
    finally:
        off()
        off_broken()
    cache_events.data_changed()
    assert len(calls) == 2


# --- misses are filled once ----------------------------------------------------------------


class SlowApp:
    """An ASGI app that answers `statuses` in turn (the last one from then on), each after
    `release` is set; counts its calls."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        await self.release.wait()
        body = f"answer {self.calls}".encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def _scope() -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/api/marketplace-software-packages/",
        "query_string": b"page_size=10",
        "headers": [(b"host", b"testserver")],
    }


async def _get(middleware: ResponseCacheMiddleware) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(_scope(), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _settle() -> None:
    """Let every started request reach its await point."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_concurrent_misses_of_one_key_run_the_app_once() -> None:
    async def scenario() -> None:
        app = SlowApp([200])
        middleware = ResponseCacheMiddleware(app, ResponseCache(60.0))
        requests = [asyncio.create_task(_get(middleware)) for _ in range(20)]
        await _settle()
        app.release.set()
        answers = await asyncio.gather(*requests)
        assert app.calls == 1
        assert answers == [(200, b"answer 1")] * 20

    asyncio.run(scenario())


def test_a_request_after_a_clear_does_not_join_an_older_fill() -> None:
    async def scenario() -> None:
        app = SlowApp([200])
        cache = ResponseCache(60.0)
        middleware = ResponseCacheMiddleware(app, cache)
        before = asyncio.create_task(_get(middleware))
        await _settle()
        cache.clear()  # a write committed while the first answer was being computed
        after = asyncio.create_task(_get(middleware))
        await _settle()
        app.release.set()
        assert await before == (200, b"answer 2")  # bodies name the calls made so far
        assert await after == (200, b"answer 2")
        assert app.calls == 2

    asyncio.run(scenario())


def test_waiters_compute_their_own_answer_when_the_fill_is_not_a_200() -> None:
    async def scenario() -> None:
        app = SlowApp([503, 200])
        middleware = ResponseCacheMiddleware(app, ResponseCache(60.0))
        requests = [asyncio.create_task(_get(middleware)) for _ in range(3)]
        await _settle()
        app.release.set()
        answers = await asyncio.gather(*requests)
        assert answers[0][0] == 503
        assert [status for status, _ in answers[1:]] == [200, 200]
        # Each waiter ran the app itself: a failing fill is not waited on in a chain.
        assert app.calls == 3

    asyncio.run(scenario())


# --- a slow client, a slow fill ------------------------------------------------------------


def test_the_fill_shares_its_answer_before_its_own_client_takes_it() -> None:
    """The client of the request that fills the entry does not read (its send never
    returns): the others get the answer anyway, at once."""

    async def scenario() -> None:
        app = SlowApp([200])
        app.release.set()
        middleware = ResponseCacheMiddleware(app, ResponseCache(60.0), wait_seconds=60.0)
        never_read = asyncio.Event()

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def stuck_send(message: Message) -> None:
            await never_read.wait()

        filling = asyncio.create_task(middleware(_scope(), receive, stuck_send))
        await _settle()
        assert not filling.done()
        # Far below wait_seconds: the others must not wait for the slow client at all.
        answers = await asyncio.wait_for(
            asyncio.gather(*(_get(middleware) for _ in range(5))), timeout=5
        )
        assert answers == [(200, b"answer 1")] * 5
        assert app.calls == 1
        filling.cancel()

    asyncio.run(scenario())


class FirstCallHangs:
    """An ASGI app whose first call computes until `release` is set; the others at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        call = self.calls
        if call == 1:
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"call {call}".encode()})


def test_a_waiter_computes_its_own_answer_after_wait_seconds() -> None:
    async def scenario() -> None:
        app = FirstCallHangs()
        middleware = ResponseCacheMiddleware(app, ResponseCache(60.0), wait_seconds=0.2)
        slow_fill = asyncio.create_task(_get(middleware))
        await _settle()
        started = time.monotonic()
        waiter = await asyncio.wait_for(_get(middleware), timeout=5)
        waited = time.monotonic() - started
        assert waiter == (200, b"call 2")  # its own answer, not the fill's
        assert waited >= 0.2
        assert not slow_fill.done()
        app.release.set()
        assert await slow_fill == (200, b"call 1")

    asyncio.run(scenario())


def test_a_hit_on_a_compressed_entry_sends_the_answer_as_it_was() -> None:
    big = b'{"name": "openfoam"}, ' * 5_000

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": big, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    async def scenario() -> None:
        cache = ResponseCache(60.0)
        middleware = ResponseCacheMiddleware(app, cache)
        assert await _get(middleware) == (200, big + b"end")  # the fill
        assert cache._bytes < len(big) / 4
        assert await _get(middleware) == (200, big + b"end")  # the hit

    asyncio.run(scenario())
