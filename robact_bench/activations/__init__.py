"""Activation functions: the registry, lookup, and the seed papers' robust activations.

Every activation is an ``nn.Module`` registered by name in :data:`ACTIVATIONS`. Modules may
declare ``stochastic = True`` when their output is random at inference time (BReLU); use
:func:`is_stochastic` to ask a whole model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from robact_bench.registry import Registry, check_kwargs

ACTIVATIONS: Registry[Callable[..., nn.Module]] = Registry("activation")

# Import order registers the families (each module decorates its classes).
from robact_bench.activations import capped, standard, stochastic, symmetric  # noqa: E402
from robact_bench.activations.capped import DReLU, SReLU, drelu_penalty  # noqa: E402
from robact_bench.activations.standard import ReLUDropout  # noqa: E402
from robact_bench.activations.stochastic import BReLU, VBReLU  # noqa: E402
from robact_bench.activations.swap import SWAPPABLE_TYPES, swap_activations  # noqa: E402
from robact_bench.activations.symmetric import RBF, MReLU  # noqa: E402

ActLayer = str | type[nn.Module] | Callable[..., nn.Module]

__all__ = [
    "ACTIVATIONS",
    "RBF",
    "SWAPPABLE_TYPES",
    "BReLU",
    "DReLU",
    "MReLU",
    "ReLUDropout",
    "SReLU",
    "VBReLU",
    "activation_name",
    "capped",
    "drelu_penalty",
    "get_activation",
    "is_stochastic",
    "list_activations",
    "standard",
    "stochastic",
    "swap_activations",
    "symmetric",
]


def list_activations(pattern: str = "*") -> list[str]:
    """Return the registered activation names matching a glob ``pattern``."""
    return ACTIVATIONS.list(pattern)


def get_activation(name: ActLayer, **kwargs: Any) -> nn.Module:
    """Build an activation module.

    Args:
        name: A registered name (see :func:`list_activations`), an ``nn.Module`` subclass,
            or any callable returning a module.
        **kwargs: Arguments of the activation (e.g. ``alpha`` for ``vbrelu``, ``m`` for
            ``srelu``, ``p`` for ``relu_dropout``).

    Returns:
        A new activation module.

    Raises:
        KeyError: unknown name (the message lists the closest registered names).
        TypeError: an argument the activation does not take.
        ValueError: an argument outside its allowed range.

    Example:
        >>> act = get_activation("vbrelu", alpha=5.0)

    """
    if isinstance(name, str):
        canonical = ACTIVATIONS.resolve(name)
        factory = ACTIVATIONS.get(canonical)
    elif callable(name):
        canonical, factory = getattr(name, "__name__", repr(name)), name
    else:
        raise TypeError(
            f"act_layer must be an activation name, an nn.Module class or a callable, got {type(name).__name__}"
        )
    check_kwargs("activation", canonical, factory, kwargs)
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"activation {canonical!r} built a {type(module).__name__}, not an nn.Module")
    return module


def activation_name(module: nn.Module) -> str | None:
    """Return the registry name of ``module``'s exact type, or ``None`` if it is not registered."""
    for name in ACTIVATIONS.list():
        if ACTIVATIONS.get(name) is type(module):
            return name
    return None


def is_stochastic(model: nn.Module) -> bool:
    """True when any submodule *declares* a random output in ``eval()`` mode (e.g. BReLU).

    This is the declaration; :func:`robact_bench.evaluation.stochastic.measure_stochastic`
    measures it with repeated forward passes.
    """
    return any(bool(getattr(m, "stochastic", False)) for m in model.modules())


# The baselines are torch's own modules.
ACTIVATIONS.add("relu", nn.ReLU)
ACTIVATIONS.add("lrelu", nn.LeakyReLU, aliases=("leaky_relu", "leakyrelu"))
ACTIVATIONS.add("prelu", nn.PReLU)
ACTIVATIONS.add("gelu", nn.GELU)
ACTIVATIONS.add("silu", nn.SiLU, aliases=("swish",))
ACTIVATIONS.add("elu", nn.ELU)
