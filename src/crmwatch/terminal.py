"""What crmwatch prints of values that came from logs, rules or snapshots.

A user name, an object name or a report header is data, never terminal code: an OSC sequence
in a user name must not retitle the terminal, a ``[link=…]`` in QueriedEntities must not plant
a hyperlink, a ``[/]`` must not break the table it is printed in. :func:`clean` shows control
characters (C0, C1, DEL, and the bidirectional overrides that reorder what is displayed) as
``\\xNN`` / ``\\uNNNN`` escapes and escapes rich's markup; every command prints data through it.
"""

from __future__ import annotations

import re

from rich.markup import escape

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    """``value`` as text that prints as itself: control characters visible, markup escaped."""
    return escape(_CONTROL.sub(_shown, str(value)))
