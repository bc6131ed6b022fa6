"""``crmwatch notify``: write the notification package of one scoped incident.

obligations.json, obligations.md     every regime × recipient: status, why, deadline
regulator/<regime>.md                 a report draft per regime needing one, every
                                      mandatory field filled or marked [TO COMPLETE: …]
letters/<regime>-<lang>[-<n>].html / .pdf
                                      letters to individuals (mail-merge templates: {name}
                                      is the only personal field, {notice_date} the other);
                                      one per set of data items exposed, so each letter lists
                                      exactly what was taken from the people it goes to
mailing_list.csv                      customer id, regime, channel, language, template —
                                      read from the snapshot now, no contact details
breach_record.md                      the internal record of the breach that GDPR Art. 33(5),
                                      PIPEDA s. 10.3 and others require, notified or not
transparency.json                     the five facts the 2025 notices were faulted for
"""

from __future__ import annotations

import datetime as dt
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from crmwatch.markup import csv_cell, html_text, markdown
from crmwatch.notify.elements import notice_items
from crmwatch.notify.facts import Facts, Group, gather, reach
from crmwatch.notify.obligations import Assessment, Obligation, decide
from crmwatch.notify.org import Org
from crmwatch.notify.regimes import ORG_FLAGS, Regime, explicit_regions, load_regimes
from crmwatch.notify.text import HEADINGS, LANGUAGES, MARK, Section, items_text, letter_sections
from crmwatch.schema import CHANNEL_TYPE
from crmwatch.scope.snapshot import (
    CHANNEL,
    LANGUAGE,
    PERSON_OBJECTS,
    SnapshotFile,
    contact_columns,
    no_channel,
)
from crmwatch.sql import ident, lit, num, path_lit
from crmwatch.store import Store

REGULATOR_LABELS = {
    "nature": "Nature of the breach",
    "vector": "Attack vector",
    "timeline": "Timeline",
    "categories": "Categories of personal data",
    "pi_items": "Personal information items leaked",
    "number_of_people": "Approximate number of people concerned",
    "number_of_records": "Approximate number of records concerned",
    "contact_point": "Contact point (DPO or other)",
    "likely_consequences": "Likely consequences",
    "measures_taken": "Measures taken",
    "measures_proposed": "Measures proposed",
    "self_help": "What individuals can do to reduce harm",
    "remedy_procedure": "Remedy procedure",
    "help_desk": "Help desk for individuals",
    "when_and_how": "When and how the leak happened",
    "summary": "Summary",
    "cause": "Cause",
    "secondary_harm": "Possible secondary harm",
    "individual_response": "Response to individuals",
    "publication": "Publication",
    "prevention": "Measures to prevent recurrence",
    "other": "Other matters",
    "reasons_for_delay": "Reasons for any delay",
    "sample_notice": "Sample of the notice to residents",
    "law_enforcement": "Law enforcement contacted",
    "individuals_notified": "Whether and when affected individuals were notified",
    "wisp": "Written information security program",
    "responsible_party": "Person responsible for the breach, if known",
    "report_contact": "Who can answer the regulator's questions",
    "incident_grade": "Grade of the incident",
}
# In every draft: nature, numbers, timeline (occurred / detected / contained), vector,
# consequences, measures and the contact point.
BASE_FACTS = (
    "nature",
    "categories",
    "number_of_people",
    "number_of_records",
    "timeline",
    "vector",
    "likely_consequences",
    "measures_taken",
    "measures_proposed",
    "contact_point",
)
TRANSPARENCY = ("affected count", "data categories", "timeline", "attack vector", "remediation")


@dataclass
class Package:
    out: Path
    obligations: list[Obligation]
    assumptions: list[str]
    drafts: list[Path]
    letters: list[Path]
    mailing_rows: int
    transparency: dict[str, dict]


def notify(
    store: Store,
    incident_id: str,
    aware_at: dt.datetime,
    out: Path,
    org: Org,
    now: dt.datetime | None = None,
    regimes: list[Regime] | None = None,
) -> Package:
    """Decide every obligation and write the package under ``out``."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    regimes = regimes or load_regimes()
    facts = gather(store, incident_id, aware_at)
    assessment = decide(regimes, facts, org, now)
    # the text of each law in force when the incident began
    by_id = {r.id: r.on(facts.began.date(), aware_at.date()) or r for r in regimes}
    try:
        mailing = _mailing_rows(store, facts, assessment, by_id, org)
    except _Regroup:  # a customer twice among the exposures: decided again, nothing written
        facts = gather(store, incident_id, aware_at, group=True)
        assessment = decide(regimes, facts, org, now)
        mailing = _mailing_rows(store, facts, assessment, by_id, org)
    out.mkdir(parents=True, exist_ok=True)
    # The mailing list is written on one DuckDB thread (which releases the GIL) while this
    # one writes the drafts and letters: the machine's other core does that work meanwhile.
    # Nothing below reads the store until the file is written.
    with ThreadPoolExecutor(max_workers=1) as pool:
        written = pool.submit(_write_mailing_list, store, mailing, out / "mailing_list.csv")
        drafts = [
            _draft(out, by_id[o.regime], o, facts, org)
            for o in assessment.obligations
            if o.recipient == "regulator" and o.status in ("required", "assess")
        ]
        letters = _letters(out, facts, org, by_id, mailing.variants)
        _breach_record(out, facts, org, assessment, by_id)
        transparency = _transparency(facts, org)
        (out / "transparency.json").write_text(json.dumps(transparency, indent=2))
        body = {
            "incident_id": facts.incident.id,
            "aware_at": aware_at.isoformat() + "Z",
            "computed_at": now.isoformat() + "Z",
            "affected_customers": facts.affected,
            "assumptions": assessment.assumptions,
            "obligations": [o.to_dict() for o in assessment.obligations],
            "transparency": transparency,
        }
        (out / "obligations.json").write_text(json.dumps(body, indent=2, ensure_ascii=False))
        (out / "obligations.md").write_text(_markdown(facts, assessment, transparency), "utf-8")
        written.result()  # its error, if any, is this call's
    store.execute(
        "INSERT OR REPLACE INTO notify_packages VALUES (?, ?, ?, ?, ?)",
        [facts.incident.id, str(out.resolve()), aware_at, now, json.dumps(body)],
    )
    return Package(
        out,
        assessment.obligations,
        assessment.assumptions,
        drafts,
        letters,
        mailing.rows,
        transparency,
    )


# The files of a package, by what they are: (folder, suffixes) per kind. The mailing list names
# customers by id, so it is a kind of its own (the console lets fewer roles download it).
PACKAGE_FILES = {
    "summary": ("", (".md", ".json")),
    "regulator": ("regulator", (".md",)),
    "letters": ("letters", (".html", ".pdf")),
    "mailing_list": ("", (".csv",)),
}
# The top-level files ``notify`` writes: nothing else in the folder is offered.
SUMMARY_FILES = ("obligations.md", "obligations.json", "breach_record.md", "transparency.json")


@dataclass
class StoredPackage:
    incident_id: str
    folder: Path
    aware_at: dt.datetime
    computed_at: dt.datetime
    body: dict
    files: dict[str, list[str]]  # kind → names of the files of that kind that exist now

    def file(self, kind: str, name: str) -> Path | None:
        """The package's file ``name`` of ``kind`` if it is one of those listed: a name is
        looked up, never joined to the folder, so no request can reach another file."""
        if name not in self.files.get(kind, []):
            return None
        sub, _ = PACKAGE_FILES[kind]
        return self.folder / sub / name


def stored_package(store: Store, incident_id: str) -> StoredPackage | None:
    """The incident's newest package as ``notify`` recorded it, with the files still there."""
    row = store.execute(
        "SELECT incident_id, folder, aware_at, computed_at, body FROM notify_packages "
        "WHERE upper(incident_id) = upper(?)",
        [incident_id],
    ).first()
    if row is None:
        return None
    folder = Path(row[1])
    files = {}
    for kind, (sub, suffixes) in PACKAGE_FILES.items():
        where = folder / sub
        files[kind] = sorted(
            p.name
            for p in (where.iterdir() if where.is_dir() and not where.is_symlink() else [])
            # regular files only: a link planted in the folder is not followed
            if p.is_file() and not p.is_symlink() and p.suffix in suffixes
            and (kind not in ("summary", "mailing_list") or p.name in
                 (SUMMARY_FILES if kind == "summary" else ("mailing_list.csv",)))
        )  # fmt: skip
    return StoredPackage(row[0], folder, row[2], row[3], json.loads(row[4]), files)


# --- regulator drafts ---


def _draft(out: Path, r: Regime, o: Obligation, facts: Facts, org: Org) -> Path:
    values = _regulator_values(r, o, facts, org)
    lines = [
        f"# Draft: {_md(r.name)} — report to {_md(o.to)}",
        "",
        f"- Incident: {facts.incident.id}",
        f"- Status: **{o.status}** — {_md(o.reason)}",
        f"- How to file: {_md(o.filing)}",
        f"- Deadline: {o.deadline_utc or 'no fixed time'} (UTC); {o.deadline_local or ''} — "
        f"{_md(o.deadline_text)} \\[{_md(o.clock)}\\]",
        f"- Law: {_md(r.citation)}"
        + (f", as amended: {_md(o.version)}" if o.version else "")
        + f" (rule file checked {o.verified_on}; it rests on {o.verification}: its sources "
        "and what stays uncertain are listed below)",
        "",
        "Every field the law requires follows. Fields marked [TO COMPLETE: …] need a person; "
        "the rest is taken from crmwatch's evidence and should still be reviewed.",
        "",
    ]
    if o.preliminary_deadline_utc:
        lines.insert(5, f"- Preliminary report: by {o.preliminary_deadline_utc} (UTC)")
    if o.assessment_deadline_utc:
        lines.insert(
            5,
            f"- Assessment to be completed by: {o.assessment_deadline_utc} (UTC); "
            "the filing deadline runs from its conclusion",
        )
    # The facts every regulator asks for in some form come first; then this law's own list.
    lines += ["# Incident facts", ""]
    for slot in BASE_FACTS:
        lines += [f"### {REGULATOR_LABELS[slot]}", "", *values[slot], ""]
    lines += [f"# Fields required by {_md(r.citation)}", ""]
    for slot in r.regulator.contents:
        lines += [f"## {REGULATOR_LABELS[slot]}", "", *values[slot], ""]
    lines += ["## Sources of this rule", ""]
    lines += [f"- {_md(x['cite'])} ({x['kind']}): {_md(x['url'])}" for x in r.sources]
    lines.append("")
    if o.uncertain:
        lines += [
            "## Open legal questions (from the rule file)",
            "",
            *[f"- {_md(u)}" for u in o.uncertain],
            "",
        ]
    if r.not_modelled:
        lines += ["## Deliberately not modelled", "", *[f"- {_md(u)}" for u in r.not_modelled], ""]
    path = out / "regulator" / f"{r.id}.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _regulator_values(r: Regime, o: Obligation, facts: Facts, org: Org) -> dict[str, list[str]]:
    """Each slot's Markdown lines. Every value from evidence, the org file or a rule file goes
    through :func:`_md`: an app name or a report header must not become markup in a draft."""
    i, s = facts.incident, facts.scope
    vector = _md(facts.vector)
    categories = _md(items_text(notice_items(s.get("fields", [])), "en"))
    bounded = s.get("bounded_upper_bound") or 0
    people = f"{o.affected:,} people listed by crmwatch's scope (exact or replayed evidence)"
    if bounded:
        people += f", plus up to {bounded:,} records that the logs bound but cannot list"
    if s.get("unbounded_events"):
        people += (
            f", plus the records of {len(s['unbounded_events'])} events whose number neither "
            "the logs nor the customer snapshot give " + MARK.format("how many people they reached")
        )
    fields = ", ".join(_md(f) for f in s.get("fields", [])) or MARK.format("fields")
    contained = (
        f"{org.contained_at.isoformat()} UTC"
        if org.contained_at
        else MARK.format("time the access was stopped")
    )
    timeline = [
        f"- First malicious activity: {i.first_malicious_at.removesuffix('Z')} UTC "
        f"({_md(i.first_malicious_event.get('source_type'))})",
        f"- First alert (detection): {i.first_alert_at.removesuffix('Z')} UTC",
        f"- Company aware: {facts.aware_at.isoformat()} UTC",
        f"- Contained: {contained}",
        f"- Last malicious activity seen: {i.last_event_at.removesuffix('Z')} UTC",
    ]
    measures = [f"- {_md(m)}" for m in org.measures_taken] or [MARK.format("measures taken")]
    proposed = [f"- {_md(m)}" for m in org.measures_proposed] or [MARK.format("measures proposed")]

    def section(slot: str) -> list[str]:
        found = letter_sections((slot,), facts, org, "en", regulator=r.regulator.name)
        return [_md(p) for p in found[0].body] if found else ["Not applicable."]

    contact = section("contact_point")
    consequences = [
        *section("likely_consequences"),
        MARK.format("the company's own assessment of the risk to these people"),
    ]
    late = o.time_left_hours is not None and o.time_left_hours < 0
    wisp = org.flags.get("ma_wisp")
    values = {
        "nature": [
            f"{'Unauthorised access' if facts.unauthorized_access else 'Unauthorised export'} "
            f"of customer records in the Salesforce CRM. {vector}."
        ],
        "vector": [vector + "."],
        "timeline": timeline,
        "categories": [f"{categories} (fields: {fields})"],
        "pi_items": [f"{categories} (fields: {fields})"],
        "number_of_people": [people],
        "number_of_records": [f"{facts.records:,} customer records"],
        "contact_point": contact,
        "likely_consequences": consequences,
        "measures_taken": measures,
        "measures_proposed": proposed,
        "self_help": section("self_help"),
        "remedy_procedure": [MARK.format("remedy and compensation procedure")],
        "help_desk": contact,
        "when_and_how": [*timeline, vector + "."],
        "summary": [f"Customer records were taken from the Salesforce CRM: {vector}."],
        "cause": [vector + "."],
        "secondary_harm": consequences,
        "individual_response": [
            f"Letters drafted for {o.affected:,} people (letters/, mailing_list.csv)."
        ],
        "publication": [MARK.format("whether and where the incident is published")],
        "prevention": proposed,
        "other": [MARK.format("anything else the regulator asks")],
        "reasons_for_delay": [
            MARK.format("reasons, if filed after the deadline")
            if late
            else "Not late at the time of drafting."
        ],
        "sample_notice": [f"See letters/{r.id}-en.pdf."],
        "law_enforcement": [MARK.format("whether and when law enforcement was contacted")],
        "individuals_notified": [
            f"Letters drafted for {o.affected:,} people; "
            + MARK.format("whether and when they were sent, or why individuals are not told")
        ],
        "wisp": [
            MARK.format(f"whether the company {ORG_FLAGS['ma_wisp']}")
            if wisp is None
            else f"{'Yes' if wisp else 'No'}: the org file says whether the company "
            f"{ORG_FLAGS['ma_wisp']} (controller.ma_wisp = {str(wisp).lower()})."
        ],
        "responsible_party": [
            f"The account(s) used: {_md(', '.join(i.principals) or 'unknown')}. "
            + MARK.format("the person responsible, if known")
        ],
        "report_contact": contact,
        "incident_grade": [
            f"{o.affected:,} people's personal information"
            + (f" (plus up to {bounded:,} records the logs bound)" if bounded else "")
            + ": "
            + _md(o.reason)
        ],
    }
    return {
        slot: values[slot] if slot in values else section(slot)
        for slot in {*values, *r.regulator.contents, *BASE_FACTS}
    }


_MARK = re.compile(re.escape(MARK).replace(r"\{\}", r"[^\[\]]*"))


def _md(text: object) -> str:
    """``text`` as inert Markdown; a whole ``[TO COMPLETE: …]`` marker stays as written, so a
    person searching the draft for it finds it."""
    return str(text) if _MARK.fullmatch(str(text)) else markdown(text)


# --- letters ---


def _letters(
    out: Path, facts: Facts, org: Org, by_id: dict[str, Regime], variants: list[Variant]
) -> list[Path]:
    paths = []
    for v in variants:
        r = by_id[v.regime]
        headings = r.individuals.headings if v.lang == "en" else ()
        sections = letter_sections(
            r.individuals.contents,
            facts,
            org,
            v.lang,
            headings,
            {k: list(fs) for k, fs in v.items},
            r.regulator.name,
        )
        title = r.individuals.title if (v.lang == "en" and r.individuals.title) else None
        paths += _render(out / "letters" / v.template, v.lang, facts, org, sections, title)
    return paths


def _render(
    stem: Path, lang: str, facts: Facts, org: Org, sections: list[Section], title: str | None
) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    heading = title or HEADINGS[lang]["title"]
    sender = org.name or MARK.format("the company's name")
    greeting = HEADINGS[lang]["greeting"].format(name="{name}")
    parts = [
        f'<!doctype html><html lang="{lang}"><meta charset="utf-8">',
        f"<title>{html_text(heading)}</title>",
        "<style>body{font:11pt/1.45 sans-serif;max-width:42em;margin:2em auto}"
        "h1{font-size:16pt}h2{font-size:12pt;margin-top:1.2em}.todo{background:#ffe9a8}"
        "</style><body>",
        f"<p>{html_text(sender)}</p><h1>{html_text(heading)}</h1>",
        f"<p>{html_text(greeting)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html_text(s.heading)}</h2>")
        for para in s.body:
            cls = ' class="todo"' if para.startswith("[TO COMPLETE") else ""
            parts.append(f"<p{cls}>{html_text(para)}</p>")
    parts.append(f"<p>{html_text(facts.incident.id)}</p></body></html>")
    html_path = stem.with_suffix(".html")
    html_path.write_text("\n".join(parts), encoding="utf-8")
    pdf_path = stem.with_suffix(".pdf")
    _pdf(pdf_path, lang, sender, heading, greeting, sections, facts.incident.id)
    return [html_path, pdf_path]


_FONTS = {"ko": "HYSMyeongJo-Medium", "ja": "HeiseiMin-W3"}


def _pdf(
    path: Path,
    lang: str,
    sender: str,
    heading: str,
    greeting: str,
    sections: list[Section],
    ref: str,
) -> None:
    """A letter as PDF. Korean and Japanese use the Adobe CID fonts every PDF reader has, so
    nothing has to be installed; text is escaped for reportlab's paragraph markup."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = _FONTS.get(lang, "Helvetica")
    bold = _FONTS.get(lang, "Helvetica-Bold")
    if lang in _FONTS:
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    # 11 pt body: above the 10 pt minimum California sets for notices.
    body = ParagraphStyle("body", fontName=font, fontSize=11, leading=15, spaceAfter=4)
    h1 = ParagraphStyle("h1", fontName=bold, fontSize=16, leading=20, spaceAfter=8)
    h2 = ParagraphStyle("h2", fontName=bold, fontSize=12, leading=16, spaceBefore=8)
    flow = [
        Paragraph(html_text(sender), body),
        Spacer(1, 4 * mm),
        Paragraph(html_text(heading), h1),
        Paragraph(html_text(greeting), body),
    ]
    for s in sections:
        flow.append(Paragraph(html_text(s.heading), h2))
        flow += [Paragraph(html_text(p), body) for p in s.body]
    flow.append(Spacer(1, 6 * mm))
    flow.append(Paragraph(html_text(ref), body))
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=heading,
        author=sender,
        leftMargin=22 * mm,
        rightMargin=22 * mm,
    )
    doc.build(flow)


# --- mailing list ---


ItemsKey = tuple[tuple[str, tuple[str, ...]], ...]  # notice items and their fields


@dataclass(frozen=True)
class Variant:
    """One letter template: a regime's letter in one language for one set of exposed items."""

    regime: str
    lang: str
    template: str
    items: ItemsKey


# Customer ids as Salesforce writes them need no escaping in a CSV cell; any other id is made
# inert by markup.csv_cell (the few there are, in Python).
_PLAIN_ID = "^[A-Za-z0-9_.]+$"
MAILING_COLUMNS = ("customer_id", "regime", "channel", "language", "template")
CHANNELS = ("email", "post", "substitute notice")
# A customer's preferred language as the snapshot gives it: 0 for none of LANGUAGES.
_PREFS: tuple[str | None, ...] = (None, *LANGUAGES)


class _Regroup(Exception):
    """Customers gathered one per exposure (``Facts.per_record``) are there twice: the facts
    must be gathered again with the exposures grouped per customer."""


@dataclass
class _Mailing:
    """The mailing list decided, its rows in table ``ml_rows`` (written by
    :func:`_write_mailing_list`)."""

    rows: int
    variants: list[Variant]
    placeholder: str  # the character each line template holds where the customer id goes


def _mailing_rows(
    store: Store, facts: Facts, a: Assessment, by_id: dict[str, Regime], org: Org
) -> _Mailing:
    """One row per affected customer and regime that must (or may have to) write to them, and
    the letter templates those rows name. The channel and language are the ones scope
    recorded from the snapshot (read from it here only for incidents scoped before); the file
    holds ids and choices, not addresses. Each customer's
    template lists the items exposed about that customer, so no letter tells someone that
    data was taken which was not.

    Set-based: Python decides per kind of customer (place and field sets: which regimes
    write, which notice items, which template number) and writes, for each kind, channel and
    preferred language, the customer's lines of the file as one text with a placeholder for
    the id. The customers — millions in a large breach — are joined to their kind, contact
    and text once, stored one row per customer in id order with the text as an ENUM (one
    byte), and :func:`_write_mailing_list` writes each row's text with its id put in, in that
    order (unnesting a row per regime in the ``COPY`` took three times as long, sorting the
    customer-regime rows four times).

    Raises:
        _Regroup: ``facts`` are per record and a customer is there twice."""
    regimes = sorted(
        (
            by_id[o.regime]
            for o in a.obligations
            if o.recipient == "individuals" and o.status in ("required", "assess")
        ),
        key=lambda r: r.id,
    )
    # Who writes to each kind of customer (a group: place and field sets): regime, fixed
    # language, notice items.
    explicit = explicit_regions(list(by_id.values()))
    writes: dict[Group, list[tuple[Regime, str | None, ItemsKey]]] = {}
    for kind in facts.groups:
        items = tuple((i, tuple(fs)) for i, fs in notice_items(kind.fields).items())
        writes[kind] = [
            (r, _fixed_language(r), items) for r in regimes
            if (r.establishment_covers_all and set(org.establishments) & set(r.countries))
            or r.covers(kind.country, kind.region, explicit)
        ]  # fmt: skip
    numbers = _numbers({(r.id, items) for ws in writes.values() for r, _, items in ws})
    # Kinds someone writes to, numbered from 1.
    written = [(kind, ws) for kind, ws in writes.items() if ws]
    store.execute("CREATE OR REPLACE TEMP TABLE ml_kinds (country VARCHAR, state VARCHAR, "
                  "sets VARCHAR, fieldset UBIGINT, kind INTEGER)")  # fmt: skip
    store.insert("ml_kinds", [(k.country, k.region, k.bits, k.fieldset, n)
                              for n, (k, _) in enumerate(written, 1)])  # fmt: skip
    # Each kind's lines per channel and preferred language: (regime, language, items) of
    # each line, and the text of the lines (the CSV's cells, the id left as a placeholder).
    lines: dict[int, tuple[list[tuple[str, str, ItemsKey]], list[str]]] = {}
    for n, (kind, ws) in enumerate(written, 1):
        for c, channel in enumerate(CHANNELS):
            for p, pref in enumerate(_PREFS):
                lang = _language(pref, kind.country, org.languages)
                chosen = [(r.id, fixed or lang, items) for r, fixed, items in ws]
                cells = [",".join(_csv_field(x) for x in (rid, channel, lang,
                                                          f"{rid}-{lang}{numbers[(rid, items)]}"))
                         for rid, lang, items in chosen]  # fmt: skip
                lines[_code(n, c, p)] = (chosen, cells)
    used_chars = {ch for _, cells in lines.values() for cell in cells for ch in cell}
    placeholder = next(chr(i) for i in range(1, 32) if chr(i) not in used_chars | {"\n", "\r"})
    texts = {code: "\r\n".join(placeholder + "," + cell for cell in cells)
             for code, (_, cells) in lines.items()}  # fmt: skip
    store.execute("CREATE OR REPLACE TEMP TABLE ml_texts (code INTEGER, line VARCHAR)")
    store.insert("ml_texts", sorted(texts.items()))
    # The distinct texts as an ENUM: a row holds a byte or two for its text, not the text.
    kinds_of = ", ".join(lit(t) for t in sorted(set(texts.values())))
    store.execute(
        "CREATE OR REPLACE TEMP TABLE ml_lines AS SELECT code, "
        f"line::{f'ENUM({kinds_of})' if kinds_of else 'VARCHAR'} AS line FROM ml_texts"
    )
    missing, channelless = _rows(store, facts)
    # Never a silent fallback: say why customers are listed for substitute notice.
    if missing:
        files = "; ".join(f"{obj}: {path}" for obj, path in missing)
        a.assumptions.append(
            f"Snapshot files scope read are not there any more ({files}): the e-mail and "
            "postal addresses of their customers were not checked, so those customers are "
            "listed for substitute notice. Run notify where the snapshot is to choose channels."
        )
    if channelless:
        files = "; ".join(f"{obj}: {path}" for obj, path in channelless)
        a.assumptions.append(
            f"Snapshot files with no e-mail or street column ({files}): their customers are "
            "listed for substitute notice. Scope again with a snapshot that has Email or "
            "MailingStreet to choose channels."
        )
    customers = sum(kind.count for kind, _ in written)
    if facts.per_record and (
        store.scalar("SELECT count(*) FROM ml_rows") > customers or _repeated(store)
    ):
        raise _Regroup
    if store.scalar("SELECT count(*) FROM ml_rows") > customers:
        _rows(store, facts, one_per_customer=True)
    # The templates in use: each kind's regimes in the languages its customers read.
    by_text = {texts[code]: chosen for code, (chosen, _) in lines.items()}
    used, unknown = set(), 0
    for text, unknowns in store.execute(
        "SELECT line::VARCHAR, count(*) FILTER (WHERE unknown) FROM ml_rows GROUP BY 1"
    ).rows:
        used |= set(by_text[text])
        unknown += unknowns
    if unknown and not missing:
        a.assumptions.append(
            f"{unknown} customers to notify are not in the snapshot's Contact, Lead or "
            "Account files: listed for substitute notice."
        )
    variants = _variants(regimes, sorted(used), numbers)
    odd = [r[0] for r in store.execute("SELECT customer FROM ml_rows WHERE odd").rows]
    if odd:  # a join would not keep the rows' order: the few odd ids rewritten in place
        store.execute("CREATE OR REPLACE TEMP TABLE ml_shown (customer VARCHAR, shown VARCHAR)")
        store.insert("ml_shown", [(c, _csv_field(csv_cell(c))) for c in odd])
        store.execute("UPDATE ml_rows SET customer = s.shown FROM ml_shown s "
                      "WHERE ml_rows.customer = s.customer")  # fmt: skip
    rows = sum(kind.count * len(ws) for kind, ws in writes.items())
    return _Mailing(rows, variants, placeholder)


def _write_mailing_list(store: Store, mailing: _Mailing, path: Path) -> None:
    """``mailing_list.csv``: each row of ``ml_rows`` as its lines, in the rows' order.

    The text of the lines is the CSV already (each cell as DuckDB's writer would quote it,
    :func:`_csv_field`), so it is written unquoted; the ``COPY`` runs on one thread, which
    keeps the stored order without the ordered multi-thread writer's cost (that took twice
    the CPU for the same file)."""
    header = ident(",".join(MAILING_COLUMNS))
    threads = store.scalar("SELECT current_setting('threads')")
    store.execute("SET threads = 1")
    try:
        with store.ordered():  # no ORDER BY: ml_rows is stored in order and a scan keeps it
            store.execute(
                f"""COPY (SELECT replace(line::VARCHAR, {lit(mailing.placeholder)}, customer)
                        AS {header} FROM ml_rows)
                TO {path_lit(path)} (FORMAT csv, HEADER true, QUOTE '',
                    NEW_LINE {lit(chr(13) + chr(10))})"""
            )
    finally:
        store.execute(f"SET threads = {num(int(threads))}")
    for table in ("notify_customers", "notify_fieldsets", "ml_kinds", "ml_texts", "ml_lines",
                  "ml_rows", "ml_shown"):  # fmt: skip
        store.execute(f"DROP TABLE IF EXISTS {table}")


def _code(kind: int, channel: int, pref: int) -> int:
    """The number of a kind's lines for a channel (in CHANNELS) and preferred language (in
    _PREFS): ``ml_lines.code``, computed the same way in SQL by :func:`_rows`."""
    return (kind * len(CHANNELS) + channel) * len(_PREFS) + pref


# DuckDB's CSV writer quotes a cell that is empty or holds one of these (its delimiter, quote,
# the line breaks and its comment character), doubling the quotes inside.
_CSV_QUOTED = frozenset(',"\n\r#')


def _csv_field(text: str) -> str:
    """``text`` as a cell of ``mailing_list.csv``, as DuckDB's CSV writer writes it with
    quotes on: the lines are written with quoting off, each cell already in this form
    (tests check it against DuckDB's writer for every ASCII character)."""
    if text == "" or not _CSV_QUOTED.isdisjoint(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _repeated(store: Store) -> bool:
    """Whether a customer is in ``ml_rows`` twice: ``ml_rows`` is in id order, so each row is
    compared with the next (by position; a grouping of millions of ids costs several times
    more)."""
    with store.ordered():
        return bool(
            store.scalar(
                "SELECT count(*) FROM (SELECT customer FROM ml_rows) a POSITIONAL JOIN "
                "(SELECT customer AS next FROM ml_rows OFFSET 1) b WHERE a.customer = b.next"
            )
        )


def _numbers(used: set[tuple[str, ItemsKey]]) -> dict[tuple[str, ItemsKey], str]:
    """The suffix of each (regime, item set)'s templates: ``-n`` numbering a regime's item
    sets by size then content when it has more than one (``eu-gdpr-fr-2`` and
    ``eu-gdpr-en-2`` list the same items), none when it has one."""
    out = {}
    for rid in {rid for rid, _ in used}:
        sets = sorted((k for r, k in used if r == rid), key=lambda k: (len(k), k))
        out |= {(rid, k): f"-{n}" if len(sets) > 1 else "" for n, k in enumerate(sets, 1)}
    return out


def _variants(
    regimes: list[Regime], used: list[tuple[str, str, ItemsKey]],
    numbers: dict[tuple[str, ItemsKey], str],
) -> list[Variant]:  # fmt: skip
    """The templates in use, from (regime id, language, items) in use: per regime, each set of
    exposed items its recipients have, in each language they read, and in English always."""
    out = []
    for r in regimes:
        mine = [row for row in used if row[0] == r.id]
        sets = sorted({row[2] for row in mine}, key=lambda k: (len(k), k))
        langs = {(row[1], row[2]) for row in mine} | {("en", k) for k in sets}
        for k in sets:
            for lang in sorted(lang for lang, key in langs if key == k):
                out.append(Variant(r.id, lang, f"{r.id}-{lang}{numbers[(r.id, k)]}", k))
    return out


_COUNTRY_LANG = {"KR": "ko", "JP": "ja", "FR": "fr", "BE": "fr", "LU": "fr", "MC": "fr"}


def _language(pref: str | None, country: str | None, writes: list[str]) -> str:
    """A customer's letter language where the regime names none: their preferred language,
    else their country's, among those the controller writes in (``controller.languages``;
    any, when the org file names none); else the first of those with a template; else
    English."""
    for lang in (pref, _COUNTRY_LANG.get(country or "", "en")):
        if lang and (not writes or lang in writes):
            return lang
    return next((w for w in writes if w in LANGUAGES), "en")


def _fixed_language(r: Regime) -> str | None:
    """The language a regime's letters must be in, if it names one (English when that
    language has no template)."""
    if not r.individuals.languages:
        return None
    first = r.individuals.languages[0]
    return first if first in LANGUAGES else "en"


def _rows(
    store: Store, facts: Facts, one_per_customer: bool = False
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Table ``ml_rows``: each affected customer someone writes to, in id order, with the
    text of their lines (``ml_lines``, by their kind in ``ml_kinds`` and their channel and
    preferred language), whether the snapshot's person files lack them (``unknown``) and
    whether their id needs escaping (``odd``). Returns the (object, path) of each person
    file that had to be read and is gone, and of each that has no e-mail or street column.

    Scope records each exposure's channel and language while it has the snapshot loaded; a
    scope made before it did leaves them NULL, and the snapshot is read here instead
    (:func:`_snapshot_contacts`), with the same SQL (``scope.snapshot.contact_columns``)."""
    iid = lit(facts.incident.id)
    if facts.per_record:  # each exposure its own customer, its one field set its kind
        customers = (
            "(SELECT coalesce(customer_id, record_id) AS customer, country, us_state AS state, "
            f"fieldset, {reach('channel')} AS reach, language "
            f"FROM exposures WHERE incident_id = {iid})"
        )
        same_kind = "w.fieldset = c.fieldset"
    else:
        customers = "notify_customers"
        same_kind = "w.sets::BIT IS NOT DISTINCT FROM c.sets"
    prefs = " ".join(f"WHEN {lit(x)} THEN {num(i)}" for i, x in enumerate(_PREFS) if x)
    recorded = store.scalar(
        f"SELECT count(*) = count(channel) FROM exposures WHERE incident_id = {iid}"
    )
    kinds = f"""FROM {customers} c JOIN ml_kinds w ON w.country IS NOT DISTINCT FROM c.country
                AND w.state IS NOT DISTINCT FROM c.state AND {same_kind}"""
    if recorded:
        missing: list[tuple[str, Path]] = []
        channelless = [
            (obj, Path(meta["path"]))
            for obj, meta in (facts.scope.get("snapshot") or {}).items()
            if meta.get("no_channel")
        ]
        picked = f"""SELECT c.customer, w.kind, least(c.reach, 2) AS channel,
                CASE c.language {prefs} ELSE 0 END AS pref, c.reach = 3 AS unknown {kinds}"""
    else:
        contacts, missing, channelless = _snapshot_contacts(store, facts)
        picked = f"""SELECT c.customer, w.kind, k.n,
                coalesce(least({reach(f"k.{CHANNEL}")}, 2), 2) AS channel,
                CASE k.{LANGUAGE} {prefs} ELSE 0 END AS pref, k.id15 IS NULL AS unknown {kinds}
            LEFT JOIN ({contacts}) k ON k.id15 = left(c.customer, 15)"""  # fmt: skip
        if one_per_customer:
            picked = f"""SELECT customer, any_value(kind) AS kind, arg_max(channel, n) AS channel,
                    arg_max(pref, n) AS pref, bool_and(unknown) AS unknown
                FROM ({picked}) GROUP BY customer"""  # fmt: skip
    code = f"(p.kind * {num(len(CHANNELS))} + p.channel) * {num(len(_PREFS))} + p.pref"
    with store.ordered():
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE ml_rows AS
            SELECT p.customer, t.line, p.unknown,
                NOT regexp_matches(p.customer, {lit(_PLAIN_ID)}) AS odd
            FROM ({picked}) p JOIN ml_lines t ON t.code = {code}
            ORDER BY p.customer"""
        )
    return missing, channelless


def _snapshot_contacts(
    store: Store, facts: Facts
) -> tuple[str, list[tuple[str, Path]], list[tuple[str, Path]]]:
    """SQL of (id15, channel, language, n) for every row of the snapshot's person files
    that are still there — for a scope that did not record channels —; the (object, path) of
    those that are gone, and of those with no e-mail or street column. A Salesforce id names
    one record of one object, so a customer matches one row and a plain join suffices; for a
    file that repeats an id the caller builds ``ml_rows`` again with one row per customer,
    the later file's row winning."""
    parts, missing, channelless = [], [], []
    for n, (obj, meta) in enumerate((facts.scope.get("snapshot") or {}).items()):
        path = Path(meta["path"])
        if obj not in PERSON_OBJECTS:
            continue
        if not path.exists():
            missing.append((obj, path))
            continue
        f = SnapshotFile.open(store, obj, path)
        if no_channel(f, facts.scope.get("records_by_object") or {}):
            channelless.append((obj, path))
        parts.append(
            f"""SELECT left(s."Id", 15) AS id15, {contact_columns(f)}, {num(n)} AS n
            FROM {f.source} s"""
        )
    none = (
        f"SELECT NULL::VARCHAR AS id15, NULL::{CHANNEL_TYPE} AS {CHANNEL}, "
        f"NULL::VARCHAR AS {LANGUAGE}, 0 AS n WHERE false"
    )
    return " UNION ALL ".join(parts or [none]), missing, channelless


# --- the internal record, transparency and the summary ---


def _breach_record(
    out: Path, facts: Facts, org: Org, a: Assessment, by_id: dict[str, Regime]
) -> Path:
    """The record of the breach kept whether or not anyone is notified: its facts, effects
    and remedial action (GDPR Art. 33(5)), for every regime covering affected people that
    requires one."""
    i, sc = facts.incident, facts.scope
    owed = [by_id[rid] for rid in sorted(a.population) if by_id[rid].record]
    items = items_text(notice_items(sc.get("fields", [])), "en")
    lines = [
        f"# Breach record — {i.id}",
        "",
        "Kept whether or not a regulator or anyone affected is notified. Required by:",
        "",
        *[f"- {_md(r.name)}: {_md(r.record)}" for r in owed],
        *([] if owed else ["- no regime covering the affected people names one; keep it anyway"]),
        "",
        "## Facts",
        "",
        f"- Vector: {_md(facts.vector)}",
        f"- First malicious activity: {i.first_malicious_at.removesuffix('Z')} UTC; detected "
        f"{i.first_alert_at.removesuffix('Z')} UTC; last seen {i.last_event_at.removesuffix('Z')}"
        f" UTC; company aware {facts.aware_at.isoformat()} UTC",
        f"- Accounts used: {_md(', '.join(i.principals) or 'unknown')}",
        "",
        "## Effects",
        "",
        f"- {facts.affected:,} people listed, {facts.records:,} records; "
        f"data exposed: {_md(items)}",
        *(
            [f"- up to {facts.possible:,} more records that the logs bound but cannot list"]
            if facts.possible
            else []
        ),
        "",
        "## Remedial action",
        "",
        *([f"- {_md(m)}" for m in org.measures_taken] or [MARK.format("measures taken")]),
        "",
        "## Notifications decided",
        "",
        *[
            f"- {_md(o.regime_name)} → {o.recipient}: {o.status} — {_md(o.reason)}"
            for o in a.obligations
        ],
        "",
    ]
    path = out / "breach_record.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- transparency and the summary ---


def _transparency(facts: Facts, org: Org) -> dict[str, dict]:
    """The five facts the press found missing in 2025 notices: present or flagged absent."""
    i = facts.incident
    timeline_parts = {
        "first malicious": i.first_malicious_at,
        "detected": i.first_alert_at,
        "aware": facts.aware_at.isoformat() + "Z",
        "contained": org.contained_at.isoformat() + "Z" if org.contained_at else None,
    }
    missing_time = [k for k, v in timeline_parts.items() if not v]
    return {
        "affected count": {"present": facts.affected > 0, "value": facts.affected},
        "data categories": {"present": bool(facts.categories), "value": facts.categories},
        "timeline": {"present": not missing_time, "value": timeline_parts, "missing": missing_time},
        "attack vector": {"present": bool(facts.vector), "value": facts.vector},
        "remediation": {
            "present": bool(org.measures_taken),
            "value": org.measures_taken,
            "missing": []
            if org.measures_taken
            else ["measures taken (org file: response.measures_taken)"],
        },
    }


def _markdown(facts: Facts, a: Assessment, transparency: dict) -> str:
    i = facts.incident
    lines = [
        f"# Notification obligations — {i.id}",
        "",
        f"Affected customers: {facts.affected:,}; data exposed: "
        f"{_md(items_text(notice_items(facts.scope.get('fields', [])), 'en'))}; aware at "
        f"{facts.aware_at.isoformat()} UTC.",
        "",
    ]
    if a.assumptions:
        lines += ["**Assumptions:**", "", *[f"- {_md(x)}" for x in a.assumptions], ""]
    lines += [
        "| regime | recipient | regulator / to | affected | trigger met | deadline (UTC) "
        "| time left | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in a.obligations:
        left = (
            "-"
            if o.time_left_hours is None
            else (
                f"{o.time_left_hours:.0f} h"
                if o.time_left_hours >= 0
                else f"overdue by {-o.time_left_hours:.0f} h"
            )
        )
        lines.append(
            f"| {_md(o.regime_name)} | {o.recipient} | {_md(o.to)} | {o.affected:,} | "
            f"{'yes' if o.trigger_met else 'no'} | {_md(o.deadline_utc or o.deadline_text)} | "
            f"{left} | **{o.status}** — {_md(o.reason)} |"
        )
    lines += ["", "## Transparency check", ""]
    for k in ("affected count", "data categories", "timeline", "attack vector", "remediation"):
        t = transparency[k]
        flag = "present" if t["present"] else "**ABSENT**"
        extra = f" (missing: {', '.join(t.get('missing') or [])})" if t.get("missing") else ""
        lines.append(f"- {k}: {flag}{_md(extra)}")
    lines += [
        "",
        "Every rule cites its statute and says what stays uncertain: see "
        "obligations.json and `src/crmwatch/notify/jurisdictions/`. Not legal advice: "
        "counsel decides.",
        "",
    ]
    return "\n".join(lines)
