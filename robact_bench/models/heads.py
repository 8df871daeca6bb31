"""Heads added to an existing model."""

from __future__ import annotations

from torch import nn

from robact_bench.activations.capped import DReLU


def _output_layer(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """Return (parent, attribute name, layer) of the model's output ``nn.Linear``.

    Uses ``model.classifier_name`` when the model names its output layer (ours and timm's
    convention), else the last ``nn.Linear`` in module order.
    """
    name = getattr(model, "classifier_name", None)
    if name is None:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("model has no nn.Linear output layer to put a D-ReLU head before")
        name = linears[-1]
    parent: nn.Module = model
    *path, attr = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    layer = getattr(parent, attr, None)
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"the output layer {name!r} is a {type(layer).__name__}, not nn.Linear")
    return parent, attr, layer


def with_drelu_head(model: nn.Module, width: int | None = None, m_init: float = 100.0) -> nn.Module:
    """Insert a dense layer with D-ReLU before the output layer, in place; return the model.

    *Dynamic-Max-Value ReLU* (Section 5.2, Figure 10) adds ``Linear(in, width)`` followed by
    D-ReLU in front of the output ``Linear(in, classes)``, which becomes ``Linear(width, classes)``.

    Args:
        model: A model whose output layer is an ``nn.Linear`` (see :func:`_output_layer`).
        width: Units of the new layer (default: the output layer's input width).
        m_init: Initial cap of every D-ReLU unit (the paper: 100).

    Returns:
        The same model object, modified.

    """
    parent, attr, out = _output_layer(model)
    width = out.in_features if width is None else int(width)
    if width <= 0:
        raise ValueError(f"width must be a positive integer; got {width}")
    head = nn.Sequential(
        nn.Linear(out.in_features, width),
        DReLU(width, m_init=m_init),
        nn.Linear(width, out.out_features),
    ).to(device=out.weight.device, dtype=out.weight.dtype)
    setattr(parent, attr, head)
    return model
