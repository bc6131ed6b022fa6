"""The console's people: accounts with argon2 hashes, sessions, CSRF tokens, roles, and the
audit trail of what exposed customer identifiers.

A session cookie is a random token; the store keeps only its SHA-256, so a copy of the store
opens no session. Each session has its own CSRF token, which every form carries back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crmwatch.errors import UsageError
from crmwatch.store import Store

ROLES = ("admin", "responder", "privacy", "read-only")
# Who may see a customer's identifier unmasked, or download the mailing list (customer ids).
MAY_REVEAL = frozenset({"admin", "privacy"})
SESSION_HOURS = 8
MIN_PASSWORD = 12
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_hasher = PasswordHasher()


@cache
def _dummy() -> str:
    """Verified against when the name is unknown, so a wrong name costs as long as a wrong
    password (made on first use: hashing costs 0.2 s, too much for every CLI start)."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    csrf: str

    @property
    def may_reveal(self) -> bool:
        return self.role in MAY_REVEAL


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(store: Store, name: str, role: str, password: str) -> None:
    """Create or replace an account (a new password ends the account's sessions)."""
    if not _NAME.fullmatch(name):
        raise UsageError("a user name is 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"a password has at least {MIN_PASSWORD} characters")
    with store.transaction():
        store.execute("DELETE FROM console_sessions WHERE name = ?", [name])
        store.execute(
            "INSERT OR REPLACE INTO console_users VALUES (?, ?, ?, ?)",
            [name, role, _hasher.hash(password), _now()],
        )


def remove_user(store: Store, name: str) -> bool:
    with store.transaction():
        store.execute("DELETE FROM console_sessions WHERE name = ?", [name])
        found = store.execute("DELETE FROM console_users WHERE name = ? RETURNING name", [name])
    return bool(found.rows)


def users(store: Store) -> list[dict]:
    return store.execute("SELECT name, role, created_at FROM console_users ORDER BY name").dicts()


def password_hash(store: Store, name: str) -> str | None:
    row = store.execute("SELECT password_hash FROM console_users WHERE name = ?", [name]).first()
    return row[0] if row else None


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches (argon2: about 0.1 s and 64 MiB, so the console runs it
    off its event loop). An unknown name is checked against a dummy hash, so it costs as
    long as a wrong password."""
    try:
        _hasher.verify(stored or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def open_session(store: Store, name: str) -> str:
    """A new session's cookie token (and expired sessions cleared away)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    store.execute("DELETE FROM console_sessions WHERE expires_at <= ?", [now])
    store.execute(
        "INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?)",
        [_digest(token), name, secrets.token_urlsafe(32), now,
         now + dt.timedelta(hours=SESSION_HOURS)],
    )  # fmt: skip
    return token


def session(store: Store, token: str | None) -> Session | None:
    """The live session a cookie names, or None."""
    if not token:
        return None
    row = store.execute(
        "SELECT s.name, u.role, s.csrf FROM console_sessions s JOIN console_users u USING "
        "(name) WHERE s.token_hash = ? AND s.expires_at > ?",
        [_digest(token), _now()],
    ).first()
    return Session(*row) if row else None


def log_out(store: Store, token: str) -> None:
    store.execute("DELETE FROM console_sessions WHERE token_hash = ?", [_digest(token)])


def audit(store: Store, who: Session, action: str, incident_id: str, target: str,
          remote: str) -> None:  # fmt: skip
    """Write down that ``who`` saw or took customer identifiers."""
    store.execute(
        "INSERT INTO console_audit VALUES (?, ?, ?, ?, ?, ?)",
        [_now(), who.name, action, incident_id, target, remote],
    )


def audit_trail(store: Store, limit: int = 200) -> list[dict]:
    return store.execute(
        "SELECT done_at, name, action, incident_id, target, remote FROM console_audit "
        "ORDER BY done_at DESC LIMIT ?",
        [limit],
    ).dicts()


@dataclass
class Limiter:
    """Failed logins per address and per name: after ``limit`` within ``window`` seconds,
    that address (or name) waits out the window — guessing stays slow, and one address
    cannot lock out a name from everywhere else before the name's own limit."""

    limit: int = 5
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, list[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._fails.get(key, []) if now - t < self.window]
        if kept:
            self._fails[key] = kept
        else:
            self._fails.pop(key, None)
        return kept

    def blocked(self, remote: str, name: str) -> bool:
        return (len(self._recent(f"ip:{remote}")) >= self.limit
                or len(self._recent(f"name:{name}")) >= 4 * self.limit)  # fmt: skip

    def failed(self, remote: str, name: str) -> None:
        for key in (f"ip:{remote}", f"name:{name}"):
            self._fails.setdefault(key, []).append(self.clock())

    def clear(self, remote: str, name: str) -> None:
        self._fails.pop(f"ip:{remote}", None)
        self._fails.pop(f"name:{name}", None)
