"""Typer's coercion of text and path options, without pydantic for plain values.

Typer (0.29) coerces every option value through a pydantic ``TypeAdapter`` built the first
time the option is processed, whether or not it was given: a ``crmwatch detect`` imported
pydantic for its ``--db``, ``--rules``, ``--since`` and ``--until``, 40–50 ms of its start
(start-up, docs/design.md). For an option typed ``str``, ``Path`` or a list of either, with
no parser of its own, what the adapter does with a text value is known: ``str(value)`` for
text, ``Path(value)`` for a path (then typer's own path checks, ``coerce_cli_path``), each
item for a list, and nothing for an option not given. Those cases are done here; any other
value or type goes to typer's own coercion, built when such a value first comes (an option
not given needs none). ``tests/test_cli.py`` holds both to the same results for every option
of every command.

Installed by ``crmwatch.cli`` for typer 0.29 only; with another release, or if typer's
internals are not the ones this reads, nothing is installed and typer coerces as it always
did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELDS = "__dataclass_fields__"
# The typer release whose private coercion classes this reads (tests/test_cli.py holds every
# option to its results); any other release coerces as it always does.
TESTED = "0.29."


def install() -> bool:
    """Make typer's options coerce plain text and paths without pydantic; whether it did."""
    import typer

    if not typer.__version__.startswith(TESTED):  # internals read below are typer's own
        return False
    try:
        from typer import core
        from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:
        return False
    parameter = getattr(core, "_TyperParameter", None)
    if (
        parameter is None
        or getattr(parameter.get_runtime_param, "__crmwatch__", False)
        or not hasattr(RuntimeParam, "_coerce_value")
        or not {"annotation", "parameter_info"} <= set(getattr(RuntimeParam, FIELDS, {}))
    ):
        return False

    def leaf_kind(annotation: Any, descriptor: TypeDescriptor) -> str | None:
        info = descriptor.parameter_info
        if getattr(info, "parser", None) is not None or descriptor.file_annotation is not None:
            return None
        if annotation is str:
            return "str"
        if annotation is Path and getattr(info, "path_type", None) is None:
            return "path"
        return None

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """``str``, ``Path`` or a list of either (``kind``): plain values coerced here, any
        other by typer's own runtime parameter, made when first needed. With no ``kind``,
        every value goes there: an option not given (None, which ``RuntimeParam.coerce``
        answers itself, ``--help`` among them) then builds no adapter."""

        descriptor: Any = None
        kind: str | None = None
        listed: bool = False
        full: list = field(default_factory=list)

        def _leaf(self, value: str, param: Any, ctx: Any) -> Any:
            if self.kind == "str":
                return str(value)
            return coerce_cli_path(
                Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
            )

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.kind is not None:
                if not self.listed and isinstance(value, str):
                    return self._leaf(value, param, ctx)
                listed = self.listed and isinstance(value, list | tuple)
                if listed and all(isinstance(v, str) for v in value):
                    return [self._leaf(v, param, ctx) for v in value]
            if not self.full:
                self.full.append(build_runtime_param(self.descriptor))
            return self.full[0]._coerce_value(value, param=param, ctx=ctx)

    def plain_param(descriptor: TypeDescriptor) -> Any:
        annotation = descriptor.annotation
        listed = bool(descriptor.is_list)
        if listed:
            args = getattr(annotation, "__args__", ())
            annotation = args[0] if len(args) == 1 else None
        kind = None if descriptor.is_tuple else leaf_kind(annotation, descriptor)
        return PlainParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
            kind=kind,
            listed=listed,
        )

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            self._runtime_param = plain_param(descriptor)
        return self._runtime_param

    get_runtime_param.__crmwatch__ = True  # type: ignore[attr-defined]
    parameter.get_runtime_param = get_runtime_param
    return True
