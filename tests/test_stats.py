"""Numbers of the leaderboard statistics: textbook values, a paper's figures, hand-computed cases."""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pytest
import scikit_posthocs
from scipy import stats as sps

from robact_bench.leaderboard.stats import (
    anova,
    friedman_from_ranks,
    friedman_nemenyi,
    leaderboard_stats,
    mean_std,
    stats_html,
    stats_markdown,
)


def demsar_chi2(avg_ranks, n):
    """Demšar (2006), eq. for chi2_F, written out by hand."""
    k = len(avg_ranks)
    return 12 * n / (k * (k + 1)) * (sum(r * r for r in avg_ranks) - k * (k + 1) ** 2 / 4)


def iman_davenport(chi2, n, k):
    return (n - 1) * chi2 / (n * (k - 1) - chi2)


# ---------------------------------------------------------------------------------------------
# Demšar 2006, "Statistical Comparisons of Classifiers over Multiple Data Sets" (JMLR 7)
# ---------------------------------------------------------------------------------------------


def test_nemenyi_q_and_cd_match_demsar_table():
    # Table 5(a) (two-tailed Nemenyi): q_0.05 = 2.569 for k = 4; Section 3.2.2: k = 4, N = 14 -> CD = 1.25.
    res = friedman_from_ranks([2.5, 2.5, 2.5, 2.5], 14, alpha=0.05)
    assert res["q_alpha"] == pytest.approx(2.569, abs=0.002)
    assert res["cd"] == pytest.approx(1.25, abs=0.01)
    assert res["cd"] == pytest.approx(res["q_alpha"] * math.sqrt(4 * 5 / (6 * 14)), rel=1e-12)
    # same table: q_0.10 = 2.291 for k = 4; q_0.05 = 2.343 for k = 3.
    assert friedman_from_ranks([2.5] * 4, 14, alpha=0.10)["q_alpha"] == pytest.approx(2.291, abs=0.002)
    assert friedman_from_ranks([2.0] * 3, 14, alpha=0.05)["q_alpha"] == pytest.approx(2.343, abs=0.002)
    # equal ranks: no evidence at all
    assert res["chi2_F"] == pytest.approx(0.0, abs=1e-12)
    assert res["F_F"] == pytest.approx(0.0, abs=1e-12)


def test_demsar_worked_example():
    # Section 3.2.2: average ranks of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf over 14 data sets
    # (printed to 3 decimals) give chi2_F = 9.28 and F_F = 3.69, F(3, 39).
    res = friedman_from_ranks([3.143, 2.000, 2.893, 1.964], 14)
    assert res["chi2_F"] == pytest.approx(9.28, abs=0.01)
    assert res["F_F"] == pytest.approx(3.69, abs=0.01)
    assert res["F_F_df"] == [3, 39]
    assert res["chi2_F"] == pytest.approx(demsar_chi2([3.143, 2.000, 2.893, 1.964], 14), rel=1e-12)
    assert res["F_F"] == pytest.approx(iman_davenport(res["chi2_F"], 14, 4), rel=1e-12)
    # Demšar: the critical value of F(3, 39) at alpha = 0.05 is 2.85, so the null is rejected
    assert sps.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.005)
    assert res["F_F_p"] < 0.05
    # the exact ranks behind the rounded ones are multiples of 1/28 (44/14, 28/14, 40.5/14, 27.5/14)
    exact = friedman_from_ranks([44 / 14, 2.0, 40.5 / 14, 27.5 / 14], 14)
    assert exact["chi2_F"] == pytest.approx(8.4 * (5116.5 / 196 - 25), rel=1e-12)
    assert exact["chi2_F"] == pytest.approx(9.2786, abs=1e-4)


def test_friedman_from_ranks_validates():
    with pytest.raises(ValueError, match="at least 2 methods"):
        friedman_from_ranks([1.0], 10)
    with pytest.raises(ValueError, match=r"outside \[1, 3\]"):
        friedman_from_ranks([0.5, 2.0, 3.5], 10)
    with pytest.raises(ValueError, match="n_blocks"):
        friedman_from_ranks([1.5, 1.5], 1)
    with pytest.raises(ValueError, match="alpha"):
        friedman_from_ranks([1.5, 1.5], 5, alpha=1.5)
    with pytest.warns(UserWarning, match="sum to 5.0000"):
        friedman_from_ranks([1.0, 2.0, 2.0], 10)


# ---------------------------------------------------------------------------------------------
# Dynamic-Max-Value ReLU (D-ReLU) paper, Table 2 (CIFAR-10), and its Friedman/Nemenyi figures
# ---------------------------------------------------------------------------------------------

METHODS = ["AT", "TRADES-1", "TRADES-6", "D-ReLU"]
COLUMNS = ["Clean", "FGSM", "PGD", "APCE", "APDLR", "CWL2"]
# Extracted from Table 2 (CIFAR-10) of the paper *Dynamic-Max-Value ReLU* (D-ReLU): accuracy
# in % with the rank printed in parentheses, per
# architecture one row per method (METHODS order) and one cell per column (COLUMNS order).
# Values and ranks exactly as printed, typos included (e.g. MobilenetV2 / FGSM ranks 2, 3, 2, 1).
DRELU_TABLE2 = {
    "Dense": [
        [(52.33, 1), (34.20, 2), (32.83, 2), (32.73, 2), (31.80, 2), (40.10, 2)],  # AT
        [(52.32, 2), (29.97, 3), (29.23, 3), (29.20, 3), (28.37, 3), (38.67, 3)],  # TRADES-1
        [(51.30, 4), (37.00, 1), (36.53, 1), (36.50, 1), (34.57, 1), (42.30, 1)],  # TRADES-6
        [(51.87, 3), (26.03, 4), (23.87, 4), (23.80, 4), (23.77, 4), (36.10, 4)],  # D-ReLU
    ],
    "Shallow CNN": [
        [(67.13, 2), (42.83, 2), (40.07, 2), (39.90, 2), (38.37, 2), (50.67, 2)],  # AT
        [(67.37, 1), (38.83, 4), (35.93, 4), (35.97, 4), (34.13, 4), (48.60, 4)],  # TRADES-1
        [(63.47, 4), (46.13, 3), (44.80, 3), (44.80, 3), (42.67, 3), (51.67, 3)],  # TRADES-6
        [(66.37, 3), (65.60, 1), (65.60, 1), (64.60, 1), (64.07, 1), (65.83, 1)],  # D-ReLU
    ],
    "ResNet50": [
        [(78.20, 2), (54.77, 2), (49.37, 2), (48.90, 2), (49.97, 2), (63.00, 2)],  # AT
        [(75.63, 4), (52.12, 4), (40.77, 4), (39.87, 4), (40.20, 4), (56.43, 4)],  # TRADES-1
        [(71.63, 3), (54.20, 3), (50.90, 3), (50.40, 3), (48.23, 3), (57.63, 3)],  # TRADES-6
        [(78.87, 1), (78.83, 1), (78.73, 1), (78.20, 1), (78.40, 1), (78.87, 1)],  # D-ReLU
    ],
    "ResNet101": [
        [(68.90, 3), (44.90, 4), (40.33, 2), (39.43, 2), (38.27, 2), (49.30, 3)],  # AT
        [(74.60, 1), (47.07, 2), (32.87, 4), (31.17, 4), (31.37, 4), (51.40, 2)],  # TRADES-1
        [(66.67, 4), (45.43, 3), (39.80, 3), (39.17, 3), (35.93, 3), (47.67, 4)],  # TRADES-6
        [(75.10, 2), (75.03, 1), (75.37, 1), (74.73, 1), (74.67, 1), (75.10, 1)],  # D-ReLU
    ],
    "MobilenetV2": [
        [(77.97, 2), (46.50, 2), (32.93, 4), (30.73, 4), (32.10, 4), (51.80, 2)],  # AT
        [(73.13, 4), (46.23, 3), (31.00, 3), (28.87, 3), (28.77, 3), (49.37, 4)],  # TRADES-1
        [(68.40, 3), (48.80, 2), (43.23, 2), (43.03, 2), (40.80, 2), (51.13, 3)],  # TRADES-6
        [(81.67, 1), (81.57, 1), (82.00, 1), (80.87, 1), (80.77, 1), (81.67, 1)],  # D-ReLU
    ],
    "InceptionV3": [
        [(84.60, 2), (64.27, 2), (58.80, 2), (58.30, 2), (59.33, 2), (66.47, 2)],  # AT
        [(82.53, 3), (62.30, 3), (52.67, 4), (51.90, 4), (51.87, 4), (62.40, 4)],  # TRADES-1
        [(76.97, 4), (61.97, 4), (58.00, 3), (57.80, 3), (56.03, 3), (62.10, 3)],  # TRADES-6
        [(87.17, 1), (86.70, 1), (86.57, 1), (86.13, 1), (86.23, 1), (86.83, 1)],  # D-ReLU
    ],
}
# The paper's text (Section 6.2): chi2 = 39.43, F_F = 20.12 (3 and 105 degrees of freedom),
# CD = 0.656, D-ReLU's average rank differs by 0.86 from AT, 1.89 from TRADES-1, 1.14 from TRADES-6.
PAPER = {"chi2": 39.43, "F_F": 20.12, "cd": 0.656, "diffs": {"AT": 0.86, "TRADES-1": 1.89, "TRADES-6": 1.14}}


def _table2(which):
    """(36 blocks x 4 methods): blocks are (architecture, column) cells, as in the paper."""
    idx = 0 if which == "acc" else 1
    rows = []
    for per_method in DRELU_TABLE2.values():
        for c in range(len(COLUMNS)):
            rows.append([per_method[m][c][idx] for m in range(len(METHODS))])
    return np.array(rows, dtype=float)


def test_drelu_table2_shape_matches_the_papers_degrees_of_freedom():
    acc = _table2("acc")
    n, k = acc.shape
    assert (n, k) == (36, 4)
    assert (k - 1, (k - 1) * (n - 1)) == (3, 105)  # the paper's "3 and 105 degrees of freedom"


def test_drelu_recomputed_from_printed_accuracies_reproduces_chi2_ff_and_rank_differences():
    acc = _table2("acc")
    res = friedman_nemenyi(acc, METHODS, alpha=0.05)
    # hand: ranks recomputed from the accuracies sum to AT 86, TRADES-1 123, TRADES-6 96, D-ReLU 55
    hand_sums = sps.rankdata(-acc, axis=1).sum(axis=0)
    assert hand_sums.tolist() == [86.0, 123.0, 96.0, 55.0]
    avg = [s / 36 for s in (86, 123, 96, 55)]
    assert [res["average_ranks"][m] for m in METHODS] == pytest.approx(avg, rel=1e-12)
    chi2 = demsar_chi2(avg, 36)
    assert chi2 == pytest.approx(39.4333, abs=1e-4)
    assert res["chi2_F"] == pytest.approx(chi2, rel=1e-12)
    assert res["chi2_tie_corrected"] == pytest.approx(chi2, rel=1e-9)  # no ties within a block
    assert res["F_F"] == pytest.approx(iman_davenport(chi2, 36, 4), rel=1e-12)
    assert res["F_F"] == pytest.approx(20.1288, abs=1e-4)
    assert res["F_F_df"] == [3, 105]
    # the paper: 39.43 and 20.12 (20.1288 truncated, not rounded)
    assert res["chi2_F"] == pytest.approx(PAPER["chi2"], abs=0.005)
    assert res["F_F"] == pytest.approx(PAPER["F_F"], abs=0.01)
    for m, d in PAPER["diffs"].items():
        assert res["average_ranks"][m] - res["average_ranks"]["D-ReLU"] == pytest.approx(d, abs=0.005)


def test_drelu_printed_ranks_do_not_reproduce_the_papers_figures():
    ranks = _table2("rank")
    acc = _table2("acc")
    # 30 of the 144 printed ranks disagree with the printed accuracies; one block sums to 8, not 10
    assert int((ranks != sps.rankdata(-acc, axis=1)).sum()) == 30
    assert np.flatnonzero(ranks.sum(axis=1) != 10).tolist() == [4 * 6 + 1]  # MobilenetV2, FGSM
    avg = ranks.mean(axis=0)
    assert avg * 36 == pytest.approx([81, 121, 100, 56])
    with pytest.warns(UserWarning, match="sum to 9.9444"):
        res = friedman_from_ranks(avg, 36, alpha=0.05)
    assert res["chi2_F"] == pytest.approx(demsar_chi2(avg, 36), rel=1e-12)
    assert res["chi2_F"] == pytest.approx(32.30, abs=0.005)
    assert res["F_F"] == pytest.approx(14.934, abs=0.001)
    assert avg[0] - avg[3] == pytest.approx(25 / 36)  # 0.69, not the paper's 0.86


@pytest.mark.parametrize(
    ("alpha", "q", "cd"),
    [(0.10, 2.2913, 0.6972), (0.05, 2.5690, 0.7817), (0.01, 3.1133, 0.9473)],
)
def test_drelu_nemenyi_cd_at_three_alphas(alpha, q, cd):
    res = friedman_from_ranks([86 / 36, 123 / 36, 96 / 36, 55 / 36], 36, alpha=alpha)
    assert res["q_alpha"] == pytest.approx(q, abs=1e-4)
    assert res["cd"] == pytest.approx(cd, abs=1e-4)
    assert res["cd"] == pytest.approx(q * math.sqrt(4 * 5 / (6 * 36)), abs=1e-4)
    # none of the usual levels gives the paper's 0.656 for k = 4, N = 36
    assert abs(res["cd"] - PAPER["cd"]) > 0.04


def test_drelu_significant_pairs_depend_on_alpha():
    acc = _table2("acc")
    at05 = friedman_nemenyi(acc, METHODS, alpha=0.05)
    at01 = friedman_nemenyi(acc, METHODS, alpha=0.01)
    pairs05 = {(d["better"], d["worse"]) for d in at05["significant_pairs"]}
    pairs01 = {(d["better"], d["worse"]) for d in at01["significant_pairs"]}
    assert pairs05 == {("D-ReLU", "AT"), ("D-ReLU", "TRADES-1"), ("D-ReLU", "TRADES-6"), ("AT", "TRADES-1")}
    # at the paper's stated alpha = 0.01, D-ReLU vs AT (0.861 < CD 0.947) is not significant
    assert pairs01 == {("D-ReLU", "TRADES-1"), ("D-ReLU", "TRADES-6"), ("AT", "TRADES-1")}
    # the pairwise p-value does not depend on alpha and lies between the two levels
    assert at05["nemenyi_p"] == at01["nemenyi_p"]
    assert 0.01 < at05["nemenyi_p"]["D-ReLU"]["AT"] < 0.05


def test_drelu_anova_reproduces_the_papers_f():
    # "an F score of 17.4, surpassing the critical value of 3.92 at alpha = 0.01": one-way ANOVA of
    # the 36 accuracies per method, F(3, 140).
    acc = _table2("acc")
    res = anova({m: acc[:, j].tolist() for j, m in enumerate(METHODS)})
    assert (res["df_between"], res["df_within"]) == (3, 140)
    assert res["F"] == pytest.approx(17.40, abs=0.005)
    assert sps.f.ppf(0.99, 3, 140) == pytest.approx(3.92, abs=0.005)


# ---------------------------------------------------------------------------------------------
# friedman_nemenyi against scipy / scikit-posthocs, ties, degenerate cases
# ---------------------------------------------------------------------------------------------

SMALL = np.array(
    [
        [0.81, 0.74, 0.69, 0.90],
        [0.62, 0.71, 0.55, 0.77],
        [0.93, 0.88, 0.79, 0.91],
        [0.55, 0.52, 0.61, 0.70],
        [0.70, 0.66, 0.58, 0.73],
    ]
)


def test_friedman_nemenyi_matches_scipy_and_scikit_posthocs():
    names = ["a", "b", "c", "d"]
    res = friedman_nemenyi(SMALL, names)
    ref = sps.friedmanchisquare(*SMALL.T)
    assert res["chi2_F"] == pytest.approx(float(ref.statistic), rel=1e-12)
    assert res["chi2_tie_corrected"] == pytest.approx(float(ref.statistic), rel=1e-12)
    assert res["p_tie_corrected"] == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert res["chi2_F_p"] == pytest.approx(float(ref.pvalue), rel=1e-12)
    # hand ranks (1 = highest): a 2,3,1,3,2  b 3,2,3,4,3  c 4,4,4,2,4  d 1,1,2,1,1
    assert [res["average_ranks"][m] for m in names] == pytest.approx([2.2, 3.0, 3.6, 1.2])
    assert res["chi2_F"] == pytest.approx(demsar_chi2([2.2, 3.0, 3.6, 1.2], 5), rel=1e-12)
    assert res["chi2_F"] == pytest.approx(9.72, rel=1e-12)
    ref_p = scikit_posthocs.posthoc_nemenyi_friedman(SMALL).to_numpy()
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert res["nemenyi_p"][a][b] == pytest.approx(ref_p[i, j], rel=1e-12, abs=1e-15)
    # orientation does not change pairwise p-values
    flipped = friedman_nemenyi(-SMALL, names, higher_is_better=False)
    assert flipped["nemenyi_p"] == res["nemenyi_p"]
    assert flipped["average_ranks"] == res["average_ranks"]
    # CD for k=4, N=5 and the one pair beyond it (d vs c: 2.4 > 2.098)
    assert res["cd"] == pytest.approx(2.569 * math.sqrt(20 / 30), abs=0.002)
    assert res["significant_pairs"] == [{"better": "d", "worse": "c", "rank_difference": pytest.approx(2.4)}]
    json.dumps(res)  # JSON-ready


def test_ties_get_average_ranks():
    scores = [[0.9, 0.9, 0.5], [0.7, 0.8, 0.8], [0.6, 0.6, 0.6]]
    res = friedman_nemenyi(scores, ["x", "y", "z"])
    # rows: (1.5, 1.5, 3), (3, 1.5, 1.5), (2, 2, 2)
    assert res["average_ranks"] == pytest.approx({"x": 6.5 / 3, "y": 5 / 3, "z": 6.5 / 3})
    low = friedman_nemenyi(scores, ["x", "y", "z"], higher_is_better=False)
    assert low["average_ranks"] == pytest.approx({"x": 5.5 / 3, "y": 7 / 3, "z": 5.5 / 3})
    # the tie-corrected statistic differs from Demšar's uncorrected one when there are ties
    ref = sps.friedmanchisquare(*(-np.array(scores)).T)
    assert res["chi2_tie_corrected"] == pytest.approx(float(ref.statistic), rel=1e-12)
    assert res["chi2_F"] == pytest.approx(demsar_chi2([6.5 / 3, 5 / 3, 6.5 / 3], 3), rel=1e-12)
    assert res["chi2_F"] == pytest.approx(0.5)
    assert res["chi2_tie_corrected"] == pytest.approx(1.0)


def test_perfect_agreement_and_all_ties():
    same = [[3.0, 2.0, 1.0]] * 4
    res = friedman_nemenyi(same, ["a", "b", "c"])
    assert res["chi2_F"] == pytest.approx(4 * 2)  # its maximum N(k-1)
    assert res["F_F"] is None and res["F_F_p"] == 0.0
    assert "infinite" in res["F_F_note"]
    flat = friedman_nemenyi([[1.0, 1.0, 1.0]] * 3, ["a", "b", "c"])
    assert flat["chi2_F"] == pytest.approx(0.0, abs=1e-12)
    assert flat["chi2_tie_corrected"] is None and flat["p_tie_corrected"] is None
    assert flat["F_F"] == pytest.approx(0.0, abs=1e-12)
    json.dumps(res)
    json.dumps(flat)


@pytest.mark.parametrize(
    ("scores", "methods", "message"),
    [
        ([1.0, 2.0, 3.0], ["a", "b", "c"], "2-D"),
        ([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]], ["a", "b"], "3 score columns"),
        ([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]], ["a", "a", "b"], "unique"),
        ([[1.0, 2.0], [2.0, 1.0]], ["a", "b"], "at least 3 methods"),
        ([[1.0, 2.0, 3.0]], ["a", "b", "c"], "at least 2 blocks"),
        ([[1.0, 2.0, float("nan")], [2.0, 1.0, 3.0]], ["a", "b", "c"], "NaN"),
    ],
)
def test_friedman_nemenyi_bad_inputs(scores, methods, message):
    with pytest.raises(ValueError, match=message):
        friedman_nemenyi(scores, methods)


# ---------------------------------------------------------------------------------------------
# mean_std and anova
# ---------------------------------------------------------------------------------------------


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([0.42]) == (0.42, 0.0)
    with pytest.raises(ValueError, match="no values"):
        mean_std([])
    with pytest.raises(ValueError, match="NaN or inf"):
        mean_std([1.0, float("inf")])


def test_anova_hand_computed():
    groups = {"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 6.0], "c": [5.0, 5.0, 8.0]}
    # means 2, 4, 6; grand mean 4; SSB = 3*(4+0+4) = 24 (df 2); SSW = 2 + 8 + 6 = 16 (df 6)
    res = anova(groups)
    assert res["F"] == pytest.approx((24 / 2) / (16 / 6), rel=1e-12)
    assert res["F"] == pytest.approx(4.5, rel=1e-12)
    assert res["p"] == pytest.approx(float(sps.f.sf(4.5, 2, 6)), rel=1e-12)
    assert (res["df_between"], res["df_within"]) == (2, 6)
    assert res["groups"] == ["a", "b", "c"]
    assert res["reason"] is None


def test_anova_constant_groups_give_none_with_reason():
    differ = anova({"a": [0.5, 0.5], "b": [0.7, 0.7, 0.7]})
    assert differ["F"] is None and differ["p"] is None
    assert "zero within-group variance" in differ["reason"] and "infinite" in differ["reason"]
    equal = anova({"a": [0.5, 0.5], "b": [0.5, 0.5]})
    assert equal["F"] is None and "0/0" in equal["reason"]
    json.dumps(differ)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"a": [1.0, 2.0]}, "at least 2 groups, got 1"),
        ({}, "at least 2 groups, got 0"),
        ({"a": [1.0, 2.0], "b": [3.0]}, "group 'b' has 1 value"),
        ({"a": [1.0, 2.0], "b": [3.0, float("nan")]}, "NaN or inf"),
    ],
)
def test_anova_bad_inputs(groups, message):
    with pytest.raises(ValueError, match=message):
        anova(groups)


# ---------------------------------------------------------------------------------------------
# leaderboard_stats / stats_markdown on synthetic entries
# ---------------------------------------------------------------------------------------------

# robust accuracy per seed; clean = robust + 0.3; apgd-ce = robust (the worst case), pgd = robust + 0.05
ROBUST = {"A": [0.50, 0.60, 0.70], "B": [0.55, 0.40, 0.40], "C": [0.60, 0.65, 0.70]}


def _entry(group, seed, robust, track="deterministic", extra=None):
    per_attack = {"apgd-ce": {"accuracy": robust, "n": 100}, "pgd": {"accuracy": robust + 0.05}}
    per_attack.update(extra or {})
    return {
        "name": f"{group} seed {seed}",
        "clean_acc": f"{100 * (robust + 0.3):.2f}",
        "robact": {
            "group": group,
            "seed": seed,
            "track": track,
            "evaluation": {"clean_acc": robust + 0.3, "robust_acc": robust, "per_attack": per_attack},
        },
    }


def _entries():
    out = []
    for group, values in ROBUST.items():
        for seed, r in enumerate(values):
            extra = {"square": {"accuracy": 0.95}} if group == "C" and seed < 2 else None
            out.append(_entry(group, seed, r, track="randomized" if group == "C" else "deterministic", extra=extra))
    return out[::-1]  # order must not matter


def test_leaderboard_stats_means_and_stds():
    st = leaderboard_stats(_entries())
    json.dumps(st)
    g = st["groups"]
    assert list(g) == ["A", "B", "C"]
    assert g["A"]["n_seeds"] == 3 and g["A"]["seeds"] == [0, 1, 2]
    assert g["C"]["track"] == "randomized" and g["A"]["track"] == "deterministic"
    assert g["A"]["robust_acc"]["mean"] == pytest.approx(0.60)
    assert g["A"]["robust_acc"]["std"] == pytest.approx(0.10)
    # B: deviations 0.1, -0.05, -0.05 -> variance 0.015 / 2
    assert g["B"]["robust_acc"]["mean"] == pytest.approx(0.45)
    assert g["B"]["robust_acc"]["std"] == pytest.approx(math.sqrt(0.0075))
    assert g["C"]["robust_acc"]["mean"] == pytest.approx(0.65)
    assert g["C"]["robust_acc"]["std"] == pytest.approx(0.05)
    assert g["A"]["clean_acc"]["mean"] == pytest.approx(0.90)
    assert g["A"]["clean_acc"]["std"] == pytest.approx(0.10)
    assert g["B"]["per_attack"]["pgd"]["mean"] == pytest.approx(0.50)
    assert g["B"]["per_attack"]["pgd"]["std"] == pytest.approx(math.sqrt(0.0075))
    assert g["C"]["per_attack"]["square"] == {"mean": pytest.approx(0.95), "std": 0.0, "n": 2}
    assert "square" not in g["A"]["per_attack"]


def test_leaderboard_stats_anova_and_friedman():
    st = leaderboard_stats(_entries())
    an = st["anova_robust_acc"]
    # means 0.6, 0.45, 0.65, grand 17/30; SSB = 3*[(1/30)^2 + (7/60)^2 + (1/12)^2] = 0.065;
    # SSW = 0.02 + 0.015 + 0.005 = 0.04
    assert an["skipped"] is None
    assert (an["df_between"], an["df_within"]) == (2, 6)
    assert an["F"] == pytest.approx((0.065 / 2) / (0.04 / 6))
    assert an["F"] == pytest.approx(4.875)
    fr = st["friedman"]
    assert fr["skipped"] is None
    # square is missing from A and B and from C's seed 2: blocks are 3 seeds x (apgd-ce, pgd, worst case)
    assert fr["blocks"] == {"seeds": [0, 1, 2], "cells": ["apgd-ce", "pgd", "worst_case"]}
    assert fr["n_blocks"] == 9 and fr["methods"] == ["A", "B", "C"]
    # seed 0: C 0.60 > B 0.55 > A 0.50; seed 1: C 0.65 > A 0.60 > B 0.40; seed 2: A 0.70 = C 0.70 > B 0.40
    # (three identical cells per seed) -> A (9 + 6 + 4.5)/9, B (6 + 9 + 9)/9, C (3 + 3 + 4.5)/9
    assert fr["average_ranks"] == pytest.approx({"A": 19.5 / 9, "B": 24 / 9, "C": 10.5 / 9})
    chi2 = demsar_chi2([19.5 / 9, 24 / 9, 10.5 / 9], 9)
    assert chi2 == pytest.approx(10.5)  # = 1066.5/9 - 108
    assert fr["chi2_F"] == pytest.approx(chi2)
    assert fr["F_F"] == pytest.approx(iman_davenport(10.5, 9, 3))
    assert fr["F_F"] == pytest.approx(84 / 7.5)
    assert fr["F_F_df"] == [2, 16]
    assert fr["cd"] == pytest.approx(2.343 * math.sqrt(12 / 54), abs=0.001)
    assert fr["significant_pairs"] == [{"better": "C", "worse": "B", "rank_difference": pytest.approx(1.5)}]


def test_leaderboard_stats_markdown():
    md = stats_markdown(leaderboard_stats(_entries()))
    assert md.startswith("## Statistics across seeds\n")
    assert "| A | deterministic | 3 | 90.00 ± 10.00 | 60.00 ± 10.00 | 60.00 ± 10.00 | 65.00 ± 10.00 | — |" in md
    assert "| C | randomized | 3 | 95.00 ± 5.00 | 65.00 ± 5.00 | 65.00 ± 5.00 | 70.00 ± 5.00 | 95.00 ± 0.00 |" in md
    assert "F(2, 6) = 4.875" in md
    assert "χ²_F = 10.500" in md
    assert "F_F(2, 16) = 11.200" in md
    assert "CD = 1.105" in md and "C > B (1.50)" in md
    assert "Average ranks (1 = best): C 1.17, A 2.17, B 2.67." in md


def test_leaderboard_stats_skips_with_reasons():
    two_groups = [e for e in _entries() if e["robact"]["group"] != "C"]
    st = leaderboard_stats(two_groups)
    assert "at least 3 groups, got 2" in st["friedman"]["skipped"]
    assert st["anova_robust_acc"]["F"] == pytest.approx(anova({"A": ROBUST["A"], "B": ROBUST["B"]})["F"], rel=1e-12)
    one_seed = [e for e in _entries() if e["robact"]["seed"] == 0]
    st1 = leaderboard_stats(one_seed)
    assert st1["anova_robust_acc"] == {
        "skipped": "ANOVA needs at least 2 groups with 2 or more seeds, got 0 (A, B, C have 1 seed)",
        "excluded": ["A", "B", "C"],
    }
    assert st1["groups"]["A"]["robust_acc"] == {"mean": pytest.approx(0.5), "std": 0.0, "n": 1}
    # one common seed x 3 cells = 3 blocks: Friedman still runs
    assert st1["friedman"]["n_blocks"] == 3
    # no seed common to all groups -> 0 blocks
    disjoint = [_entry("A", 0, 0.5), _entry("B", 1, 0.5), _entry("C", 2, 0.5)]
    st2 = leaderboard_stats(disjoint)
    assert "at least 2 blocks, got 0" in st2["friedman"]["skipped"]
    md = stats_markdown(st2)
    assert "Friedman test: skipped" in md and "ANOVA of robust accuracy across groups: skipped" in md


def test_leaderboard_stats_bad_entries():
    with pytest.raises(ValueError, match="two leaderboard entries for group 'A' and seed 0"):
        leaderboard_stats([_entry("A", 0, 0.5), _entry("A", 0, 0.6)])
    bad = _entry("A", 0, 0.5)
    del bad["robact"]["evaluation"]["robust_acc"]
    with pytest.raises(ValueError, match=r"entry 1 has no 'robact\.evaluation\.robust_acc'"):
        leaderboard_stats([_entry("B", 0, 0.5), bad])
    with pytest.raises(ValueError, match="mixes tracks"):
        leaderboard_stats([_entry("A", 0, 0.5), _entry("A", 1, 0.5, track="randomized")])


def test_anova_runs_over_the_multi_seed_groups_when_one_has_a_single_seed():
    entries = [*_entries(), _entry("D", 0, 0.9)]
    st = leaderboard_stats(entries)
    an = st["anova_robust_acc"]
    assert an["skipped"] is None
    assert an["excluded"] == ["D"]
    assert an["groups"] == ["A", "B", "C"] and an["n_per_group"] == [3, 3, 3]
    assert an["F"] == pytest.approx(4.875)  # as without D (test_leaderboard_stats_anova_and_friedman)
    assert (an["df_between"], an["df_within"]) == (2, 6)
    md = stats_markdown(st)
    assert (
        "- ANOVA of robust accuracy across groups (seeds as replicates; over the 3 groups with at least 2 seeds, "
        f"leaving out D (1 seed)): F(2, 6) = 4.875, p = {an['p']:.3g}.\n"
    ) in md
    # one group with seeds and one with a single seed: nothing to compare
    st2 = leaderboard_stats([e for e in entries if e["robact"]["group"] in ("A", "D")])
    assert st2["anova_robust_acc"]["skipped"] == (
        "ANOVA needs at least 2 groups with 2 or more seeds, got 1 (D has 1 seed)"
    )


def test_stats_html_is_rendered_from_the_same_blocks_as_the_markdown():
    st = leaderboard_stats(_entries())
    md = stats_markdown(st)
    page = stats_html(st)
    assert page.startswith('<section class="stats">\n<h2>Statistics across seeds</h2>\n')
    assert page.rstrip().endswith("</section>")
    assert "<tr><td>A</td><td>deterministic</td><td>3</td><td>90.00 ± 10.00</td><td>60.00 ± 10.00</td>" in page
    assert "<li>Average ranks (1 = best): C 1.17, A 2.17, B 2.67.</li>" in page
    # the same headings and list items, in the same order
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == [html.unescape(h.split("</h2>")[0]) for h in page.split("<h2>")[1:]]
    items = [line[2:] for line in md.splitlines() if line.startswith("- ")]
    assert items == [html.unescape(i.split("</li>")[0]) for i in page.split("<li>")[1:]]
    assert "C &gt; B (1.50)" in page
    # text is escaped: a group name cannot inject markup
    st["groups"]["<b>x</b>"] = st["groups"].pop("A")
    assert "<b>x</b>" not in stats_html(st) and "&lt;b&gt;x&lt;/b&gt;" in stats_html(st)
