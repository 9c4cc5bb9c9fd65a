"""A fake EESSI/Spack upstream: a threaded HTTP server on 127.0.0.1 with fault switches.

    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream() as up:                     # binds 127.0.0.1:0, serves at once
        settings = up.settings()                   # Settings pointing at it (private allowed)
        up.spack_url, up.eessi_base, up.riscv_url  # where the data is
        up.fault(up.SPACK, "500", times=2)         # the next 2 requests of that path fail
        up.fault(up.SPACK, "429", retry_after=1)   # every request, until up.clear_faults()
        up.set_file(up.SPACK, b"...")              # new content -> new ETag
        up.requests_for(up.SPACK)                  # [RecordedRequest(status, body_bytes, ...)]

Paths served (`dataset`):
- "sample" (default when ../shared/upstream exists): the real EESSI docs test samples
  (/eessi/eessi_api_metadata_software.json, /eessi/eessi_api_metadata-riscv_software.json;
  no extension files: they answer 404) and the real first-5-packages Spack download
  (/spack/repology.json).
- "full": the full-scale EESSI file with its six extension files and the full Spack file
  (gzip-encoded on the wire, as stored).
- "synthetic" (default without ../shared/upstream): tests/support/upstream_data.py's small
  documents, with a python extension file.

Every response carries an ETag (hash of the content) and a Last-Modified; If-None-Match and
If-Modified-Since are answered 304 with no body. Gzip content is sent with
Content-Encoding: gzip to clients that accept it. Every request is recorded.

`FakeUpstream(..., hashes_json=True)` also publishes /eessi/hashes.json as EESSI does
(EESSI/api_data scripts/calculate_hashes.py): `{"<file name>": {"hash": sha256 of the
decoded file, "timestamp": its Last-Modified as ISO 8601}}` for every other file under
/eessi/, rewritten whenever one of them changes. Off by default, so that the requests other
tests count stay the data files'.

Faults (`fault(path, kind, times=None, **options)`), see FAULTS:
  "500"             HTTP 500
  "429"             HTTP 429 with Retry-After: `retry_after` (seconds, default 1)
  "slow"            the body dripped `drip_bytes` (default 64) every `delay` s (default 0.2)
  "stall"           nothing sent for `delay` s (default 5) before the response
  "slow_headers"    the status line at once, then the headers one byte every `delay` s
                    (default 1): a padding header of `header_bytes` bytes (default 600),
                    then the real headers and the body at once
  "truncated_json"  a complete HTTP response whose JSON body is cut in half
  "truncated_body"  Content-Length of the whole body, half of it sent, connection closed
  "invalid_json"    an HTML page instead of JSON
  "wrong_schema"    valid JSON of the wrong shape
  "oversized"       `size` bytes (default 1 GiB) of JSON-ish filler, generated as sent
                    (stops when the client hangs up); no Content-Length unless
                    `declare_length=True`
  "redirect"        302 to the same path on `redirect_host` (default "localhost", which is
                    a different host from 127.0.0.1 for the redirect check)
  "changed_etag"    identical content, but a new ETag on every response (no 304 ever)
  "deep_nesting"    the JSON with a first top-level member `key` (default "nested") that
                    nests `depth` (default 40,000) arrays: 2 bytes per level
  "gzip_body"       the content as a gzip body *without* Content-Encoding (a .json.gz
                    served as is), followed by a gzip member of `padding` (default 0) spaces
  "missing"         404, as if the file were not there
and for /eessi/hashes.json (FakeUpstream.HASHES) only:
  "malformed"       every entry's hash cut to 40 hex digits (valid JSON, not a sha256)
  "wrong_hash"      every entry's hash is the sha256 of other bytes
  "stale"           the hashes.json of `generations` (default 1) changes of the files ago
                    (the oldest kept when there were fewer): left behind by its data

As a pytest fixture: `from tests.support.fake_upstream import fake_upstream` in a test module
(or a conftest) and take `fake_upstream` as an argument; it yields a started FakeUpstream.

For unit tests without sockets, `static_transport(files)` is an httpx.MockTransport that
serves the same way (ETag, 304, 404) for `Fetcher(settings, transport=...)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.config import Settings
from tests.support import upstream_data

UPSTREAM_DIR = Path(__file__).resolve().parents[3] / "shared" / "upstream"
FAULTS = (
    "500",
    "429",
    "slow",
    "stall",
    "slow_headers",
    "truncated_json",
    "truncated_body",
    "invalid_json",
    "wrong_schema",
    "oversized",
    "redirect",
    "changed_etag",
    "deep_nesting",
    "gzip_body",
    "missing",
    "malformed",
    "wrong_hash",
    "stale",
)
HASHES_FAULTS = ("malformed", "wrong_hash", "stale")
EXTENSION_TYPES = ("python", "r", "perl", "octave", "ruby", "component")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0  # body bytes the server wrote (0 for a 304)
    fault: str | None = None


@dataclass
class _File:
    content: bytes  # as stored: gzip bytes when gzipped is True
    gzipped: bool
    etag: str
    last_modified: float


@dataclass
class _Fault:
    kind: str
    times: int | None
    options: dict[str, Any] = field(default_factory=dict)


def _read(path: Path) -> bytes:
    return path.read_bytes()


def dataset_files(dataset: str, data_dir: Path = UPSTREAM_DIR) -> dict[str, bytes]:
    """The files of a dataset by URL path; gzip bytes stay gzip (sent Content-Encoding)."""
    files: dict[str, bytes] = {}
    if dataset == "synthetic":
        software = upstream_data.eessi_software_document()
        files["/eessi/eessi_api_metadata_software.json"] = upstream_data.dumps(software)
        files["/eessi/eessi_api_metadata_ext-python.json"] = upstream_data.dumps(
            upstream_data.eessi_extension_document(software, "python")
        )
        files["/spack/repology.json"] = upstream_data.dumps(upstream_data.spack_document())
        return files
    eessi, spack = data_dir / "eessi", data_dir / "spack"
    if dataset == "sample":
        files["/eessi/eessi_api_metadata_software.json"] = _read(
            eessi / "eessi_api_metadata_software.docs-test-sample.json"
        )
        files["/eessi/eessi_api_metadata-riscv_software.json"] = _read(
            eessi / "eessi_api_metadata-riscv_software.docs-test-sample.json"
        )
        files["/spack/repology.json"] = _read(spack / "repology.upstream-2025-11-26.first5.json")
        return files
    if dataset == "full":
        files["/eessi/eessi_api_metadata_software.json"] = _read(
            eessi / "eessi_api_metadata_software.fullscale.derived.json"
        )
        for t in EXTENSION_TYPES:
            files[f"/eessi/eessi_api_metadata_ext-{t}.json"] = _read(
                eessi / f"eessi_api_metadata_ext-{t}.fullscale.derived.json.gz"
            )
        files["/eessi/eessi_api_metadata-riscv_software.json"] = _read(
            eessi / "eessi_api_metadata-riscv_software.docs-test-sample.json"
        )
        files["/spack/repology.json"] = _read(spack / "repology.full.json.gz")
        return files
    raise ValueError(f"unknown dataset {dataset!r}: use sample, full or synthetic")


class FakeUpstream:
    """The fake upstream server; see the module docstring."""

    SPACK = "/spack/repology.json"
    EESSI_SOFTWARE = "/eessi/eessi_api_metadata_software.json"
    RISCV = "/eessi/eessi_api_metadata-riscv_software.json"
    HASHES = "/eessi/hashes.json"

    def __init__(
        self,
        dataset: str | None = None,
        *,
        files: Mapping[str, bytes] | None = None,
        data_dir: Path = UPSTREAM_DIR,
        hashes_json: bool = False,
    ) -> None:
        if dataset is None:
            dataset = "sample" if data_dir.is_dir() else "synthetic"
        self.dataset = dataset
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._faults: dict[str, _Fault] = {}
        self._etag_counter = 0
        self.requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.hashes_json = hashes_json
        self._hash_generations: list[dict[str, dict[str, str]]] = []
        for path, content in (
            files if files is not None else dataset_files(dataset, data_dir)
        ).items():
            self.set_file(path, content)

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        handler = type("Handler", (_Handler,), {"upstream": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake upstream first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def spack_url(self) -> str:
        return self.url(self.SPACK)

    @property
    def eessi_base(self) -> str:
        return self.url("/eessi/")

    @property
    def riscv_url(self) -> str:
        return self.url(self.RISCV)

    def settings(self, **overrides: Any) -> Settings:
        """Settings aimed at this server: sources, private hosts allowed, short timeouts."""
        values: dict[str, Any] = {
            "eessi_source": self.eessi_base,
            "spack_source": self.spack_url,
            "allow_private_sources": True,
            "fetch_connect_timeout": 2.0,
            "fetch_read_timeout": 2.0,
            "fetch_retries": 1,
        }
        values.update(overrides)
        return Settings(**values)

    # content and faults ---------------------------------------------------------------------

    def set_file(self, path: str, content: bytes, *, last_modified: float | None = None) -> None:
        """Serve `content` at `path` (gzip bytes are sent gzip-encoded); new ETag if changed."""
        gzipped = content[:2] == b"\x1f\x8b"
        etag = '"' + hashlib.sha256(content).hexdigest()[:20] + '"'
        with self._lock:
            old = self._files.get(path)
            if old is not None and old.etag == etag:
                return
            stamp = last_modified if last_modified is not None else float(int(time.time()))
            if old is not None and last_modified is None:
                stamp = max(stamp, old.last_modified + 1)
            self._files[path] = _File(content, gzipped, etag, stamp)
            self._publish_hashes(path)

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._files.pop(path, None)
            self._publish_hashes(path)

    def _publish_hashes(self, changed: str) -> None:
        """Rewrite hashes.json after a change of `changed` (the lock is held)."""
        if not self.hashes_json or changed == self.HASHES or not changed.startswith("/eessi/"):
            return
        folder = self.HASHES.rsplit("/", 1)[0] + "/"
        document = {
            path.removeprefix(folder): {
                "hash": hashlib.sha256(
                    gzip.decompress(f.content) if f.gzipped else f.content
                ).hexdigest(),
                "timestamp": datetime.fromtimestamp(f.last_modified, UTC).isoformat(),
            }
            for path, f in sorted(self._files.items())
            if path.startswith(folder) and path != self.HASHES
        }
        self._hash_generations.append(document)
        content = json.dumps(document, indent=4).encode()
        etag = '"' + hashlib.sha256(content).hexdigest()[:20] + '"'
        old = self._files.get(self.HASHES)
        stamp = max(float(int(time.time())), old.last_modified + 1 if old else 0.0)
        self._files[self.HASHES] = _File(content, False, etag, stamp)

    def content(self, path: str) -> bytes:
        """The decoded content served at `path`."""
        with self._lock:
            f = self._files[path]
        return gzip.decompress(f.content) if f.gzipped else f.content

    def fault(self, path: str, kind: str, *, times: int | None = None, **options: Any) -> None:
        """Make requests of `path` fail as `kind` (all of them, or the next `times`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults[path] = _Fault(kind, times, dict(options))

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(path, None)

    # recorded requests ----------------------------------------------------------------------

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # used by the handler --------------------------------------------------------------------

    def _take(self, path: str) -> tuple[_File | None, _Fault | None, str]:
        with self._lock:
            f = self._files.get(path)
            fault = self._faults.get(path)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[path]
                fault = dataclasses.replace(fault)
            etag = f.etag if f else ""
            if f is not None and fault is not None and fault.kind == "changed_etag":
                self._etag_counter += 1
                etag = f'"{f.etag.strip(chr(34))}-{self._etag_counter}"'
            if f is not None and fault is not None and fault.kind in HASHES_FAULTS:
                f = self._faulty_hashes(f, fault)
                etag = '"' + hashlib.sha256(f.content).hexdigest()[:20] + '"'
            return f, fault, etag

    def _faulty_hashes(self, f: _File, fault: _Fault) -> _File:
        """hashes.json as the fault serves it (the lock is held)."""
        if fault.kind == "stale":
            back = int(fault.options.get("generations", 1))
            document = self._hash_generations[max(0, len(self._hash_generations) - 1 - back)]
        else:
            document = self._hash_generations[-1]
        altered = {}
        for name, entry in document.items():
            digest = entry["hash"]
            if fault.kind == "malformed":
                digest = digest[:40]
            elif fault.kind == "wrong_hash":
                digest = hashlib.sha256(digest.encode()).hexdigest()
            altered[name] = {**entry, "hash": digest}
        return dataclasses.replace(f, content=json.dumps(altered, indent=4).encode())

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.0"  # one request per connection; a close ends every body

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        up = self.upstream
        path = self.path.split("?", 1)[0]
        record = RecordedRequest(
            self.command, path, {k.lower(): v for k, v in self.headers.items()}
        )
        f, fault, etag = up._take(path)
        record.fault = fault.kind if fault else None
        up._record(record)  # at once, so a test sees it while a long body is still going
        # The client hanging up (size cap, timeout) is what some faults are for.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(record, f, fault, etag)

    # response helpers -----------------------------------------------------------------------

    def _head(self, record: RecordedRequest, status: int, headers: Mapping[str, str]) -> None:
        record.status = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _body(self, record: RecordedRequest, data: bytes) -> None:
        if self.command != "HEAD":
            # Counted before the write: the client may have read the last byte (and the test
            # looked at the record) before this thread runs again after the write.
            record.body_bytes += len(data)
            self.wfile.write(data)

    def _simple(self, record: RecordedRequest, status: int, data: bytes, **extra: str) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        self._head(record, status, headers)
        self._body(record, data)

    def _respond(
        self, record: RecordedRequest, f: _File | None, fault: _Fault | None, etag: str
    ) -> None:
        kind = fault.kind if fault else None
        opts = fault.options if fault else {}
        if kind == "stall" and self.upstream._stopping.wait(float(opts.get("delay", 5.0))):
            return
        if kind == "500":
            return self._simple(record, 500, b'{"detail": "fake upstream error"}')
        if kind == "429":
            retry_after = str(opts.get("retry_after", 1))
            return self._simple(record, 429, b'{"detail": "slow down"}', Retry_After=retry_after)
        if kind == "redirect":
            host = opts.get("redirect_host", "localhost")
            location = f"http://{host}:{self.upstream.port}{record.path}"
            return self._simple(record, 302, b"", Location=location)
        if kind == "oversized":
            return self._oversized(
                record, int(opts.get("size", 1 << 30)), bool(opts.get("declare_length"))
            )
        if f is None or kind == "missing":
            return self._simple(record, 404, b'{"detail": "Not found."}')
        last_modified = formatdate(f.last_modified, usegmt=True)
        validators = {"ETag": etag, "Last-Modified": last_modified}
        if self._not_modified(f, etag):
            return self._head(record, 304, validators)
        if kind == "wrong_schema":
            return self._simple(
                record, 200, b'{"unexpected": [1, 2, 3], "software": []}', **{"ETag": etag}
            )
        if kind == "invalid_json":
            return self._simple(record, 200, b"<html><body>Maintenance</body></html>", ETag=etag)
        if kind == "deep_nesting":
            plain = gzip.decompress(f.content) if f.gzipped else f.content
            depth = int(opts.get("depth", 40_000))
            member = b'{"' + str(opts.get("key", "nested")).encode() + b'":'
            nested = member + b"[" * depth + b"]" * depth + b","
            return self._simple(record, 200, nested + plain.lstrip()[1:], ETag=etag)
        if kind == "gzip_body":
            data = f.content if f.gzipped else gzip.compress(f.content, mtime=0)
            padding = _spaces_gzip(int(opts.get("padding", 0)))
            return self._simple(record, 200, data + padding, ETag=etag)
        data = f.content
        encoded = f.gzipped and "gzip" in self.headers.get("Accept-Encoding", "")
        if f.gzipped and not encoded:
            data = gzip.decompress(data)
        if kind == "truncated_json":
            plain = gzip.decompress(f.content) if f.gzipped else f.content
            data, encoded = plain[: len(plain) // 2], False
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            **validators,
        }
        if encoded:
            headers["Content-Encoding"] = "gzip"
        if kind == "slow_headers":
            return self._slow_headers(record, headers, data, opts)
        self._head(record, 200, headers)
        if kind == "truncated_body":
            self._body(record, data[: len(data) // 2])
            self.close_connection = True
            return
        if kind == "slow":
            step = int(opts.get("drip_bytes", 64))
            delay = float(opts.get("delay", 0.2))
            for start in range(0, len(data), step):
                self._body(record, data[start : start + step])
                self.wfile.flush()
                if self.upstream._stopping.wait(delay):
                    return
            return
        self._body(record, data)

    def _slow_headers(
        self, record: RecordedRequest, headers: Mapping[str, str], data: bytes, opts: Any
    ) -> None:
        """A status line, then a header trickled byte by byte: every read gets a byte well
        within its timeout, while the response as a whole never arrives in time."""
        delay = float(opts.get("delay", 1.0))
        padding = b"X-Padding: " + b"p" * int(opts.get("header_bytes", 600)) + b"\r\n"
        record.status = 200
        self.wfile.write(b"HTTP/1.0 200 OK\r\n")
        self.wfile.flush()
        for i in range(len(padding)):
            if self.upstream._stopping.wait(delay):
                return
            self.wfile.write(padding[i : i + 1])
            self.wfile.flush()
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._body(record, data)

    def _not_modified(self, f: _File, etag: str) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            return etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                return f.last_modified <= parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
        return False

    def _oversized(self, record: RecordedRequest, size: int, declare: bool) -> None:
        headers = {"Content-Type": "application/json"}
        if declare:
            headers["Content-Length"] = str(size)
        self._head(record, 200, headers)
        chunk = b'{"filler": "' + b"x" * 65_000 + b'"},'
        sent = 0
        while sent < size and not self.upstream._stopping.is_set():
            piece = chunk[: size - sent]
            self._body(record, piece)
            sent += len(piece)


def _spaces_gzip(count: int) -> bytes:
    """A gzip member of `count` spaces, made without compressing them all: one MiB of spaces
    deflated once and ended with a full flush (which makes the piece independent of what
    came before) is valid anywhere after another such piece, so it is repeated."""
    if count <= 0:
        return b""
    block = b" " * (1 << 20)
    whole, rest = divmod(count, len(block))
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the header is ours
    piece = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.compress(block[:rest]) + packer.flush()
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, count & 0xFFFFFFFF)
    return header + piece * whole + tail + trailer


def static_transport(
    files: Mapping[str, bytes], requests: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    """An in-process transport serving `files` by URL path, with ETag/304 and 404.

    Requests are appended to `requests` when given. Use any host, e.g.
    "https://upstream.test/spack/repology.json", with Settings(allow_private_sources=True)
    so that the SSRF guard does not try to resolve it.
    """

    def handle(request: httpx.Request) -> httpx.Response:
        if requests is not None:
            requests.append(request)
        content = files.get(request.url.path)
        if content is None:
            return httpx.Response(404, json={"detail": "Not found."})
        etag = '"' + hashlib.sha256(content).hexdigest()[:20] + '"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(200, content=content, headers={"ETag": etag})

    return httpx.MockTransport(handle)


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started FakeUpstream with the default dataset, stopped after the test."""
    with FakeUpstream() as server:
        yield server
