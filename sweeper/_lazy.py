"""Subpackages that export their public names without importing every module up front.

Each subpackage's ``__init__`` names its public API once, module by module; a name's module
is imported on first use. ``from sweeper.run import plan_slots`` loads
``sweeper/run/_supervisor.py`` and what it needs, not the trainer behind the objective: a
command pays for torch only when it trains.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyExports"]


class LazyExports:
    """The public names of one package and the private modules that define them.

    Example:
        >>> exports = LazyExports("sweeper.define", {})
        >>> exports.add("_study", "create_study", "load_study")
        >>> exports.names
        ['create_study', 'load_study']
    """

    def __init__(self, package: str, namespace: dict[str, Any]) -> None:
        self._package = package
        self._namespace = namespace
        self._where: dict[str, str] = {}

    def add(self, module: str, *names: str) -> None:
        """Export ``names`` of the package's module ``module`` (``"_study"``)."""
        for name in names:
            self._where[name] = module

    @property
    def names(self) -> list[str]:
        """Every exported name, sorted: the package's ``__all__``."""
        return sorted(self._where)

    def modules(self) -> dict[str, list[str]]:
        """Module name -> the names exported from it."""
        out: dict[str, list[str]] = {}
        for name, module in self._where.items():
            out.setdefault(module, []).append(name)
        return out

    def get(self, name: str) -> Any:
        """The package's module ``__getattr__``: import the name's module, keep the value."""
        module = self._where.get(name)
        if module is None:
            raise AttributeError(f"module {self._package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{self._package}.{module}"), name)
        self._namespace[name] = value  # the next lookup is a plain global
        return value
