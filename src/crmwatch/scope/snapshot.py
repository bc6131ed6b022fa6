"""The customer-data snapshot: CSV or Parquet files, one per object, Salesforce API field names.

Customer data is minimised: only the columns the replayed queries and the summary need are
read, into temporary tables that vanish with the connection; nothing of it is written to the
store. A CSV is read with every column as text (a postal code "01234" must stay "01234"), and
Parquet columns are cast to text the same way, so one set of comparison rules serves both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from crmwatch.errors import UsageError
from crmwatch.schema import CHANNEL_TYPE
from crmwatch.sql import ident, path_lit
from crmwatch.store import Store

SUFFIXES = (".csv", ".csv.gz", ".parquet")
CREATED = "__created_utc"  # CreatedDate as a UTC timestamp, added to each loaded table

# Where a customer's country and state live, per object, best first. Salesforce fills the
# *Code columns when state and country picklists are on; otherwise the text columns.
COUNTRY_COLUMNS = {
    "Contact": ("MailingCountryCode", "MailingCountry", "OtherCountryCode", "OtherCountry"),
    "Lead": ("CountryCode", "Country"),
    "Account": ("PersonMailingCountryCode", "PersonMailingCountry", "BillingCountryCode",
                "BillingCountry", "ShippingCountryCode", "ShippingCountry"),
}  # fmt: skip
STATE_COLUMNS = {
    "Contact": ("MailingStateCode", "MailingState"),
    "Lead": ("StateCode", "State"),
    "Account": ("PersonMailingStateCode", "PersonMailingState", "BillingStateCode",
                "BillingState"),
}  # fmt: skip
# A Case is about a person: its ContactId says whose data it is.
PERSON_LINK = {"Case": ("ContactId", "Contact")}
# The objects a customer is a row of, and how notify can write to them: whether that row has an
# e-mail address, else a postal street, and the language it prefers (the first of these
# columns the file has). Read while scope has the snapshot loaded and stored with each
# exposure as a channel and a two-letter language, never the address itself, so notify does
# not read the snapshot again (for a 7.4M-customer breach that was most of its time).
PERSON_OBJECTS = ("Contact", "Lead", "Account")
EMAIL_COLUMNS = ("Email", "PersonEmail")
STREET_COLUMNS = ("MailingStreet", "Street", "PersonMailingStreet", "BillingStreet")
LANGUAGE_COLUMNS = ("Preferred_Language__c", "Language__c")
CONTACT_COLUMNS = (EMAIL_COLUMNS, STREET_COLUMNS, LANGUAGE_COLUMNS)
# Added to a person object's loaded table: its channel ('email', 'post' or 'none') and
# language, derived as the file is read, so the addresses themselves are never loaded for it.
CHANNEL, LANGUAGE = "__channel", "__language"


@dataclass(frozen=True)
class Person:
    """SQL reading, for a record aliased in a query, whose data it is and where they live."""

    join: str
    customer: str
    country: str
    state: str
    # how to write to them: 'email', 'post', 'none' (their row has neither), 'unknown' (no
    # row of theirs in the snapshot's person files); and their language's first two letters
    channel: str = "'unknown'"
    language: str = "NULL"


@dataclass
class SnapshotFile:
    object: str
    path: Path
    columns: list[str]
    ix: int = 0  # position among the snapshot's files: how hits name their table
    needed: set[str] = field(default_factory=set)
    rows: int | None = None

    @classmethod
    def open(cls, store: Store, obj: str, path: Path, ix: int = 0) -> SnapshotFile:
        """The file with its column names as it spells them; no rows are read."""
        cols = [r[0] for r in store.execute(f"DESCRIBE SELECT * FROM {_reader(path)}").rows]
        return cls(obj, path, cols, ix)

    def column(self, name: str) -> str | None:
        """The file's own spelling of a field (SOQL names are case-insensitive)."""
        return self._spelling.get(name.lower())

    @cached_property
    def _spelling(self) -> dict[str, str]:
        """Each column by its lower case, the first where several share one (asked of every
        field of every replayed query)."""
        spelling: dict[str, str] = {}
        for c in self.columns:
            spelling.setdefault(c.lower(), c)
        return spelling

    def first_column(self, *names: str) -> str | None:
        """The first of several alternative fields the file has, in its own spelling."""
        return next((c for n in names if (c := self.column(n)) is not None), None)

    @property
    def source(self) -> str:
        """SQL reading the whole file, every column as text."""
        return _reader(self.path)

    @property
    def table(self) -> str:
        """The temporary table the file is loaded into: a quoted name, whatever the file's
        object name holds (a file named ``Contact" AS SELECT 1; DROP TABLE alerts; --.csv``
        is a table of that name, not SQL)."""
        return ident(f"snap_{self.object}")


# A Salesforce object's API name: a letter, then letters, digits and underscores (custom
# objects end in __c). Anything else in a file name or --object is refused, not quoted along.
OBJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")


def object_name(path: Path) -> str:
    """``Contact.csv`` → Contact; ``contact-2025-06-01.parquet`` → Contact.

    Raises:
        UsageError: the file's name does not start with a Salesforce object name.
    """
    stem = path.name
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    base = re.split(r"[-_. ](?=\d)|[ .]", stem)[0]
    return check_object(base[:1].upper() + base[1:] if base else stem, path)


def check_object(name: str, path: Path | None = None) -> str:
    """``name`` if it is a Salesforce object's API name; else a clear error."""
    if OBJECT_NAME.fullmatch(name):
        return name
    where = f"snapshot file {path.name!r}" if path else "--object"
    raise UsageError(
        f"{where}: {name!r} is not a Salesforce object name (letters, digits and "
        "underscores); name the file after its object, e.g. Contact.csv, or pass --object"
    )


class Snapshot:
    """The files of one snapshot, registered on a store's connection."""

    def __init__(self, store: Store, paths: list[Path], object_override: str | None = None):
        self.store = store
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                files += sorted(f for f in p.iterdir() if f.name.lower().endswith(SUFFIXES))
            elif p.exists():
                files.append(p)
            else:
                raise UsageError(f"snapshot file {p} does not exist")
        if not files:
            raise UsageError("no snapshot files (.csv, .csv.gz or .parquet) found")
        if object_override and len(files) > 1:
            raise UsageError("--object names the object of one file; several were given")
        self.files: dict[str, SnapshotFile] = {}
        for f in files:
            obj = check_object(object_override) if object_override else object_name(f)
            # object names are case-insensitive (SOQL's, and DuckDB's table names)
            if (
                same := next((o for o in self.files if o.lower() == obj.lower()), None)
            ) is not None:
                raise UsageError(f"two snapshot files for {obj}: {self.files[same].path}, {f}")
            sf = SnapshotFile.open(store, obj, f, len(self.files))
            if sf.column("Id") is None:
                raise UsageError(f"{f}: no Id column (first columns: {', '.join(sf.columns[:5])})")
            self.files[obj] = sf
        self.loaded: set[str] = set()
        # Loaded in the file's order, so that loading a file again gives each row the same
        # row id (hits name rows by it): set when a later batch of events may need another
        # column under the hits of the earlier ones. Otherwise the order costs a sixth of a
        # load (0.25 s for 7.4M contacts).
        self.stable = False

    def get(self, obj: str) -> SnapshotFile | None:
        return self._by_object.get(obj.lower())

    @cached_property
    def _by_object(self) -> dict[str, SnapshotFile]:
        """Each file by its object's lower case (SOQL names are case-insensitive)."""
        by_object: dict[str, SnapshotFile] = {}
        for o, f in self.files.items():
            by_object.setdefault(o.lower(), f)
        return by_object

    def need(self, obj: str, column: str) -> None:
        f = self.get(obj)
        if f is not None and (col := f.column(column)) is not None:
            f.needed.add(col)

    def load(self) -> None:
        """Read each object's needed columns into a temporary table: once, and again only
        when more columns are needed."""
        for f in self.files.values():
            summary = (
                *COUNTRY_COLUMNS.get(f.object, ()),
                *STATE_COLUMNS.get(f.object, ()),
                *PERSON_LINK.get(f.object, ())[:1],
            )
            for col in ("Id", "CreatedDate", *summary):
                self.need(f.object, col)
            if f.object in self.loaded and f.needed <= set(self._loaded_cols(f)):
                continue
            cols = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" for c in sorted(f.needed))
            if (created := f.column("CreatedDate")) is not None:
                # Parsed once here: every replay filters on it (see replay.CREATED).
                cols += f", sf_ts(CAST({ident(created)} AS VARCHAR)) AS {CREATED}"
            if f.object in PERSON_OBJECTS:
                cols += f", {contact_columns(f)}"
            with self.store.ordered() if self.stable else nullcontext():
                self.store.execute(
                    f"CREATE OR REPLACE TEMP TABLE {f.table} AS SELECT {cols} FROM {f.source}"
                )
            f.rows = self.store.scalar(f"SELECT count(*) FROM {f.table}")
            self.loaded.add(f.object)

    def person(self, obj: str, alias: str) -> Person:
        """The customer of a record of ``obj`` (itself, or a case's contact) and the raw
        country and state text of that customer, as SQL over ``alias``."""
        f = self.get(obj)
        if f is None:
            return Person("", f'{alias}."Id"', "NULL", "NULL")
        holder, who, join = f, alias, ""
        customer = f'{alias}."Id"'
        link = PERSON_LINK.get(f.object)
        if link is not None and (lcol := f.column(link[0])) is not None:
            customer = f'coalesce({alias}.{ident(lcol)}, {alias}."Id")'
            person = self.get(link[1])
            if person is not None and person.column("Id") is not None:
                who, holder = f"{alias}_p", person
                join = (f'LEFT JOIN {person.table} {who} ON left({who}."Id", 15) = '
                        f"left({alias}.{ident(lcol)}, 15)")  # fmt: skip

        def first_of(columns: tuple[str, ...]) -> str:
            present = [f"{who}.{ident(c)}" for n in columns if (c := holder.column(n)) is not None
                       and c in holder.needed]  # fmt: skip
            if not present:
                return "NULL"
            return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"

        country = first_of(COUNTRY_COLUMNS.get(holder.object, ()))
        state = first_of(STATE_COLUMNS.get(holder.object, ()))
        if holder.object not in PERSON_OBJECTS:
            return Person(join, customer, country, state)
        channel = f"{who}.{CHANNEL}"
        if join:  # the person is another record, which the snapshot may not hold
            unknown = f"'unknown'::{CHANNEL_TYPE}"
            channel = f"""CASE WHEN {who}."Id" IS NULL THEN {unknown} ELSE {channel} END"""
        return Person(join, customer, country, state, channel, f"{who}.{LANGUAGE}")

    def _loaded_cols(self, f: SnapshotFile) -> list[str]:
        return [r[0] for r in self.store.execute(f"DESCRIBE {f.table}").rows]

    def drop(self) -> None:
        for f in self.files.values():
            self.store.execute(f"DROP TABLE IF EXISTS {f.table}")
        self.loaded.clear()


def contact_columns(f: SnapshotFile) -> str:
    """SQL of a person row's CHANNEL and LANGUAGE, over the file as read: the first e-mail
    column the file has, else its first street column (a cell of only spaces is none); its
    first language column's first two letters, spaces trimmed. Scope stores them with each
    exposure; notify reads them from the file itself for an incident scoped before."""
    email, street, lang = (f.first_column(*names) for names in CONTACT_COLUMNS)

    def present(column: str | None) -> str:
        # trim() only where a value starts with a space: trimming every address of a 7.4M-row
        # file cost a quarter CPU-second
        if column is None:
            return "false"
        v = f"CAST({ident(column)} AS VARCHAR)"
        return (
            f"CASE WHEN {v} IS NULL THEN false WHEN NOT starts_with({v}, ' ') THEN true "
            f"ELSE trim({v}) <> '' END"
        )

    language = f"lower(left(trim(CAST({ident(lang)} AS VARCHAR)), 2))" if lang else "NULL::VARCHAR"
    return (
        f"(CASE WHEN {present(email)} THEN 'email' WHEN {present(street)} THEN 'post' "
        f"ELSE 'none' END)::{CHANNEL_TYPE} AS {CHANNEL}, {language} AS {LANGUAGE}"
    )


def no_channel(f: SnapshotFile, exposed: Iterable[str]) -> bool:
    """Whether ``f`` is a person file with neither an e-mail nor a street column whose rows
    are the customers of records of the ``exposed`` objects (its own, or a case's contact):
    they are then all written to by substitute notice, which scope and notify say."""
    if f.object not in PERSON_OBJECTS or any(f.first_column(*n) for n in CONTACT_COLUMNS[:2]):
        return False
    linked = {o for o, (_, person) in PERSON_LINK.items() if person == f.object}
    return bool({f.object, *linked} & set(exposed))


def _reader(path: Path) -> str:
    if path.name.lower().endswith(".parquet"):
        return f"read_parquet({path_lit(path)})"
    # strict_mode off would silently shift columns; keep DuckDB's strict CSV parsing.
    return f"read_csv({path_lit(path)}, header = true, all_varchar = true)"
