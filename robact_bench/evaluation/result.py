"""``EvalResult``: the one typed record an evaluation produces and the leaderboard reads.

Every accuracy is a function of per-point integer counts (correct passes out of ``passes``):
the three scoring rules of :mod:`robact_bench.evaluation.stochastic` (``expected``,
``majority``, ``all_right``). A deterministic model has ``passes = 1`` and the three coincide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from robact_bench.registry import check_kwargs

_TUPLES = ("counts", "select", "confirm", "chosen", "query_counts", "surrogate_wrong", "cumulative_counts")


#: the note (in ``EvalResult.warnings``) of a random model whose headline is AutoAttack's result:
#: the per-point worst case read above it by the noise of the scoring passes (see the engine)
HEADLINE_IS_AUTOATTACK = "the headline is AutoAttack's result"


@dataclass(frozen=True)
class AttackRecord:
    """One attack's outcome.

    Attributes:
        name: ``pgd20``, ``apgd-ce``, ``fgsm-noeot``, ...
        accuracy: Expected accuracy (mean over the R scoring passes; one pass on a
            deterministic model) of the attack's kept image per point, a point counting only if
            its clean image is right too. For a cascaded AutoAttack component (deterministic
            models, ``cumulative``) it is after this and the previous components, as AutoAttack
            reports; every other record counts this attack's own images alone.
        accuracy_majority: The same images under the majority rule (more than half the passes right).
        accuracy_all_right: The same images under the all-passes-right rule.
        library_accuracy: The accuracy as the library itself scores it, or None: AutoAttack's
            one-pass flags (cumulative in its cascade; on a random model, this component alone,
            one pass of the attacked EOT model).
        cumulative: Whether the attack ran only on points robust to the previous components.
        counts: Per point (in the result's ``indices`` order), correct scoring passes of the kept
            image (0 or 1 on a deterministic model).
        select: Random models: correct selection passes of the kept image (the passes it was
            chosen on, never reported as accuracy).
        confirm: Random models: correct confirmation passes (``confirm_passes`` fresh passes; the
            checks use them to settle disputed points).
        chosen: Random models: which candidate was kept per point (0 the library's image, then its
            other candidates, then the strongest queried image; the last index is the clean image).
        query_counts: Deterministic models: the flag of the strongest image the attack queried
            (:class:`~robact_bench.attacks.record.QueryRecorder`), where it differs from what the
            library returned the attack had an adversarial example in hand and did not return it.
        query_index: Random models: the index in ``chosen`` of the strongest queried image.
        surrogate_wrong: Transfer attacks: 1 where the surrogate misclassifies the returned image.
        library_flags: The library's own per-point flags (``"1"`` robust), or None.
        cumulative_counts: AutoAttack components on a random model (each runs on every point): the
            counts of the strongest image per point among this and the previous components (chosen
            on their selection passes), AutoAttack's "robust accuracy after this component";
            ``cumulative_all_right`` the all-passes-right flags of that cascade. None otherwise.
        indicators: What the attack queried, per point (:meth:`QueryRecorder.summary`), or None.
        record: Backend, its version, every parameter, seed, seconds, the library's warnings,
            and how the model was attacked (``eot``: mode and K, or None; ``via``, ``role``,
            ``draws``, ``bound``).
        flags: Per point, ``"1"`` where the kept image was right on every scoring pass.

    """

    name: str
    accuracy: float
    accuracy_majority: float
    accuracy_all_right: float
    library_accuracy: float | None
    cumulative: bool
    counts: tuple[int, ...] = ()
    select: tuple[int, ...] | None = None
    confirm: tuple[int, ...] | None = None
    chosen: tuple[int, ...] | None = None
    query_counts: tuple[int, ...] | None = None
    query_index: int | None = None
    surrogate_wrong: tuple[int, ...] | None = None
    library_flags: str | None = None
    cumulative_counts: tuple[int, ...] | None = None
    cumulative_all_right: str | None = None
    indicators: dict[str, Any] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    flags: str = ""

    @property
    def role(self) -> str:
        """``headline`` or ``diagnostic`` (from the suite's spec)."""
        return str(self.record.get("role", "headline"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackRecord:
        """Inverse of :meth:`to_dict`."""
        check_kwargs("attack record", "AttackRecord", cls, data, error=ValueError)
        d = dict(data)
        for key in _TUPLES:
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True)
class EvalResult:
    """Everything one evaluation measured, with what is needed to reproduce it.

    Accuracies are fractions in [0, 1]; RobustBench's percentage strings appear only at export.
    Each accuracy has three versions, one per scoring rule; the unsuffixed one is ``expected``
    (the mean over passes: comparable with a deterministic model's one pass).

    Attributes:
        model_name: File-safe identifier (the leaderboard file name).
        title: Human-readable description.
        dataset: Dataset name; ``split`` its split.
        suite: The attack suite run.
        threat_model: ``Linf`` or ``L2``; ``eps`` its radius.
        n_examples: Number of evaluated points; ``indices`` which ones (in the split).
        stochastic: The model's forward pass is random (declared by an activation or measured).
        passes: Scoring passes R per image (1 for deterministic models): RobustBench's
            ``number_forward_passes``.
        select_passes: Selection passes S per candidate image (1 for deterministic models).
        confirm_passes: Confirmation passes M per kept image (1 for deterministic models).
        eot_iter: EOT samples K per gradient/query for random models (None for deterministic ones).
        eot_mode: ``batched`` or ``sequential`` (how the K samples were drawn).
        clean_acc: Clean accuracy, expected rule; ``clean_acc_majority``, ``clean_acc_all_right``.
        clean_counts: Correct scoring passes of each clean image; ``clean_confirm`` confirmation passes.
        reported_acc: The suite's non-adaptive protocol number (expected rule), else None.
        autoattack_acc: AutoAttack's components alone, worst case per point (deterministic: the
            library's cascade; random: the strongest kept image among the components), expected
            rule; ``autoattack_acc_majority``, ``autoattack_acc_all_right``; ``autoattack_counts``
            and ``autoattack_all_right`` per point.
        autoattack_library_acc: AutoAttack's number as the library scores it (one pass per check).
        autoattack_version: ``standard``, ``rand`` or ``plus``, or None.
        robust_acc: The headline: worst case per point over every headline attack (see
            :func:`robact_bench.evaluation.engine.headline`), expected rule; ``robust_acc_majority``,
            ``robust_acc_all_right`` (every image of every attack right on every pass).
        robust_counts: Per point, scoring counts of the headline's image; ``robust_confirm`` its
            confirmation counts; ``robust_source`` the attack whose image decides the point.
        attacks: Per-attack records.
        robust_flags: Per point (in ``indices`` order): robust under the all-passes-right rule.
        skipped: Attacks of the suite not run, each ``{"name", "reason"}``.
        sweeps: Accuracy-vs-eps/steps data, each ``{"kind", "attack", "values", "accuracy", "counts", ...}``.
        saf: The symmetric-activation paper's error rates over beta, or None.
        diagnostics: Check results (name, passed, value, reason).
        warnings: Problems found in the inputs or the model (also issued as warnings).
        model: The model spec (architecture and activation names, arguments).
        training: Recipe, resolved training config, per-epoch history, seconds.
        eval_config: The resolved evaluation config.
        environment: Package versions, Python, platform, threads, device.
        wall_time_s: Seconds the evaluation took.
        quick: A smoke run (tiny budget): not a result.
        masking: The checks (:mod:`robact_bench.evaluation.masking`), each ``{"name", "kind",
            "passed" (True, False or None = not judged), "value", "detail", "reason", "doc"}``.

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
    select_passes: int
    confirm_passes: int
    eot_iter: int | None
    eot_mode: str
    clean_acc: float
    clean_acc_majority: float
    clean_acc_all_right: float
    clean_counts: tuple[int, ...]
    clean_confirm: tuple[int, ...]
    reported_acc: float | None
    autoattack_acc: float | None
    autoattack_acc_majority: float | None
    autoattack_acc_all_right: float | None
    autoattack_counts: tuple[int, ...] | None
    autoattack_all_right: str | None
    autoattack_library_acc: float | None
    autoattack_version: str | None
    robust_acc: float | None
    robust_acc_majority: float | None
    robust_acc_all_right: float | None
    robust_counts: tuple[int, ...] | None
    robust_confirm: tuple[int, ...] | None
    robust_source: tuple[str, ...] | None
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

    def has_attack(self, name: str) -> bool:
        """Whether attack ``name`` ran."""
        return any(a.name == name for a in self.attacks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`."""
        check_kwargs("evaluation result", "EvalResult", cls, data, error=ValueError)
        d = dict(data)
        d["attacks"] = tuple(AttackRecord.from_dict(a) for a in d["attacks"])
        tuples = [f.name for f in fields(cls) if "tuple" in str(f.type)]
        for key in tuples:
            if key in d and d[key] is not None and key != "attacks":
                d[key] = tuple(d[key])
        return cls(**d)
