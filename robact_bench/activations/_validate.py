"""Argument checks shared by the activation families: one sentence per bad value."""

from __future__ import annotations

import math


def positive(name: str, value: float, what: str) -> float:
    """Return ``value`` as float if it is a finite number > 0, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0 ({what}); got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0 ({what}); got {value!r}")
    return v


def probability(name: str, value: float, what: str) -> float:
    """Return ``value`` as float if it lies in [0, 1), else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1) ({what}); got {value!r}") from None
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1) ({what}); got {value!r}")
    return v
