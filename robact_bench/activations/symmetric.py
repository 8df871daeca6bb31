"""Symmetric activation functions (SAF).

From *Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions*
(Q. Zhao and L. D. Griffin): units that suppress signals of unusual magnitude in
either direction.

* ``mrelu``: mirrored ReLU, ``min(relu(1 - x), relu(1 + x))`` (paper eq. 2).
* ``rbf``: the 1-D radial basis function ``exp(-x^2)`` (paper Section 3.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import ACTIVATIONS


@ACTIVATIONS.register("mrelu", aliases=("mirrored_relu",))
class MReLU(nn.Module):
    """Mirrored ReLU: ``1 + x`` on (-1, 0), ``1 - x`` on (0, 1), 0 elsewhere."""

    stochastic = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``min(relu(1 - x), relu(1 + x))``."""
        return torch.minimum(F.relu(1.0 - x), F.relu(1.0 + x))


@ACTIVATIONS.register("rbf", aliases=("rbf1d", "gaussian"))
class RBF(nn.Module):
    """1-D radial basis function ``exp(-x^2)``; parameter-free (the preceding layer scales)."""

    stochastic = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``exp(-x^2)``."""
        return torch.exp(-x * x)
