"""Parsing numbers written by people: ``0.1``, ``8/255``, ``1e-3``.

Used by the CLI's flags and by config files, so both accept the same spellings and give the same
one-line errors.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["one_line", "parse_float"]

# What str.splitlines() breaks on: a message holding one of these is not one line on a terminal or in a log.
_LINE_BREAKS = {c: c.encode("unicode_escape").decode("ascii") for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def parse_float(value: object, name: str = "value") -> float:
    """Return ``value`` as a finite float; strings may be decimals or fractions (``8/255``).

    Raises:
        ValueError: one line naming ``name`` and what is allowed.

    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        s = value.strip()
        try:
            out = float(Fraction(s)) if "/" in s else float(s)
        except (ValueError, ZeroDivisionError, OverflowError):
            raise ValueError(f"{name} must be a number or a fraction such as 0.1 or 8/255; got {value!r}") from None
    else:
        raise ValueError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return out


def one_line(text: str) -> str:
    r"""``text`` with its line breaks written as escapes (``\n``, ``\r``, ``\u2028``...): one line, nothing lost.

    For messages that quote what a user typed (argparse's ``unrecognized arguments: ...``).
    """
    return text.translate(str.maketrans(_LINE_BREAKS))
