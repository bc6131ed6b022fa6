"""One error tree for crmwatch.

The CLI prints any ``CrmwatchError`` as a single line and exits non-zero, so a Python
traceback always means a bug rather than bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where in an input something happened: a file, and a line or a byte offset."""

    path: Path | str
    line: int | None = None
    byte_offset: int | None = None

    def __str__(self) -> str:
        name = Path(self.path).name
        if self.line is not None:
            return f"{name}:{self.line}"
        if self.byte_offset is not None:
            return f"{name}@byte {self.byte_offset}"
        return name


class CrmwatchError(ValueError):
    """Base of every error crmwatch raises on purpose."""

    def __init__(self, message: str, source: Location | None = None) -> None:
        self.source = source
        super().__init__(f"{message} in {source}" if source else message)


class SourceFormatError(CrmwatchError):
    """An input file is not in a format crmwatch can read, or cannot be read at all."""


class ConfigError(CrmwatchError):
    """A configuration file or option is invalid."""


class RuleError(CrmwatchError):
    """A detection rule cannot be parsed or compiled."""


class StoreError(CrmwatchError):
    """The event store cannot be opened, read or written."""


class UsageError(CrmwatchError):
    """The command was called with arguments that cannot work."""
