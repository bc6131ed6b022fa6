"""What crmwatch prints of values that came from logs, rules or snapshots.

A user name, an object name or a report header is data, never terminal code: an OSC sequence
in a user name must not retitle the terminal, a ``[link=…]`` in QueriedEntities must not plant
a hyperlink, a ``[/]`` must not break the table it is printed in. :func:`clean` shows control
characters visible (:func:`crmwatch.markup.visible`) and escapes rich's markup; every command
prints data through it.
"""

from __future__ import annotations

from rich.markup import escape

from crmwatch.markup import visible


def clean(value: object) -> str:
    """``value`` as text that prints as itself: control characters visible, markup escaped."""
    return escape(visible(value))
