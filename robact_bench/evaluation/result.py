"""``EvalResult``: the one typed record an evaluation produces and the leaderboard reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from robact_bench.registry import check_kwargs


@dataclass(frozen=True)
class AttackRecord:
    """One attack's outcome.

    Attributes:
        name: ``pgd7_reported``, ``pgd20``, ``apgd-ce``, ``apgd-t``, ...
        accuracy: Robust accuracy under our scoring: the point's adversarial image is correct on
            every one of R passes (R = 1 for deterministic models). For AutoAttack components
            it is cumulative (after this and the previous components), as AutoAttack reports.
        single_pass_accuracy: The same images scored on one forward pass.
        library_accuracy: The accuracy as the library itself scored it (AutoAttack), or None.
        cumulative: Whether the attack ran only on points robust to the previous components.
        record: Backend, its version, every parameter, seed, seconds, the library's warnings,
            and how the model was attacked (``eot``: mode and K, or None; ``via``).
        flags: Per point (in the result's ``indices`` order), ``"1"`` where the point resisted
            this attack under our scoring.

    """

    name: str
    accuracy: float
    single_pass_accuracy: float
    library_accuracy: float | None
    cumulative: bool
    record: dict[str, Any] = field(default_factory=dict)
    flags: str = ""


@dataclass(frozen=True)
class EvalResult:
    """Everything one evaluation measured, with what is needed to reproduce it.

    Accuracies are fractions in [0, 1]; RobustBench's percentage strings appear only at export.

    Attributes:
        model_name: File-safe identifier (the leaderboard file name).
        title: Human-readable description.
        dataset: Dataset name; ``split`` its split.
        suite: The attack suite run.
        threat_model: ``Linf`` or ``L2``; ``eps`` its radius.
        n_examples: Number of evaluated points; ``indices`` which ones (in the split).
        stochastic: The model's forward pass is random (declared by an activation or measured).
        passes: Forward passes R scoring each image (1 for deterministic models): RobustBench's
            ``number_forward_passes`` of our headline number.
        eot_iter: EOT samples K per gradient/query for random models (None for deterministic ones).
        eot_mode: ``batched`` or ``sequential`` (how the K samples were drawn).
        clean_acc: Clean accuracy (mean over the R passes for random models).
        clean_acc_majority: Majority vote over R passes.
        clean_acc_worst: Correct on all R passes.
        reported_acc: Non-adaptive number (PGD with the training attack's settings, one forward
            pass, no EOT) when the suite has one, else None.
        autoattack_acc: AutoAttack's accuracy as the library scores it (its cascade), or None.
        autoattack_version: ``standard``, ``rand`` or ``plus``, or None.
        robust_acc: Worst case over every attack, per point, each image scored on R passes
            (None when the suite ran no attack).
        attacks: Per-attack records.
        robust_flags: Per point (in ``indices`` order): robust to every attack.
        skipped: Attacks of the suite not run, each ``{"name", "reason"}``.
        sweeps: Accuracy-vs-eps/steps data, each ``{"kind", "attack", "values", "accuracy", ...}``.
        saf: The symmetric-activation paper's error rates over beta, or None.
        diagnostics: Check results (name, passed, value, reason).
        warnings: Problems found in the inputs or the model (also issued as warnings).
        model: The model spec (architecture and activation names, arguments).
        training: Recipe, resolved training config, per-epoch history, seconds.
        eval_config: The resolved evaluation config.
        environment: Package versions, Python, platform, threads, device.
        wall_time_s: Seconds the evaluation took.
        quick: A smoke run (tiny budget): not a result.
        masking: The gradient-masking checks (:mod:`robact_bench.evaluation.masking`), each
            ``{"name", "passed" (True, False or None = not judged), "value", "detail", "reason", "doc"}``.

    """

    model_name: str
    title: str
    dataset: str
    split: str
    suite: str
    threat_model: str
    eps: float
    n_examples: int
    indices: tuple[int, ...]
    stochastic: bool
    passes: int
    eot_iter: int | None
    eot_mode: str
    clean_acc: float
    clean_acc_majority: float
    clean_acc_worst: float
    reported_acc: float | None
    autoattack_acc: float | None
    autoattack_version: str | None
    robust_acc: float | None
    attacks: tuple[AttackRecord, ...]
    robust_flags: tuple[bool, ...]
    skipped: tuple[dict[str, Any], ...]
    sweeps: tuple[dict[str, Any], ...]
    saf: dict[str, Any] | None
    diagnostics: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    model: dict[str, Any]
    training: dict[str, Any]
    eval_config: dict[str, Any]
    environment: dict[str, Any]
    wall_time_s: float
    quick: bool = False
    masking: tuple[dict[str, Any], ...] = ()

    def attack(self, name: str) -> AttackRecord:
        """The record of attack ``name``."""
        for a in self.attacks:
            if a.name == name:
                return a
        raise KeyError(f"no attack {name!r}; have {[a.name for a in self.attacks]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`."""
        check_kwargs("evaluation result", "EvalResult", cls, data, error=ValueError)
        d = dict(data)
        d["attacks"] = tuple(AttackRecord(**a) for a in d["attacks"])
        for key in ("indices", "robust_flags", "diagnostics", "skipped", "sweeps", "warnings", "masking"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
