"""The architecture registry (kept in its own module so architecture files can import it)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from robact_bench.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("architecture")
