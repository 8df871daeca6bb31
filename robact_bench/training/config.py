"""The training configuration: one frozen dataclass, the single source of truth for a run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from robact_bench.fileio import to_jsonable
from robact_bench.registry import check_kwargs

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Attributes:
        recipe: Registered recipe name (``standard``, ``pgd_at``, ``drelu``).
        epochs: Passes over the training data.
        batch_size: Images per step.
        optimizer: ``adamw``, ``adam`` or ``sgd`` (momentum 0.9).
        lr: Learning rate (the peak for ``onecycle``).
        weight_decay: Weight decay (never applied to D-ReLU caps: their only pull is the penalty).
        scheduler: ``onecycle`` (BReLU paper) or ``none``.
        eps: L-inf radius of training attacks, in [0, 1] pixel units.
        step_size: PGD step size.
        steps: PGD steps (7 in the BReLU paper).
        clean_weight: ``alpha`` of the BReLU paper's eq. 1 (weight of the clean loss).
        drelu_lambda: Weight of the D-ReLU penalty ``sum m_i^2`` (0 = none).
        drelu_lr: Learning rate of the D-ReLU caps (``None`` = ``lr``); a separate rate lets the
            cap move from its initial value in short training.
        seed: Seed of weights, batch order, attacks and stochastic activations.

    """

    recipe: str = "standard"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    scheduler: str = "onecycle"
    eps: float = 0.1
    step_size: float = 0.025
    steps: int = 7
    clean_weight: float = 0.5
    drelu_lambda: float = 0.0
    drelu_lr: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from robact_bench.training.recipes import RECIPES

        object.__setattr__(self, "recipe", RECIPES.resolve(self.recipe))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0; got {self.steps!r}")
        for name in ("lr", "weight_decay", "eps", "step_size", "drelu_lambda"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.lr == 0:
            raise ValueError("lr must be > 0")
        if self.eps > 1:
            raise ValueError(
                f"eps must be in [0, 1] (pixel values are in [0, 1]); got {self.eps}. "
                f"For 0..255 units write e.g. {self.eps:g}/255"
            )
        if not 0.0 <= self.clean_weight <= 1.0:
            raise ValueError(f"clean_weight must be in [0, 1]; got {self.clean_weight!r}")
        if self.drelu_lr is not None and not (math.isfinite(self.drelu_lr) and self.drelu_lr > 0):
            raise ValueError(f"drelu_lr must be a number > 0 or None; got {self.drelu_lr!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are an error that lists the allowed ones."""
        check_kwargs("training config", "TrainConfig", cls, data, error=ValueError)
        return cls(**dict(data))

    def with_recipe_defaults(self, **overrides: Any) -> TrainConfig:
        """Return a copy with the recipe's defaults applied, then ``overrides``."""
        from robact_bench.training.recipes import RECIPES

        return replace(self, **{**RECIPES.get(self.recipe).defaults, **overrides})
