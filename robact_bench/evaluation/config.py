"""The evaluation configuration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from robact_bench.attacks.autoattack import BACKENDS, VERSIONS
from robact_bench.attacks.common import NORMS
from robact_bench.fileio import to_jsonable
from robact_bench.registry import check_kwargs


@dataclass(frozen=True)
class EvalConfig:
    """How a model is evaluated.

    Attributes:
        eps: Radius of the threat model, in [0, 1] pixel units.
        norm: ``Linf`` (the PGD attacks of the protocol are Linf; the AutoAttack adapter alone
            also takes ``L2``).
        n_examples: Test points, chosen class-balanced and in a fixed order (:func:`select`).
        pgd_steps: Steps of the PGD attack (20, as in the BReLU paper).
        pgd_step_size: PGD step (``None`` = eps/4).
        reported_steps: Steps of the non-adaptive "reported" protocol: PGD with the training
            attack's settings, scored on one forward pass, no EOT (how the seed papers report).
        reported_step_size: Its step (``None`` = eps/4).
        autoattack_version: ``auto`` (``standard`` for deterministic, ``rand`` for random
            models), or ``standard``/``rand``/``plus``.
        autoattack_backend: ``auto``, ``pyautoattack`` or ``autoattack``.
        autoattack_attacks: Only these components of the version (smoke runs); ``None`` = all.
        eot_iter: EOT samples K per gradient for random models (AutoAttack ``rand`` uses 20).
        passes: Forward passes R that score every image of a random model; a point is robust
            only if all R passes are correct (worst case).
        batch_size: Images per forward/attack call.
        seed: Seed of attacks and of the model's randomness.

    """

    eps: float = 0.1
    norm: str = "Linf"
    n_examples: int = 1000
    pgd_steps: int = 20
    pgd_step_size: float | None = None
    reported_steps: int = 7
    reported_step_size: float | None = None
    autoattack_version: str = "auto"
    autoattack_backend: str = "auto"
    autoattack_attacks: tuple[str, ...] | None = None
    eot_iter: int = 20
    passes: int = 10
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, int | float) and math.isfinite(self.eps) and 0 <= self.eps <= 1):
            raise ValueError(f"eps must be in [0, 1] (pixel units); got {self.eps!r}; write 8/255 for 0..255 units")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {self.norm!r}")
        if self.norm != "Linf":
            raise ValueError(f"the evaluation protocol supports norm Linf only so far; got {self.norm!r}")
        for name in ("n_examples", "eot_iter", "passes", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
        for name in ("pgd_steps", "reported_steps", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {v!r}")
        for name in ("pgd_step_size", "reported_step_size"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0 or None; got {v!r}")
        if self.autoattack_version not in ("auto", *VERSIONS):
            raise ValueError(
                f"autoattack_version must be one of auto, {', '.join(VERSIONS)}; got {self.autoattack_version!r}"
            )
        if self.autoattack_backend not in BACKENDS:
            raise ValueError(
                f"autoattack_backend must be one of {', '.join(BACKENDS)}; got {self.autoattack_backend!r}"
            )

        if self.autoattack_attacks is not None:
            object.__setattr__(self, "autoattack_attacks", tuple(self.autoattack_attacks))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Build from a mapping; unknown keys are an error that lists the allowed ones."""
        check_kwargs("evaluation config", "EvalConfig", cls, data, error=ValueError)
        return cls(**dict(data))
