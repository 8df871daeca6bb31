"""Training recipes: a named loss (and the defaults that go with it).

* ``standard``: natural training (cross-entropy).
* ``pgd_at``: PGD-k adversarial training with the BReLU paper's clean/adversarial mix (eq. 1).
* ``drelu``: the D-ReLU paper's natural training plus ``lambda * sum m_i^2`` (Adam, lr 1e-3).

The D-ReLU penalty is added by the training loop whenever ``drelu_lambda > 0``, whatever the
recipe, so a D-ReLU model trained with PGD-AT is penalized too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robact_bench.registry import Registry
from robact_bench.training.losses import natural_loss, pgd_at_loss

if TYPE_CHECKING:
    from robact_bench.training.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """A training recipe.

    Attributes:
        name: Registry name.
        loss: ``loss(model, x, y, config) -> scalar tensor`` (penalties excluded).
        defaults: Config values the recipe sets (applied by ``TrainConfig.with_recipe_defaults``).
        adversarial: Whether the loss crafts adversarial examples.
        description: One line, with the paper it comes from.

    """

    name: str
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, TrainConfig], torch.Tensor]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    adversarial: bool = False
    description: str = ""


RECIPES: Registry[Recipe] = Registry("recipe")

RECIPES.add(
    "standard",
    Recipe(
        "standard",
        lambda m, x, y, c: natural_loss(m, x, y),
        {},
        False,
        "natural training: cross-entropy on clean images",
    ),
    aliases=("natural",),
)
RECIPES.add(
    "pgd_at",
    Recipe(
        "pgd_at",
        lambda m, x, y, c: pgd_at_loss(
            m, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, clean_weight=c.clean_weight
        ),
        {"optimizer": "adamw", "scheduler": "onecycle"},
        True,
        "PGD-k adversarial training, loss alpha*CE(x) + (1-alpha)*CE(x*) "
        "(BReLU paper eq. 1; Madry et al. 2018 for alpha = 0)",
    ),
    aliases=("pgdat", "madry"),
)
RECIPES.add(
    "drelu",
    Recipe(
        "drelu",
        lambda m, x, y, c: natural_loss(m, x, y),
        {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "none"},
        False,
        "natural training + lambda * sum m_i^2 on the D-ReLU caps, Adam 1e-3 (Dynamic-Max-Value ReLU, eq. 1)",
    ),
    aliases=("d_relu",),
)
