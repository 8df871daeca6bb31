"""One generic name -> object registry, used for activations, architectures, datasets and recipes.

Modelled on timm's ``register_model`` / ``create_model`` / ``list_models``: components are
registered with a decorator, looked up by name (or alias), listed with a glob pattern, and an
unknown name raises an error that lists the closest registered names.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from robact_bench.parsing import one_line

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError", "check_kwargs"]


class UnknownNameError(KeyError, ValueError):
    """Raised when a name is not registered; the message lists the closest registered names.

    It subclasses both ``KeyError`` (a failed lookup) and ``ValueError`` (a bad argument) so
    callers can catch whichever they expect.
    """

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named collection of components.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"activation"``).

    Example:
        >>> ACTS = Registry("activation")
        >>> @ACTS.register("my_relu", aliases=("myrelu",))
        ... class MyReLU: ...
        >>> ACTS.get("myrelu") is MyReLU
        True

    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: Iterable[str] = ()) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name`` (and ``aliases``)."""

        def deco(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return deco

    def add(self, name: str, obj: T, *, aliases: Iterable[str] = ()) -> None:
        """Register ``obj`` under ``name``; a name or alias may be registered only once."""
        key = self._norm(name)
        if key in self._items or key in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[key] = obj
        for alias in aliases:
            akey = self._norm(alias)
            if akey in self._items or akey in self._aliases:
                raise ValueError(f"{self.kind} alias {alias!r} is already registered")
            self._aliases[akey] = key

    def remove(self, name: str) -> T:
        """Unregister ``name`` (a canonical name or an alias of it) and its aliases; return the component."""
        key = self.resolve(name)
        self._aliases = {a: k for a, k in self._aliases.items() if k != key}
        return self._items.pop(key)

    def resolve(self, name: str) -> str:
        """Return the canonical registered name for ``name`` (which may be an alias)."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = self._norm(name)
        if key in self._items:
            return key
        if key in self._aliases:
            return self._aliases[key]
        candidates = list(self._items) + list(self._aliases)
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} Registered: {', '.join(self.list())}")

    def get(self, name: str) -> T:
        """Return the component registered under ``name`` or an alias of it."""
        return self._items[self.resolve(name)]

    def list(self, pattern: str = "*") -> list[str]:
        """Return the sorted canonical names matching a glob ``pattern`` (e.g. ``"*relu*"``)."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, self._norm(pattern)))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._norm(name)
        return key in self._items or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def _norm(name: str) -> str:
        return name.strip().lower().replace("-", "_")


def check_kwargs(
    kind: str,
    name: str,
    factory: Callable[..., Any],
    kwargs: Mapping[str, Any],
    error: type[Exception] = TypeError,
) -> None:
    """Raise a one-line ``error`` when ``kwargs`` holds a keyword ``factory`` does not take.

    Args:
        kind: What is being built, for the message (``"activation"``, ``"architecture"``).
        name: Its registered name.
        factory: The class or function that will receive ``kwargs`` (a dataclass checks its fields).
        kwargs: The keyword arguments to check.
        error: The exception class to raise (``ValueError`` for files a user wrote).

    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n
        for n, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY)
    ]
    unknown = sorted(one_line(str(k)) for k in kwargs if k not in accepted)  # keys from a file may be any type
    if unknown:
        raise error(
            f"{kind} {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(accepted) or 'no arguments'}"
        )
