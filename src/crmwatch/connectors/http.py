"""HTTP for the connectors: JSON and file downloads with the retries the APIs ask for.

One retry loop (``Http._exchange``) serves every request; what differs is what reads the
answer: into bytes for a JSON page or a token (bounded pages, ``max_body``), or copied in 1 MiB
chunks to an open file for a log file download, which is never held whole in memory (a daily
EventLogFile of a large org is several GB; issue 16).

- 429: wait until the API says (``Retry-After`` seconds, or Okta's ``X-Rate-Limit-Reset``, a
  UTC epoch second), capped by ``max_wait``;
- 500, 502, 503, 504, a dropped connection or a body cut short: exponential back-off; each
  attempt reads the answer afresh (a download starts its file again from the first byte);
- 401 and 403: no retry: the credentials or their permissions are wrong, and saying so at
  once is better than hammering the API.

Nothing here logs a header: the Authorization header carries the secret.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPException, HTTPResponse
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from crmwatch.errors import CrmwatchError

RETRY_STATUS = (500, 502, 503, 504)
# A download's read size: big enough for few system calls, small enough to be nothing in memory.
CHUNK = 1024 * 1024
T = TypeVar("T")


class ConnectorError(CrmwatchError):
    """An API refused or kept failing; the message names the connector and the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self, what: str) -> Any:
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _Truncated(f"{what}: the response is not whole JSON ({e})") from e


@dataclass(frozen=True)
class Download:
    """What a download wrote to its file: the bytes, and the line breaks counted on the way
    (a CSV's records are its lines less the header), so the file need not be read again."""

    size: int
    lines: int


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: urllib would send the Authorization header to wherever it
    points. It surfaces as the 3xx it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
# The most a JSON answer may be: a page of 1,000 Okta events or 2,000 records is a few MB.
MAX_BODY = 256 * 1024 * 1024


class _Truncated(Exception):
    """A body that cannot be what the API meant to send: fetched again."""


@dataclass
class Http:
    """One API's client. ``origin`` (scheme://host[:port]) is the only place it sends the
    credentials: a next-page link pointing elsewhere is refused, not followed."""

    name: str
    origin: str
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 6
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    max_wait: float = 120.0
    timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0  # how many requests were retried (for the pull's report)
    max_body: int = MAX_BODY
    # Called with each successful answer's status and headers before its body is read (the
    # Salesforce connector watches the org's API usage there); it may raise to stop.
    on_response: Callable[[int, Message], None] | None = None

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("/"):
            return self.origin + path_or_url
        parts = urlsplit(path_or_url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise ConnectorError(
                f"{self.name}: refusing to follow a link to another host "
                f"({parts.scheme}://{parts.netloc})"
            )
        return path_or_url

    def get_json(self, path_or_url: str) -> tuple[Any, Response]:
        """GET a JSON answer, held in memory (a page is bounded by ``max_body``); one that is
        not whole JSON is fetched again like a 503."""
        what = f"{self.name} GET {_shown(path_or_url)}"

        def parsed(r: HTTPResponse) -> tuple[Any, Response]:
            resp = self._whole(r, what)
            return resp.json(what), resp

        return self._exchange("GET", path_or_url, parsed)

    def request(
        self,
        method: str,
        path_or_url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Any request, its answer read whole into memory (at most ``max_body`` bytes)."""
        shown = f"{self.name} {method} {_shown(path_or_url)}"
        return self._exchange(method, path_or_url, lambda r: self._whole(r, shown), data, headers)

    def download(
        self,
        path_or_url: str,
        out: BinaryIO,
        *,
        what: str,
        limit: int,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Download:
        """GET a file straight into ``out`` in ``CHUNK``-sized pieces, never holding it whole.

        Args:
            out: a file open for writing and seekable: each attempt truncates it and starts
                again from its first byte, so it never mixes two answers.
            what: the file as the messages name it ("salesforce: EventLogFile 0AT…").
            limit: the most bytes accepted; a body past it is refused (``ConnectorError``,
                no retry) as soon as it gets there, not after it has filled the disk.
            expect: the length the API said the file has; fewer bytes arriving is a body cut
                short and fetched again (as is fewer than the answer's ``Content-Length``).

        Returns:
            The bytes written and the line breaks among them. ``out`` is not flushed or
            synced: its owner does that before it trusts the file.
        """

        def copy(r: HTTPResponse) -> Download:
            out.seek(0)
            out.truncate()
            declared = (r.headers.get("Content-Length") or "").strip()
            buf = bytearray(CHUNK)  # one buffer for the whole body: no allocation per chunk
            view = memoryview(buf)
            size = lines = 0
            while n := r.readinto(buf):
                size += n
                if size > limit:
                    raise ConnectorError(f"{what} is over {limit:,} bytes; refused")
                lines += buf.count(b"\n", 0, n)
                try:
                    out.write(view[:n])
                except OSError as e:  # a full disk is not the network: no retry
                    raise ConnectorError(f"{what} could not be written ({e})") from e
            if declared.isdigit() and size < int(declared):
                raise _Truncated(f"{what} was cut short ({size:,} of {int(declared):,} bytes)")
            if expect is not None and size < expect:
                raise _Truncated(f"{what} kept arriving short ({size} of {expect} bytes)")
            return Download(size, lines)

        return self._exchange("GET", path_or_url, copy, headers=headers)

    def _whole(self, r: HTTPResponse, shown: str) -> Response:
        data = r.read(self.max_body + 1)
        if len(data) > self.max_body:
            raise ConnectorError(f"{shown}: the answer is over {self.max_body:,} bytes; refused")
        return Response(r.status, r.headers, data)

    def _exchange(
        self,
        method: str,
        path_or_url: str,
        take: Callable[[HTTPResponse], T],
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        """The one retry loop. ``take`` reads a successful answer and returns what the caller
        wants; it runs afresh on every attempt, so it must start over (a file from its first
        byte). It raises ``_Truncated`` for a body that cannot be what the API meant to send
        (fetched again, and its reason is the error if every attempt ends so) or
        ``ConnectorError`` to stop at once."""
        url = self.url(path_or_url)
        shown = f"{self.name} {method} {_shown(path_or_url)}"
        last = ""
        for attempt in range(self.attempts):
            req = urllib.request.Request(
                url, data=data, method=method, headers={**self.headers, **(headers or {})}
            )
            wait = self.backoff * 2**attempt
            cut: _Truncated | None = None
            try:
                with _OPENER.open(req, timeout=self.timeout) as r:
                    if self.on_response:
                        self.on_response(r.status, r.headers)
                    return take(r)
            except urllib.error.HTTPError as e:
                body = e.read()[:300].decode("utf-8", "replace")
                if e.code in (401, 403):
                    raise ConnectorError(
                        f"{shown}: HTTP {e.code}: the credentials were refused "
                        f"or lack a permission ({_one_line(body)})",
                        e.code,
                    ) from e
                if 300 <= e.code < 400:
                    raise ConnectorError(
                        f"{shown}: HTTP {e.code} redirect to {e.headers.get('Location', '?')} "
                        "not followed (credentials go only to the configured host)",
                        e.code,
                    ) from e
                if e.code == 429:
                    wait = _rate_wait(e.headers, wait)
                elif e.code not in RETRY_STATUS:
                    raise ConnectorError(
                        f"{shown}: HTTP {e.code}: {_one_line(body)}", e.code
                    ) from e
                last = f"HTTP {e.code}"
            except _Truncated as e:
                cut, last = e, str(e)
            except (urllib.error.URLError, HTTPException, OSError) as e:
                last = str(getattr(e, "reason", e))
            if attempt == self.attempts - 1:
                if cut is not None:
                    raise ConnectorError(str(cut)) from cut
                break
            self.retries += 1
            self.sleep(min(wait, self.max_wait))
        raise ConnectorError(f"{shown}: gave up after {self.attempts} attempts ({last})")


def _rate_wait(headers: Message, default: float) -> float:
    """Seconds until the API lets us in again: Retry-After, or Okta's reset time."""
    retry_after = headers.get("Retry-After")
    if retry_after and retry_after.strip().isdigit():
        return float(retry_after)
    reset = headers.get("X-Rate-Limit-Reset")
    if reset and reset.strip().isdigit():
        return max(float(reset) - time.time(), 0.0) + 1.0
    return default


def _shown(path_or_url: str) -> str:
    """A request as logged: without its query string (it may carry a cursor, never a secret,
    but it is long)."""
    return path_or_url.split("?", 1)[0]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
