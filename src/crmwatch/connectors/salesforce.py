"""Salesforce: OAuth, then the REST API's query and EventLogFile resources.

- **Objects** (Event Monitoring's stored events: ApiEvent, LoginEvent, ReportEvent,
  BulkApiResultEventStore, ListViewEvent, LoginAsEvent; and LoginHistory, SetupAuditTrail):
  every field ``describe`` lists, by SOQL with a high-water mark — ``EventDate`` then
  ``EventIdentifier`` for events, the creation time then ``Id`` for the others — so records
  of the same second are neither skipped nor read twice. Pages follow ``nextRecordsUrl``; the
  position moves to the last record of each page stored. OauthToken (tokens, whose use count
  changes) is read whole each time.
- **EventLogFile**: the files created after the last one stored (``CreatedDate`` then
  ``Id``), each ``LogFile`` blob streamed to the spool file in 1 MiB chunks (a daily file of a
  large org is several GB: it is never held in memory), its length checked against
  ``LogFileLength`` (fetched again if short, refused if far over) and ingested as the CSV it
  is.
- **Limits**: each answer's ``Sforce-Limit-Info: api-usage=N/M`` is read; past the configured
  share of the org's daily requests the pull stops, its position kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from email.message import Message
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from crmwatch.config import Config
from crmwatch.connectors import oauth
from crmwatch.connectors.http import CHUNK, ConnectorError, Http, Response
from crmwatch.connectors.settings import EVENT_OBJECTS, SalesforceSettings
from crmwatch.connectors.state import Pull, land, move, position, recorded
from crmwatch.sql import soql_datetime, soql_lit
from crmwatch.store import Store
from crmwatch.timeutil import parse_utc

# Fields never pulled: OauthToken's AccessToken holds the refresh token (the object
# reference says so) and DeleteToken revokes it — credentials, not evidence.
SECRET_FIELDS = frozenset({"AccessToken", "DeleteToken", "RefreshToken"})
# Objects read whole each pull (no usable high-water mark).
SNAPSHOT_OBJECTS = ("OauthToken",)
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# The most an EventLogFile body may be when its record gives no LogFileLength: above the
# several-GB daily files of large orgs, below what would fill a disk unnoticed.
MAX_LOG_FILE = 16 * 1024**3


class LimitReached(ConnectorError):
    """The org's API usage passed the share crmwatch may take."""


def marks(obj: str) -> tuple[str, str]:
    """The time field and the tie-break field of an object's high-water mark."""
    if obj in EVENT_OBJECTS or obj.endswith("Event") or obj.endswith("EventStore"):
        return "EventDate", "EventIdentifier"
    if obj == "LoginHistory":
        return "LoginTime", "Id"
    return "CreatedDate", "Id"


def client(s: SalesforceSettings, **http_options) -> Http:
    """Signed in: an ``Http`` on the org's instance with the access token."""
    login = Http("salesforce", s.login_url, **http_options)
    if s.client_secret.given:
        form = {
            "grant_type": "client_credentials",
            "client_id": s.client_id,
            "client_secret": s.client_secret.read("salesforce client secret"),
        }
    else:
        form = oauth.salesforce_jwt(
            s.client_id, s.username or "", s.login_url, s.private_key.read("salesforce private key")
        )
    answer = oauth.token(login, "/services/oauth2/token", form)
    instance = str(answer.get("instance_url") or s.login_url).rstrip("/")
    # the token goes only to an instance of the login URL's scheme, host name only
    parts = urlsplit(instance)
    if parts.scheme != urlsplit(s.login_url).scheme or parts.path or parts.query:
        raise ConnectorError(
            f"salesforce: the token endpoint named an unusable instance_url "
            f"({parts.scheme}://{parts.netloc}{parts.path})"
        )
    return Http(
        "salesforce",
        instance,
        {"Authorization": f"Bearer {answer['access_token']}", "Accept": "application/json"},
        **http_options,
    )


def pull_salesforce(
    store: Store,
    s: SalesforceSettings,
    spool: Path,
    config: Config,
    since: dt.datetime | None = None,
    http: Http | None = None,
    progress: Callable[[Pull], None] | None = None,
) -> Pull:
    with recorded(store, "salesforce") as pull:
        pull.http = http = http or client(s)
        http.on_response = _limit_watch(s.max_api_share)
        api = f"/services/data/v{s.api_version}"
        start = since or dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=7)
        if since:  # kept first, so a pull killed before a stream began resumes there
            streams = [f"object:{o}" for o in s.objects if o not in SNAPSHOT_OBJECTS]
            for stream in [*streams, "EventLogFile"]:
                move(store, "salesforce", stream, f"{since.isoformat()}|")
        try:
            for obj in s.objects:
                _pull_object(store, http, api, obj, spool, config, pull, start, progress)
            if s.event_log_files:
                _pull_files(store, http, api, s, spool, config, pull, start, progress)
        except LimitReached as e:
            pull.status, pull.detail = "stopped", str(e)
    return pull


def _limit_watch(share: float) -> Callable[[int, Message], None]:
    def check(status: int, headers: Message) -> None:
        m = _USAGE.search(headers.get("Sforce-Limit-Info") or "")
        if m and int(m[2]) and int(m[1]) / int(m[2]) >= share:
            raise LimitReached(
                f"salesforce: the org has used {m[1]} of its {m[2]} daily API "
                f"requests; crmwatch stops at {share:.0%} (max_api_share)"
            )

    return check


def _fields(http: Http, api: str, obj: str) -> list[str] | None:
    """Every field of ``obj``; None when the org has no such object (Event Monitoring's
    objects exist only where it is licensed)."""
    try:
        body, _ = http.get_json(f"{api}/sobjects/{quote(obj)}/describe")
    except ConnectorError as e:
        if e.status == 404:
            return None
        raise
    fields = body.get("fields") if isinstance(body, dict) else None
    names = [f.get("name") for f in fields or [] if isinstance(f, dict)]
    if not names:
        raise ConnectorError(f"salesforce: describe {obj} listed no fields")
    return [n for n in names if isinstance(n, str) and n.isidentifier()
            and n not in SECRET_FIELDS]  # fmt: skip


def _after(time_field: str, id_field: str, where: str | None, start: dt.datetime) -> str:
    """The WHERE of a high-water mark ``time|id``: after that record; ``time|`` (a start
    given with --since) or none (the default start): from that time on."""
    if not where:
        return f"{time_field} >= {soql_datetime(start)}"
    stamp, _, last_id = where.partition("|")
    t = soql_datetime(parse_utc(stamp))
    if not last_id:
        return f"{time_field} >= {t}"
    return f"({time_field} > {t} OR ({time_field} = {t} AND {id_field} > {soql_lit(last_id)}))"


def _pages(http: Http, url: str | None, what: str) -> Iterator[tuple[list[dict], Response]]:
    """Each page of a query's records, following ``nextRecordsUrl`` until ``done``."""
    while url:
        body, resp = http.get_json(url)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ConnectorError(f"salesforce: the query of {what} gave no list of records")
        yield records, resp
        url = body.get("nextRecordsUrl") if not body.get("done", True) else None


def _pull_object(store: Store, http: Http, api: str, obj: str, spool: Path, config: Config,
                 pull: Pull, start: dt.datetime,
                 progress: Callable[[Pull], None] | None) -> None:  # fmt: skip
    fields = _fields(http, api, obj)
    if fields is None:
        pull.problems.append(f"{obj}: not in this org (is Event Monitoring licensed?); skipped")
        return
    time_field, id_field = marks(obj)
    for needed in (time_field, id_field):
        if needed not in fields:
            raise ConnectorError(f"salesforce: {obj} has no {needed} field to resume from")
    stream = f"object:{obj}"
    snapshot = obj in SNAPSHOT_OBJECTS
    where = None if snapshot else position(store, "salesforce", stream)
    soql = (
        f"SELECT {', '.join(fields)} FROM {obj}"
        + ("" if snapshot else f" WHERE {_after(time_field, id_field, where, start)}")
        + f" ORDER BY {time_field}, {id_field}"
    )
    for n, (records, resp) in enumerate(_pages(http, f"{api}/query?q={quote(soql)}", obj)):
        if records:
            land(store, pull, spool, f"{obj}-{_stamp(records[0], time_field)}-{n}.json",
                 resp.body, config, len(records))  # fmt: skip
            if not snapshot:
                move(store, "salesforce", stream, _mark(records[-1], time_field, id_field, obj))
        if progress:
            progress(pull)


def _pull_files(store: Store, http: Http, api: str, s: SalesforceSettings, spool: Path,
                config: Config, pull: Pull, start: dt.datetime,
                progress: Callable[[Pull], None] | None) -> None:  # fmt: skip
    stream = "EventLogFile"
    cond = _after("CreatedDate", "Id", position(store, "salesforce", stream), start)
    if s.interval:
        cond += f" AND Interval = {soql_lit(s.interval)}"
    soql = (
        "SELECT Id, EventType, LogDate, Interval, Sequence, LogFileLength, CreatedDate "
        f"FROM EventLogFile WHERE {cond} ORDER BY CreatedDate, Id"
    )
    for records, _ in _pages(http, f"{api}/query?q={quote(soql)}", "EventLogFile"):
        for rec in records:
            if not rec.get("Id"):
                raise ConnectorError("salesforce: an EventLogFile record without an Id")
            mark = _mark(rec, "CreatedDate", "Id", "EventLogFile")
            day = str(rec.get("LogDate", ""))[:10]
            name = (
                f"elf-{rec.get('EventType')}-{day}-{rec.get('Interval') or 'Daily'}-{rec['Id']}.csv"
            )
            land(store, pull, spool, re.sub(r"[^A-Za-z0-9._-]", "_", name),
                 partial(log_file, http, api, rec), config)  # fmt: skip
            move(store, "salesforce", stream, mark)
            if progress:
                progress(pull)


def log_file(http: Http, api: str, rec: dict, out: BinaryIO) -> int:
    """Download an EventLogFile's ``LogFile`` blob into ``out``, never holding it whole.

    Fetched again (from the first byte) while fewer bytes arrive than ``LogFileLength`` says,
    like any other cut body; refused when more arrive than ``log_file_cap`` allows.

    Args:
        rec: the EventLogFile record (``Id``, and ``LogFileLength`` when the API gave it).
        out: the open spool file (see ``Http.download``).

    Returns:
        The file's records: its line breaks less the header's, as the CSV has.
    """
    want = rec.get("LogFileLength")
    expect = int(want) if isinstance(want, int | float) and not isinstance(want, bool) else None
    got = http.download(
        f"{api}/sobjects/EventLogFile/{quote(str(rec['Id']))}/LogFile",
        out,
        what=f"salesforce: EventLogFile {rec['Id']}",
        limit=log_file_cap(expect),
        expect=expect,
        headers={"Accept": "text/csv"},
    )
    return max(got.lines - 1, 0)


def log_file_cap(length: int | None) -> int:
    """The most bytes an EventLogFile body may be: its ``LogFileLength`` and an eighth more,
    plus a chunk, or ``MAX_LOG_FILE`` when the record gives no length.

    The body is streamed to disk, so the cap guards the disk, not memory: the record says how
    long the file is, and a body running far past that is not the file (a broken proxy, a
    server bug) — better refused, naming the file, than let fill the spool. The slack
    tolerates a length counted a little differently from the bytes served.
    """
    if length is None:
        return MAX_LOG_FILE
    return length + length // 8 + CHUNK


def _mark(record: dict, time_field: str, id_field: str, what: str) -> str:
    """A high-water mark ``time|id``, checked now: one the next pull could not read would
    wedge the stream."""
    stamp, ident = record.get(time_field), record.get(id_field)
    try:
        parse_utc(str(stamp))
    except ValueError as e:
        raise ConnectorError(
            f"salesforce: a {what} record has no usable {time_field} ({str(stamp)[:40]!r})"
        ) from e
    if not isinstance(ident, str) or not ident:
        raise ConnectorError(f"salesforce: a {what} record has no {id_field}")
    return f"{stamp}|{ident}"


def _stamp(record: dict, field: str) -> str:
    return re.sub(r"[^0-9T]", "", str(record.get(field, "")))[:15] or "x"
