"""TrainConfig's dotted paths (``optimizer.lr``): which exist and what kind of value each holds.

:func:`~trainer_core.config.apply_overrides` sets values by these paths; this module answers
the questions to ask before setting one: is it a field (:func:`field_annotation`), does it
take numbers (:func:`numeric_kind`), and if it is not a field, what was probably meant
(:func:`unknown_field_hint`).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from trainer_core.config import TrainConfig

__all__ = ["field_annotation", "numeric_kind", "unknown_field_hint"]


def field_annotation(path: str) -> Any | None:
    """The type annotation of the TrainConfig leaf field at ``path``, or None when there is none.

    A section (``optimizer``) is not a leaf field, so it gives None too.

    Example:
        >>> field_annotation("scheduler.T_max")
        int | None
        >>> field_annotation("optimizer") is None
        True
    """
    model: type[BaseModel] = TrainConfig
    *parents, leaf = path.split(".")
    for part in parents:
        info = model.model_fields.get(part)
        if info is None or not _is_section(info.annotation):
            return None
        model = info.annotation
    info = model.model_fields.get(leaf)
    if info is None or _is_section(info.annotation):
        return None
    return info.annotation


def numeric_kind(path: str) -> Literal["int", "float"] | None:
    """``"int"`` for an int field (``int | None`` too), ``"float"`` for a float one, else None.

    Example:
        >>> numeric_kind("scheduler.T_max"), numeric_kind("optimizer.lr"), numeric_kind("device")
        ('int', 'float', None)
    """
    annotation = field_annotation(path)
    if get_origin(annotation) in (Union, types.UnionType):
        args = {a for a in get_args(annotation) if a is not type(None)}
    else:
        args = {annotation}
    if args == {int}:
        return "int"
    if args in ({float}, {int, float}):
        return "float"
    return None


def unknown_field_hint(path: str) -> str:
    """Why ``path`` is not a TrainConfig leaf field, and which fields were probably meant.

    Example:
        >>> unknown_field_hint("lr")
        "'lr' is not a train-config field; did you mean optimizer.lr?"
    """
    leaves = list(_leaf_paths(TrainConfig))
    inside = [p for p in leaves if p.startswith(f"{path}.")]
    if inside:
        return f"{path!r} is a train-config section; name one of its fields: {', '.join(inside)}"
    matches = [p for p in leaves if p.endswith(f".{path}")]
    hint = f"; did you mean {' or '.join(matches)}?" if matches else ""
    return f"{path!r} is not a train-config field{hint}"


def _leaf_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every leaf field path of a config model."""
    for key, info in model.model_fields.items():
        if _is_section(info.annotation):
            yield from _leaf_paths(info.annotation, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _is_section(annotation: Any) -> bool:
    """Whether a field holds a nested config model."""
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
