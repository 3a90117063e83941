"""Download a web page or file to disk, classifying every failure as permanent or transient.

The standard library is enough: one GET, redirects followed, the body streamed to ``dest`` in
blocks with a hard size cap, so a huge or endless response cannot fill memory or disk. A 404 is
the address's fault and will not heal (``FetchError``); a timeout, a 503 or a 429 may, so those
raise ``TransientPipelineError`` and carry the server's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from documents.pipeline.errors import DocumentTooLargeError, FetchError, TransientPipelineError

ALLOWED_SCHEMES = frozenset({"http", "https"})
BLOCK_BYTES = 64 * 1024
ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,*/*;q=0.8"
# 408 Request Timeout and 425 Too Early are about timing, not the address.
TRANSIENT_CLIENT_ERRORS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class FetchedPage:
    final_url: str  # after redirects
    content_type: str  # media type without parameters, e.g. "text/html"
    size: int  # bytes written to dest


def fetch_url(
    url: str,
    dest: Path,
    *,
    timeout: float = 20,
    max_bytes: int = 20_000_000,
    user_agent: str = "Docflow/1.0",
    allow_private: bool = False,
) -> FetchedPage:
    """GET ``url`` into ``dest``; a partial file is removed when the download fails.

    Unless ``allow_private``, addresses that resolve to loopback, private, link-local or
    otherwise internal networks are refused, on the first request and on every redirect, so a
    submitted URL cannot reach the services next to the worker (metadata endpoints, Redis,
    the admin itself).
    """
    _check_url(url, allow_private=allow_private)
    # The scheme is checked above and on every redirect, so file:// and ftp:// never open.
    headers = {"User-Agent": user_agent, "Accept": ACCEPT}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),  # no proxy from the environment reroutes the request
        _HttpOnlyRedirectHandler(allow_private=allow_private),
    )
    page: FetchedPage | None = None
    try:
        with opener.open(request, timeout=timeout) as response:
            size = _save_body(response, response.headers, dest, max_bytes)
            page = FetchedPage(response.geturl(), response.headers.get_content_type(), size)
    except urllib.error.HTTPError as exc:
        error = _http_error(exc)
        exc.close()  # the error holds the response's socket open until collected
        raise error from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _network_error(exc) from exc
    finally:
        if page is None:
            dest.unlink(missing_ok=True)
    return page


def _check_url(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise FetchError(
            f"Cannot fetch {url!r}: only web addresses starting with http:// or https:// "
            "are supported."
        )
    if not allow_private:
        _check_public(parts.hostname, url)


def _check_public(host: str, url: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientPipelineError(f"Cannot resolve {host!r}: {exc}.") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise FetchError(
                f"Cannot fetch {url!r}: it points to a private or local network address "
                f"({address}), which is not allowed."
            )


class _HttpOnlyRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp:// too; a page may only lead to another web page, and
    never to a private address."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        _check_url(newurl, allow_private=self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _save_body(response: IO[bytes], headers: Message, dest: Path, max_bytes: int) -> int:
    declared = headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    size = 0
    with dest.open("wb") as out:
        while block := response.read(BLOCK_BYTES):
            size += len(block)
            if size > max_bytes:
                raise _too_large(max_bytes)
            out.write(block)
    return size


def _too_large(max_bytes: int) -> DocumentTooLargeError:
    return DocumentTooLargeError(
        f"The download is larger than the {max_bytes // 1_000_000} MB limit. "
        "Download the file yourself and upload a smaller version."
    )


def _http_error(exc: urllib.error.HTTPError) -> FetchError | TransientPipelineError:
    status = f"{exc.code} {exc.reason}".strip()
    if exc.code >= 500 or exc.code in TRANSIENT_CLIENT_ERRORS:
        return TransientPipelineError(
            f"The site answered {status}; it may be busy or down. Will try again.",
            retry_after=parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None),
        )
    return FetchError(
        f"The page answered {status}. Check that the address is right and that the page is "
        "public, then try again."
    )


def _network_error(exc: BaseException) -> FetchError | TransientPipelineError:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return FetchError(
            "The site's security certificate is not valid, so the page was not downloaded. "
            "Ask the site's owner to fix it, or download the file and upload it."
        )
    if isinstance(reason, TimeoutError):
        return TransientPipelineError("The site did not answer in time. Will try again.")
    return TransientPipelineError(f"Could not reach the site ({reason}). Will try again.")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
