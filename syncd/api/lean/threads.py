"""The lean answers' threads: a call handed to one of a few threads and its result handed
back to the event loop, with as little Python in between as the hop allows.

`loop.run_in_executor` wraps each call in a concurrent Future (a Condition, its lock and
notify), chains it to an asyncio Future through callbacks that copy its state, and checks
the pool's size at every submit: under bench_api's 50 clients the hop was a fifth of the
server's time holding the GIL (py-spy --gil, the package list read through psycopg). Here
a call goes through a SimpleQueue (C) and comes back through one call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]] | None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away: nobody waits for the answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _serve(work: queue.SimpleQueue[_Work]) -> None:
    while True:
        item = work.get()
        if item is None:  # shutdown: one per thread
            return
        loop, future, call = item
        try:
            result, error = call(), None
        except BaseException as exc:  # handed to the awaiting task, as run_in_executor does
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            loop.call_soon_threadsafe(_settle, future, result, error)
        del item, future, call, result, error  # not kept alive while waiting


class ReadThreads:
    """`count` daemon threads started on first use; `shutdown` lets them end once the
    calls queued before it are done (none is waited for)."""

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self.name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for number in range(self.count):
                thread = threading.Thread(
                    target=_serve, args=(self._work,), name=f"{self.name}_{number}", daemon=True
                )
                thread.start()
            self._started = True

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """`call()` in one of the threads, in a copy of the caller's context (as anyio's
        threads and run_in_executor's callers do); await the returned future for its result
        or its exception."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()
        self._work.put((loop, future, lambda: context.run(call)))
        return future

    def shutdown(self) -> None:
        with self._lock:
            if self._started:  # an app served again (a test's client) starts new ones
                for _ in range(self.count):
                    self._work.put(None)
                self._started = False
