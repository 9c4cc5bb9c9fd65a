"""Upstream JSON streamed under limits, so that no file costs far more than its size.

Every adapter reads its downloaded bodies through these functions (EESSI's files, Spack's
repology.json). They run ijson's event-level parser (`basic_parse`, on the yajl2_c backend)
and build values here, with:

- a depth limit, MAX_DEPTH (the API's own): deeper nesting is refused while it is parsed.
  ijson's `parse`, `items` and `kvitems` build a path string for every level
  ("packages.x.item.item...") and hold one per open level, so an 80 KB file nesting 40,000
  arrays cost gigabytes before any check could run. Events carry no path.
- linear time for long tokens: yajl lexes a token that does not end within one read again
  from its start at every read, so a 32 MiB string fed 64 KiB at a time is lexed 512 times
  over. The read size grows with the bytes sent since the parser last produced an event,
  which makes a long token cost a geometric series (up to _MAX_READ per read).
- the fetch deadline as a parse budget (`FetchResult.parse_seconds`): counted while the
  parser and the value builder run, not while the caller writes records, and summed over
  every pass over one body.
- decompressed bytes counted against SYNCD_FETCH_MAX_BYTES (`FetchResult.open()`).

Every refusal is a permanent UpstreamError: the same bytes would fail the same way again.
Numbers are Decimal unless `use_float` (a version given as 2.10 keeps its text).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import closing
from itertools import chain
from typing import Any

import ijson

from adapters.base import schema_error, upstream_json
from adapters.fetch import FetchResult
from syncd.errors import UpstreamError

MAX_DEPTH = 32
_FIRST_READ = 64 * 1024
_MAX_READ = 16 * 1024 * 1024
_SCALARS = frozenset(("string", "number", "boolean", "null"))

Events = Iterator[tuple[str, Any]]


class _ParseClock:
    """The parse time of one body, kept on its FetchResult across passes; it runs only while
    the parser or the value builder does, not while the caller handles a value."""

    def __init__(self, result: FetchResult, url: str, what: str) -> None:
        self.result, self.url, self.what = result, url, what
        self.since: float | None = time.monotonic()

    def run(self) -> None:
        self.since = time.monotonic()

    def stop(self) -> None:
        if self.since is not None:
            self.result.parse_spent += time.monotonic() - self.since
            self.since = None

    def check(self) -> None:
        budget = self.result.parse_seconds
        if budget is None or self.since is None:
            return
        if self.result.parse_spent + time.monotonic() - self.since > budget:
            raise UpstreamError(
                f"{self.url}: parsing {self.what} took longer than {budget:g} s, the fetch "
                "deadline (10 x SYNCD_FETCH_READ_TIMEOUT); the file is far larger or more "
                "complex than an upstream catalog. Not retried: the same file would take as "
                "long again.",
                transient=False,
                url=self.url,
            )


class _TooDeep(Exception):
    """Raised by the builders; worded with the place it was found in (_too_deep)."""


def _too_deep(url: str, what: str, *where: str) -> UpstreamError:
    place = " -> ".join(repr(w[:80]) for w in where)
    return UpstreamError(
        f"{url}: {what} nests arrays or objects more than {MAX_DEPTH} levels deep (in "
        f"{place}); refused while parsing: no upstream catalog nests that deep, the file is "
        "corrupt or hostile. Not retried: the same file fails the same way.",
        transient=False,
        url=url,
    )


def _send(parser: Any, chunk: bytes | None, url: str, what: str) -> None:
    """Feed the parser (None: end of input). A number the backend cannot convert (an
    integer of more than 4,300 digits) surfaces as ValueError or SystemError."""
    try:
        if chunk is None:
            parser.close()
        else:
            parser.send(chunk)
    except ijson.JSONError:
        raise
    except (ValueError, SystemError) as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise UpstreamError(
            f"{url}: {what} holds a value syncd cannot read ({str(cause)[:120]}); the file is "
            "corrupt upstream.",
            transient=False,
            url=url,
        ) from None


def _batches(
    result: FetchResult,
    url: str,
    what: str,
    clock: _ParseClock,
    use_float: bool,
    member: str | None = None,
) -> Generator[list[Any], None, None]:
    """Lists of the parser's events; with `member`, of (key, value) of that top-level
    object's entries, built by the backend (see checked_members)."""
    found = ijson.sendable_list()
    if member is None:
        parser = ijson.basic_parse_coro(found, use_float=use_float)
    else:
        parser = ijson.kvitems_coro(found, member, use_float=use_float)
    with result.open() as stream, upstream_json(url, what):
        idle = 0  # bytes sent since the parser last produced an event
        while True:
            clock.check()
            chunk = stream.read(min(_MAX_READ, max(_FIRST_READ, idle)))
            if not chunk:
                break
            _send(parser, chunk, url, what)
            if found:
                idle = 0
                yield found
                del found[:]
            else:
                idle += len(chunk)
        _send(parser, None, url, what)
        if found:
            yield found


def _value(events: Events, event: str, value: Any, outer: int) -> Any:
    """The value that starts with (event, value), inside `outer` open containers."""
    if event == "start_map":
        root: Any = {}
    elif event == "start_array":
        root = []
    else:
        return value
    if outer >= MAX_DEPTH:
        raise _TooDeep
    is_list = event == "start_array"
    top, key = root, None
    stack: list[Any] = []
    limit = MAX_DEPTH - outer - 1  # containers that may still open inside this one
    for event, value in events:
        if event in _SCALARS:
            if is_list:
                top.append(value)
            else:
                top[key] = value
        elif event == "map_key":
            key = value
        elif event == "end_map" or event == "end_array":
            if not stack:
                return root
            top = stack.pop()
            is_list = type(top) is list
        else:
            if len(stack) >= limit:
                raise _TooDeep
            child: Any = {} if event == "start_map" else []
            if is_list:
                top.append(child)
            else:
                top[key] = child
            stack.append(top)
            top, is_list = child, event == "start_array"
    return root  # unreachable: the parser refuses an unfinished document first


def _skip(events: Events, event: str, outer: int) -> None:
    """Pass over the value that starts with `event`, checking only its depth."""
    if event != "start_map" and event != "start_array":
        return
    depth = outer + 1
    if depth > MAX_DEPTH:
        raise _TooDeep
    for event, _value in events:
        if event == "start_map" or event == "start_array":
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep
        elif event == "end_map" or event == "end_array":
            depth -= 1
            if depth == outer:
                return


def _top_members(
    result: FetchResult, url: str, what: str, clock: _ParseClock, use_float: bool
) -> Generator[tuple[Events, str, str, Any], None, None]:
    """(events, key, first event, its value) of each member of the top-level object; the
    caller consumes the member's value from `events` before asking for the next."""
    with closing(_batches(result, url, what, clock, use_float)) as batches:
        events = chain.from_iterable(batches)
        first = next(events, None)
        if first is None or first[0] != "start_map":
            raise schema_error(url, what, "the document is not a JSON object")
        for event, key in events:
            if event != "map_key":
                break  # end_map
            event, value = next(events)
            yield events, key, event, value
        for _ in events:  # the parser refuses trailing garbage at the end
            pass


def _entries(
    events: Events, url: str, what: str, member: str, values: bool
) -> Iterator[tuple[str, Any]]:
    """(name, value or None) of each entry of an object member, its start_map consumed."""
    for event, name in events:
        if event != "map_key":
            return  # end_map
        event, value = next(events)
        try:
            if values:
                yield name, _value(events, event, value, 2)
            else:
                _skip(events, event, 2)
                yield name, None
        except _TooDeep:
            raise _too_deep(url, what, member, name) from None


def read_top_level(
    result: FetchResult, url: str, what: str, *, skip: str, use_float: bool = True
) -> dict[str, Any]:
    """The top-level object's members except `skip` (a large map that is streamed later).

    The whole document is scanned, so syntax errors (a truncated download), too deep
    nesting and a body over the size cap surface here, before any record is produced.
    `skip` maps to True when it is present and an object.
    """
    found: dict[str, Any] = {}
    clock = _ParseClock(result, url, what)
    members = _top_members(result, url, what, clock, use_float)
    try:
        for events, key, event, value in members:
            if key == skip and event == "start_map":
                found[skip] = True
                for _entry in _entries(events, url, what, key, values=False):
                    pass
                continue
            try:
                if key == skip:
                    found[skip] = False
                    _skip(events, event, 1)
                else:
                    found[key] = _value(events, event, value, 1)
            except _TooDeep:
                raise _too_deep(url, what, key) from None
    finally:
        members.close()
        clock.stop()
    return found


def object_members(
    result: FetchResult, url: str, what: str, member: str, *, values: bool = True
) -> Iterator[tuple[str, Any]]:
    """(key, value) of each entry of the top-level object's member `member` (an object),
    built one at a time; the value is None when `values` is False (names only)."""
    clock = _ParseClock(result, url, what)
    members = _top_members(result, url, what, clock, False)
    try:
        for events, key, event, _first in members:
            if key != member or event != "start_map":
                try:
                    _skip(events, event, 1)
                except _TooDeep:
                    raise _too_deep(url, what, key) from None
                continue
            for entry in _entries(events, url, what, member, values):
                clock.stop()
                yield entry
                clock.run()
    finally:
        members.close()
        clock.stop()


def checked_members(
    result: FetchResult, url: str, what: str, member: str
) -> Iterator[tuple[str, Any]]:
    """As object_members (values built, numbers Decimal), for a body an earlier pass over
    the same bytes already read whole (read_top_level, or object_members with `values`
    False): the values are built by ijson's C backend instead of in Python, about twice as
    fast. Only then: the backend names every level it enters, which costs quadratic memory
    in the nesting depth that the earlier pass refused past MAX_DEPTH. The parse budget
    and the size cap count here as in every pass."""
    clock = _ParseClock(result, url, what)
    try:
        with closing(_batches(result, url, what, clock, False, member)) as batches:
            for batch in batches:
                clock.stop()
                yield from batch
                clock.run()
    finally:
        clock.stop()
