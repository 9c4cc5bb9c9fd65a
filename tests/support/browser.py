"""A real browser for the tests that need one: Debian's headless `chromium` (installed by
.ci/run), and a static page server to play another web site (another origin).

`dump_dom(url)` loads a page, lets its scripts run (fetches included) and returns the DOM
as text. Chromium resolves no host name but 127.0.0.1 and uses no proxy: the page sees a
site without internet, and nothing leaves this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)

_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def dump_dom(url: str, *, budget_ms: int = 15_000, timeout: float = 120) -> str:
    """The DOM of `url` once its scripts ran for up to `budget_ms` of virtual time (a
    pending fetch holds the clock, so a page that waits for the network gets its answer)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="syncd-chromium-") as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@contextmanager
def serve_page(html: str) -> Iterator[str]:
    """Serve `html` at / from a server of its own on a free 127.0.0.1 port (an origin other
    than the API's); yield its origin, e.g. http://127.0.0.1:40123."""
    page = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
