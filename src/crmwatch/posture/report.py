"""An audit as OCSF Compliance Findings (class 2003) and as an HTML report for an auditor.

OCSF 1.4.0 (schema.ocsf.io/1.4.0/classes/compliance_finding): class_uid 2003 in category 2
(Findings); ``compliance`` holds ``standards``, ``control``, ``requirements`` and ``status_id``
(1 Pass, 2 Warning, 3 Fail; 0 Unknown); ``finding_info`` the check; ``resources`` the subjects
that failed. One record per check: failed, passed, or unknown when the inputs could not tell.

The HTML report is one self-contained file with no script and a Content-Security-Policy that
forbids any; every value from the org's files (user names, app labels, file names) goes
through :func:`crmwatch.markup.html_text`, and links are only ever the checks' own http(s)
sources.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from crmwatch import __version__
from crmwatch.detect.ocsf import SEVERITY, finding_head, metadata
from crmwatch.markup import html_text
from crmwatch.posture.audit import Audit, Finding, Outcome
from crmwatch.posture.checks import CONTROLS, Check

CLASS_UID = 2003
STATUS = {"pass": (1, "Pass"), "fail": (3, "Fail"), "not_assessed": (0, "Unknown")}
STANDARD = "crmwatch posture checks"


@cache
def controls() -> dict[str, dict[str, Any]]:
    """The four controls the PIPC cited (controls.yaml): title, citation, source."""
    text = (resources.files("crmwatch.posture") / "controls.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert set(data) == set(CONTROLS), "controls.yaml names exactly the four controls"
    return data


def to_ocsf(audit: Audit, checks: list[Check]) -> list[dict[str, Any]]:
    by_id = {c.id: c for c in checks}
    found = {f.check_id: f for f in audit.findings if f.drift is None}
    out = [_record(audit, by_id[o.check_id], o, found.get(o.check_id)) for o in audit.outcomes
           if o.check_id in by_id]  # fmt: skip
    for f in audit.findings:
        if f.drift is not None:
            out.append(_drift_record(audit, f))
    return out


def _base(audit: Audit, severity: str, message: str) -> dict[str, Any]:
    return {
        **finding_head(CLASS_UID, "Compliance Finding", audit.audited_at, severity),
        "message": message,
        "metadata": metadata(correlation_uid=audit.audit_id),
    }


def _resources(f: Finding | None) -> list[dict[str, Any]]:
    if f is None:
        return []
    return [{"name": s["name"], "type": f.subject_kind} for s in f.subjects]


def _record(audit: Audit, check: Check, o: Outcome, f: Finding | None) -> dict[str, Any]:
    status_id, status = STATUS[o.status]
    record = _base(audit, check.severity if o.status == "fail" else "informational",
                   f"{check.title}: {len(o.failing)} failing" if o.status == "fail"
                   else f"{check.title}: {status.lower()}")  # fmt: skip
    record |= {
        "status_id": 1,
        "status": "New",
        "finding_info": {
            "uid": f"{audit.audit_id}:{check.id}",
            "title": check.title,
            "desc": check.protects_against,
            "types": ["Configuration"],
            "analytic": {"uid": check.id, "name": check.title, "type_id": 1, "type": "Rule"},
        },
        "compliance": {
            "standards": [STANDARD] + [s["cite"] for s in check.sources],
            "control": check.id,
            "requirements": [controls()[c]["title"] for c in check.controls],
            "status_id": status_id,
            "status": status,
            **({"status_detail": o.why_not} if o.why_not else {}),
        },
        "resources": _resources(f),
        "remediation": {"desc": check.remediation,
                        "references": [s["url"] for s in check.sources if s.get("url")]},
        "unmapped": {"undetermined": o.undetermined, "judged": o.judged},
    }  # fmt: skip
    return record


def _drift_record(audit: Audit, f: Finding) -> dict[str, Any]:
    record = _base(audit, f.severity, f"{f.title} ({f.drift})")
    record |= {
        "status_id": 1,
        "status": "New",
        "finding_info": {"uid": f"{audit.audit_id}:{f.check_id}:drift", "title": f.title,
                         "desc": f"{f.drift}: {f.protects_against}",
                         "types": ["Configuration", "Drift"]},
        "compliance": {"standards": [STANDARD], "control": f.check_id,
                       "requirements": [controls()[c]["title"] for c in f.controls],
                       "status_id": 3, "status": "Fail", "status_detail": f.drift},
        "resources": _resources(f),
        "remediation": {"desc": f.remediation},
    }  # fmt: skip
    return record


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; " \
      "form-action 'none'"  # fmt: skip
STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}"
    "table{border-collapse:collapse;width:100%;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.critical{color:#a00;font-weight:bold}.high{color:#c40}"
    ".medium{color:#a70}.small{color:#666;font-size:90%}"
)
MAX_SUBJECTS = 25


def _link(source: dict[str, str]) -> str:
    text = html_text(source["cite"]) + f" <span class=small>[{html_text(source['kind'])}]</span>"
    url = source.get("url", "")
    if url.startswith(("https://", "http://")):
        return f'<a href="{html_text(url)}" rel="noreferrer">{text}</a>'
    return text


def _subjects(f: Finding) -> str:
    items = []
    for s in f.subjects[:MAX_SUBJECTS]:
        extra = "; ".join(
            f"{html_text(k)}: {html_text(', '.join(map(str, v)) if isinstance(v, list) else v)}"
            for k, v in s.items() if k != "name" and v not in (None, [], "")
        )  # fmt: skip
        note = f" <span class=small>({extra})</span>" if extra else ""
        items.append(f"<li>{html_text(s['name'])}{note}</li>")
    more = len(f.subjects) - MAX_SUBJECTS
    if more > 0:
        items.append(f"<li>… and {more:,} more (the JSON output lists every one)</li>")
    return "<ul>" + "".join(items) + "</ul>"


def to_html(audit: Audit, checks: list[Check]) -> str:
    """The audit as one HTML page: summary, findings, the PIPC's controls, gaps in the input."""
    by_id = {c.id: c for c in checks}
    ordered = sorted(audit.findings, key=lambda f: (-SEVERITY.get(f.severity, 0), f.check_id))
    findings = [f for f in ordered if f.drift is None]
    drifts = [f for f in ordered if f.drift is not None]
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    status: dict[str, int] = {}
    for o in audit.outcomes:
        status[o.status] = status.get(o.status, 0) + 1
    h = html_text
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>crmwatch posture audit {h(audit.audit_id)}</title><style>{STYLE}</style>",
        "</head><body>",
        f"<h1>Posture audit {h(audit.audit_id)}</h1>",
        f"<p>Audited {h(audit.audited_at.isoformat(timespec='seconds'))}Z, ages as of "
        f"{h(audit.as_of.isoformat(timespec='seconds'))}Z, from {len(audit.files)} files "
        f"under: {h(', '.join(audit.sources))}. crmwatch {h(__version__)}.</p>",
        f"<h2>Summary</h2><p>{len(audit.outcomes)} checks: {status.get('fail', 0)} with a "
        f"finding, {status.get('pass', 0)} without, {status.get('not_assessed', 0)} not "
        f"assessed (the inputs did not tell); {len(drifts)} changes for the worse since the "
        "previous audit.</p>",
        "<table><tr><th>severity</th><th>findings</th></tr>",
        *(f"<tr><td class={lvl}>{lvl}</td><td>{counts[lvl]}</td></tr>"
          for lvl in ("critical", "high", "medium", "low", "informational") if lvl in counts),
        "</table>",
    ]  # fmt: skip
    for heading, rows in (("Findings", findings), ("Changes since the previous audit", drifts)):
        if not rows:
            continue
        parts.append(f"<h2>{heading}</h2><table><tr><th>severity</th><th>check</th>"
                     "<th>subjects</th><th>why it matters</th><th>fix</th>"
                     "<th>sources</th></tr>")  # fmt: skip
        for f in rows:
            drift = f"<br><b>change:</b> {h(f.drift)}" if f.drift else ""
            parts.append(
                f"<tr><td class={h(f.severity)}>{h(f.severity)}</td><td><b>{h(f.title)}</b>"
                f"<br><span class=small>{h(f.check_id)}</span>{drift}</td>"
                f"<td>{len(f.subjects):,}{_subjects(f)}</td><td>{h(f.protects_against)}</td>"
                f"<td>{h(f.remediation)}</td>"
                f"<td>{'<br>'.join(_link(s) for s in f.sources)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Controls the PIPC cited</h2><p>Each check is worded as the gap it looks "
                 "for: <b>finding</b> means the gap is there, <b>no finding</b> that the "
                 "inputs show it is not.</p><table><tr><th>control</th>"
                 "<th>cited as</th><th>checks</th></tr>")  # fmt: skip
    for key, c in controls().items():
        rows = [
            o for o in audit.outcomes if o.check_id in by_id and key in by_id[o.check_id].controls
        ]
        words = {"fail": "finding", "pass": "no finding", "not_assessed": "not assessed"}
        status_text = "<br>".join(f"{h(o.title)} — <b>{words[o.status]}</b>" for o in rows)
        parts.append(f"<tr><td>{h(c['title'])}</td><td>{h(c['cited'])}"
                     f"<br>{_link(c['source'])}</td><td>{status_text}</td></tr>")  # fmt: skip
    parts.append("</table>")
    unknown = [o for o in audit.outcomes if o.status == "not_assessed"]
    if unknown:
        parts.append("<h2>Not assessed</h2><p>The inputs did not tell; give these to judge "
                     "them.</p><ul>")  # fmt: skip
        parts += [f"<li>{h(o.title)}: {h(o.why_not or '')}</li>" for o in unknown]
        parts.append("</ul>")
    if audit.problems:
        parts.append("<h2>Inputs not read, or read in part</h2><ul>")
        parts += [f"<li>{h(p.where)}: {h(p.reason)}</li>" for p in audit.problems]
        parts.append("</ul>")
    if audit.model.skipped:
        parts.append(f"<p class=small>{audit.model.skipped:,} other files under the inputs "
                     "(Apex, layouts, documents) are not configuration posture "
                     "reads.</p>")  # fmt: skip
    parts.append("</body></html>\n")
    return "\n".join(parts)
