"""One small registry: names -> implementations, for suite kinds, backends, trackers, samplers and metrics.

An entry is the object itself (registered with the decorator or `add`) or, for implementations whose
module is expensive to import (a backend that imports torch or vLLM), a "module:attribute" string
imported on first `get`. Callers ask by name and never branch on which implementation they hold.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from harness.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what  # for errors: "--backend", "sampler", ...
        self._entries: dict[str, T | str] = {}

    def add(self, name: str, entry: T | str) -> None:
        """Register `entry` (or a lazy "module:attribute") under `name`; a name is registered once."""
        if name in self._entries:
            raise ValueError(f"{self.what}: {name!r} is registered twice")
        self._entries[name] = entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`: the decorated object itself is the entry."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def get(self, name: str) -> T:
        """The entry named `name`; an unknown name is a UserError listing the known ones."""
        if name not in self._entries:
            raise UserError(f"{self.what} {name}: expected one of {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def names(self) -> list[str]:
        return list(self._entries)
