"""The evaluation configuration: one frozen dataclass, validated once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from robact_bench.attacks.autoattack import BACKENDS
from robact_bench.attacks.common import NORMS
from robact_bench.attacks.precision import PRECISIONS
from robact_bench.fileio import to_jsonable
from robact_bench.registry import check_kwargs

EOT_MODES = ("batched", "sequential")


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


@dataclass(frozen=True)
class EvalConfig:
    """How a model is evaluated.

    Attributes:
        suite: Registered attack suite (``robact-bench list suites``).
        eps: Radius of the threat model: Linf in [0, 1] pixel units (``8/255``), L2 >= 0.
        norm: ``Linf`` or ``L2``.
        n_examples: Points, chosen class-balanced in a fixed order; ``None`` = every point given.
        seed: Seed of the attacks and of the model's randomness (each unit reseeds from it).
        eot_iter: EOT samples K per gradient or query for random models (AutoAttack rand: 20).
        passes: Forward passes R that score every image of a random model (RobustBench's
            ``number_forward_passes``). An attack's candidate images are first compared on S
            *selection* passes, and the one kept per point is scored on R fresh passes: the
            expected, majority and all-passes-right accuracies all come from those R passes.
        select_passes: Passes S on which a random model's candidate images (an attack's, and the
            clean image) are compared to keep the strongest per point; never reported.
        confirm_passes: Further fresh passes M of every kept image of a random model, used only
            by the checks to settle points where two attacks' numbers disagree (never reported
            as an accuracy).
        eot_mode: ``batched`` (the K samples in one forward pass, :class:`~robact_bench.attacks.eot.EOTModel`)
            or ``sequential`` (the libraries' own loops: AutoAttack's ``eot_iter``, torchattacks'
            ``EOTPGD``; Square then has no EOT).
        eot_batch: Most images per forward pass of the EOT model.
        batch_size: Images per attack call.
        attacks: Run only these attacks of the suite (smoke runs); ``None`` = all.
        sweeps: Run the suite's sweeps.
        sweep_eps: Override the eps sweep's grid (multiples of ``eps``).
        sweep_steps: Override the steps sweep's grid.
        sweep_points: How many of the evaluated points the sweeps (diagnostics only, never in the
            headline) run on: a class-balanced subset drawn with ``seed``
            (:func:`~robact_bench.data.balanced_subset`); ``None``, or at least ``n_examples``: every point.
        autoattack_backend: ``auto``, ``pyautoattack`` or ``autoattack``.
        saf_betas: Override the symmetric-activation paper's beta grid (default: by dataset).
        saf_threshold: Rejection threshold on every class confidence.
        n_nonsense: Nonsense samples generated.
        precision: ``fp32`` or ``bf16``: the precision of the model's layers *inside the attacks*
            (:class:`~robact_bench.attacks.precision.Bf16Model`: bf16 autocast, fp32 logits).
            Scoring (clean, R/S/M passes) is always fp32 on the unwrapped model.

    """

    suite: str = "standard"
    eps: float = 0.1
    norm: str = "Linf"
    n_examples: int | None = None
    seed: int = 0
    eot_iter: int = 20
    passes: int = 10
    select_passes: int = 50
    confirm_passes: int = 50
    eot_mode: str = "batched"
    eot_batch: int = 512
    batch_size: int = 500
    attacks: tuple[str, ...] | None = None
    sweeps: bool = True
    sweep_eps: tuple[float, ...] | None = None
    sweep_steps: tuple[int, ...] | None = None
    sweep_points: int | None = 200
    autoattack_backend: str = "auto"
    saf_betas: tuple[float, ...] | None = None
    saf_threshold: float = 0.5
    n_nonsense: int = 1000
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from robact_bench.attacks.suites import SUITES

        SUITES.resolve(self.suite)  # unknown suite: error with the closest names
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {self.norm!r}")
        if not (isinstance(self.eps, int | float) and not isinstance(self.eps, bool) and math.isfinite(self.eps)):
            raise ValueError(f"eps must be a finite number; got {self.eps!r}")
        if self.norm == "Linf" and not 0 <= self.eps <= 1:
            raise ValueError(
                f"Linf eps must be in [0, 1] (images are in [0, 1]); got {self.eps!r}: for 0..255 units write "
                f"{self.eps:g}/255"
            )
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        for name in ("eot_iter", "passes", "select_passes", "confirm_passes", "eot_batch", "batch_size", "n_nonsense"):
            if not _is_int(getattr(self, name), 1):
                raise ValueError(f"{name} must be an integer >= 1; got {getattr(self, name)!r}")
        if self.n_examples is not None and not _is_int(self.n_examples, 1):
            raise ValueError(f"n_examples must be an integer >= 1 or None; got {self.n_examples!r}")
        if not _is_int(self.seed, 0):
            raise ValueError(f"seed must be an integer >= 0; got {self.seed!r}")
        if self.eot_mode not in EOT_MODES:
            raise ValueError(f"eot_mode must be one of {', '.join(EOT_MODES)}; got {self.eot_mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.autoattack_backend not in BACKENDS:
            raise ValueError(
                f"autoattack_backend must be one of {', '.join(BACKENDS)}; got {self.autoattack_backend!r}"
            )
        if not (isinstance(self.saf_threshold, int | float) and 0 < self.saf_threshold < 1):
            raise ValueError(f"saf_threshold must be in (0, 1); got {self.saf_threshold!r}")
        for name in ("attacks", "sweep_eps", "sweep_steps", "saf_betas"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(v))
        for v in self.sweep_eps or ():
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"sweep_eps values must be finite numbers >= 0 (multiples of eps); got {v!r}")
        if self.sweep_points is not None and (
            isinstance(self.sweep_points, bool) or not isinstance(self.sweep_points, int) or self.sweep_points < 1
        ):
            raise ValueError(f"sweep_points must be an integer >= 1 or None (every point); got {self.sweep_points!r}")
        for v in self.sweep_steps or ():
            if not _is_int(v, 1):
                raise ValueError(f"sweep_steps values must be integers >= 1; got {v!r}")
        for v in self.saf_betas or ():
            if not (isinstance(v, int | float) and math.isfinite(v) and 0 <= v <= 1):
                raise ValueError(f"saf_betas values must be in [0, 1]; got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Build from a mapping; unknown keys are an error that lists the allowed ones."""
        check_kwargs("evaluation config", "EvalConfig", cls, data, error=ValueError)
        return cls(**dict(data))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The option names :func:`robact_bench.evaluate` accepts."""
        return tuple(f.name for f in fields(cls))
