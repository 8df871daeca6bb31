"""Capped ReLUs: S-ReLU (fixed cap) and D-ReLU (learnable per-neuron cap).

From *Dynamic-Max-Value ReLU* (the D-ReLU paper; S-ReLU is its predecessor): S-ReLU is
``clamp(x, 0, m)`` with a fixed ``m``; D-ReLU makes ``m`` a learnable parameter per neuron
(per channel for convolutions), initialised high (100 in the paper) and pulled down by the
penalty ``lambda * sum_i m_i^2`` added to the loss (paper eq. 1; :func:`drelu_penalty`).

The paper's cap only matters where pre-activations exceed it. With ``m = 100`` and short
training the cap may never be reached, and the network is then a plain ReLU network:
:meth:`DReLU.saturation` measures this on real data.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from robact_bench.activations import ACTIVATIONS
from robact_bench.activations._validate import positive


def _uncapped(self: nn.Module) -> nn.Module:
    """The BPDA surrogate: ``nn.ReLU()``, the cap removed.

    Beyond the cap ``clamp(x, 0, m)`` is flat, so its gradient there is exactly zero: a
    network whose units sit above their caps hands a gradient attack zero or near-zero input
    gradients (masked gradients, not robustness). BPDA (Athalye et al. 2018) approximates
    the clamp by the identity beyond ``m`` in the backward pass; that is ReLU, whose forward
    equals the capped one wherever the cap is not reached
    (:mod:`robact_bench.attacks.bpda`).
    """
    return nn.ReLU()


@ACTIVATIONS.register("srelu", aliases=("static_max_relu", "capped_relu"))
class SReLU(nn.Module):
    """Static-max-value ReLU: ``clamp(x, 0, m)`` with a fixed cap ``m > 0``.

    Args:
        m: The cap (the D-ReLU paper's Figure 5 shows m = 2; ReLU6 is m = 6).

    """

    stochastic = False

    def __init__(self, m: float = 1.0) -> None:
        super().__init__()
        self.m = positive("m", m, "the maximum value of clamp(x, 0, m)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``clamp(x, 0, m)``."""
        return x.clamp(0.0, self.m)

    def at_cap(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the entries of ``x`` (a pre-activation batch) that reach the cap."""
        return x >= self.m

    def caps(self) -> torch.Tensor:
        """The cap as a one-element tensor (D-ReLU: one per neuron)."""
        return torch.tensor([float(self.m)])

    surrogate = _uncapped

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"m={self.m}"


@ACTIVATIONS.register("drelu", aliases=("dynamic_max_relu",))
class DReLU(LazyModuleMixin, nn.Module):
    """Dynamic-max-value ReLU: ``clamp(x, 0, m)`` with a learnable cap per neuron/channel.

    Args:
        num_features: Number of neurons (linear input ``(N, C)``) or channels (``(N, C, ...)``).
            ``None`` infers it on the first forward pass (as ``nn.LazyLinear`` does), which is
            what :func:`~robact_bench.activations.swap_activations` uses.
        m_init: Initial cap for every neuron, > 0 (the paper uses 100).
        dim: The feature dimension of the input (1 for ``(N, C, ...)``).

    Shape:
        ``(N, C, *)``; ``m`` has shape ``(C,)``.

    """

    stochastic = False
    cls_to_become = None
    m: torch.Tensor

    def __init__(self, num_features: int | None = None, m_init: float = 100.0, dim: int = 1) -> None:
        super().__init__()
        self.m_init = positive("m_init", m_init, "the initial maximum value of each neuron")
        self.dim = int(dim)
        if num_features is None:
            self.m = UninitializedParameter()
        else:
            n = int(num_features)
            if n <= 0:
                raise ValueError(f"num_features must be a positive integer; got {num_features!r}")
            self.m = nn.Parameter(torch.full((n,), self.m_init))

    def initialize_parameters(self, x: torch.Tensor) -> None:  # called by LazyModuleMixin
        """Create ``m`` with one entry per feature of the first input seen."""
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.m.materialize((x.shape[self.dim],), device=x.device, dtype=x.dtype)
                self.m.fill_(self.m_init)

    def _cap(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return self.m.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``clamp(x, 0, m)`` with ``m`` broadcast along the feature dimension."""
        return torch.minimum(torch.relu(x), self._cap(x))

    @torch.no_grad()
    def at_cap(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the entries of ``x`` (a pre-activation batch) that reach the cap."""
        if self.has_uninitialized_params():
            raise RuntimeError("D-ReLU has no cap yet: run one forward pass first")
        return x >= self._cap(x)

    def saturation(self, x: torch.Tensor) -> float:
        """Fraction of the entries of ``x`` (a pre-activation batch) that reach the cap."""
        return float(self.at_cap(x).float().mean())

    def caps(self) -> torch.Tensor:
        """The caps, one per neuron/channel (a detached CPU copy)."""
        return self.m.detach().flatten().cpu()

    surrogate = _uncapped

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        n = "?" if self.has_uninitialized_params() else self.m.numel()
        return f"num_features={n}, m_init={self.m_init}, dim={self.dim}"


def drelu_modules(model: nn.Module) -> list[DReLU]:
    """All :class:`DReLU` modules of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, DReLU)]


def capped_modules(model: nn.Module) -> list[DReLU | SReLU]:
    """All capped ReLUs (:class:`DReLU` and :class:`SReLU`) of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, DReLU | SReLU)]


def drelu_penalty(model: nn.Module) -> torch.Tensor:
    """Return ``sum_i m_i^2`` over every D-ReLU cap in ``model`` (0 if there is none).

    Add ``lambda * drelu_penalty(model)`` to the loss (D-ReLU paper, eq. 1). The result is
    differentiable with respect to every cap.
    """
    caps = [m.m for m in drelu_modules(model)]
    if not caps:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return torch.stack([(c * c).sum() for c in caps]).sum()
