"""Training recipes: a named loss, the config defaults that go with it, and what it needs.

=============  =====================================================================================
``standard``   natural training (cross-entropy).
``pgd_at``     PGD-k adversarial training with the BReLU paper's clean/adversarial mix (eq. 1);
               defaults per dataset: the BReLU paper's eps = 0.03, step 0.00784, 7 steps on CIFAR;
               eps = 0.1 (the D-ReLU paper's MNIST bound), step eps/4, 7 steps on MNIST-like data.
``trades``     TRADES (Zhang et al., ICML 2019), beta = 6 by default (the D-ReLU paper compares
               beta = 1, 5, 6, 8); CIFAR: eps 0.031, step 0.007, 10 steps (the TRADES paper);
               MNIST-like: the same attack budget as ``pgd_at`` so the two are comparable.
``drelu``      natural training + ``lambda * sum m_i^2`` with the D-ReLU paper's Adam 1e-3,
               ReduceLROnPlateau (factor 0.5, patience 5) and early stopping (patience 10) on the
               validation loss.
``saf``        the symmetric-activation paper's random + mean training with its hybrid loss; the
               model must end with the final 1-D RBF layer (``ModelSpec(rbf_output=True)``).
``fast_at``    FGSM adversarial training from a random start, step 1.25 eps (Wong et al., ICLR 2020).
=============  =====================================================================================

The D-ReLU penalty is added by the training loop whenever ``drelu_lambda > 0``, whatever the
recipe, so a D-ReLU model trained with PGD-AT is penalized too. "ReLU + Dropout" is not a
recipe: it is the ``relu_dropout`` activation trained with any of these.

A recipe's per-dataset values are facts of the dataset, not of its name: they come from the
dataset's :class:`~robact_bench.data.DatasetFamily` (``DatasetInfo.recipe_defaults``, listed in
:mod:`robact_bench.data.families`) and override the recipe's own dataset-independent defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robact_bench.data import dataset_info
from robact_bench.models.heads import has_rbf_output
from robact_bench.registry import Registry
from robact_bench.training.losses import fast_at_loss, natural_loss, pgd_at_loss, saf_loss, trades_loss

if TYPE_CHECKING:
    from robact_bench.training.config import TrainConfig


@dataclass(frozen=True)
class RecipeContext:
    """Dataset-level values a recipe's loss may need, computed once per run.

    Attributes:
        train_mean: The mean training image, ``(1, C, H, W)`` (mean training of ``saf``).

    """

    train_mean: torch.Tensor


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, "TrainConfig", RecipeContext], torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    """A training recipe.

    Attributes:
        name: Registry name.
        loss: ``loss(model, x, y, config, context) -> scalar tensor`` (penalties excluded).
        defaults: Config values the recipe sets on every dataset; the dataset's own values for
            the recipe (``DatasetInfo.recipe_defaults``) override them.
        adversarial: Whether the loss crafts adversarial examples.
        description: One line, with the paper it comes from.
        check: ``check(model)`` raises ``ValueError`` when the model cannot use the recipe.

    """

    name: str
    loss: LossFn
    defaults: Mapping[str, Any] = field(default_factory=dict)
    adversarial: bool = False
    description: str = ""
    check: Callable[[nn.Module], None] | None = None

    def defaults_for(self, dataset: str) -> dict[str, Any]:
        """The config values this recipe sets for registered dataset ``dataset``.

        Its dataset-independent :attr:`defaults`, overridden by the dataset's values for the
        recipe (:meth:`~robact_bench.data.DatasetInfo.recipe_defaults`).

        Raises:
            UnknownNameError: ``dataset`` is not registered (the message lists the closest names).

        """
        return {**self.defaults, **dataset_info(dataset).recipe_defaults(self.name)}


RECIPES: Registry[Recipe] = Registry("recipe")

def _needs_rbf_output(model: nn.Module) -> None:
    if not has_rbf_output(model):
        raise ValueError(
            "recipe 'saf' needs a model that ends with the final 1-D RBF layer: "
            "set rbf_output: true in the model spec (ModelSpec(rbf_output=True))"
        )


RECIPES.add(
    "standard",
    Recipe("standard", lambda m, x, y, c, ctx: natural_loss(m, x, y), {}, False,
           "natural training: cross-entropy on clean images"),
    aliases=("natural",),
)  # fmt: skip
RECIPES.add(
    "pgd_at",
    Recipe(
        "pgd_at",
        lambda m, x, y, c, ctx: pgd_at_loss(
            m, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, clean_weight=c.clean_weight
        ),
        {"optimizer": "adamw", "scheduler": "onecycle"},
        True,
        "PGD-k adversarial training, loss alpha*CE(x) + (1-alpha)*CE(x*) "
        "(BReLU paper eq. 1; Madry et al., ICLR 2018 for alpha = 0)",
    ),
    aliases=("pgdat", "madry"),
)
RECIPES.add(
    "trades",
    Recipe(
        "trades",
        lambda m, x, y, c, ctx: trades_loss(
            m, x, y, beta=c.trades_beta, eps=c.eps, step_size=c.step_size, steps=c.steps
        ),
        {"trades_beta": 6.0},
        True,
        "TRADES: CE(x) + beta * KL(p(x) || p(x*)) (Zhang et al., ICML 2019)",
    ),
)
RECIPES.add(
    "drelu",
    Recipe(
        "drelu",
        lambda m, x, y, c, ctx: natural_loss(m, x, y),
        {
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "scheduler": "plateau",
            "plateau_factor": 0.5,
            "plateau_patience": 5,
            "early_stopping_patience": 10,
            "drelu_lambda": 0.01,
        },
        False,
        "natural training + lambda * sum m_i^2 on the D-ReLU caps; Adam 1e-3, ReduceLROnPlateau(0.5, 5), "
        "early stopping (10) on validation loss (Dynamic-Max-Value ReLU, eq. 1 and Section 5.1)",
    ),
    aliases=("d_relu",),
)
RECIPES.add(
    "saf",
    Recipe(
        "saf",
        lambda m, x, y, c, ctx: saf_loss(
            m, x, y,
            train_mean=ctx.train_mean, delta=c.saf_delta, fraction=c.saf_fraction,
            mean_copies=c.saf_mean_copies, mean_sigma=c.saf_mean_sigma,
            a1=c.hybrid_a1, a2=c.hybrid_a2, a3=c.hybrid_a3, p=c.hybrid_p, nonsense_weight=c.saf_nonsense_weight,
        ),
        {},
        False,
        "random training + mean training with the hybrid loss (eq. 7) on a model with a final 1-D RBF "
        "layer (Suppressing the Unusual, Zhao and Griffin, Section 4)",
        _needs_rbf_output,
    ),
    aliases=("symmetric", "hybrid"),
)
RECIPES.add(
    "fast_at",
    Recipe(
        "fast_at",
        lambda m, x, y, c, ctx: fast_at_loss(m, x, y, eps=c.eps, step_size=c.step_size),
        {},
        True,
        "FGSM adversarial training from a uniform random start, step 1.25 eps "
        "(Wong, Rice and Kolter, Fast is better than free, ICLR 2020)",
    ),
    aliases=("fgsm_at", "fast"),
)
