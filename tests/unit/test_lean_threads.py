"""The lean answers' threads (syncd/api/lean/threads.py) hand a call's result or its
exception back to the awaiting task, run it in a copy of the caller's context, leave a
cancelled wait alone, and start again after a shutdown (an app served twice)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from syncd.api.lean.threads import ReadThreads

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_results_exceptions_and_context_come_back() -> None:
    threads = ReadThreads(2, "test-lean")

    async def main() -> None:
        who.set("caller")
        names = await asyncio.gather(
            *(threads.run(lambda: (who.get(), threading.current_thread().name)) for _ in range(8))
        )
        assert {name for name, _ in names} == {"caller"}
        assert {thread for _, thread in names} <= {"test-lean_0", "test-lean_1"}
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 / 0)

    asyncio.run(main())
    threads.shutdown()


def test_a_cancelled_wait_and_a_restart_after_shutdown() -> None:
    threads = ReadThreads(1, "test-lean")
    release = threading.Event()

    async def main() -> None:
        waiting = threads.run(release.wait)
        waiting.cancel()
        release.set()
        assert await threads.run(lambda: 2) == 2  # the thread went on past the cancelled call

    asyncio.run(main())
    threads.shutdown()

    async def again() -> int:
        return await threads.run(lambda: 3)

    assert asyncio.run(again()) == 3
    threads.shutdown()
