"""Baseline activations not provided by ``torch.nn`` as one module.

``relu``, ``lrelu``, ``prelu``, ``gelu``, ``silu`` and ``elu`` are torch's own modules,
registered in :mod:`robact_bench.activations`. ``relu_dropout`` is the Dropout comparison of
*Robustness through Random Activation: Adversarial Training with Bernoulli Rectified Linear
Units* (Section 4.3): a ReLU followed by Dropout(p), random in training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import ACTIVATIONS
from robact_bench.activations._validate import probability


@ACTIVATIONS.register("relu_dropout", aliases=("relu+dropout",))
class ReLUDropout(nn.Module):
    """ReLU followed by Dropout(p): random in ``train()`` mode, deterministic in ``eval()``.

    Args:
        p: Dropout probability, in [0, 1). The BReLU paper compares p = 0.1, 0.2 and 0.5.
        inplace: Passed to ReLU.

    """

    stochastic = False  # random only while training; eval() is deterministic

    def __init__(self, p: float = 0.1, inplace: bool = False) -> None:
        super().__init__()
        self.p = probability("p", p, "the Dropout probability")
        self.inplace = bool(inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ReLU then Dropout."""
        return F.dropout(F.relu(x, inplace=self.inplace), p=self.p, training=self.training)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"p={self.p}"
