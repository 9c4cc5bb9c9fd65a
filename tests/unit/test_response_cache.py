"""The API's response cache (syncd/api/cache.py) and the data-changed hook
(syncd/cache_events.py), without a server."""

from __future__ import annotations

import threading
import time

from syncd import cache_events
from syncd.api.cache import Entry, Key, ResponseCache


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
