"""A process-wide "catalog data changed" signal: the sync engine calls `data_changed()` after
it committed; whoever keeps derived data in memory (the API's response cache) subscribes with
`on_data_changed(callback)`. No I/O, no dependencies; callbacks must be quick and must not
raise (an exception is logged and the other callbacks still run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_data_changed(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after every data change in this process; returns an unsubscribe
    function."""
    with _lock:
        _callbacks.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)

    return unsubscribe


def data_changed() -> None:
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logging.getLogger(__name__).exception("data_changed callback failed")
