"""SOQL: tokenizer and parser for the queries found in Salesforce logs.

Grammar per the SOQL and SOSL Reference, "SOQL SELECT Syntax"
(developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm):
``SELECT fieldList [subquery] [TYPEOF …] FROM objectType [WHERE …] [WITH …] [GROUP BY …]
[ORDER BY …] [LIMIT n] [OFFSET n] [FOR …]``.

Ingest uses only the SELECT list and FROM object (``parse``: fills ``object`` and ``fields``,
and never fails on a clause it does not need). The scope stage replays queries against a
snapshot and needs every clause (``parse_full``): WHERE conditions
(developer.salesforce.com/docs/platform/salesforce-soql-sosl/guide/sforce-api-calls-soql-select-conditionexpression.html),
comparison operators, date formats and literals, ORDER BY, LIMIT, OFFSET, USING SCOPE.
Parsing never guesses: an unparseable query raises ``SoqlError`` naming the clause or position.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from crmwatch.errors import CrmwatchError
from crmwatch.timeutil import parse_utc


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
# How deep parentheses, NOTs and semi-joins may nest. A query from a log is attacker data:
# past this the parser says so instead of exhausting Python's stack. Real queries nest a
# few levels; this is far above them and far below the stack.
MAX_NESTING = 50
# How many conditions a WHERE may hold (an IN list counts once, whatever its length: it is
# replayed as one set lookup). Salesforce caps a statement at 100,000 characters by default,
# more through dynamic Apex (SOQL and SOSL Limits, Salesforce App Limits Cheatsheet).
MAX_CONDITIONS = 10_000

# The largest LIMIT or OFFSET read: far beyond any org's records, and small enough that a
# replay's offset + limit + 1 is still a 64-bit integer (a log's query is attacker data).
MAX_ROWS = 2**61

CLAUSE_STARTS = {"WHERE", "WITH", "GROUP", "ORDER", "LIMIT", "OFFSET", "FOR", "HAVING", "USING"}


class Token(NamedTuple):
    """A word, literal or symbol of the query. (A tuple, its upper case made once: a scraper's
    incident is parsed a million queries over.)"""

    kind: str
    text: str
    pos: int
    upper: str  # the text upper-cased: keywords are compared that way


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(query.rstrip())
    while pos < end:
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise SoqlError(f"unexpected character {query[pos : pos + 1]!r} at position {pos}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        tokens.append(Token(kind, text, m.start(kind), text.upper()))
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


@dataclass(frozen=True)
class Value:
    """A literal on the right of a comparison.

    kind: string | number | date | datetime | boolean | null | date_literal. ``text`` is the
    string with SOQL escapes resolved (LIKE patterns keep ``\\%`` and ``\\_``), the number,
    date or datetime as written, the upper-cased literal name; ``n`` is a date literal's N.
    """

    kind: str
    text: str
    n: int | None = None


@dataclass(frozen=True)
class Comparison:
    """``field op value``; IN / NOT IN / INCLUDES / EXCLUDES carry several values, or a
    semi-join subquery."""

    field: str
    op: str  # = != < <= > >= LIKE IN NOT IN INCLUDES EXCLUDES
    values: tuple[Value, ...] = ()
    subquery: SoqlQuery | None = None


@dataclass(frozen=True)
class Logical:
    op: str  # AND | OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    item: Condition


Condition = Comparison | Logical | Negation


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool = False
    # SOQL sorts nulls first unless told otherwise, ascending or descending.
    nulls_first: bool = True


@dataclass
class SoqlQuery:
    items: list[SelectItem]
    object: str
    # Tokens after FROM <object>, for the clauses the scope stage evaluates.
    rest: list[Token] = field(default_factory=list)
    # Filled by parse_full only.
    alias: str | None = None
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    using_scope: str | None = None
    with_clause: str | None = None
    group_by: list[str] = field(default_factory=list)
    for_clause: str | None = None

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


def parse_full(query: str) -> SoqlQuery:
    """Parse a whole query, clauses included; raises ``SoqlError`` naming what it cannot read."""
    return _full(tokenize(query), query)


def _full(tokens: list[Token], query: str, depth: int = 0) -> SoqlQuery:
    q = _Parser(tokens, query).query()
    _Clauses(q.rest, q, depth).parse()
    return q


# Date literals that take no N, and those that take one (``LAST_N_DAYS:30``).
DATE_LITERALS = {
    "YESTERDAY", "TODAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH",
    "THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "THIS_QUARTER", "LAST_QUARTER",
    "NEXT_QUARTER", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR", "THIS_FISCAL_QUARTER",
    "LAST_FISCAL_QUARTER", "NEXT_FISCAL_QUARTER", "THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR",
    "NEXT_FISCAL_YEAR",
}  # fmt: skip
N_DATE_LITERALS = {
    "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "NEXT_N_WEEKS", "LAST_N_WEEKS", "N_WEEKS_AGO",
    "NEXT_N_MONTHS", "LAST_N_MONTHS", "N_MONTHS_AGO", "NEXT_N_QUARTERS", "LAST_N_QUARTERS",
    "N_QUARTERS_AGO", "NEXT_N_YEARS", "LAST_N_YEARS", "N_YEARS_AGO", "NEXT_N_FISCAL_QUARTERS",
    "LAST_N_FISCAL_QUARTERS", "N_FISCAL_QUARTERS_AGO", "NEXT_N_FISCAL_YEARS",
    "LAST_N_FISCAL_YEARS", "N_FISCAL_YEARS_AGO",
}  # fmt: skip
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'",
            "\\": "\\"}  # fmt: skip


def _unescape(body: str, like: bool) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if like and nxt in "%_":
                out.append("\\" + nxt)  # stays escaped for the LIKE pattern
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                raise SoqlError(f"unknown escape \\{nxt} in string literal")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _Clauses:
    """Recursive descent over the tokens after ``FROM object``."""

    def __init__(self, tokens: list[Token], q: SoqlQuery, depth: int = 0) -> None:
        self.t, self.i, self.q, self.depth = tokens, 0, q, depth
        self.conditions = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise SoqlError(f"WHERE: nested more than {MAX_NESTING} levels deep")

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def at(self, *words: str) -> bool:
        t, i = self.t, self.i
        if i + len(words) > len(t):
            return False
        return all(t[i + k].upper == w for k, w in enumerate(words))

    def next(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise SoqlError(f"query ends where {what} was expected")
        self.i += 1
        return tok

    def parse(self) -> None:
        q = self.q
        if (
            self.peek() is not None
            and self.peek().kind == "ident"
            and (  # type: ignore[union-attr]
                self.peek().upper not in KEYWORDS  # type: ignore[union-attr]
            )
        ):
            q.alias = self.next("an alias").text  # FROM Contact c
        if self.at("USING", "SCOPE"):
            self.i += 2
            q.using_scope = self.next("a scope name").text
        if self.at("WHERE"):
            self.i += 1
            q.where = self.disjunction()
        if self.at("WITH"):
            start = self.i
            self.i += 1
            while self.peek() is not None and self.peek().upper not in CLAUSE_STARTS:  # type: ignore[union-attr]
                self.i += 1
            q.with_clause = " ".join(t.text for t in self.t[start + 1 : self.i])
        if self.at("GROUP", "BY"):
            self.i += 2
            q.group_by.append(self.next("a field").text)
            while self.at(","):
                self.i += 1
                q.group_by.append(self.next("a field").text)
            if self.at("HAVING"):
                raise SoqlError("HAVING is not supported")
        if self.at("ORDER", "BY"):
            self.i += 2
            q.order_by.append(self.order_item())
            while self.at(","):
                self.i += 1
                q.order_by.append(self.order_item())
        if self.at("LIMIT"):
            self.i += 1
            q.limit = self.integer("LIMIT")
        if self.at("OFFSET"):
            self.i += 1
            q.offset = self.integer("OFFSET")
        if self.at("FOR"):
            self.i += 1
            q.for_clause = self.next("VIEW, REFERENCE or UPDATE").upper
        if self.at("UPDATE"):  # FOR UPDATE TRACKING / VIEWSTAT
            self.i += 2
        tok = self.peek()
        if tok is not None:
            raise SoqlError(f"unexpected {tok.text!r} at position {tok.pos}")

    def integer(self, clause: str) -> int:
        tok = self.next(f"a number after {clause}")
        if tok.kind != "number" or not tok.text.isdigit():
            raise SoqlError(f"{clause} needs a whole number, found {tok.text!r}")
        if len(tok.text) > len(str(MAX_ROWS)) or int(tok.text) > MAX_ROWS:
            raise SoqlError(f"{clause}: {tok.text[:30]} is more rows than any org holds")
        return int(tok.text)

    def order_item(self) -> OrderItem:
        name = self.next("an ORDER BY field")
        if name.kind != "ident":
            raise SoqlError(f"ORDER BY: expected a field at position {name.pos}")
        desc = False
        if self.at("ASC") or self.at("DESC"):
            desc = self.next("").upper == "DESC"
        nulls_first = True
        if self.at("NULLS"):
            self.i += 1
            nulls_first = self.next("FIRST or LAST").upper == "FIRST"
        return OrderItem(name.text, desc, nulls_first)

    def disjunction(self) -> Condition:
        items = [self.conjunction()]
        while self.at("OR"):
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Logical("OR", tuple(items))

    def conjunction(self) -> Condition:
        items = [self.unary()]
        while self.at("AND"):
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else Logical("AND", tuple(items))

    def unary(self) -> Condition:
        if self.at("NOT"):
            self.i += 1
            self.deeper()
            inner: Condition = Negation(self.unary())
            self.depth -= 1
            return inner
        if self.at("("):
            self.i += 1
            self.deeper()
            inner = self.disjunction()
            self.depth -= 1
            if not self.at(")"):
                raise SoqlError("WHERE: missing closing parenthesis")
            self.i += 1
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise SoqlError(f"WHERE: more than {MAX_CONDITIONS:,} conditions")
        name = self.next("a field in WHERE")
        if name.kind != "ident" or name.upper in KEYWORDS:
            raise SoqlError(f"WHERE: expected a field at position {name.pos}, found {name.text!r}")
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            raise SoqlError(f"WHERE: function {name.text}() is not supported")
        if self.at("NOT", "IN"):
            self.i += 2
            op = "NOT IN"
        else:
            tok = self.next(f"an operator after {name.text}")
            op = tok.upper
            if op == "<>":
                op = "!="
            if op not in ("=", "!=", "<", "<=", ">", ">=", "LIKE", "IN", "INCLUDES", "EXCLUDES"):
                raise SoqlError(f"WHERE: unknown operator {tok.text!r} at position {tok.pos}")
        if op in ("IN", "NOT IN", "INCLUDES", "EXCLUDES"):
            if not self.at("("):
                raise SoqlError(f"WHERE: {op} needs a parenthesised list")
            if op in ("IN", "NOT IN") and self.at("(", "SELECT"):
                return Comparison(name.text, op, (), self.subquery())
            self.i += 1
            values = [self.value(like=False)]
            while self.at(","):
                self.i += 1
                values.append(self.value(like=False))
            if not self.at(")"):
                raise SoqlError(f"WHERE: {op} list is not closed")
            self.i += 1
            return Comparison(name.text, op, tuple(values))
        return Comparison(name.text, op, (self.value(like=op == "LIKE"),))

    def subquery(self) -> SoqlQuery:
        start, depth = self.i + 1, 0
        while True:
            tok = self.next("the end of the subquery")
            depth += {"(": 1, ")": -1}.get(tok.text, 0)
            if depth == 0:
                break
        if self.depth + 1 > MAX_NESTING:
            raise SoqlError(f"WHERE: semi-joins nested more than {MAX_NESTING} levels deep")
        return _full(self.t[start : self.i - 1], "", self.depth + 1)

    def value(self, like: bool) -> Value:
        tok = self.next("a value")
        if tok.kind == "string":
            return Value("string", _unescape(tok.text[1:-1], like))
        if tok.kind == "number":
            return Value("number", tok.text)
        if tok.kind == "datetime":
            try:  # 2025-02-30 has the shape of a date but is none
                parse_utc(tok.text) if "T" in tok.text else dt.date.fromisoformat(tok.text)
            except ValueError as e:
                raise SoqlError(f"WHERE: {tok.text} is not a calendar date ({e})") from e
            return Value("datetime" if "T" in tok.text else "date", tok.text)
        if tok.kind == "bind":
            raise SoqlError(f"bind variable {tok.text} has no value in a log")
        if tok.kind == "ident":
            word, _, n = tok.upper.partition(":")
            if word in ("TRUE", "FALSE"):
                return Value("boolean", word.lower())
            if word == "NULL":
                return Value("null", "null")
            if word in DATE_LITERALS and not n:
                return Value("date_literal", word)
            if word in N_DATE_LITERALS and n:
                return Value("date_literal", word, int(n))
        raise SoqlError(f"WHERE: cannot read value {tok.text!r} at position {tok.pos}")


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
