"""Fetching against a real local HTTP server: success, permanent and transient failures."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from documents.pipeline.errors import (
    DocumentTooLargeError,
    FetchError,
    TransientPipelineError,
)
from documents.pipeline.fetch import (
    FetchedPage,
    _HttpOnlyRedirectHandler,
    fetch_url,
    parse_retry_after,
)

# The test server is on loopback, which production refuses (see the SSRF tests below).
fetch_local = partial(fetch_url, allow_private=True)

PAGE = b"<!doctype html><html><body><p>Hello from the test server.</p></body></html>"
BIG_BODY = b"x" * 5000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # close after each response: a body may omit its length

    def do_GET(self) -> None:
        route = getattr(self, f"_route_{self.path.strip('/').replace('-', '_')}", None)
        if route is None:
            self.send_error(404, "Not Found")
        else:
            route()

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        """Silence the default stderr access log."""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _route_page(self) -> None:
        self._send(
            200,
            PAGE,
            {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(PAGE))},
        )

    def _route_redirect(self) -> None:
        self._send(302, b"", {"Location": "/page"})

    def _route_redirect_to_ftp(self) -> None:
        self._send(302, b"", {"Location": "ftp://127.0.0.1/secret.txt"})

    def _route_busy(self) -> None:
        self._send(503, b"down", {"Retry-After": "7"})

    def _route_limited(self) -> None:
        self._send(429, b"slow down", {"Retry-After": "120"})

    def _route_forbidden(self) -> None:
        self.send_error(403, "Forbidden")

    def _route_big(self) -> None:
        self._send(200, BIG_BODY, {"Content-Length": str(len(BIG_BODY))})

    def _route_big_unannounced(self) -> None:
        self._send(200, BIG_BODY, {"Content-Type": "application/octet-stream"})

    def _route_slow(self) -> None:
        time.sleep(1.0)
        self._send(200, PAGE, {})


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would intercept requests to the local server."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_fetches_a_page_to_disk(server_url: str, tmp_path: Path) -> None:
    dest = tmp_path / "page"

    fetched = fetch_local(f"{server_url}/page", dest)

    assert fetched == FetchedPage(f"{server_url}/page", "text/html", len(PAGE))
    assert dest.read_bytes() == PAGE


def test_follows_redirects_and_reports_the_final_url(server_url: str, tmp_path: Path) -> None:
    fetched = fetch_local(f"{server_url}/redirect", tmp_path / "page")

    assert fetched.final_url == f"{server_url}/page"


@pytest.mark.parametrize(("route", "status"), [("missing", "404 Not Found"), ("forbidden", "403")])
def test_client_errors_are_permanent(
    server_url: str, tmp_path: Path, route: str, status: str
) -> None:
    dest = tmp_path / "page"

    with pytest.raises(FetchError, match=f"The page answered {status}") as error:
        fetch_local(f"{server_url}/{route}", dest)

    assert error.value.code == "fetch"
    assert not dest.exists()


@pytest.mark.parametrize(("route", "retry_after"), [("busy", 7.0), ("limited", 120.0)])
def test_overload_is_transient_with_retry_after(
    server_url: str, tmp_path: Path, route: str, retry_after: float
) -> None:
    with pytest.raises(TransientPipelineError) as error:
        fetch_local(f"{server_url}/{route}", tmp_path / "page")

    assert error.value.retry_after == retry_after


@pytest.mark.parametrize("route", ["big", "big-unannounced"])
def test_body_over_the_limit_is_too_large_and_leaves_no_file(
    server_url: str, tmp_path: Path, route: str
) -> None:
    dest = tmp_path / "page"

    with pytest.raises(DocumentTooLargeError) as error:
        fetch_local(f"{server_url}/{route}", dest, max_bytes=1000)

    assert error.value.code == "too_large"
    assert not dest.exists()


def test_timeout_is_transient(server_url: str, tmp_path: Path) -> None:
    with pytest.raises(TransientPipelineError, match="did not answer in time") as error:
        fetch_local(f"{server_url}/slow", tmp_path / "page", timeout=0.2)

    assert error.value.retry_after is None


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientPipelineError, match="Could not reach the site"):
        fetch_local("http://127.0.0.1:9/", tmp_path / "page", timeout=2)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/file.pdf", "javascript:alert(1)", "http://"]
)
def test_only_http_and_https_addresses(tmp_path: Path, url: str) -> None:
    dest = tmp_path / "page"

    with pytest.raises(FetchError, match="only web addresses starting with http"):
        fetch_url(url, dest)

    assert not dest.exists()


def test_redirect_to_another_scheme_is_refused(server_url: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="only web addresses"):
        fetch_local(f"{server_url}/redirect-to-ftp", tmp_path / "page")


def test_retry_after_as_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)

    seconds = parse_retry_after(format_datetime(when, usegmt=True))

    assert seconds is not None
    assert 85 <= seconds <= 90


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin/",
        "http://localhost:6379/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://192.168.0.10/",
    ],
)
def test_internal_addresses_are_refused_before_any_request(tmp_path: Path, url: str) -> None:
    with pytest.raises(FetchError, match="private or local network address"):
        fetch_url(url, tmp_path / "page")
    assert not (tmp_path / "page").exists()


def test_a_redirect_to_an_internal_address_is_refused() -> None:
    handler = _HttpOnlyRedirectHandler(allow_private=False)
    request = urllib.request.Request("https://example.com/")

    with pytest.raises(FetchError, match="private or local network address"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://127.0.0.1:8000/")
