"""Okta System Log: ``GET /api/v1/logs`` as a polling request.

A first pull starts at ``since`` (default: seven days back) in ascending order; each page's
``Link: <…>; rel="next"`` is where the next request goes, and is the stream's position once
the page is stored. A polling request (no ``until``) always has a next link; an empty page
means nothing new yet, and the next pull resumes from that link
(developer.okta.com, System Log API and "System Log query").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from crmwatch.config import Config
from crmwatch.connectors import oauth
from crmwatch.connectors.http import ConnectorError, Http
from crmwatch.connectors.settings import OktaSettings
from crmwatch.connectors.state import Pull, land, move, position, recorded
from crmwatch.store import Store

STREAM = "logs"
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([a-z]+)"?')


def next_link(headers) -> str | None:
    for value in headers.get_all("Link") or []:
        for url, rel in _LINK.findall(value):
            if rel == "next":
                return url
    return None


def client(s: OktaSettings, **http_options) -> Http:
    parts = urlsplit(s.url)
    origin = f"{parts.scheme}://{parts.netloc}"
    http = Http("okta", origin, {"Accept": "application/json"}, **http_options)
    if s.token.given:
        http.headers["Authorization"] = f"SSWS {s.token.read('okta token')}"
    else:
        form = oauth.okta_private_key_jwt(
            s.client_id or "", f"{origin}/oauth2/v1/token", s.private_key.read("okta private key")
        )
        answer = oauth.token(http, "/oauth2/v1/token", form)
        http.headers["Authorization"] = f"Bearer {answer['access_token']}"
    return http


def pull_okta(
    store: Store,
    s: OktaSettings,
    spool: Path,
    config: Config,
    since: dt.datetime | None = None,
    http: Http | None = None,
    progress: Callable[[Pull], None] | None = None,
) -> Pull:
    """Fetch every System Log event after the stream's position (or ``since``) into the
    store."""
    with recorded(store, "okta") as pull:
        pull.http = http = http or client(s)
        url = None if since else position(store, "okta", STREAM)
        if url is None:
            start = since or dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=7)
            query = urlencode({"since": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                               "sortOrder": "ASCENDING", "limit": s.page_size})  # fmt: skip
            url = f"/api/v1/logs?{query}"
            # kept first: a pull killed before its first page is stored resumes from this start
            move(store, "okta", STREAM, url)
        while True:
            events, resp = http.get_json(url)
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                raise ConnectorError("okta: /api/v1/logs did not answer with a list of events")
            link = next_link(resp.headers)
            if events:
                # a file name from the API's text: digits and T only
                first = re.sub(r"[^0-9T]", "", str(events[0].get("published", "")))[:15] or "x"
                land(store, pull, spool, f"okta-{first}-{_cursor_name(url)}.json", resp.body,
                     config, len(events))  # fmt: skip
            if link:
                move(store, "okta", STREAM, link)
            if progress:
                progress(pull)
            if not events or not link or link == url:
                break
            url = link
    return pull


def _cursor_name(url: str) -> str:
    """A short, file-safe stand-in for the request (pages of one second differ by cursor)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]
