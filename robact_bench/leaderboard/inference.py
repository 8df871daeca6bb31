"""Intervals and paired tests for accuracies measured on points, passes and seeds.

Every accuracy comes from per-point integer counts (correct passes out of R; 0/1 on a
deterministic model), so the statistics below start from those counts. ``docs/statistics.md``
states each method and why; the distributions come from :mod:`scipy.stats`, the Holm
correction from :mod:`statsmodels`.

* :func:`clopper_pearson`: one seed. The exact binomial interval over the ``n`` points. For the
  ``majority`` and ``all_right`` rules the successes are an integer count of points. For the
  ``expected`` rule each point contributes its share of correct passes, a number in [0, 1]; the
  interval uses the same Beta quantiles with that (fractional) sum. A per-point share in [0, 1]
  has at most the variance of a 0/1 outcome with the same mean, so this interval is at least as
  wide as the binomial one it generalizes.
* :func:`hierarchical_bootstrap`: several seeds. Resample the seeds, then the points within each
  resampled seed, both with replacement, and take the percentile interval of the mean accuracy:
  an interval for the training procedure (seed to seed) and the test distribution (point to
  point) together.
* :func:`paired_comparison`: a model against a baseline on the same points. A paired sign-flip
  test of the mean per-point difference (:func:`sign_flip_p`): under the null each difference is
  as likely positive as negative. On 0/1 outcomes (two deterministic models) it is exactly
  McNemar's exact test on the discordant points; on a random model's per-point expected
  accuracies it is the randomization test of their differences, magnitudes included. Seeds are
  combined by pooling their points (the null holds for every seed's differences, independently),
  and the difference's interval comes from the paired hierarchical bootstrap. :func:`decide`
  turns it into better / worse / indistinguishable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from robact_bench.evaluation.stochastic import RULES

ALPHA = 0.05
"""The level of every interval (95%) and test on the boards."""

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
"""The bootstrap is seeded: the same entries give the same intervals, byte for byte."""

VERDICTS = ("better", "worse", "indistinguishable")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha}")


def clopper_pearson(successes: float, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The exact (Clopper–Pearson) ``1 - alpha`` interval for ``successes`` out of ``n`` points.

    ``successes`` may be fractional (the expected rule: a sum of per-point shares in [0, 1]); the
    bounds are ``Beta(alpha/2; x, n - x + 1)`` and ``Beta(1 - alpha/2; x + 1, n - x)``, 0 and 1 at
    the ends.

    Raises:
        ValueError: ``n < 1``, ``successes`` outside ``[0, n]`` or alpha outside (0, 1).

    """
    _check_alpha(alpha)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n}")
    x = float(successes)
    if not 0.0 <= x <= n or not np.isfinite(x):
        raise ValueError(f"successes must lie in [0, n = {n}]; got {successes}")
    lo = 0.0 if x <= 0 else float(sps.beta.ppf(alpha / 2, x, n - x + 1))
    hi = 1.0 if x >= n else float(sps.beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lo, hi


def rule_values(counts: Sequence[int], passes: int, rule: str) -> np.ndarray:
    """Per-point values of ``rule`` from correct-pass counts (floats in [0, 1])."""
    c = np.asarray(counts, dtype=np.int64)
    if passes < 1:
        raise ValueError(f"passes must be >= 1; got {passes}")
    if c.size and (c.min() < 0 or c.max() > passes):
        raise ValueError(f"counts must lie in [0, passes = {passes}]")
    if rule == "expected":
        return c / passes
    if rule == "majority":
        return (2 * c > passes).astype(float)
    if rule == "all_right":
        return (c == passes).astype(float)
    raise ValueError(f"scoring rule must be one of {', '.join(RULES)}; got {rule!r}")


def rule_interval(counts: Sequence[int], passes: int, rule: str, alpha: float = ALPHA) -> dict[str, Any]:
    """``{"value", "ci95", "successes", "n"}`` of ``rule`` on one seed (Clopper–Pearson over points).

    ``successes`` is an integer count of points for ``majority``/``all_right`` and the integer
    number of correct passes (out of ``n * passes``) for ``expected``.
    """
    c = np.asarray(counts, dtype=np.int64)
    n = int(c.size)
    if n == 0:
        raise ValueError("no points: an interval needs at least one")
    if rule == "expected":
        right = int(c.sum())
        lo, hi = clopper_pearson(right / passes, n, alpha)
        return {"value": right / (n * passes), "ci95": [lo, hi], "successes": right, "n": n, "passes": passes}
    k = int(rule_values(c, passes, rule).sum())
    lo, hi = clopper_pearson(k, n, alpha)
    return {"value": k / n, "ci95": [lo, hi], "successes": k, "n": n}


def rule_intervals(counts: Sequence[int], passes: int, alpha: float = ALPHA, *,
                   all_right: Sequence[bool] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """:func:`rule_interval` for every rule; ``all_right`` overrides that rule's per-point flags.

    (The headline's all-passes-right flag is "every attack's image right on every pass", not a
    function of the headline image's count, so it is passed in.)
    """
    out = {rule: rule_interval(counts, passes, rule, alpha) for rule in RULES if rule != "all_right"}
    if all_right is None:
        out["all_right"] = rule_interval(counts, passes, "all_right", alpha)
    else:
        flags = [int(bool(f)) for f in all_right]
        out["all_right"] = rule_interval(flags, 1, "all_right", alpha)
    return {rule: out[rule] for rule in RULES}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _resampled_means(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` means of ``values`` resampled with replacement (blocks keep memory small)."""
    n = values.size
    out = np.empty(size)
    block = max(1, 2_000_000 // max(1, n))
    for start in range(0, size, block):
        m = min(block, size - start)
        out[start : start + m] = values[rng.integers(0, n, size=(m, n))].mean(1)
    return out


def hierarchical_bootstrap(
    per_seed: Sequence[Sequence[float]], *, alpha: float = ALPHA, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of the mean over points, resampling seeds then points.

    Each resample draws S seeds with replacement, and for each drawn seed its points with
    replacement (independently for every draw, also of the same seed).

    Raises:
        ValueError: no seed, a seed without points, or NaN values.

    """
    _check_alpha(alpha)
    arrays = [np.asarray(v, dtype=float) for v in per_seed]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("the bootstrap needs at least one seed with at least one point")
    if any(not np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("per-point values must be finite numbers")
    rng = _rng(seed)
    s = len(arrays)
    picks = rng.integers(0, s, size=(resamples, s))
    total = np.zeros(resamples)
    for slot in range(s):
        for k, a in enumerate(arrays):
            rows = np.nonzero(picks[:, slot] == k)[0]
            if rows.size:
                total[rows] += _resampled_means(a, rows.size, rng)
    means = total / s
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def group_interval(per_seed: Sequence[Sequence[float]], *, alpha: float = ALPHA,
                   passes: int | None = None) -> dict[str, Any]:  # fmt: skip
    """``{"mean", "ci95", "method", "seeds", "n"}`` of one accuracy of one model over its seeds.

    One seed: Clopper–Pearson over its points (``passes``: the per-point values are multiples of
    ``1/passes``; only their sum matters). Several seeds: :func:`hierarchical_bootstrap`.
    """
    arrays = [np.asarray(v, dtype=float) for v in per_seed]
    mean = float(np.mean([a.mean() for a in arrays]))
    if len(arrays) == 1:
        a = arrays[0]
        lo, hi = clopper_pearson(min(float(a.sum()), a.size), a.size, alpha)
        method = "clopper-pearson"
    else:
        lo, hi = hierarchical_bootstrap(arrays, alpha=alpha)
        method = "bootstrap over seeds and points"
    return {"mean": mean, "ci95": [lo, hi], "method": method, "seeds": len(arrays), "n": [int(a.size) for a in arrays]}


def paired_comparison(model: Sequence[Sequence[float]], baseline: Sequence[Sequence[float]], *,
                      alpha: float = ALPHA) -> dict[str, Any]:  # fmt: skip
    """A model against a baseline on the same points, seed by seed (``model[s][i]`` vs ``baseline[s][i]``).

    Returns:
        ``{"difference", "ci95", "per_seed": [{"difference", "positive", "negative", "p"}],
        "positive", "negative", "p", "method"}``: the mean difference (model − baseline), its
        paired bootstrap interval (points, and seeds when there are several), the pooled counts of
        positive and negative differences and the two-sided p-value of the pooled sign-flip test.

    Raises:
        ValueError: no seed, or a seed whose two arrays differ in length.

    """
    if not model or len(model) != len(baseline):
        raise ValueError(f"need the same seeds for both: got {len(model)} and {len(baseline)}")
    diffs, per_seed = [], []
    for a, b in zip(model, baseline, strict=True):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.shape != b.shape or a.size == 0:
            raise ValueError(f"paired values must have the same, non-zero length; got {a.size} and {b.size}")
        d = a - b
        pos, neg = int((d > 0).sum()), int((d < 0).sum())
        per_seed.append({"difference": float(d.mean()), "positive": pos, "negative": neg, "p": sign_flip_p(d)})
        diffs.append(d)
    pooled = np.concatenate(diffs)
    lo, hi = hierarchical_bootstrap(diffs, alpha=alpha)
    binary = bool(np.isin(pooled, (-1.0, 0.0, 1.0)).all())
    return {
        "difference": float(np.mean([d.mean() for d in diffs])),
        "ci95": [lo, hi],
        "per_seed": per_seed,
        "positive": int((pooled > 0).sum()),
        "negative": int((pooled < 0).sum()),
        "p": sign_flip_p(pooled),
        "method": ("McNemar's exact test (the discordant points), pooled over seeds" if binary else
                   "paired sign-flip permutation test of the mean per-point difference, pooled over seeds")
        + "; paired bootstrap interval over " + ("seeds and points" if len(diffs) > 1 else "points"),
    }


#: resamples of the sign-flip test when it cannot enumerate every flip
PERMUTATION_RESAMPLES = 100_000


def sign_flip_p(d: Sequence[float]) -> float:
    """Two-sided p-value of the paired sign-flip (randomization) test that the mean difference is 0.

    Under the null each per-point difference is as likely to have either sign. On differences in
    {-1, 0, 1} (two 0/1 outcomes) every flip moves the mean by the same amount, the test is the
    exact binomial test on the discordant points (McNemar's exact test), computed with
    ``scipy.stats.binomtest``. Otherwise ``scipy.stats.permutation_test`` (paired, exact when the
    flips can be enumerated, else :data:`PERMUTATION_RESAMPLES` seeded resamples).
    """
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    if nz.size <= 1:  # no difference, or one whose two flips are equally extreme: nothing to test
        return 1.0
    if np.isin(nz, (-1.0, 1.0)).all():
        pos = int((nz > 0).sum())
        return float(sps.binomtest(pos, nz.size, 0.5, alternative="two-sided").pvalue)
    res = sps.permutation_test(
        (nz, np.zeros_like(nz)),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=PERMUTATION_RESAMPLES,
        alternative="two-sided",
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
        batch=1000,
    )
    return float(min(1.0, res.pvalue))


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Holm-adjusted p-values (``statsmodels.stats.multitest.multipletests``, ``method="holm"``)."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(pvalues), alpha=alpha, method="holm")[1]]


def decide(p_adjusted: float, ci95: Sequence[float], alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` when the adjusted test rejects at ``alpha`` *and* the interval excludes 0 on that side.

    Either alone is not enough: the sign test treats the trained networks as given, the interval
    also carries the seed-to-seed spread.
    """
    if p_adjusted < alpha and ci95[0] > 0:
        return "better"
    if p_adjusted < alpha and ci95[1] < 0:
        return "worse"
    return "indistinguishable"
