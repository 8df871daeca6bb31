"""Heads added to an existing model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations.capped import DReLU, SReLU

#: the activations a capped head can use: D-ReLU (learnable caps) or S-ReLU (one fixed cap)
HEAD_ACTS = ("drelu", "srelu")


def _output_module(model: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """Return (parent, attribute name, module) of the model's output layer.

    Uses ``model.classifier_name`` when the model names its output layer (ours and timm's
    convention), else the last ``nn.Linear`` in module order.
    """
    name = getattr(model, "classifier_name", None)
    if name is None:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("model has no nn.Linear output layer")
        name = linears[-1]
    parent: nn.Module = model
    *path, attr = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    return parent, attr, getattr(parent, attr)


def _output_layer(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """Like :func:`_output_module`, but the output layer must be a plain ``nn.Linear``."""
    parent, attr, layer = _output_module(model)
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"the output layer {attr!r} is a {type(layer).__name__}, not nn.Linear")
    return parent, attr, layer


def with_drelu_head(model: nn.Module, width: int | None = None, m_init: float = 100.0, act: str = "drelu") -> nn.Module:
    """Insert a dense layer with D-ReLU before the output layer, in place; return the model.

    *Dynamic-Max-Value ReLU* (Section 5.2, Figure 10) adds ``Linear(in, width)`` followed by
    D-ReLU in front of the output ``Linear(in, classes)``, which becomes ``Linear(width, classes)``.
    With ``act="srelu"`` the layer uses the paper's static predecessor S-ReLU instead
    (``clamp(x, 0, m_init)``, one fixed cap; the paper places it in the last hidden layer
    because its predecessor found that placement best).

    Args:
        model: A model whose output layer is an ``nn.Linear`` (see :func:`_output_layer`).
        width: Units of the new layer (default: the output layer's input width).
        m_init: Initial cap of every D-ReLU unit (the paper: 100); S-ReLU: its fixed cap.
        act: ``"drelu"`` or ``"srelu"`` (:data:`HEAD_ACTS`).

    Returns:
        The same model object, modified.

    """
    parent, attr, out = _output_layer(model)
    width = out.in_features if width is None else int(width)
    if width <= 0:
        raise ValueError(f"width must be a positive integer; got {width}")
    if act not in HEAD_ACTS:
        raise ValueError(f"the head's activation must be one of {', '.join(HEAD_ACTS)}; got {act!r}")
    head = nn.Sequential(
        nn.Linear(out.in_features, width),
        DReLU(width, m_init=m_init) if act == "drelu" else SReLU(m_init),
        nn.Linear(width, out.out_features),
    ).to(device=out.weight.device, dtype=out.weight.dtype)
    setattr(parent, attr, head)
    return model


class RBFOutput(nn.Module):
    """The symmetric-activation paper's final 1-D RBF layer, returned as log-confidences.

    *Suppressing the Unusual* (Zhao and Griffin, Section 4) puts a 1-D RBF ``y_i = exp(-z_i^2)``
    after the last fully connected layer, so every class confidence is in (0, 1] and an input
    far from the training data gets low confidence in *every* class. The model contract asks for
    logits, so this layer returns ``log y_i = -z_i^2``: ``exp`` of the output is the paper's
    confidence vector, ``argmax`` is unchanged, and ``cross_entropy`` on the output is exactly the
    first term of the paper's hybrid loss, ``-ln(y_l / sum_i y_i)``.
    """

    stochastic = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Return ``-z^2`` (the log of the RBF confidences ``exp(-z^2)``)."""
        return -(z * z)


def has_rbf_output(model: nn.Module) -> bool:
    """True when ``model``'s output passes through :class:`RBFOutput` (see :func:`with_rbf_output`)."""
    return any(isinstance(m, RBFOutput) for m in model.modules())


def with_rbf_output(model: nn.Module) -> nn.Module:
    """Append the final 1-D RBF layer (:class:`RBFOutput`) after the output layer, in place.

    Args:
        model: A model with an output layer (see :func:`_output_module`), which may already be
            a D-ReLU head.

    Returns:
        The same model object; ``exp(model(x))`` are the paper's confidences in (0, 1].

    """
    if has_rbf_output(model):
        raise ValueError("the model already has an RBF output layer")
    parent, attr, out = _output_module(model)
    setattr(parent, attr, nn.Sequential(out, RBFOutput()))
    return model


def hybrid_loss(
    log_conf: torch.Tensor,
    y: torch.Tensor,
    *,
    a1: float = 1.0,
    a2: float = 1.0,
    a3: float = 0.0,
    p: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The symmetric-activation paper's hybrid loss (eq. 7) on log-confidences.

    With confidences ``y_i = exp(log_conf_i)`` in (0, 1] (the final 1-D RBF layer):
    ``-a1 ln(y_l / sum_i y_i) + a2 (1 - y_l)^p + a3 sum_{i != l} y_i^p``. The first term is
    ``cross_entropy(log_conf, l)``. The paper uses ``p = 2``; ``a = (1, 1, 0)`` on MNIST and
    ``(1, 1, 1/9)`` on CIFAR-10.

    Args:
        log_conf: ``(N, classes)`` log-confidences (the output of a model with an RBF output).
        y: Labels ``(N,)``.
        a1: Weight of the normalized log term.
        a2: Weight of the correct class's p-order error.
        a3: Weight of the wrong classes' p-order errors.
        p: Order of the errors (> 1).
        reduction: ``"mean"`` or ``"none"`` (per sample).

    """
    conf = log_conf.exp()
    true = conf.gather(1, y[:, None]).squeeze(1)
    others = (conf.pow(p).sum(1) - true.pow(p)).clamp_min(0.0)
    per = a1 * F.cross_entropy(log_conf, y, reduction="none") + a2 * (1.0 - true).pow(p) + a3 * others
    return per.mean() if reduction == "mean" else per
