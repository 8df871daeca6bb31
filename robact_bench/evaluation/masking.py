"""Checks on an evaluation's own numbers: which number is at risk, and why.

A defense that hides or breaks the gradient (Athalye, Carlini and Wagner, *Obfuscated Gradients
Give a False Sense of Security*, ICML 2018) looks robust to gradient attacks without being
robust, and an attack that fails for its own reasons (Pintor et al., *Indicators of Attack
Failure: Debugging and Improving Optimization of Adversarial Examples*, NeurIPS 2022) makes any
model look robust. The checks come in two kinds:

* ``inflated`` (kind b): **our headline may still be inflated**. An attack failed where it should
  not (a one-step or a black-box attack beat the multi-step white-box ones, accuracy left at an
  unbounded eps, an iterate was adversarial and was not returned, the loss was still rising, ...).
  One such failure sets RobustBench's ``unreliable`` and writes ``external``.
* ``overstated`` (kind a): **the non-adaptive number overstates**: the paper's protocol, a naive
  attack (no EOT, no BPDA) or AutoAttack alone gives a higher number than our headline. This is
  what an adaptive evaluation is for, it is reported with both numbers, and it does not make our
  number unreliable.

Every check reads only the :class:`~robact_bench.evaluation.result.EvalResult` (per-attack,
per-point counts, confirmation passes, the attacks' recorded queries, sweeps, diagnostics), so a
verdict can be recomputed from a result file. Outcome: ``passed`` = ``True`` (no sign),
``False`` (a sign) or ``None`` (not judged, with the reason in ``detail``).

**Counting.** Every check counts points as integers. A sign needs at least :func:`min_points`
points (2 at n <= 100, more than 1% of the points above), so one point's luck never makes a
verdict. On a random model a per-point comparison is first made on the scoring passes; each
point where it goes the suspicious way (a *disputed* point) is settled on the ``confirm_passes``
fresh confirmation passes with a one-sided Fisher exact test at :data:`CONFIRM_ALPHA`
(``scipy.stats.fisher_exact``), and only confirmed points are counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from robact_bench.attacks.backends import GENERIC_STEP_PARAMS, LibraryAttack, backend_of_record, record_attack
from robact_bench.attacks.suites import needs_surrogate
from robact_bench.evaluation.result import AttackRecord, EvalResult
from robact_bench.registry import Registry

DOC = "docs/gradient-masking.md"
KINDS = ("inflated", "overstated")
#: accuracy left at the largest swept eps above which the large-eps check fails
LARGE_EPS_MAX_ACC = 0.05
#: the large-eps check is judged only when the sweep reaches this multiple of the evaluation eps
LARGE_EPS_FACTOR = 4.0
#: share of exactly-zero input-gradient entries above which the zero-gradient check fails
ZERO_ENTRIES_MAX = 0.5
#: per-point level of the one-sided Fisher test that confirms a disputed point on a random model
CONFIRM_ALPHA = 0.01
#: Pintor et al.'s unstable-predictions threshold (the mean relative loss change; later users' 0.1)
UNSTABLE_MAX = 0.1
#: ... judged together with the share of that change the gradient does not explain (above 1: it cannot)
UNEXPLAINED_MAX = 1.0
# AutoAttack's own warnings that are a verdict by themselves (its zero-gradient and Square
# warnings fire on a single point; our checks judge those by counting points)
_AA_FATAL = {
    "probability distribution": "the model seems to return probabilities, not logits",
    "dynamic defense": "the forward pass seems to run an optimization (a dynamic defense)",
    "not possible to use": "too few classes for the DLR loss",
    "more target classes": "more target classes than the model has",
}
_AA_RANDOM = "randomized defense"
_AA_EVIDENCE = ("zero gradient", "Square Attack has decreased")


def min_points(n: int) -> int:
    """The fewest points that make a sign: ``max(2, floor(n / 100) + 1)`` (more than 1% of ``n``, at least 2)."""
    return max(2, n // 100 + 1)


def margin(n: int) -> float:
    """:func:`min_points` as a share of ``n`` (kept for readers of older results)."""
    return min_points(n) / max(1, n)


@dataclass(frozen=True)
class MaskingCheck:
    """One check.

    Attributes:
        name: Registry name (also the anchor of its documentation section).
        kind: ``inflated`` (b: our number may be inflated) or ``overstated`` (a: the naive number is).
        reason: One line: what a sign means.
        run: ``run(result) -> (passed, value, detail)``; ``passed`` is None when not judged.

    """

    name: str
    kind: str
    reason: str
    run: Callable[[EvalResult], tuple[bool | None, Any, str]]

    @property
    def doc(self) -> str:
        """Where the check is documented."""
        return f"{DOC}#{self.name.replace('_', '-')}"


CHECKS: Registry[MaskingCheck] = Registry("gradient-masking check")


def _check(name: str, kind: str, reason: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if kind not in KINDS:
        raise ValueError(f"check kind must be one of {', '.join(KINDS)}; got {kind!r}")

    def deco(fn: Callable[[EvalResult], tuple[bool | None, Any, str]]) -> Callable[..., Any]:
        CHECKS.add(name, MaskingCheck(name, kind, reason, fn))
        return fn

    return deco


# -- what the records are ------------------------------------------------------------------------
def _role(rec: AttackRecord) -> str:
    return str(rec.record.get("role", "headline"))


def _headline(result: EvalResult) -> list[AttackRecord]:
    return [r for r in result.attacks if _role(r) == "headline"]


def _adaptive(result: EvalResult, rec: AttackRecord) -> bool:
    """Attacks the real model with the full adaptive budget (EOT on a random model)."""
    if _via_surrogate(rec) or rec.record.get("draws", "random") != "random":
        return False
    if _role(rec) != "headline":
        return False
    return not result.stochastic or rec.record.get("eot") is not None


# -- what the attack is: the traits of its registration (robact_bench.attacks.backends) ----------------
def _traits(rec: AttackRecord) -> LibraryAttack | None:
    """The registered attack that made ``rec`` (from its recorded backend and attack), or ``None``."""
    return record_attack(rec.record)


def _via_surrogate(rec: AttackRecord) -> bool:
    return needs_surrogate(str(rec.record.get("via", "model")))


def _is_single_step(rec: AttackRecord) -> bool:
    t = _traits(rec)
    return t is not None and t.single_step


def _is_blackbox(rec: AttackRecord) -> bool:
    t = _traits(rec)
    return t is not None and t.blackbox


def _maximizes_loss(rec: AttackRecord) -> bool:
    """Its queries climb the loss (minimum-norm searches such as CW and FAB do not)."""
    t = _traits(rec)
    return t is None or t.loss_maximizing


def _steps(rec: AttackRecord) -> int | None:
    """The recorded iteration count: the attack's ``steps_param`` (for an unregistered attack, the usual names)."""
    p = rec.record.get("params", {})
    t = _traits(rec)
    if t is not None:
        return p.get(t.steps_param) if t.steps_param is not None else None
    return next((p[k] for k in GENERIC_STEP_PARAMS if k in p), None)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _counts(rec: AttackRecord) -> list[int]:
    return list(rec.counts)


def _confirm(result: EvalResult, rec: AttackRecord) -> list[int]:
    return list(rec.confirm) if rec.confirm is not None else list(rec.counts)


def _fisher_less(a: int, b: int, m: int) -> bool:
    """One-sided Fisher exact test: ``a`` of ``m`` right is significantly fewer than ``b`` of ``m``."""
    if a >= b:
        return False
    from scipy.stats import fisher_exact

    return bool(fisher_exact([[a, m - a], [b, m - b]], alternative="less").pvalue < CONFIRM_ALPHA)


def _stronger(result: EvalResult, a: tuple[int, int], b: tuple[int, int]) -> tuple[bool, bool]:
    """Is image ``a`` stronger than ``b`` at one point: (disputed on the scoring passes, confirmed).

    ``a`` and ``b`` are ``(scoring count, confirmation count)``. Deterministic: ``a`` broke the
    point and ``b`` did not (confirmed at once). Random: fewer correct scoring passes, then
    significantly fewer correct confirmation passes.
    """
    if not result.stochastic:
        hit = a[0] == 0 and b[0] == 1
        return hit, hit
    disputed = a[0] < b[0]
    return disputed, disputed and _fisher_less(a[1], b[1], result.confirm_passes)


def _strongest(result: EvalResult, recs: Sequence[AttackRecord], i: int) -> tuple[int, int]:
    """(scoring, confirmation) count of the strongest of ``recs``' images at point ``i`` (fewest right)."""
    return min((_counts(r)[i], _confirm(result, r)[i]) for r in recs)


def _beats(result: EvalResult, attacker: Sequence[AttackRecord],
           others: Sequence[AttackRecord]) -> tuple[list[int], int]:  # fmt: skip
    """Points where ``attacker``'s strongest image is (confirmed) stronger than every image of ``others``.

    Returns the confirmed points and the number of disputed ones.
    """
    confirmed, disputed = [], 0
    clean = list(result.clean_counts)
    for i in range(result.n_examples):
        if not result.stochastic and clean[i] == 0:
            continue
        d, c = _stronger(result, _strongest(result, attacker, i), _strongest(result, others, i))
        disputed += d
        if c:
            confirmed.append(i)
    return confirmed, disputed


def _points_text(result: EvalResult, pts: list[int], disputed: int) -> str:
    extra = ""
    if result.stochastic:
        extra = (f" ({disputed} disputed on the {result.passes} scoring passes, confirmed on "
                 f"{result.confirm_passes} fresh passes at p < {CONFIRM_ALPHA})")  # fmt: skip
    return f"{len(pts)} of {result.n_examples} points{extra}"


def _robust_points(result: EvalResult) -> list[int]:
    """Points the headline counts as robust: deterministic, not broken; random, right on most confirmation passes."""
    if result.robust_counts is None:
        return []
    if not result.stochastic:
        return [i for i, c in enumerate(result.robust_counts) if c == 1]
    conf = result.robust_confirm or result.robust_counts
    m = result.confirm_passes if result.robust_confirm is not None else result.passes
    return [i for i, c in enumerate(conf) if 2 * c > m]


def _sign(n_points: int, n: int) -> bool:
    return n_points >= min_points(n)


def _judge_points(result: EvalResult, pts: list[int], what: str) -> tuple[bool, int, str]:
    k = min_points(result.n_examples)
    return not _sign(len(pts), result.n_examples), len(pts), f"{what} (a sign from {k} points)"


# -- kind b: our number may be inflated -----------------------------------------------------------
@_check(
    "single_step_beats_multi_step",
    "inflated",
    "a one-step attack (FGSM) succeeds where every multi-step gradient attack fails: the gradient "
    "is locally useless (masked), not absent",
)
def _single_step(result: EvalResult) -> tuple[bool | None, Any, str]:
    singles = [r for r in result.attacks if _is_single_step(r) and _adaptive(result, r)]
    multis = [
        r
        for r in result.attacks
        if _adaptive(result, r) and not _is_single_step(r) and not _is_blackbox(r) and (_steps(r) or 0) > 1
    ]
    if not singles or not multis:
        return None, None, "needs FGSM and a multi-step gradient attack on the real model (suite adaptive has both)"
    pts, disputed = _beats(result, singles, multis)
    who = ", ".join(r.name for r in singles)
    return _judge_points(result, pts, f"{who} broke {_points_text(result, pts, disputed)} that every multi-step "
                         f"attack ({', '.join(r.name for r in multis)}) missed")  # fmt: skip


@_check(
    "blackbox_beats_whitebox",
    "inflated",
    "the gradient-free Square attack succeeds where every white-box gradient attack fails: the "
    "gradients mislead the white-box attacks",
)
def _blackbox(result: EvalResult) -> tuple[bool | None, Any, str]:
    squares = [r for r in result.attacks if _is_blackbox(r) and _adaptive(result, r)]
    white = [r for r in result.attacks if _adaptive(result, r) and not _is_blackbox(r)]
    if not squares or not white:
        return None, None, "needs Square and a white-box gradient attack on the real model"
    pts, disputed = _beats(result, squares, white)
    return _judge_points(result, pts, f"Square broke {_points_text(result, pts, disputed)} that every white-box "
                         f"attack ({', '.join(r.name for r in white)}) missed")  # fmt: skip


def _sweep_n(result: EvalResult, sw: dict[str, Any]) -> int:
    """How many points the sweep ran on (``n_points``: a subset of the evaluated points; else all of them)."""
    return int(sw.get("n_points", result.n_examples))


def _sweep_points(result: EvalResult, sw: dict[str, Any], j: int) -> tuple[int, int]:
    """(sum of correct passes, passes per point) at sweep value ``j``, over the sweep's points."""
    passes = int(sw.get("passes", result.passes))
    counts = sw.get("counts")
    if counts:
        return sum(counts[j]), passes
    return round(float(sw["accuracy"][j]) * _sweep_n(result, sw) * passes), passes


def _headline_on_sweep(result: EvalResult, sw: dict[str, Any]) -> int | None:
    """Our headline's correct passes summed over the sweep's points (``None`` without per-point counts)."""
    if result.robust_counts is None or not sw.get("counts"):
        return None
    positions = sw.get("points")
    counts = result.robust_counts
    return sum(counts) if positions is None else sum(counts[i] for i in positions)


@_check(
    "large_eps_not_zero",
    "inflated",
    "accuracy does not fall to ~0 at a very large eps, where an attack that follows a useful "
    "gradient must succeed (the image can be replaced by another class's)",
)
def _large_eps(result: EvalResult) -> tuple[bool | None, Any, str]:
    sweeps = [s for s in result.sweeps if s.get("kind") == "eps" and s.get("values")]
    if not sweeps:
        return None, None, "needs an accuracy-vs-eps sweep (suite adaptive runs one)"
    sw = max(sweeps, key=lambda s: max(s["values"]))
    j = max(range(len(sw["values"])), key=lambda k: sw["values"][k])
    eps_max, acc = float(sw["values"][j]), float(sw["accuracy"][j])
    if eps_max < min(LARGE_EPS_FACTOR * result.eps, 1.0 if result.threat_model == "Linf" else float("inf")) - 1e-12:
        return None, acc, f"the sweep's largest eps {eps_max:g} is below {LARGE_EPS_FACTOR:g} x eps; not judged"
    right, passes = _sweep_points(result, sw, j)
    n = _sweep_n(result, sw)
    detail = f"{sw['attack']} at eps {eps_max:g}: accuracy {_pct(acc)} (a sign above {_pct(LARGE_EPS_MAX_ACC)})"
    if n != result.n_examples:
        detail += f", on {n} of the {result.n_examples} points"
    return 20 * right <= n * passes, acc, detail


@_check(
    "accuracy_not_falling_with_steps",
    "inflated",
    "more iterations of the same attack do not lower accuracy though other attacks reach lower: the "
    "iterations make no progress, as when the gradient is zero, random or misleading",
)
def _steps_check(result: EvalResult) -> tuple[bool | None, Any, str]:
    sweeps = [s for s in result.sweeps if s.get("kind") == "steps" and len(s.get("values", [])) >= 2]
    if not sweeps:
        return None, None, "needs an accuracy-vs-steps sweep (suite adaptive runs one)"
    sw = sweeps[0]
    order = sorted(range(len(sw["values"])), key=lambda j: sw["values"][j])
    lo, hi = order[0], order[-1]
    (r_lo, passes), (r_hi, _) = _sweep_points(result, sw, lo), _sweep_points(result, sw, hi)
    a_lo, a_hi = float(sw["accuracy"][lo]), float(sw["accuracy"][hi])
    n = _sweep_n(result, sw)
    detail = f"{sw['attack']}: {_pct(a_lo)} at {sw['values'][lo]} steps, {_pct(a_hi)} at {sw['values'][hi]} steps"
    if n != result.n_examples:
        detail += f" (on {n} of the {result.n_examples} points)"
    if 20 * r_lo <= n * passes:
        return True, a_lo - a_hi, detail + " (nothing left to fall)"
    k = min_points(n)
    head = _headline_on_sweep(result, sw)
    above = r_hi - head if head is not None else None
    if above is not None and above < k * passes:  # the longest run already reaches what our strongest attacks reach
        return True, a_lo - a_hi, detail + f", within {k} points of our headline on those points"
    return r_lo - r_hi >= k * passes, a_lo - a_hi, detail + (
        f" (a sign unless it falls by {k} points, or ends within {k} points of our headline)"
    )


@_check(
    "zero_input_gradients",
    "inflated",
    "the loss gradient with respect to the input is exactly zero at many points or entries "
    "(saturated caps, a one-hot softmax): gradient attacks cannot start there",
)
def _zero_grad(result: EvalResult) -> tuple[bool | None, Any, str]:
    d = next((d for d in result.diagnostics if d.get("name") == "input_gradients"), None)
    if d is None:
        return None, None, "the input-gradient diagnostic was not run"
    n = int(d.get("points", result.n_examples))
    zero = round(float(d["value"]) * n)
    entries = float(d["zero_entries"])
    detail = (
        f"{zero} of {n} points have an all-zero input gradient; {_pct(entries)} of gradient entries are zero "
        f"(a sign from {min_points(n)} points or above {_pct(ZERO_ENTRIES_MAX)} of entries)"
    )
    return not _sign(zero, n) and entries <= ZERO_ENTRIES_MAX, float(d["value"]), detail


@_check(
    "autoattack_flags",
    "inflated",
    "AutoAttack's own sanity checks fired (probability outputs, a dynamic defense, too few classes, "
    "a random forward pass attacked as deterministic); its zero-gradient and Square warnings are recorded too",
)
def _aa_flags(result: EvalResult) -> tuple[bool | None, Any, str]:
    aa = [r for r in result.attacks if backend_of_record(str(r.record.get("backend", ""))) == "autoattack"]
    if not aa:
        return None, None, "no AutoAttack component ran"
    messages = list(dict.fromkeys(m for r in aa for m in r.record.get("library_checks", [])))
    fatal = [why for key, why in _AA_FATAL.items() if any(key in m for m in messages)]
    if not result.stochastic and any(_AA_RANDOM in m for m in messages):
        fatal.append("AutoAttack measured a random forward pass in a model attacked as deterministic")
    notes = [f"{k!r} x{sum(k in m for m in messages)}" for k in _AA_EVIDENCE if any(k in m for m in messages)]
    if result.stochastic and any(_AA_RANDOM in m for m in messages):
        notes.append("'randomized defense' (expected: the model is random and is attacked with EOT)")
    detail = "; ".join(fatal) if fatal else "no fatal AutoAttack flag"
    if notes:
        detail += f" (AutoAttack also warned: {', '.join(notes)}; judged by the checks that count points)"
    if messages:
        detail += ". Messages: " + " | ".join(messages)
    return not fatal, len(fatal), detail


@_check(
    "silent_success",
    "inflated",
    "an attack queried an image inside the threat model that the model misclassifies and returned "
    "another one (Pintor et al.'s silent success): the library threw an adversarial example away",
)
def _silent(result: EvalResult) -> tuple[bool | None, Any, str]:
    if result.stochastic:
        return None, None, (
            "random model: each attack's strongest queried image is one of its candidates, so a returned image "
            "weaker than an iterate is replaced before scoring"
        )
    recs = [r for r in _headline(result) if r.query_counts is not None]
    if not recs:
        return None, None, "no attack's queries were recorded"
    clean = list(result.clean_counts)
    by_return = [clean[i] == 1 and all(r.counts[i] == 1 for r in _headline(result)) for i in range(result.n_examples)]
    pts = [i for i in range(result.n_examples) if by_return[i] and any(r.query_counts[i] == 0 for r in recs)]
    who = sorted({r.name for r in recs for i in pts if r.query_counts[i] == 0})
    what = f"{len(pts)} points were broken only by images the attacks queried but did not return"
    return _judge_points(result, pts, what + (f" ({', '.join(who)}); the headline counts them" if pts else ""))


def _indicator_points(rec: AttackRecord, key: str) -> set[int]:
    return set((rec.indicators or {}).get(key, []))


@_check(
    "incomplete_optimization",
    "inflated",
    "the attack's loss was still rising over its last 10 queries at points the headline counts as robust "
    "(Pintor et al.'s incomplete optimization): more iterations may break them",
)
def _incomplete(result: EvalResult) -> tuple[bool | None, Any, str]:
    recs = [r for r in result.attacks if _adaptive(result, r) and _indicator_points(r, "judged_incomplete")
            and _maximizes_loss(r)]  # fmt: skip
    if not recs:
        return None, None, "no attack of 50 or more recorded queries per point ran on the real model"
    pts = []
    for i in _robust_points(result):
        judged = [r for r in recs if i in _indicator_points(r, "judged_incomplete")]
        if judged and all(i in _indicator_points(r, "incomplete") for r in judged):
            pts.append(i)
    return _judge_points(result, pts, f"{len(pts)} robust points where every long attack "
                         f"({', '.join(r.name for r in recs)}) was still improving")  # fmt: skip


@_check(
    "unavailable_gradients",
    "inflated",
    "at points the headline counts as robust, every gradient the attacks computed was exactly zero or "
    "not finite (Pintor et al.'s unavailable gradients): the gradient attacks never had a direction",
)
def _no_gradient(result: EvalResult) -> tuple[bool | None, Any, str]:
    recs = [r for r in result.attacks if _adaptive(result, r) and _indicator_points(r, "gradient_seen")]
    if not recs:
        return None, None, "no gradient attack's gradients were recorded"
    pts = []
    for i in _robust_points(result):
        saw = [r for r in recs if i in _indicator_points(r, "gradient_seen")]
        if saw and all(i in _indicator_points(r, "no_gradient") for r in saw):
            pts.append(i)
    return _judge_points(result, pts, f"{len(pts)} robust points without a usable gradient in any of "
                         f"{', '.join(r.name for r in recs)}")  # fmt: skip


@_check(
    "transfer_failure",
    "inflated",
    "a transfer (BPDA) attack fooled its surrogate but not the model, at robust points where the direct "
    "attacks had no usable gradient (Pintor et al.'s transfer failure): no attack reached those points",
)
def _transfer(result: EvalResult) -> tuple[bool | None, Any, str]:
    recs = [r for r in result.attacks if r.surrogate_wrong is not None and _role(r) == "headline"]
    if not recs:
        return None, None, "no transfer attack ran (the model has no surrogate)"
    direct = [r for r in result.attacks if _adaptive(result, r) and _indicator_points(r, "gradient_seen")]
    robust = set(_robust_points(result))
    fooled = sorted(i for i in robust if any(r.surrogate_wrong[i] == 1 for r in recs))
    def no_direct_gradient(i: int) -> bool:
        saw = [r for r in direct if i in _indicator_points(r, "gradient_seen")]
        return bool(saw) and all(i in _indicator_points(r, "no_gradient") for r in saw)

    blind = [i for i in fooled if no_direct_gradient(i)]
    what = (f"{len(fooled)} robust points fooled the surrogate of {', '.join(r.name for r in recs)} but not the model; "
            f"{len(blind)} of them had no usable direct gradient")  # fmt: skip
    return _judge_points(result, blind, what)


@_check(
    "unstable_predictions",
    "inflated",
    "at points the headline counts as robust, the loss changes by more than 10% on average under small "
    "uniform noise, and not as the gradient predicts (Pintor et al.'s unstable predictions): a rugged loss "
    "surface misleads gradient steps",
)
def _unstable(result: EvalResult) -> tuple[bool | None, Any, str]:
    d = next((d for d in result.diagnostics if d.get("name") == "unstable_predictions"), None)
    if d is None or "per_point" not in d:
        return None, None, "the unstable-predictions diagnostic was not run"
    positions = d.get("positions", list(range(len(d["per_point"]))))
    per = dict(zip(positions, d["per_point"], strict=True))
    unexplained = dict(zip(positions, d.get("unexplained", [math.inf] * len(positions)), strict=True))
    robust = _robust_points(result)
    moving = [i for i in robust if per.get(i, 0.0) > UNSTABLE_MAX]
    pts = [i for i in moving if unexplained.get(i, 0.0) > UNEXPLAINED_MAX]
    return _judge_points(result, pts, f"{len(moving)} robust points with a mean relative loss change above "
                         f"{UNSTABLE_MAX:g} under noise of half-width {d['half_width']:.4g}"
                         + (" (random draws fixed)" if d.get("fixed_draws") else "")
                         + f", {len(pts)} of them a change the gradient does not explain (residual above "
                         f"{UNEXPLAINED_MAX:g} times the change)")  # fmt: skip


@_check(
    "unconstrained_failure",
    "inflated",
    "the attack without a bound (the whole input range) still leaves points correctly classified "
    "(Pintor et al.'s unconstrained attack failure): an attack that cannot win without a bound cannot be "
    "trusted with one",
)
def _unconstrained(result: EvalResult) -> tuple[bool | None, Any, str]:
    recs = [r for r in result.attacks if r.record.get("bound") == "unbounded"]
    if not recs:
        return None, None, "no unbounded attack ran (suite adaptive runs PGD-50 without a bound)"
    rec = recs[0]
    clean = list(result.clean_counts)
    conf = _confirm(result, rec)
    m = result.confirm_passes if rec.confirm is not None else 1
    pts = [i for i in range(result.n_examples) if clean[i] > 0 and 2 * conf[i] > m]
    return _judge_points(result, pts, f"{rec.name} left {len(pts)} of {result.n_examples} points right"
                         + (f" on most of {m} passes" if result.stochastic else ""))  # fmt: skip


def _eot_pairs(result: EvalResult) -> list[tuple[AttackRecord, AttackRecord]]:
    """(EOT, naive) pairs of the same library attack and steps on a random model."""
    out = []
    if not result.stochastic:
        return out
    for naive in result.attacks:
        rec = naive.record
        if _via_surrogate(naive) or rec.get("eot") is not None or _role(naive) != "headline":
            continue
        if rec.get("draws", "random") != "random":
            continue
        for ada in result.attacks:
            a = ada.record
            if (a.get("backend"), a.get("attack")) == (rec.get("backend"), rec.get("attack")) and _adaptive(
                result, ada
            ) and _steps(ada) == _steps(naive):
                out.append((ada, naive))
    return out


@_check(
    "adaptive_weaker_than_naive",
    "inflated",
    "an EOT attack breaks fewer points than the same attack without EOT: the adaptive attack failed, "
    "and the other EOT attacks may fail too",
)
def _adaptive_weaker(result: EvalResult) -> tuple[bool | None, Any, str]:
    pairs = _eot_pairs(result)
    if not pairs:
        return None, None, "needs an EOT attack beside the same attack without EOT on a random model"
    worst, details = 0, []
    for ada, naive in pairs:
        naive_wins, _ = _beats(result, [naive], [ada])
        ada_wins, _ = _beats(result, [ada], [naive])
        net = len(naive_wins) - len(ada_wins)
        worst = max(worst, net)
        details.append(f"{naive.name} stronger at {len(naive_wins)} points, {ada.name} at {len(ada_wins)}")
    k = min_points(result.n_examples)
    return worst < k, worst, "; ".join(details) + f" (confirmed points; a sign from a net {k})"


@_check(
    "random_without_eot",
    "inflated",
    "the forward pass is random and no gradient attack averaged its gradient over two or more draws (EOT): "
    "single-draw gradients are noisy (Athalye et al.'s stochastic gradients) and the headline rests on them",
)
def _no_eot(result: EvalResult) -> tuple[bool | None, Any, str]:
    if not result.stochastic:
        return None, None, "deterministic model: nothing to average"
    grads = [r for r in result.attacks if not _via_surrogate(r) and _role(r) == "headline"
             and not _is_blackbox(r) and r.record.get("draws", "random") == "random"]  # fmt: skip
    if not grads:
        return None, None, "no gradient attack on the real model ran"
    k = max(int((r.record.get("eot") or {}).get("k", 1)) for r in grads)
    detail = f"the largest EOT sample count of the {len(grads)} gradient attacks on the real model: K = {k}"
    return k >= 2, k, detail


@_check(
    "fixed_randomness",
    "inflated",
    "with the model's random draws fixed, PGD finds images that the random model misclassifies where every "
    "EOT attack failed (Carlini et al., 2019): the EOT attacks did not do their job",
)
def _fixed(result: EvalResult) -> tuple[bool | None, Any, str]:
    fixed = [r for r in result.attacks if r.record.get("draws") == "fixed" and _role(r) == "headline"]
    eot = [r for r in result.attacks if _adaptive(result, r) and not _is_blackbox(r)]
    if not result.stochastic:
        return None, None, "deterministic model: no random draws to fix"
    if not fixed or not eot:
        return None, None, "needs PGD with fixed draws beside an EOT gradient attack (suite adaptive has both)"
    pts, disputed = _beats(result, fixed, eot)
    return _judge_points(result, pts, f"{', '.join(r.name for r in fixed)} was stronger at "
                         f"{_points_text(result, pts, disputed)} than every EOT attack")  # fmt: skip


# -- kind a: the non-adaptive number overstates --------------------------------------------------
def _points_gap(result: EvalResult, higher: Sequence[int], lower: Sequence[int]) -> int:
    """``sum(higher) - sum(lower)`` in correct passes (compare with ``min_points * passes``)."""
    return sum(higher) - sum(lower)


def _overstates(result: EvalResult, label: str, counts: Sequence[int] | None,
                acc: float | None) -> tuple[bool | None, Any, str]:  # fmt: skip
    if counts is None or acc is None or result.robust_counts is None or result.robust_acc is None:
        return None, None, f"no {label} number in this evaluation"
    gap = _points_gap(result, counts, result.robust_counts)
    k = min_points(result.n_examples)
    detail = f"{label} {_pct(acc)} vs our headline {_pct(result.robust_acc)} (expected rule)"
    return gap < k * result.passes, acc - result.robust_acc, detail


@_check(
    "naive_overstates",
    "overstated",
    "an attack used naively (no EOT on a random model, no BPDA on a capped one) gives a higher accuracy "
    "than the same attack adapted to the defense",
)
def _naive(result: EvalResult) -> tuple[bool | None, Any, str]:
    pairs = list(_eot_pairs(result))
    for ada in result.attacks:  # BPDA/transfer beside the direct attack
        a = ada.record
        if _via_surrogate(ada) and _role(ada) == "headline":
            for ref in result.attacks:
                r = ref.record
                if (r.get("backend"), r.get("attack"), r.get("version")) == (a.get("backend"), a.get("attack"),
                                                                             a.get("version")) and _adaptive(
                    result, ref
                ) and ref is not ada and (r.get("eot") is not None) == (a.get("eot") is not None):  # fmt: skip
                    pairs.append((ada, ref))
    if not pairs:
        return None, None, "needs an EOT or BPDA attack beside the same attack without it (suite adaptive has them)"
    k = min_points(result.n_examples)
    gaps = [(sum(n.counts) - sum(a.counts), a, n) for a, n in pairs]
    worst = max(gaps, key=lambda g: g[0])
    detail = "; ".join(f"{n.name} {_pct(n.accuracy)} vs {a.name} {_pct(a.accuracy)}" for _, a, n in gaps)
    return worst[0] < k * result.passes, worst[0] / (result.passes * result.n_examples), detail


@_check(
    "autoattack_overstates",
    "overstated",
    "AutoAttack alone gives a higher accuracy than our worst case over every attack",
)
def _aa_over(result: EvalResult) -> tuple[bool | None, Any, str]:
    return _overstates(result, f"AutoAttack {result.autoattack_version or ''}".strip(), result.autoattack_counts,
                       result.autoattack_acc)  # fmt: skip


@_check(
    "paper_protocol_overstates",
    "overstated",
    "the suite's non-adaptive protocol (as the seed papers evaluate) gives a higher accuracy than our worst case",
)
def _paper_over(result: EvalResult) -> tuple[bool | None, Any, str]:
    rep = next((r for r in result.attacks if r.record.get("reported") or r.name.endswith("_reported")), None)
    if rep is None:
        return None, None, ("the suite has no reported (paper-protocol) attack; the claim audit compares the "
                            "papers' protocols")
    return _overstates(result, rep.name, rep.counts, rep.accuracy)


def masking_checks(result: EvalResult) -> list[dict[str, Any]]:
    """Run every registered check on ``result``; JSON-ready dicts in registry order."""
    out = []
    for name in CHECKS.list():
        chk = CHECKS.get(name)
        passed, value, detail = chk.run(result)
        out.append({"name": name, "kind": chk.kind, "passed": passed, "value": value, "detail": detail,
                    "reason": chk.reason, "doc": chk.doc})  # fmt: skip
    return out


def masking_verdict(checks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"unreliable", "failed", "overstated", "not_judged"}`` from :func:`masking_checks` output.

    ``unreliable`` and ``failed`` come from the ``inflated`` checks only; ``overstated`` lists the
    ``overstated`` findings (a naive number above ours), which never make a result unreliable.
    """
    checks = list(checks)
    failed = [c["name"] for c in checks if c["passed"] is False and c.get("kind", "inflated") == "inflated"]
    return {
        "unreliable": bool(failed),
        "failed": failed,
        "overstated": [c["name"] for c in checks if c["passed"] is False and c.get("kind") == "overstated"],
        "not_judged": [c["name"] for c in checks if c["passed"] is None],
    }
