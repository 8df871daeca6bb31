"""Statistics for leaderboards: mean ± std over seeds, one-way ANOVA, Friedman + Nemenyi.

The rank tests follow Demšar (2006), *Statistical Comparisons of Classifiers over Multiple
Data Sets* (JMLR 7:1-30): average ranks (rank 1 = best, ties get the average of the ranks they
span), the Friedman statistic from average ranks

    chi2_F = 12 N / (k (k+1)) * [sum_j R_j^2 - k (k+1)^2 / 4],

the Iman-Davenport statistic F_F = (N-1) chi2_F / (N (k-1) - chi2_F), F-distributed with
(k-1, (k-1)(N-1)) degrees of freedom, and the Nemenyi critical difference

    CD = q_alpha * sqrt(k (k+1) / (6 N)),   q_alpha = studentized_range.ppf(1-alpha, k, inf) / sqrt(2).

Distributions come from :mod:`scipy.stats`; pairwise Nemenyi p-values from
``scikit_posthocs.posthoc_nemenyi_friedman``. Every function returns JSON-ready values: plain
floats, ints, strings, lists, dicts and ``None`` (never NaN or inf). See ``docs/statistics.md``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scikit_posthocs
from scipy import stats as sps

from robact_bench.evaluation.stochastic import RULES
from robact_bench.leaderboard.claims import audit
from robact_bench.leaderboard.inference import decide, group_interval, holm, paired_comparison, rule_values
from robact_bench.leaderboard.templating import render_template

__all__ = [
    "Block",
    "anova",
    "friedman_from_ranks",
    "friedman_nemenyi",
    "leaderboard_stats",
    "mean_std",
    "stats_blocks",
    "stats_html",
    "stats_markdown",
]

logger = logging.getLogger(__name__)

WORST_CASE = "worst_case"
"""Name of the Friedman block that holds ``robust_acc`` (the worst case over all attacks)."""


def _finite_1d(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of numbers, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf; only finite numbers are allowed")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha} is out of range; alpha must lie strictly between 0 and 1")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of ``values``.

    Args:
        values: One or more finite numbers (for example one accuracy per seed).

    Returns:
        ``(mean, std)`` as floats. With a single value the sample standard deviation is
        undefined (division by n-1 = 0); it is reported as ``0.0`` so tables stay numeric. Check
        the number of values (``n_seeds`` in :func:`leaderboard_stats`) before reading a 0.0
        std as "no spread".

    Raises:
        ValueError: ``values`` is empty or holds NaN/inf.

    """
    arr = _finite_1d(values, "values")
    if arr.size == 0:
        raise ValueError("mean_std got no values; pass at least one number")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return mean, std


def anova(groups: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """One-way ANOVA across groups (``scipy.stats.f_oneway``).

    Args:
        groups: Group name -> its replicate values (for example robust accuracy per seed).

    Returns:
        ``{"F", "p", "df_between", "df_within", "groups", "n_per_group", "reason"}``.
        ``df_between = g - 1`` and ``df_within = n - g`` for g groups and n values in all. When
        every group is constant the within-group variance is zero and F is undefined (0/0 when
        all groups are equal, infinite when they differ): ``F`` and ``p`` are then ``None`` and
        ``reason`` says why; otherwise ``reason`` is ``None``.

    Raises:
        ValueError: fewer than 2 groups, a group with fewer than 2 values, or NaN/inf values.

    """
    if len(groups) < 2:
        raise ValueError(f"anova needs at least 2 groups, got {len(groups)}")
    names = [str(name) for name in groups]
    arrays = []
    for name, values in groups.items():
        arr = _finite_1d(values, f"anova group {name!r}")
        if arr.size < 2:
            raise ValueError(f"anova group {name!r} has {arr.size} value(s); every group needs at least 2")
        arrays.append(arr)
    n_total = sum(a.size for a in arrays)
    out: dict[str, Any] = {
        "F": None,
        "p": None,
        "df_between": len(arrays) - 1,
        "df_within": n_total - len(arrays),
        "groups": names,
        "n_per_group": [int(a.size) for a in arrays],
        "reason": None,
    }
    if all(np.ptp(a) == 0.0 for a in arrays):
        means_equal = len({float(a[0]) for a in arrays}) == 1
        out["reason"] = "every group is constant (zero within-group variance): F is undefined" + (
            " (0/0: all groups are equal)" if means_equal else " (infinite: the groups differ)"
        )
        logger.debug("anova: %s", out["reason"])
        return out
    res = sps.f_oneway(*arrays)
    out["F"] = float(res.statistic)
    out["p"] = float(res.pvalue)
    return out


def _nemenyi_q(alpha: float, k: int) -> float:
    """Demšar's q_alpha: the studentized range quantile for k means and infinite df, over sqrt(2)."""
    return float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def _rank_statistics(avg_ranks: np.ndarray, n_blocks: int, alpha: float) -> dict[str, Any]:
    """Friedman chi2_F, Iman-Davenport F_F and Nemenyi CD from average ranks (Demšar 2006)."""
    k = avg_ranks.size
    n = n_blocks
    chi2_f = 12.0 * n / (k * (k + 1)) * (float(np.sum(avg_ranks**2)) - k * (k + 1) ** 2 / 4.0)
    df1, df2 = k - 1, (k - 1) * (n - 1)
    denom = n * (k - 1) - chi2_f
    if denom > 1e-9 * n * (k - 1):
        f_f: float | None = (n - 1) * chi2_f / denom
        f_f_p: float | None = float(sps.f.sf(f_f, df1, df2))
        f_f_note = None
    else:
        # chi2_F reaches its maximum N(k-1) when every block ranks the methods the same way.
        f_f, f_f_p = None, 0.0
        f_f_note = "every block ranks the methods identically: F_F is infinite (p -> 0)"
    q = _nemenyi_q(alpha, k)
    return {
        "k": k,
        "n_blocks": n,
        "alpha": alpha,
        "chi2_F": float(chi2_f),
        "chi2_F_df": df1,
        "chi2_F_p": float(sps.chi2.sf(chi2_f, df1)),
        "F_F": None if f_f is None else float(f_f),
        "F_F_df": [df1, df2],
        "F_F_p": f_f_p,
        "F_F_note": f_f_note,
        "q_alpha": q,
        "cd": float(q * math.sqrt(k * (k + 1) / (6.0 * n))),
    }


def friedman_from_ranks(avg_ranks: Sequence[float], n_blocks: int, *, alpha: float = 0.05) -> dict[str, Any]:
    """Friedman chi2_F, Iman-Davenport F_F and Nemenyi CD from published average ranks.

    Use this to recompute a paper's figures from the average ranks it prints (Demšar 2006,
    Section 3.2.2). Average ranks of k methods over N blocks sum to k(k+1)/2; a larger gap than
    rounding explains (0.005 per rank) is warned about, since it means a mistyped rank.

    Args:
        avg_ranks: The k average ranks (rank 1 = best), k >= 2.
        n_blocks: N, the number of blocks (data sets, or cells) the ranks were averaged over.
        alpha: Significance level of the critical difference.

    Returns:
        ``{"k", "n_blocks", "alpha", "average_ranks", "chi2_F", "chi2_F_df", "chi2_F_p", "F_F",
        "F_F_df", "F_F_p", "F_F_note", "q_alpha", "cd"}``; ``F_F`` is ``None`` (with a note, and
        ``F_F_p`` 0.0) when chi2_F reaches its maximum N(k-1).

    Raises:
        ValueError: fewer than 2 ranks, a rank outside [1, k], n_blocks < 2, or alpha outside (0, 1).

    """
    _check_alpha(alpha)
    ranks = _finite_1d(avg_ranks, "avg_ranks")
    k = ranks.size
    if k < 2:
        raise ValueError(f"friedman_from_ranks needs the average ranks of at least 2 methods, got {k}")
    if np.any(ranks < 1.0) or np.any(ranks > k):
        raise ValueError(f"average ranks {ranks.tolist()} fall outside [1, {k}]; ranks of {k} methods lie in [1, {k}]")
    if int(n_blocks) != n_blocks or n_blocks < 2:
        raise ValueError(f"n_blocks={n_blocks} is invalid; the number of blocks must be an integer >= 2")
    expected = k * (k + 1) / 2.0
    if abs(float(ranks.sum()) - expected) > 0.005 * k + 1e-9:
        warnings.warn(
            f"average ranks sum to {ranks.sum():.4f}, not k(k+1)/2 = {expected:g}: some ranks are mistyped "
            "(more than rounding explains); the statistics below use them as given",
            stacklevel=2,
        )
    out = _rank_statistics(ranks, int(n_blocks), alpha)
    out["average_ranks"] = [float(r) for r in ranks]
    return out


def friedman_nemenyi(
    scores: Sequence[Sequence[float]] | np.ndarray,
    methods: Sequence[str],
    *,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Friedman test with the Iman-Davenport correction and the Nemenyi post-hoc test.

    Args:
        scores: An (N blocks x k methods) array: one row per block (data set, seed, attack...),
            one column per method.
        methods: The k method names, in column order.
        alpha: Significance level of the Nemenyi critical difference.
        higher_is_better: Rank the largest score 1 (accuracies); ``False`` ranks the smallest 1.

    Returns:
        A dict with ``methods``, ``average_ranks`` (method -> rank, 1 = best; ties within a block
        get average ranks), Demšar's rank statistic ``chi2_F`` with ``chi2_F_p``,
        ``chi2_tie_corrected`` and ``p_tie_corrected`` (``scipy.stats.friedmanchisquare``, which
        corrects for ties; equal to ``chi2_F`` without ties; ``None`` when every block is fully
        tied), ``F_F``/``F_F_df``/``F_F_p`` (Iman-Davenport), ``q_alpha`` and ``cd`` (Nemenyi),
        ``nemenyi_p`` (method -> method -> p, from scikit-posthocs) and ``significant_pairs``:
        ``{"better", "worse", "rank_difference"}`` for each pair whose average ranks differ by
        more than ``cd``, largest difference first.

    Raises:
        ValueError: scores not 2-D, NaN/inf scores, fewer than 3 methods or 2 blocks, a number
            of method names that does not match the columns, duplicate names, or alpha outside (0, 1).

    """
    _check_alpha(alpha)
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"scores must be a 2-D (blocks x methods) array, got shape {x.shape}")
    n, k = x.shape
    names = [str(m) for m in methods]
    if len(names) != k:
        raise ValueError(f"got {len(names)} method names for {k} score columns; pass one name per column")
    if len(set(names)) != k:
        raise ValueError(f"method names must be unique, got {names}")
    if k < 3:
        raise ValueError(f"the Friedman test needs at least 3 methods, got {k}")
    if n < 2:
        raise ValueError(f"the Friedman test needs at least 2 blocks (rows), got {n}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or inf; only finite numbers are allowed")

    oriented = -x if higher_is_better else x
    ranks = sps.rankdata(oriented, axis=1, method="average")
    avg = ranks.mean(axis=0)
    out = _rank_statistics(avg, n, alpha)

    if np.all(np.ptp(x, axis=1) == 0.0):
        chi2_tc: float | None = None
        p_tc: float | None = None
    else:
        res = sps.friedmanchisquare(*oriented.T)
        chi2_tc, p_tc = float(res.statistic), float(res.pvalue)

    pmat = scikit_posthocs.posthoc_nemenyi_friedman(oriented).to_numpy()
    nemenyi_p = {a: {b: float(pmat[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}

    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            diff = abs(float(avg[i] - avg[j]))
            if diff > out["cd"]:
                better, worse = (names[i], names[j]) if avg[i] < avg[j] else (names[j], names[i])
                pairs.append({"better": better, "worse": worse, "rank_difference": diff})
    pairs.sort(key=lambda d: -d["rank_difference"])

    out.update(
        methods=names,
        higher_is_better=bool(higher_is_better),
        average_ranks={m: float(r) for m, r in zip(names, avg, strict=True)},
        chi2_tie_corrected=chi2_tc,
        p_tie_corrected=p_tc,
        nemenyi_p=nemenyi_p,
        significant_pairs=pairs,
    )
    return out


def _field(entry: Mapping[str, Any], index: int, *path: str) -> Any:
    node: Any = entry
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"leaderboard entry {index} has no {'.'.join(path)!r}; robact entries carry it")
        node = node[key]
    return node


def _summary(values: Sequence[float]) -> dict[str, Any]:
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": len(values)}


def leaderboard_stats(entries: Sequence[Mapping[str, Any]], *, alpha: float = 0.05) -> dict[str, Any]:
    """Statistics across seeds and across models for a set of leaderboard entries.

    Entries are RobustBench-format JSON dicts with our ``robact`` block; read are
    ``robact.group`` (the model name its seeds share), ``robact.seed``, ``robact.track``, and
    ``robact.evaluation.{clean_acc, robust_acc, per_attack.<attack>.accuracy}`` (fractions).

    Per group: the seeds, ``n_seeds``, and mean ± std (sample std, 0.0 for one seed) of clean
    accuracy, robust accuracy (the worst case over all attacks) and each attack's accuracy.

    Across groups:

    * ANOVA of robust accuracy with the seeds as replicates, over the groups with at least 2
      seeds (a single-seed group has no within-group variance to contribute; it is left out and
      named in ``"excluded"``, it does not switch the test off); skipped (with a reason) when
      fewer than 2 groups have 2 or more seeds.
    * Friedman + Nemenyi with the groups as methods. A block is one (seed, attack) cell: for
      every seed present in every group and every attack present in every group's entries for
      those seeds, plus the worst case (``robust_acc``, named ``"worst_case"``) per seed, so
      N = seeds x (attacks + 1). Clean accuracy is not a block: the ranking is of robustness.
      Cells of one seed are not independent (the same trained network answers every attack, and
      the worst case is the minimum of the others), which the Friedman test assumes they are:
      read its p-values as optimistic and the ranking as descriptive. Skipped (with a reason)
      for fewer than 3 groups or fewer than 2 blocks.

    Args:
        entries: The leaderboard entries (any order; one per group and seed).
        alpha: Significance level of the Nemenyi critical difference.

    Returns:
        ``{"groups": {group: {...}}, "anova_robust_acc": {...}, "friedman": {...}}``; each test
        dict has ``"skipped"``: ``None`` when it ran, else the reason. JSON-ready values only.

    Raises:
        ValueError: an entry lacks a field listed above, two entries share a group and seed, or
            the seeds of one group are on different tracks.

    """
    _check_alpha(alpha)
    by_group: dict[str, dict[int, Mapping[str, Any]]] = {}
    tracks: dict[str, set[str]] = {}
    for i, entry in enumerate(entries):
        group = str(_field(entry, i, "robact", "group"))
        seed = int(_field(entry, i, "robact", "seed"))
        tracks.setdefault(group, set()).add(str(_field(entry, i, "robact", "track")))
        for key in ("clean_acc", "robust_acc", "per_attack"):
            _field(entry, i, "robact", "evaluation", key)
        seeds = by_group.setdefault(group, {})
        if seed in seeds:
            raise ValueError(f"two leaderboard entries for group {group!r} and seed {seed}; keep one entry per seed")
        seeds[seed] = entry["robact"]["evaluation"]
    for group, found in tracks.items():
        if len(found) > 1:
            raise ValueError(f"group {group!r} mixes tracks {sorted(found)}; the seeds of one model share one track")

    def attack_accs(ev: Mapping[str, Any]) -> dict[str, float]:
        return {
            name: float(res["accuracy"])
            for name, res in ev["per_attack"].items()
            if isinstance(res, Mapping) and res.get("accuracy") is not None
        }

    groups_out: dict[str, Any] = {}
    for group in sorted(by_group):
        evs = by_group[group]
        seeds = sorted(evs)
        per_attack: dict[str, list[float]] = {}
        for s in seeds:
            for name, acc in attack_accs(evs[s]).items():
                per_attack.setdefault(name, []).append(acc)
        groups_out[group] = {
            "n_seeds": len(seeds),
            "seeds": seeds,
            "track": next(iter(tracks[group])),
            "clean_acc": _summary([float(evs[s]["clean_acc"]) for s in seeds]),
            "robust_acc": _summary([float(evs[s]["robust_acc"]) for s in seeds]),
            "per_attack": {name: _summary(v) for name, v in sorted(per_attack.items())},
        }

    names = sorted(by_group)
    replicated = [g for g in names if len(by_group[g]) >= 2]
    single = [g for g in names if len(by_group[g]) < 2]
    if len(replicated) < 2:
        anova_out: dict[str, Any] = {
            "skipped": f"ANOVA needs at least 2 groups with 2 or more seeds, got {len(replicated)}"
            + (f" ({', '.join(single)} {'has' if len(single) == 1 else 'have'} 1 seed)" if single else ""),
            "excluded": single,
        }
    else:
        robust = {g: [float(by_group[g][s]["robust_acc"]) for s in sorted(by_group[g])] for g in replicated}
        anova_out = {"skipped": None, **anova(robust), "excluded": single}

    friedman_out = _leaderboard_friedman(by_group, names, attack_accs, alpha)
    for label, res in (("ANOVA", anova_out), ("Friedman", friedman_out)):
        if res["skipped"]:
            logger.info("leaderboard_stats: %s skipped: %s", label, res["skipped"])
    for group in names:
        groups_out[group]["intervals"] = group_intervals(by_group[group], alpha=alpha)
    baselines = sorted({str(e["robact"]["group"]) for e in entries if e["robact"].get("baseline") is True})
    external = {str(e["robact"]["group"]) for e in entries if (e["robact"].get("provenance") or {}).get("missing")}
    return {
        "groups": groups_out,
        "anova_robust_acc": anova_out,
        "friedman": friedman_out,
        "alpha": alpha,
        "baselines": baselines,
        "paired": paired_vs_baselines(by_group, baselines, alpha=alpha),
        # a paper's claim is tested on the rows we trained by its recipe, never on a submitted model
        # that merely shares a name suffix (robact.provenance lists what an external entry lacks)
        "claims": audit({g: v for g, v in by_group.items() if g not in external}, _meta(entries), alpha=alpha),
    }


def _leaderboard_friedman(
    by_group: Mapping[str, Mapping[int, Mapping[str, Any]]],
    names: list[str],
    attack_accs: Callable[[Mapping[str, Any]], dict[str, float]],
    alpha: float,
) -> dict[str, Any]:
    """Friedman + Nemenyi over groups with (seed, attack) blocks; see :func:`leaderboard_stats`."""
    if len(names) < 3:
        return {"skipped": f"the Friedman test needs at least 3 groups, got {len(names)}"}
    seeds = sorted(set.intersection(*(set(by_group[g]) for g in names)))
    accs = {g: {s: attack_accs(by_group[g][s]) for s in seeds} for g in names}
    attacks = sorted(set.intersection(*(set(accs[g][s]) for g in names for s in seeds))) if seeds else []
    cells = [*attacks, WORST_CASE]
    n_blocks = len(seeds) * len(cells)
    if n_blocks < 2:
        return {
            "skipped": f"the Friedman test needs at least 2 blocks, got {n_blocks} "
            f"({len(seeds)} seed(s) common to all groups x {len(cells)} cell(s))"
        }
    rows = []
    for s in seeds:
        for cell in cells:
            if cell == WORST_CASE:
                rows.append([float(by_group[g][s]["robust_acc"]) for g in names])
            else:
                rows.append([accs[g][s][cell] for g in names])
    out = friedman_nemenyi(np.array(rows), names, alpha=alpha, higher_is_better=True)
    return {"skipped": None, "blocks": {"seeds": seeds, "cells": cells}, **out}


SCORED = ("clean", "headline", "autoattack")
"""The accuracies with per-point data in every entry: clean, our headline, AutoAttack alone."""


def _points_values(ev: Mapping[str, Any], what: str, rule: str) -> np.ndarray | None:
    """Per-point values of ``what`` (clean, headline, autoattack or an attack name) under ``rule``."""
    passes = int(ev.get("passes", 1))
    points = ev.get("points") or {}
    if what in SCORED:
        counts = points.get(what)
        flags = points.get(f"{what}_all_right")
    else:
        rec = (ev.get("per_attack") or {}).get(what) or {}
        counts, flags = rec.get("counts"), None
    if not counts:
        return None
    if rule == "all_right" and flags is not None:
        return np.array([c == "1" for c in flags], dtype=float)
    if rule == "all_right" and what == "clean":
        return rule_values(counts, passes, rule)
    return rule_values(counts, passes, rule)


def group_intervals(evs: Mapping[int, Mapping[str, Any]], *, alpha: float = 0.05) -> dict[str, Any]:
    """95% intervals of one group's accuracies over its seeds (:func:`inference.group_interval`).

    Returns ``{what: {rule: {"mean", "ci95", "method", "seeds", "n"}}}`` for ``clean``,
    ``headline``, ``autoattack`` and every attack every seed ran; a quantity without per-point
    data in every seed is left out.
    """
    seeds = sorted(evs)
    names = list(SCORED)
    common = set.intersection(*(set(evs[s].get("per_attack") or {}) for s in seeds)) if seeds else set()
    names += sorted(common)
    out: dict[str, Any] = {}
    for what in names:
        per_rule = {}
        for rule in RULES:
            values = [_points_values(evs[s], what, rule) for s in seeds]
            if any(v is None for v in values):
                break
            per_rule[rule] = group_interval(values, alpha=alpha)  # type: ignore[arg-type]
        else:
            out[what] = per_rule
    return out


def _comparable(a: Mapping[int, Mapping[str, Any]], b: Mapping[int, Mapping[str, Any]]) -> str | None:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return "no seed in common"
    for s in seeds:
        ia, ib = (a[s].get("points") or {}).get("indices"), (b[s].get("points") or {}).get("indices")
        if ia is None or ib is None:
            return "per-point data missing"
        if ia != ib:
            return "not evaluated on the same points"
    return None


def paired_vs_baselines(by_group: Mapping[str, Mapping[int, Mapping[str, Any]]], baselines: Sequence[str], *,
                        alpha: float = 0.05) -> list[dict[str, Any]]:  # fmt: skip
    """Every group against every baseline on our headline (expected rule), on the same points and seeds.

    Each comparison: :func:`inference.paired_comparison` (paired sign-flip test over the pooled seeds;
    paired bootstrap interval of the difference group − baseline), Holm-adjusted over all the
    comparisons of the board, then :func:`inference.decide` (better / worse / indistinguishable at
    ``alpha``). A baseline is also compared with the baselines after it (each pair once).
    """
    out: list[dict[str, Any]] = []
    for group in sorted(by_group):
        for base in baselines:
            if base == group or (group in baselines and baselines.index(base) < baselines.index(group)):
                continue
            row: dict[str, Any] = {"group": group, "baseline": base, "metric": "headline, expected rule"}
            why = _comparable(by_group[group], by_group[base])
            if why is None:
                seeds = sorted(set(by_group[group]) & set(by_group[base]))
                a = [_points_values(by_group[group][s], "headline", "expected") for s in seeds]
                b = [_points_values(by_group[base][s], "headline", "expected") for s in seeds]
                if any(v is None for v in a + b):
                    why = "per-point data missing"
                else:
                    row.update(paired_comparison(a, b, alpha=alpha), seeds=seeds)  # type: ignore[arg-type]
            if why is not None:
                row["skipped"] = why
            out.append(row)
    tested = [r for r in out if "skipped" not in r]
    for r, p in zip(tested, holm([r["p"] for r in tested], alpha), strict=True):
        r["p_holm"] = p
        r["verdict"] = decide(p, r["ci95"], alpha)
    return out


def _meta(entries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group: the setting the claim audit prints (architecture, data, eps, points, seeds, track)."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        rb = e.get("robact") or {}
        g = str(rb.get("group", ""))
        ev = rb.get("evaluation") or {}
        m = out.setdefault(g, {"architecture": e.get("architecture"), "dataset": e.get("dataset"),
                               "eps": f"{e.get('eps')} ({ev.get('threat_model', 'Linf')})", "n": ev.get("n_examples"),
                               "track": rb.get("track"), "passes": ev.get("passes"), "eot_iter": ev.get("eot_iter"),
                               "seeds": []})  # fmt: skip
        if rb.get("seed") is not None:
            m["seeds"] = sorted({*m["seeds"], int(rb["seed"])})
    return out


def _pm(summary: Mapping[str, Any] | None) -> str:
    if summary is None:
        return "—"
    return f"{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _f3(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@dataclass(frozen=True)
class Block:
    """One block of a statistics section, rendered by ``templates/blocks.{md,html}.j2``.

    Attributes:
        kind: ``"heading"``, ``"paragraph"``, ``"list"`` or ``"table"``.
        text: The heading's or paragraph's text.
        level: The heading's level (2 for ``##``).
        items: The list's items.
        header: The table's column titles.
        align: The table's Markdown rule per column (``"---"`` or ``"---:"``).
        rows: The table's rows of cell texts.

    """

    kind: str
    text: str = ""
    level: int = 2
    items: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    align: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


class _Doc:
    """Collects the blocks of a section; consecutive list items form one list."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text=text, level=level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Block("paragraph", text=text))

    def item(self, text: str) -> None:
        if self.blocks and self.blocks[-1].kind == "list":
            last = self.blocks.pop()
            self.blocks.append(Block("list", items=(*last.items, text)))
        else:
            self.blocks.append(Block("list", items=(text,)))

    def table(self, header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(Block("table", header=tuple(header), align=tuple(align),
                                 rows=tuple(tuple(r) for r in rows)))  # fmt: skip


def _anova_line(an: Mapping[str, Any]) -> str:
    if an["skipped"]:
        return f"ANOVA of robust accuracy across groups: skipped ({an['skipped']})."
    left_out = an.get("excluded") or []
    over = ""
    if left_out:
        over = (f"; over the {len(an['groups'])} groups with at least 2 seeds, leaving out "
                f"{', '.join(left_out)} (1 seed)")  # fmt: skip
    if an["F"] is None:
        return f"ANOVA of robust accuracy across groups: F undefined ({an['reason']}{over})."
    return (f"ANOVA of robust accuracy across groups (seeds as replicates{over}): "
            f"F({an['df_between']}, {an['df_within']}) = {an['F']:.3f}, p = {_p(an['p'])}.")  # fmt: skip


def stats_blocks(stats: Mapping[str, Any]) -> list[Block]:
    """The statistics section of :func:`leaderboard_stats` as blocks (:class:`Block`).

    Args:
        stats: The dict returned by :func:`leaderboard_stats`.

    Returns:
        A mean ± std table per group (accuracies in %, 2 decimals), the ANOVA line, the Friedman /
        Iman-Davenport / Nemenyi lines and the average ranks, then the 95% intervals, the paired
        comparisons with the baselines and the claim audit where the stats have them.

    """
    doc = _Doc()
    groups = stats["groups"]
    attacks = sorted({a for g in groups.values() for a in g["per_attack"]})
    header = ["Group", "Track", "Seeds", "Clean (%)", "Robust, worst case (%)", *(f"{a} (%)" for a in attacks)]
    doc.heading("Statistics across seeds")
    doc.paragraph("Mean ± sample standard deviation over seeds (std 0.00 for a single seed).")
    rows = []
    for name, g in groups.items():
        cells = [name, g["track"], str(g["n_seeds"]), _pm(g["clean_acc"]), _pm(g["robust_acc"])]
        rows.append(cells + [_pm(g["per_attack"].get(a)) for a in attacks])
    doc.table(header, ["---"] * 3 + ["---:"] * (len(header) - 3), rows)
    doc.item(_anova_line(stats["anova_robust_acc"]))
    fr = stats["friedman"]
    if fr["skipped"]:
        doc.item(f"Friedman test: skipped ({fr['skipped']}).")
    else:
        blocks = fr["blocks"]
        doc.item(
            f"Friedman test over N = {fr['n_blocks']} blocks ({len(blocks['seeds'])} seeds x "
            f"{len(blocks['cells'])} cells: {', '.join(blocks['cells'])}), k = {fr['k']} groups: "
            f"χ²_F = {fr['chi2_F']:.3f}, p = {_p(fr['chi2_F_p'])} "
            f"(tie-corrected χ² = {_f3(fr['chi2_tie_corrected'])}, p = {_p(fr['p_tie_corrected'])})."
        )
        df1, df2 = fr["F_F_df"]
        if fr["F_F"] is None:
            doc.item(f"Iman–Davenport F_F({df1}, {df2}): {fr['F_F_note']}.")
        else:
            doc.item(f"Iman–Davenport F_F({df1}, {df2}) = {fr['F_F']:.3f}, p = {_p(fr['F_F_p'])}.")
        sig = ", ".join(f"{d['better']} > {d['worse']} ({d['rank_difference']:.2f})" for d in fr["significant_pairs"])
        doc.item(
            f"Nemenyi critical difference (α = {fr['alpha']:g}): CD = {fr['cd']:.3f}; "
            f"pairs further apart than CD: {sig or 'none'}."
        )
        ranks = sorted(fr["average_ranks"].items(), key=lambda kv: kv[1])
        doc.item("Average ranks (1 = best): " + ", ".join(f"{m} {r:.2f}" for m, r in ranks) + ".")
    _inference_blocks(doc, stats)
    return doc.blocks


def stats_markdown(stats: Mapping[str, Any]) -> str:
    """A Markdown section ``## Statistics across seeds`` rendering :func:`leaderboard_stats` (:func:`stats_blocks`)."""
    return render_template("blocks.md.j2", blocks=stats_blocks(stats))


def stats_html(stats: Mapping[str, Any]) -> str:
    """The section of :func:`stats_markdown` as an HTML fragment, from the same blocks (every text escaped)."""
    return render_template("blocks.html.j2", blocks=stats_blocks(stats))


def ci_text(iv: Mapping[str, Any] | None, digits: int = 1) -> str:
    """``"82.0 [76.1, 87.0]"`` (in %) from an interval dict, "—" without one."""
    if not iv:
        return "—"
    lo, hi = iv["ci95"]
    return f"{100 * iv['mean']:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def _diff_text(cmp: Mapping[str, Any]) -> str:
    lo, hi = cmp["ci95"]
    return f"{100 * cmp['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _value(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _cmp_cell(cmp: Mapping[str, Any] | None, metric: str) -> str:
    if not cmp:
        return "—"
    if "skipped" in cmp:
        return f"not compared: {cmp['skipped']}"
    sign = -1 if metric == "error" else 1
    lo, hi = (sign * 100 * v for v in cmp["ci95"])
    lo, hi = min(lo, hi), max(lo, hi)
    diff = sign * 100 * cmp["difference"]
    names = cmp["subject_attack"] + ("" if cmp["reference_attack"] == cmp["subject_attack"] else
                                     f" vs {cmp['reference_attack']}")  # fmt: skip
    return (f"{_value(cmp['subject_value'])} vs {_value(cmp['reference_value'])} ({names}): {diff:+.1f} "
            f"[{lo:+.1f}, {hi:+.1f}], p (Holm) {_p(cmp.get('p_holm'))}: {cmp.get('verdict', '—')}")  # fmt: skip


def _inference_blocks(doc: _Doc, stats: Mapping[str, Any]) -> None:
    groups = stats.get("groups", {})
    rows = [(name, g) for name, g in groups.items() if g.get("intervals")]
    if rows:
        doc.heading("95% intervals")
        doc.paragraph(
            "In %, over the points and, for several seeds, the seeds: one seed, Clopper–Pearson over its points; "
            "several seeds, a bootstrap that resamples the seeds and then the points within each (10,000 "
            "resamples; docs/statistics.md). Rules: expected (mean over the R passes, the ranking number), majority "
            "(more than half of the passes right), all passes right. On a deterministic model the three coincide."
        )
        cells = []
        for name, g in rows:
            iv = g["intervals"]
            head, clean, aa = iv.get("headline", {}), iv.get("clean", {}), iv.get("autoattack", {})
            cells.append([name, g["track"], ci_text(clean.get("expected")), ci_text(head.get("expected")),
                          ci_text(head.get("majority")), ci_text(head.get("all_right")),
                          ci_text(aa.get("expected"))])  # fmt: skip
        doc.table(["Group", "Track", "Clean, expected", "Headline, expected", "Headline, majority",
                   "Headline, all passes right", "AutoAttack alone, expected"],
                  ["---"] * 2 + ["---:"] * 5, cells)  # fmt: skip
    paired = stats.get("paired") or []
    if paired:
        tested = [r for r in paired if "skipped" not in r]
        alpha = stats.get("alpha", 0.05)
        doc.heading("Against the baselines")
        doc.paragraph(
            "Each model against each baseline (and each pair of baselines once) on the same points and seeds, on "
            "the headline (expected rule): the difference in points (model − baseline) with its paired bootstrap "
            "95% interval, the points where the model is better (+) and worse (−), and a paired sign-flip test of "
            "the mean per-point difference over the pooled seeds (McNemar's exact test when both models are "
            f"deterministic), Holm-adjusted over the {len(tested)} comparisons. Better / worse: adjusted "
            f"p < {alpha:g} and the interval excludes 0; otherwise indistinguishable."
        )
        cells = []
        for r in paired:
            if "skipped" in r:
                cells.append([r["group"], r["baseline"], "—", "—", "—", "—", f"not compared: {r['skipped']}"])
            else:
                cells.append([r["group"], r["baseline"], _diff_text(r), f"{r['positive']} / {r['negative']}",
                              _p(r["p"]), _p(r["p_holm"]), r["verdict"]])  # fmt: skip
        doc.table(["Model", "Baseline", "Difference (points) [95% CI]", "+ / −", "p", "p (Holm)", "Verdict"],
                  ["---"] * 2 + ["---:"] * 4 + ["---"], cells)  # fmt: skip
    claims = stats.get("claims") or []
    if claims:
        _claims_blocks(doc, claims, level=2)


def _claims_blocks(doc: _Doc, claims: Sequence[Mapping[str, Any]], *, level: int) -> None:
    doc.heading("Claim audit", level)
    doc.paragraph(
        "Each seed paper's headline claim, tested on this board: the paper's number and setting, ours, and a "
        "verdict from the paired test (sign-flip test of the mean per-point difference over the pooled seeds, "
        "McNemar's exact test on two deterministic models; Holm-adjusted over the claim's comparisons; paired "
        "bootstrap 95% interval of the difference). Supported: "
        "every comparison significantly in the claimed direction (adjusted p < 0.05 and the interval excludes 0); "
        "not supported: one significantly against it; inconclusive: neither. The verdict is the adaptive "
        "evaluation's; the paper's protocol (its attacks as it ran them: no EOT on a random model) is shown beside it."
    )
    for c in claims:
        metric = "error (%)" if c.get("metric") == "error" else "accuracy (%)"
        doc.heading(f"{c['name']}: {c['verdict']}", level + 1)
        doc.paragraph(f"{c['claim']}. Source: {c['paper']}.")
        if c["verdict"] == "not tested":
            doc.item(f"Not tested: {c['reason']}.")
            continue
        ps, ours = c["paper_setting"], c.get("our_setting", {})
        doc.item("Paper's setting: " + "; ".join(f"{k}: {v}" for k, v in ps.items()) + ".")
        doc.item(
            f"Ours ({c['subject_group']}): architecture: {ours.get('architecture')}; data: {ours.get('dataset')}; "
            f"eps: {ours.get('eps')}; points: {ours.get('n')} per seed, seeds {ours.get('seeds')}; "
            + ("random model: expected accuracy over " f"{ours.get('passes')} passes, EOT over {ours.get('eot_iter')} "
               "samples for the adaptive attacks." if ours.get("track") == "randomized" else "deterministic model.")
        )  # fmt: skip
        if c.get("note"):
            doc.item(f"Choices: {c['note']}")
        doc.item(f"Verdict: {c['verdict']} under the adaptive evaluation; {c['verdict_paper_protocol']} under the "
                 "paper's protocol.")  # fmt: skip
        cells = []
        for r in c["comparisons"]:
            paper = f"{_value(r.get('paper_subject'))} vs {_value(r.get('paper_reference'))}"
            cells.append([r["attack"], r["reference"], paper, _cmp_cell(r.get("paper"), c["metric"]),
                          _cmp_cell(r.get("adaptive"), c["metric"])])  # fmt: skip
        doc.table(["Attack", "Against", f"Paper, {metric}: model vs reference", "Ours, paper's protocol",
                   "Ours, adaptive"], ["---"] * 5, cells)  # fmt: skip


def claims_markdown(claims: Sequence[Mapping[str, Any]], *, level: int = 2) -> str:
    """The claim audit (:func:`robact_bench.leaderboard.claims.audit`) as Markdown, headings at ``level``."""
    doc = _Doc()
    _claims_blocks(doc, claims, level=level)
    return render_template("blocks.md.j2", blocks=doc.blocks)
