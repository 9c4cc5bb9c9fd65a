"""CORS as a browser enforces it: a web page on another origin, in headless Chromium, reads a
list (status, X-Result-Count, Link) and creates a catalog (a preflighted POST with a token)
from a real `syncd api` process whose SYNCD_CORS_ORIGINS names that page's origin. The same
page served from an origin not in the list can do neither.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from syncd.db.migrate import upgrade
from tests.reliability.harness import ApiServer, syncd_env
from tests.reliability.results import CaseRecord
from tests.reliability.test_api_security import Api, _make_tokens
from tests.support.browser import dump_dom, requires_chromium, serve_page
from tests.support.services import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240), requires_chromium]

CATALOGS = "/api/marketplace-software-catalogs/"

# What a web UI does: read a page of a list with its headers, then write with its token.
# The results go into the DOM, which the test reads once Chromium ran the script.
PAGE = """<!doctype html>
<html><body><pre id="out">pending</pre><script>
const params = new URLSearchParams(location.search);
const api = params.get("api");
const auth = {"Authorization": "Token " + params.get("token")};
async function attempt(url, init) {
  try {
    const r = await fetch(url, init);
    const body = await r.text();
    return {status: r.status, count: r.headers.get("X-Result-Count"),
            link: r.headers.get("Link"), length: body.length};
  } catch (e) {
    return {error: String(e)};
  }
}
(async () => {
  const out = {};
  out.list = await attempt(api + "/api/marketplace-software-catalogs/?page_size=1",
                           {headers: auth});
  out.create = await attempt(api + "/api/marketplace-software-catalogs/", {
    method: "POST",
    headers: {...auth, "Content-Type": "application/json"},
    body: JSON.stringify({name: "CorsPage", version: location.port,
                          catalog_type: "source_package"}),
  });
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(allowed, other): the same page on two origins of their own."""
    with serve_page(PAGE) as allowed, serve_page(PAGE) as other:
        yield allowed, other


@pytest.fixture(scope="module")
def api(
    amqp_url: str, tmp_path_factory: pytest.TempPathFactory, origins: tuple[str, str]
) -> Iterator[Api]:
    logs = tmp_path_factory.mktemp("api_cors")
    with postgres_database("syncd_rel_cors") as db_url:
        upgrade(db_url)
        tokens = _make_tokens(db_url)
        env = syncd_env(
            database_url=db_url,
            broker_url=amqp_url,
            queue_name="syncd_rel_cors",
            cors_origins=[origins[0]],
        )
        server = ApiServer(env, logs / "api.log").start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=30) as staff:
                staff.headers["Authorization"] = f"Token {tokens.staff}"
                for version in ("1", "2"):
                    body = {"name": "RelCors", "version": version}
                    body["catalog_type"] = "source_package"
                    assert staff.post(CATALOGS, json=body).status_code == 201
            yield Api(server.base_url, db_url, tokens, server)
        finally:
            server.stop()


def _run_page(origin: str, api: Api) -> dict[str, Any]:
    query = urlencode({"api": api.url, "token": api.tokens.staff})
    dom = dump_dom(f"{origin}/?{query}")
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[:2000]
    text = html.unescape(found.group(1))
    assert text != "pending", "the page's script did not finish"
    result: dict[str, Any] = json.loads(text)
    return result


def test_a_page_on_an_allowed_origin_reads_and_writes(
    api: Api, origins: tuple[str, str], reliability: Callable[[str], CaseRecord]
) -> None:
    record = reliability("api_cors_browser")
    allowed, other = origins
    with httpx.Client(base_url=api.url, timeout=30) as http:
        expected_count = http.get(CATALOGS).headers["X-Result-Count"]
    page = _run_page(allowed, api)
    record.figure("allowed origin", page)
    assert page["list"].get("status") == 200, page
    assert page["list"]["count"] == expected_count, page
    assert 'rel="next"' in (page["list"]["link"] or ""), page
    assert page["create"].get("status") == 201, page  # preflight passed, token sent
    refused = _run_page(other, api)
    record.figure("other origin", refused)
    assert "error" in refused["list"] and "error" in refused["create"], refused
    with httpx.Client(base_url=api.url, timeout=30) as http:
        names = [(c["name"], c["version"]) for c in http.get(CATALOGS).json()]
    other_port = other.rsplit(":", 1)[1]
    assert ("CorsPage", other_port) not in names, "the refused preflight still wrote"
    record.try_(
        "the same page, served from a listed origin and from another one, in headless "
        "Chromium: GET a list page with a token (reads X-Result-Count and Link), then POST a "
        "catalog as JSON with the token (a preflighted request)"
    )
    record.hold(
        "the listed origin read status, X-Result-Count and Link and created its catalog; the "
        "other origin could read nothing and its POST was never sent (before: no CORS, "
        "every cross-origin read failed and OPTIONS preflights got no CORS answer)"
    )
    record.summarize(
        f"listed origin: list {page['list']['status']} with X-Result-Count "
        f"{page['list']['count']} and Link read, create {page['create']['status']}; other "
        "origin: both refused by the browser"
    )
