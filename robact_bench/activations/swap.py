"""Replace the activation modules of any ``nn.Module`` (ours, torchvision's, timm's, a user's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from robact_bench.activations import ActLayer

SWAPPABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Mish,
    nn.Hardswish,
)
"""torch activation types that :func:`swap_activations` replaces (with our own registered ones)."""


def _activation_types() -> tuple[type[nn.Module], ...]:
    """The activation types we replace: torch's and every class in our registry."""
    from robact_bench.activations import ACTIVATIONS

    registered = (ACTIVATIONS.get(n) for n in ACTIVATIONS.list())
    return SWAPPABLE_TYPES + tuple(obj for obj in registered if isinstance(obj, type))


def _placement(module: nn.Module, parent: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    for source in (module, parent):
        for t in list(source.parameters(recurse=False)) + list(source.buffers(recurse=False)):
            if not isinstance(t, nn.parameter.UninitializedTensorMixin):
                return t.device, t.dtype
    return None, None


def swap_activations(model: nn.Module, name: ActLayer, **kwargs: Any) -> int:
    """Replace every activation module inside ``model`` by a new ``name`` activation, in place.

    Replaced: ``nn.ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``GELU``, ``SiLU``, ``ELU``,
    ``CELU``, ``SELU``, ``Mish``, ``Hardswish`` (and their subclasses) and every activation in
    our registry. Each replaced module gets its own new instance, which is moved to the device
    and dtype of the parameters around it and keeps the model's train/eval mode. A module
    object used at several places (torchvision's ``BasicBlock`` reuses ``self.relu``) is
    counted once. Activations called functionally (``F.relu`` in ``forward``) cannot be seen
    and are not replaced: check the returned count.

    Per-feature activations (``drelu``) are created lazily and take their size from the first
    forward pass; run one batch through the model before building an optimizer.

    Args:
        model: Any module; modified in place.
        name: A registered activation name or a module class/factory (see ``get_activation``).
        **kwargs: Arguments for the new activation.

    Returns:
        The number of activation modules replaced.

    Example:
        >>> from robact_bench import create_model
        >>> net = create_model("lenet5", act_layer="relu")
        >>> swap_activations(net, "brelu")
        3

    """
    from robact_bench.activations import get_activation

    get_activation(name, **kwargs)  # validate name and arguments before touching the model
    types = _activation_types()
    replaced: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for child_name, child in list(parent._modules.items()):  # named_children() lists a reused child once
            if not isinstance(child, types):
                continue
            new = replaced.get(id(child))
            if new is None:
                new = get_activation(name, **kwargs)
                device, dtype = _placement(child, parent)
                lazy = any(isinstance(p, nn.parameter.UninitializedTensorMixin) for p in new.parameters())
                if device is not None and not lazy:
                    new = new.to(device=device, dtype=dtype)
                new.train(child.training)
                replaced[id(child)] = new
            setattr(parent, child_name, new)
    return len(replaced)
