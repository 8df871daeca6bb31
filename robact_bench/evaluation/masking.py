"""Gradient-masking checks: signs, in an evaluation's own numbers, that its robust accuracy is inflated.

A defense that hides or breaks the gradient (Athalye, Carlini and Wagner, *Obfuscated Gradients
Give a False Sense of Security*, ICML 2018) looks robust to gradient attacks without being robust.
The symptoms are well known (Carlini et al., *On Evaluating Adversarial Robustness*, 2019;
Croce and Hein, *Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks*, ICML 2020, whose AutoAttack runs its own sanity checks). Each check
below reads only the :class:`~robact_bench.evaluation.result.EvalResult` (per-attack, per-point
flags, sweeps and diagnostics), so a verdict can be recomputed from a result file.

Every check has a name, a one-line reason and a section of ``docs/gradient-masking.md``; its
outcome is ``passed`` = ``True`` (no sign), ``False`` (a sign: the verdict is *unreliable*) or
``None`` (not judged: the suite did not measure what it needs, with the reason in ``detail``).

Differences are judged against a margin of ``max(1%, 1/n)`` of the points, so that one point's
luck (PGD's random start, one pass of a random model) never makes a verdict; a sign needs more
than one point. The thresholds are stated in each check's documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from robact_bench.evaluation.result import AttackRecord, EvalResult
from robact_bench.registry import Registry

DOC = "docs/gradient-masking.md"
#: accuracy left at the largest swept eps above which the large-eps check fails
LARGE_EPS_MAX_ACC = 0.05
#: the large-eps check is judged only when the sweep reaches this multiple of the evaluation eps
LARGE_EPS_FACTOR = 4.0
#: share of exactly-zero input-gradient entries above which the zero-gradient check fails
ZERO_ENTRIES_MAX = 0.5
# AutoAttack's own warnings that are a verdict by themselves (its zero-gradient and Square
# warnings fire on a single point; our checks judge those with the margin)
_AA_FATAL = {
    "randomized defense": "AutoAttack measured a random forward pass in a model attacked as deterministic",
    "probability distribution": "the model seems to return probabilities, not logits",
    "dynamic defense": "the forward pass seems to run an optimization (a dynamic defense)",
    "not possible to use": "too few classes for the DLR loss",
    "more target classes": "more target classes than the model has",
}
_AA_EVIDENCE = ("zero gradient", "Square Attack has decreased")


def margin(n: int) -> float:
    """The smallest share of points a difference must exceed to count: ``max(0.01, 1/n)``."""
    return max(0.01, 1.0 / max(1, n))


@dataclass(frozen=True)
class MaskingCheck:
    """One gradient-masking check.

    Attributes:
        name: Registry name (also the anchor of its documentation section).
        reason: One line: what a failure means.
        run: ``run(result) -> (passed, value, detail)``; ``passed`` is None when not judged.

    """

    name: str
    reason: str
    run: Callable[[EvalResult], tuple[bool | None, Any, str]]

    @property
    def doc(self) -> str:
        """Where the check is documented."""
        return f"{DOC}#{self.name.replace('_', '-')}"


CHECKS: Registry[MaskingCheck] = Registry("gradient-masking check")


def _check(name: str, reason: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[[EvalResult], tuple[bool | None, Any, str]]) -> Callable[..., Any]:
        CHECKS.add(name, MaskingCheck(name, reason, fn))
        return fn

    return deco


# -- what the records are ------------------------------------------------------------------------
def _flags(rec: AttackRecord) -> list[bool]:
    return [c == "1" for c in rec.flags]


def _adaptive(result: EvalResult, rec: AttackRecord) -> bool:
    """Attacks the real model with the full adaptive budget (EOT on a random model)."""
    if rec.record.get("via", "model") != "model":
        return False
    return not result.stochastic or rec.record.get("eot") is not None


def _is_single_step(rec: AttackRecord) -> bool:
    return rec.record.get("attack") == "FGSM"


def _is_blackbox(rec: AttackRecord) -> bool:
    return str(rec.record.get("attack", "")).lower() == "square"


def _steps(rec: AttackRecord) -> int | None:
    p = rec.record.get("params", {})
    return p.get("steps", p.get("n_iter", p.get("max_iter")))


def _and(rows: Iterable[list[bool]], n: int) -> list[bool]:
    out = [True] * n
    for r in rows:
        out = [a and b for a, b in zip(out, r, strict=True)]
    return out


def _only_broken_by(result: EvalResult, attacker: Iterable[AttackRecord], others: list[AttackRecord]) -> list[int]:
    """Points broken by one of ``attacker`` that resisted every one of ``others``."""
    n = result.n_examples
    resisted_others = _and((_flags(r) for r in others), n)
    broken = [not f for f in _and((_flags(r) for r in attacker), n)]
    return [i for i in range(n) if broken[i] and resisted_others[i]]


def _beats(
    result: EvalResult, label: str, attacker: list[AttackRecord], kind: str, others: list[AttackRecord],
    *, with_accuracy: bool,
) -> tuple[bool, float, str]:  # fmt: skip
    """Judge the share of points ``attacker`` broke that every one of ``others`` missed."""
    n = result.n_examples
    pts = _only_broken_by(result, attacker, others)
    share = len(pts) / n
    detail = (
        f"{label} broke {len(pts)} of {n} points ({_pct(share)}) that every {kind} attack "
        f"({', '.join(r.name for r in others)}) missed"
    )
    if with_accuracy:  # a cascaded attack's own accuracy is cumulative: not shown
        detail += f"; {label} accuracy {_pct(min(r.accuracy for r in attacker))}"
    return share <= margin(n), share, detail


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


# -- the checks ----------------------------------------------------------------------------------
@_check(
    "single_step_beats_multi_step",
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
    return _beats(result, "FGSM", singles, "multi-step", multis, with_accuracy=True)


@_check(
    "blackbox_beats_whitebox",
    "the gradient-free Square attack succeeds where every white-box gradient attack fails: the "
    "gradients mislead the white-box attacks",
)
def _blackbox(result: EvalResult) -> tuple[bool | None, Any, str]:
    squares = [r for r in result.attacks if _is_blackbox(r) and _adaptive(result, r)]
    white = [r for r in result.attacks if _adaptive(result, r) and not _is_blackbox(r)]
    if not squares or not white:
        return None, None, "needs Square and a white-box gradient attack on the real model"
    return _beats(result, "Square", squares, "white-box", white, with_accuracy=False)


@_check(
    "large_eps_not_zero",
    "accuracy does not fall to ~0 at a very large eps, where an attack that follows a useful "
    "gradient must succeed (the image can be replaced by another class's)",
)
def _large_eps(result: EvalResult) -> tuple[bool | None, Any, str]:
    sweeps = [s for s in result.sweeps if s.get("kind") == "eps" and s.get("values")]
    if not sweeps:
        return None, None, "needs an accuracy-vs-eps sweep (suite adaptive runs one)"
    sw = max(sweeps, key=lambda s: max(s["values"]))
    i = max(range(len(sw["values"])), key=lambda j: sw["values"][j])
    eps_max, acc = float(sw["values"][i]), float(sw["accuracy"][i])
    if eps_max < min(LARGE_EPS_FACTOR * result.eps, 1.0 if result.threat_model == "Linf" else float("inf")) - 1e-12:
        return None, acc, f"the sweep's largest eps {eps_max:g} is below {LARGE_EPS_FACTOR:g} x eps; not judged"
    detail = f"{sw['attack']} at eps {eps_max:g}: accuracy {_pct(acc)} (a sign above {_pct(LARGE_EPS_MAX_ACC)})"
    return acc <= LARGE_EPS_MAX_ACC, acc, detail


@_check(
    "accuracy_not_falling_with_steps",
    "more iterations of the same attack do not lower accuracy: the iterations make no progress, "
    "as when the gradient is zero, random or misleading",
)
def _steps_check(result: EvalResult) -> tuple[bool | None, Any, str]:
    sweeps = [s for s in result.sweeps if s.get("kind") == "steps" and len(s.get("values", [])) >= 2]
    if not sweeps:
        return None, None, "needs an accuracy-vs-steps sweep (suite adaptive runs one)"
    sw = sweeps[0]
    order = sorted(range(len(sw["values"])), key=lambda j: sw["values"][j])
    lo, hi = order[0], order[-1]
    a_lo, a_hi = float(sw["accuracy"][lo]), float(sw["accuracy"][hi])
    detail = (
        f"{sw['attack']}: {_pct(a_lo)} at {sw['values'][lo]} steps, {_pct(a_hi)} at {sw['values'][hi]} steps"
    )
    if a_lo <= LARGE_EPS_MAX_ACC:
        return True, a_lo - a_hi, detail + " (nothing left to fall)"
    return a_lo - a_hi > margin(result.n_examples), a_lo - a_hi, detail


def _pairs(result: EvalResult) -> list[tuple[AttackRecord, AttackRecord, str]]:
    """(adaptive, non-adaptive reference, how) pairs of the same library attack."""
    out = []
    for ref in result.attacks:
        rec = ref.record
        if rec.get("via", "model") != "model":
            continue
        for ada in result.attacks:
            a = ada.record
            if ada is ref or (a.get("backend"), a.get("attack")) != (rec.get("backend"), rec.get("attack")):
                continue
            if a.get("via", "model") in ("transfer", "bpda") and (ref.record.get("eot") is not None) == (
                a.get("eot") is not None
            ):
                out.append((ada, ref, f"BPDA ({a['via']})"))
            elif (
                result.stochastic
                and a.get("via", "model") == "model"
                and a.get("eot") is not None
                and rec.get("eot") is None
                and _steps(ada) == _steps(ref)
            ):
                out.append((ada, ref, "EOT"))
    return out


@_check(
    "adaptive_below_nonadaptive",
    "EOT or BPDA (an attack adapted to the defense) finds lower accuracy than the same attack "
    "used naively: the defense's number without adaptation is inflated by randomness or by "
    "shattered gradients",
)
def _adaptive_check(result: EvalResult) -> tuple[bool | None, Any, str]:
    pairs = _pairs(result)
    if not pairs:
        return None, None, "needs an EOT or BPDA attack beside the same attack without it (suite adaptive has them)"
    m = margin(result.n_examples)
    gaps = [(ref.accuracy - ada.accuracy, ada, ref, how) for ada, ref, how in pairs]
    worst = max(gaps, key=lambda g: g[0])
    detail = "; ".join(
        f"{how}: {ada.name} {_pct(ada.accuracy)} vs {ref.name} {_pct(ref.accuracy)}" for _, ada, ref, how in gaps
    )
    return worst[0] <= m, worst[0], detail


@_check(
    "zero_input_gradients",
    "the loss gradient with respect to the input is exactly zero at many points or entries "
    "(saturated caps, a one-hot softmax): gradient attacks cannot start there",
)
def _zero_grad(result: EvalResult) -> tuple[bool | None, Any, str]:
    d = next((d for d in result.diagnostics if d.get("name") == "input_gradients"), None)
    if d is None:
        return None, None, "the input-gradient diagnostic was not run"
    share, entries = float(d["value"]), float(d["zero_entries"])
    detail = (
        f"{_pct(share)} of points have an all-zero input gradient; {_pct(entries)} of gradient entries are zero "
        f"(signs above {_pct(margin(result.n_examples))} of points or {_pct(ZERO_ENTRIES_MAX)} of entries)"
    )
    return share <= margin(result.n_examples) and entries <= ZERO_ENTRIES_MAX, share, detail


@_check(
    "autoattack_flags",
    "AutoAttack's own sanity checks fired (random forward pass, probability outputs, a dynamic "
    "defense, too few classes); its zero-gradient and Square warnings are recorded here too",
)
def _aa_flags(result: EvalResult) -> tuple[bool | None, Any, str]:
    aa = [r for r in result.attacks if r.record.get("backend") in ("pyautoattack", "autoattack")]
    if not aa:
        return None, None, "no AutoAttack component ran"
    messages = list(dict.fromkeys(m for r in aa for m in r.record.get("library_checks", [])))
    fatal = [why for key, why in _AA_FATAL.items() if any(key in m for m in messages)]
    evidence = [f"{k!r} x{sum(k in m for m in messages)}" for k in _AA_EVIDENCE if any(k in m for m in messages)]
    detail = "; ".join(fatal) if fatal else "no fatal AutoAttack flag"
    if evidence:
        detail += f" (also warned: {', '.join(evidence)}; judged by the checks above)"
    return not fatal, len(fatal), detail


def masking_checks(result: EvalResult) -> list[dict[str, Any]]:
    """Run every registered check on ``result``; JSON-ready dicts in registry order."""
    out = []
    for name in CHECKS.list():
        chk = CHECKS.get(name)
        passed, value, detail = chk.run(result)
        out.append(
            {"name": name, "passed": passed, "value": value, "detail": detail, "reason": chk.reason, "doc": chk.doc}
        )
    return out


def masking_verdict(checks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"unreliable", "failed", "not_judged"}`` from :func:`masking_checks` output."""
    checks = list(checks)
    failed = [c["name"] for c in checks if c["passed"] is False]
    return {
        "unreliable": bool(failed),
        "failed": failed,
        "not_judged": [c["name"] for c in checks if c["passed"] is None],
    }
