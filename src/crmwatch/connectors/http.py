"""HTTP for the connectors: JSON and file downloads with the retries the APIs ask for.

- 429: wait until the API says (``Retry-After`` seconds, or Okta's ``X-Rate-Limit-Reset``, a
  UTC epoch second), capped by ``max_wait``;
- 500, 502, 503, 504, a dropped connection or a body cut short: exponential back-off;
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
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from crmwatch.errors import CrmwatchError

RETRY_STATUS = (500, 502, 503, 504)


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
    on_response: Callable[[Response], None] | None = None

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
        for attempt in range(self.attempts):
            resp = self.request("GET", path_or_url)
            try:
                return resp.json(f"{self.name} GET {_shown(path_or_url)}"), resp
            except _Truncated as e:
                if attempt == self.attempts - 1:
                    raise ConnectorError(str(e)) from e
                self.retries += 1
                self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path_or_url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        url = self.url(path_or_url)
        shown = f"{self.name} {method} {_shown(path_or_url)}"
        last = ""
        for attempt in range(self.attempts):
            req = urllib.request.Request(
                url, data=data, method=method, headers={**self.headers, **(headers or {})}
            )
            wait = self.backoff * 2**attempt
            try:
                with _OPENER.open(req, timeout=self.timeout) as r:
                    data = r.read(self.max_body + 1)
                    if len(data) > self.max_body:
                        raise ConnectorError(
                            f"{shown}: the answer is over {self.max_body:,} bytes; refused"
                        )
                    resp = Response(r.status, r.headers, data)
                    if self.on_response:
                        self.on_response(resp)
                    return resp
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
            except (urllib.error.URLError, HTTPException, OSError) as e:
                last = str(getattr(e, "reason", e))
            if attempt == self.attempts - 1:
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
