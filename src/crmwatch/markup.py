"""Values from logs, rules, snapshots and config, made inert for the file or screen they land in.

A user name, an app name or a report header is data: in a terminal it must not retitle the
window, in a Markdown draft it must not become a link or a ``<script>``, in a CSV opened in a
spreadsheet it must not become a formula. One function per medium, each total (any value in,
text out), so every writer has one obvious way to make a value safe:

- :func:`visible` — control characters (C0, C1, DEL and the bidirectional overrides that
  reorder what is displayed) shown as ``\\xNN`` / ``\\uNNNN``; the base of the other two;
- :func:`markdown` — also escapes HTML and Markdown's inline syntax, and keeps the value on
  one line so it cannot open a heading, a list or a code block;
- :func:`html_text` — HTML text (letters), and reportlab's paragraph markup, which is HTML's;
- :func:`csv_cell` — OWASP's rule for CSV injection: a cell starting with ``=``, ``+``, ``-``,
  ``@``, tab or carriage return is prefixed with ``'`` so spreadsheets read it as text
  (https://owasp.org/www-community/attacks/CSV_Injection).

The terminal's own (rich markup on top of :func:`visible`) is :func:`crmwatch.terminal.clean`.
"""

from __future__ import annotations

import html
import re

# Control characters, the bidirectional marks and overrides, and the invisible ones that hide
# or split what is displayed: soft hyphen, zero-width space and joiners, line and paragraph
# separators, word joiner and invisible operators, the byte-order mark, tag characters.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# CommonMark's inline syntax: emphasis, code, links and images, tables, strikethrough,
# autolinks and raw HTML (< > & are handled by html.escape first).
_MARKDOWN = re.compile(r"([\\`*_\[\]{}|~!#])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What spreadsheets may still read as a formula after leading spaces: the ASCII signs and
# their full-width forms (an IME types ＝ for =), and the pipe of DDE payloads.
_FORMULA_CHARS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "|")


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(value: object) -> str:
    """``value`` as text whose control characters are visible escapes."""
    return _CONTROL.sub(_shown, str(value))


def markdown(value: object) -> str:
    """``value`` as Markdown text that renders as itself, on one line."""
    return _MARKDOWN.sub(r"\\\1", html.escape(visible(value), quote=False))


def html_text(value: object) -> str:
    """``value`` as HTML text that shows as itself."""
    return html.escape(visible(value))


def csv_cell(value: object) -> object:
    """``value`` for a CSV cell a spreadsheet will not evaluate; non-text passes unchanged.
    Control characters are made visible first (a NUL or an escape sequence in an id is no
    address anyone can use), then a cell whose first non-blank character could start a
    formula — ASCII or full-width — is prefixed with ``'``."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    if text.startswith(_FORMULA_START) or text.lstrip(" ").startswith(_FORMULA_CHARS):
        return "'" + text
    return text
