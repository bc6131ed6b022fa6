"""``crmwatch contain INCIDENT``: the actions that stop an incident, proposed as the exact
requests they take, and sent only with ``--apply``.

For the incident's people and apps:

- Salesforce: freeze each user (``UserLogin.IsFrozen = true``: they cannot sign in, their
  sessions stay until ended), end their sessions (delete each ``AuthSession``), revoke the
  tokens of each connected app they authorised during the incident (``OauthToken`` rows of
  that app and user; each revoked at ``/services/oauth2/revoke`` with its ``DeleteToken``),
  and block the app — which the REST API does not offer, so it is proposed as a step for
  Setup → Connected Apps OAuth Usage → Block.
- Okta: clear the user's sessions and OAuth tokens, reset their factors (so an attacker's
  enrolled device is gone), suspend the user.

Finding the ids (a user's ``UserLogin``, their sessions, the app's tokens, the Okta user)
takes read requests, which a dry run sends too; every write request is printed exactly, and
with ``--apply`` sent once, its answer written to ``containment_actions`` with who ran it and
when. A principal listed in ``[respond] protected`` (break-glass administrators) is never
acted on.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from crmwatch.connectors.http import ConnectorError, Http
from crmwatch.incidents import Incident
from crmwatch.schema import Category
from crmwatch.sql import soql_lit
from crmwatch.store import Store


@dataclass
class Request:
    method: str
    path: str
    body: str | None = None  # JSON or a form, as sent
    content_type: str | None = None
    secret_body: str | None = None  # what to print instead of a body that holds a secret

    def shown(self) -> str:
        body = self.secret_body or self.body
        return f"{self.method} {self.path}" + (f"  {body}" if body else "")


@dataclass
class Action:
    system: str  # salesforce | okta
    kind: str
    target: str
    why: str
    requests: list[Request] = field(default_factory=list)
    manual: str | None = None  # what a person must do where no API does it
    refused: str | None = None  # why crmwatch will not act
    results: list[str] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def granted_apps(store: Store, incident: Incident) -> list[str]:
    """The connected apps authorised within the incident (its OAuth grant events): the apps
    whose tokens to revoke. "Browser" or "REST API" are how people connect, not apps."""
    return [r[0] for r in store.execute(
        "SELECT DISTINCT e.client_app FROM incident_events i JOIN events e USING (event_id) "
        "WHERE i.incident_id = ? AND e.category = ? AND e.client_app IS NOT NULL ORDER BY 1",
        [incident.id, Category.OAUTH_GRANT.value],
    ).rows]  # fmt: skip


@dataclass(frozen=True)
class Person:
    """One of the incident's people, as the store knows them: their Salesforce user id and
    login name from the same events (never paired by list position), and whether they have
    Okta events under that login."""

    name: str
    user_id: str | None
    okta: bool

    def protected_by(self, protected: set[str]) -> bool:
        """Protected by login name or by Salesforce id, 15- or 18-character, any case."""
        keys = {self.name.lower()}
        if self.user_id:
            keys.add(self.user_id[:15].lower())
        return bool(keys & {p[:15].lower() if _is_sf_id(p) else p.lower() for p in protected})


def _is_sf_id(value: str) -> bool:
    return len(value) in (15, 18) and value.isalnum() and value[:3] == "005"


def people(store: Store, incident: Incident) -> list[Person]:
    """Each principal with the Salesforce user id its own events carry (if any) and whether
    it signs in through Okta."""
    names = sorted({p.lower() for p in incident.principals})
    ids = dict(store.execute(
        "SELECT lower(user_name), any_value(left(user_id, 15)) FROM events_base "
        "WHERE source = 'salesforce' AND user_id IS NOT NULL AND user_name IS NOT NULL "
        "AND list_contains(?::VARCHAR[], lower(user_name)) GROUP BY 1", [names]).rows)  # fmt: skip
    okta = {r[0] for r in store.execute(
        "SELECT DISTINCT lower(user_name) FROM events_base WHERE source = 'okta' "
        "AND list_contains(?::VARCHAR[], lower(user_name))", [names]).rows}  # fmt: skip
    out = [Person(n, ids.get(n), n in okta) for n in names]
    # principals known only by id (no login name in any event)
    named = {p.user_id for p in out if p.user_id}
    out += [Person(u, u[:15], False) for u in incident.user_ids
            if u[:15] not in named and u.lower() not in names]  # fmt: skip
    return out


def plan_salesforce(http: Http, api: str, who: list[Person], apps: list[str],
                    protected: set[str]) -> list[Action]:  # fmt: skip
    def query(soql: str) -> list[dict]:
        body, _ = http.get_json(f"{api}/query?q={quote(soql)}")
        return body.get("records") or [] if isinstance(body, dict) else []

    actions: list[Action] = []
    for person in who:
        name, why = person.name, f"{person.name} is the incident's principal"
        if person.protected_by(protected):
            for kind in ("freeze_user", "end_sessions"):
                actions.append(
                    Action(
                        "salesforce",
                        kind,
                        name,
                        why,
                        refused="protected in crmwatch.toml [respond]",
                    )
                )
            continue
        if not person.user_id:
            actions.append(
                Action(
                    "salesforce",
                    "freeze_user",
                    name,
                    why,
                    manual="no Salesforce user id in the logs for this login: "
                    "freeze it in Setup → Users",
                )
            )
            continue
        user_id = person.user_id
        logins = query(f"SELECT Id, IsFrozen FROM UserLogin WHERE UserId = {soql_lit(user_id)}")
        freeze = Action("salesforce", "freeze_user", name, why)
        for row in logins:
            if not row.get("IsFrozen"):
                freeze.requests.append(
                    Request(
                        "PATCH",
                        f"{api}/sobjects/UserLogin/{quote(str(row['Id']), safe='')}",
                        json.dumps({"IsFrozen": True}),
                        "application/json",
                    )
                )
        if not logins:
            freeze.manual = "no UserLogin row for this user: freeze it in Setup → Users"
        actions.append(freeze)
        sessions = query(f"SELECT Id FROM AuthSession WHERE UsersId = {soql_lit(user_id)}")
        actions.append(
            Action(
                "salesforce",
                "end_sessions",
                name,
                why,
                [
                    Request(
                        "DELETE", f"{api}/sobjects/AuthSession/{quote(str(row['Id']), safe='')}"
                    )
                    for row in sessions
                ],
            )
        )
        for app in apps:
            tokens = query(
                "SELECT Id, DeleteToken FROM OauthToken WHERE AppName = "
                f"{soql_lit(app)} AND UserId = {soql_lit(user_id)}"
            )
            actions.append(
                Action(
                    "salesforce",
                    "revoke_tokens",
                    f"{app} ({name})",
                    f"{app} was authorised during the incident",
                    [
                        Request(
                            "POST",
                            "/services/oauth2/revoke",
                            urlencode({"token": t["DeleteToken"]}),
                            "application/x-www-form-urlencoded",
                            f"token=<DeleteToken of OauthToken {t['Id']}>",
                        )
                        for t in tokens
                        if t.get("DeleteToken")
                    ],
                )
            )
    for app in apps:
        actions.append(
            Action(
                "salesforce",
                "block_app",
                app,
                f"{app} was authorised during the incident",
                manual="Setup → Connected Apps OAuth Usage → " + app + " → Block "
                "(no REST API does this)",
            )
        )
    return actions


def plan_okta(http: Http, who: list[Person], protected: set[str]) -> list[Action]:
    """Okta's actions for each person with Okta events. A login Okta does not know (404) is
    said, and the other people's actions still planned."""
    actions: list[Action] = []
    for person in who:
        if not person.okta:
            continue
        login = person.name
        why = f"{login} is the incident's principal"
        if person.protected_by(protected):
            for kind in ("clear_sessions", "reset_factors", "suspend_user"):
                actions.append(
                    Action("okta", kind, login, why, refused="protected in crmwatch.toml [respond]")
                )
            continue
        try:
            user, _ = http.get_json(f"/api/v1/users/{quote(login, safe='@.')}")
        except ConnectorError as e:
            actions.append(
                Action(
                    "okta",
                    "clear_sessions",
                    login,
                    why,
                    manual=f"the Okta user could not be read ({e}); act in the Okta admin console",
                )
            )
            continue
        uid = quote(str(user.get("id", "")) if isinstance(user, dict) else "", safe="")
        if not uid:
            actions.append(
                Action(
                    "okta", "clear_sessions", login, why, manual="Okta answered without a user id"
                )
            )
            continue
        suspended = isinstance(user, dict) and user.get("status") == "SUSPENDED"
        actions += [
            Action(
                "okta",
                "clear_sessions",
                login,
                why,
                [Request("DELETE", f"/api/v1/users/{uid}/sessions?oauthTokens=true")],
            ),
            Action(
                "okta",
                "reset_factors",
                login,
                why + " (an attacker may have enrolled a factor)",
                [Request("POST", f"/api/v1/users/{uid}/lifecycle/reset_factors")],
            ),
            Action(
                "okta",
                "suspend_user",
                login,
                why,
                [] if suspended else [Request("POST", f"/api/v1/users/{uid}/lifecycle/suspend")],
            ),
        ]
    return actions


def apply(store: Store, incident: Incident, actions: list[Action],
          clients: dict[str, Http], dry_run: bool) -> None:  # fmt: skip
    """Send each action's requests once (unless ``dry_run``) and record every one."""
    who = getpass.getuser()
    for a in actions:
        for r in a.requests:
            status, answer = "planned", ""
            if a.refused:
                status = "refused"
            elif not dry_run:
                try:
                    headers = {"Content-Type": r.content_type} if r.content_type else {}
                    resp = clients[a.system].request(
                        r.method, r.path, r.body.encode() if r.body else None, headers
                    )
                    status, answer = (
                        f"HTTP {resp.status}",
                        resp.body[:300].decode("utf-8", "replace"),
                    )
                except ConnectorError as e:
                    status, answer = "failed", str(e)
            a.results.append(status)
            store.execute(
                "INSERT INTO containment_actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [incident.id, _now(), who, a.system, a.kind, a.target, r.shown(),
                 dry_run, status, answer],
            )  # fmt: skip


def recorded(store: Store, incident_id: str) -> list[dict]:
    """Every containment request proposed, sent or refused for the incident, newest first."""
    return store.execute(
        "SELECT done_at, operator, system, kind, target, request, dry_run, status "
        "FROM containment_actions WHERE incident_id = ? ORDER BY done_at DESC LIMIT 200",
        [incident_id],
    ).dicts()
