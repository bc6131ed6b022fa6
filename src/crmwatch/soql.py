"""SOQL: tokenizer and parser for the queries found in Salesforce logs.

Grammar per the SOQL and SOSL Reference, "SOQL SELECT Syntax"
(developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm):
``SELECT fieldList [subquery] [TYPEOF …] FROM objectType [WHERE …] [WITH …] [GROUP BY …]
[ORDER BY …] [LIMIT n] [OFFSET n] [FOR …]``.

Ingest uses only the SELECT list and FROM object (to fill ``object`` and ``fields``); the
scope stage builds on the same parse to replay WHERE/ORDER BY/LIMIT against a snapshot.
Parsing never guesses: an unparseable query raises ``SoqlError`` naming the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crmwatch.errors import CrmwatchError


class SoqlError(CrmwatchError):
    """A query crmwatch cannot parse."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?)
    | (?P<number>-?\d+(?:\.\d+)?(?!\w))
    | (?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<bind>:[A-Za-z_]\w*)
    )""",
    re.VERBOSE,
)

KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "WITH",
    "GROUP",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "FOR",
    "HAVING",
    "USING",
    "TYPEOF",
    "END",
}
CLAUSE_STARTS = {"WHERE", "WITH", "GROUP", "ORDER", "LIMIT", "OFFSET", "FOR", "HAVING", "USING"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(query.rstrip())
    while pos < end:
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise SoqlError(f"unexpected character {query[pos : pos + 1]!r} at position {pos}")
        kind = m.lastgroup or ""
        tokens.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


@dataclass
class SelectItem:
    """One SELECT-list entry: a field path, an aggregate or FIELDS() call, or a subquery."""

    kind: str  # field | function | fields_macro | subquery | typeof
    text: str
    function: str | None = None
    args: list[str] = field(default_factory=list)
    alias: str | None = None


@dataclass
class SoqlQuery:
    items: list[SelectItem]
    object: str
    # Tokens after FROM <object>, for the clauses the scope stage evaluates.
    rest: list[Token] = field(default_factory=list)

    @property
    def count_only(self) -> bool:
        """``SELECT COUNT() FROM …`` returns a number, not records."""
        return (
            len(self.items) == 1
            and self.items[0].kind == "function"
            and self.items[0].function == "COUNT"
            and not self.items[0].args
        )

    @property
    def field_names(self) -> list[str]:
        """Fields named in the SELECT list, as written (FIELDS(ALL) kept as a marker)."""
        out: list[str] = []
        for it in self.items:
            if it.kind == "field":
                out.append(it.text)
            elif it.kind == "fields_macro":
                out.append(f"FIELDS({it.args[0].upper()})")
            elif it.kind == "function" and it.args and it.function != "COUNT":
                out.extend(a for a in it.args if a.upper() not in ("ALL",))
            elif it.kind == "function" and it.function == "COUNT" and it.args:
                out.extend(it.args)
        return out


def parse(query: str) -> SoqlQuery:
    """Parse the SELECT list and FROM object of a SOQL query."""
    p = _Parser(tokenize(query), query)
    return p.query()


class _Parser:
    def __init__(self, tokens: list[Token], query: str) -> None:
        self.t = tokens
        self.i = 0
        self.query_text = query

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SoqlError("query ends too early")
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.upper != text:
            raise SoqlError(f"expected {text} at position {tok.pos}, found {tok.text!r}")
        return tok

    def query(self) -> SoqlQuery:
        self.expect("SELECT")
        items = [self.item()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.next()
            items.append(self.item())
        self.expect("FROM")
        obj = self.next()
        if obj.kind != "ident":
            raise SoqlError(f"expected an object name at position {obj.pos}")
        rest = self.t[self.i :]
        # Stop at the end of this (sub)query: callers slice nested ones themselves.
        return SoqlQuery(items, obj.text, rest)

    def item(self) -> SelectItem:
        tok = self.next()
        if tok.text == "(":
            depth, start = 1, self.i
            while depth:
                t = self.next()
                depth += {"(": 1, ")": -1}.get(t.text, 0)
            inner = " ".join(t.text for t in self.t[start : self.i - 1])
            return SelectItem("subquery", inner)
        if tok.upper == "TYPEOF":
            start = self.i
            while self.next().upper != "END":
                pass
            return SelectItem("typeof", " ".join(t.text for t in self.t[start - 1 : self.i]))
        if tok.kind != "ident":
            raise SoqlError(f"unexpected {tok.text!r} at position {tok.pos} in SELECT list")
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            self.next()
            args: list[str] = []
            while (a := self.next()).text != ")":
                if a.text != ",":
                    args.append(a.text)
            fn = tok.upper
            kind = "fields_macro" if fn == "FIELDS" else "function"
            item = SelectItem(kind, f"{tok.text}({', '.join(args)})", fn, args)
        else:
            item = SelectItem("field", tok.text)
        alias = self.peek()
        if alias is not None and alias.kind == "ident" and alias.upper not in KEYWORDS:
            self.next()
            item.alias = alias.text
        return item


def query_object(query: str | None) -> str | None:
    """The FROM object of a query, or None when there is none or it does not parse."""
    if not query:
        return None
    try:
        return parse(query).object
    except SoqlError:
        return None


def query_fields(query: str | None) -> list[str] | None:
    """The fields a query selects, or None when it does not parse or selects only COUNT()."""
    if not query:
        return None
    try:
        q = parse(query)
    except SoqlError:
        return None
    return None if q.count_only else q.field_names
