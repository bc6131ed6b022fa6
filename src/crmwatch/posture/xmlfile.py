"""Salesforce metadata XML, read safely.

Metadata files come from the org being audited or from a repository: they are input, not
trusted. ``defusedxml`` refuses entity expansion (billion laughs) and external entities, and a
malformed file becomes a :class:`~crmwatch.posture.model.Problem` naming its file and line,
so the other files are still audited.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from crmwatch.posture.model import Problem, truth, where

# Every Metadata API file is in this namespace; older or hand-written ones may have none.
NS = "{http://soap.sforce.com/2006/04/metadata}"


class Element:
    """A metadata element whose children are found by their local name. Values it cannot
    read as what they should be are collected in ``bad`` (shared by the whole file), so the
    reader reports them instead of guessing."""

    def __init__(self, el: ET.Element, bad: list[str] | None = None) -> None:
        self.el = el
        self.bad: list[str] = [] if bad is None else bad

    @property
    def tag(self) -> str:
        return self.el.tag.removeprefix(NS)

    def all(self, name: str) -> list[Element]:
        return [Element(c, self.bad) for c in self.el if c.tag.removeprefix(NS) == name]

    def first(self, name: str) -> Element | None:
        found = self.all(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        child = self.first(name)
        if child is None or child.el.text is None:
            return None
        return child.el.text.strip()

    def flag(self, name: str) -> bool | None:
        """A boolean child (XML Schema: true, false, 1, 0): None when absent or unreadable."""
        value = self.text(name)
        if value is None:
            return None
        result = truth(value)
        if result is None or value.lower() in ("yes", "no"):
            self.bad.append(f"<{name}> is not a boolean ({value[:20]!r}); read as unknown")
            return None
        return result

    def note(self, what: str) -> None:
        self.bad.append(what)


def parse(path: Path) -> Element | Problem:
    """The root element of ``path``, or the problem that kept it from being read."""
    try:
        return Element(SafeET.parse(path).getroot())
    except ET.ParseError as e:
        line, column = e.position
        what = str(e).split(": line ")[0]  # expat's message, without the position it repeats
        return Problem(where(path, line), f"malformed XML at column {column}: {what}")
    except DefusedXmlException as e:
        return Problem(where(path), f"refused: {type(e).__name__} ({e})")
    except (LookupError, ValueError) as e:  # an encoding Python does not know, and kin
        return Problem(where(path), f"cannot decode: {e}")
    except OSError as e:
        return Problem(where(path), f"cannot read: {e.strerror or e}")
