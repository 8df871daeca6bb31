"""Scoring rules, intervals and paired tests against the reference implementations (scipy, statsmodels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from robact_bench.evaluation.stochastic import correct_counts, predict_passes, rule_accuracies, rule_accuracy
from robact_bench.leaderboard.inference import (
    clopper_pearson,
    decide,
    group_interval,
    hierarchical_bootstrap,
    holm,
    paired_comparison,
    rule_intervals,
)


class _Coin(torch.nn.Module):
    def forward(self, x):
        b = torch.rand(len(x)) < 0.5
        return torch.stack([b.float(), (~b).float()], 1)


def test_the_three_rules_are_functions_of_integer_counts():
    counts = torch.tensor([0, 5, 6, 10, 10])
    assert rule_accuracies(counts, 10) == {"expected": 31 / 50, "majority": 3 / 5, "all_right": 2 / 5}
    assert rule_accuracy(torch.tensor([0, 1, 1]), 1, "majority") == rule_accuracy(torch.tensor([0, 1, 1]), 1,
                                                                                    "all_right") == 2 / 3  # fmt: skip
    with pytest.raises(ValueError, match="scoring rule must be one of"):
        rule_accuracy(counts, 10, "best")


def test_counts_of_a_fair_coin():
    torch.manual_seed(0)
    x = torch.zeros(4000, 1, 1, 1)
    y = torch.zeros(4000, dtype=torch.long)
    c = correct_counts(_Coin(), x, y, passes=5)
    assert c.dtype == torch.int64 and int(c.min()) >= 0 and int(c.max()) <= 5
    acc = rule_accuracies(c, 5)
    assert acc["expected"] == pytest.approx(0.5, abs=0.02)
    assert acc["majority"] == pytest.approx(0.5, abs=0.03)  # P(3, 4 or 5 of 5) = 1/2
    assert acc["all_right"] == pytest.approx(1 / 32, abs=0.01)
    assert predict_passes(_Coin(), x[:3], 4).shape == (4, 3)


def test_scoring_passes_fill_whole_batches_pass_major():
    """10 passes of 7 points in batches of 32: 3 forwards (32, 32, 6), each row a pass of the points in order."""

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sizes: list[int] = []

        def forward(self, x):
            self.sizes.append(len(x))
            ids = x.flatten(1)[:, 0].round().long()  # the point's own id as its predicted class
            return torch.nn.functional.one_hot(ids, 7).float()

    probe = Probe()
    x = torch.arange(7).float().view(7, 1, 1, 1)
    preds = predict_passes(probe, x, 10, batch_size=32)
    assert probe.sizes == [32, 32, 6] and preds.shape == (10, 7)
    assert torch.equal(preds, torch.arange(7).expand(10, 7))
    assert torch.equal(correct_counts(probe, x, torch.arange(7), 10, batch_size=32), torch.full((7,), 10))
    probe.sizes.clear()
    assert predict_passes(probe, x, 3, batch_size=500).shape == (3, 7) and probe.sizes == [21]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predict_passes(probe, x, 2, batch_size=0)


@pytest.mark.parametrize(("k", "n"), [(0, 50), (1, 50), (45, 50), (50, 50), (159, 200), (7, 9)])
def test_clopper_pearson_equals_scipys_exact_interval(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_the_expected_rule_interval_lies_between_its_integer_neighbours():
    # 50 points, 10 passes, 421 correct passes: 42.1 "points" right
    counts = [10] * 41 + [9, 2] + [0] * 7
    iv = rule_intervals(counts, 10)["expected"]
    assert iv["successes"] == 421 and iv["value"] == 421 / 500
    lo42, hi42 = clopper_pearson(42, 50)
    lo43, hi43 = clopper_pearson(43, 50)
    assert lo42 < iv["ci95"][0] < lo43 and hi42 < iv["ci95"][1] < hi43
    with pytest.raises(ValueError, match="successes must lie in"):
        clopper_pearson(51, 50)


def test_the_headline_all_right_rule_uses_its_own_flags():
    iv = rule_intervals([10, 10, 3], 10, all_right=[False, True, False])
    assert iv["all_right"]["successes"] == 1 and iv["majority"]["successes"] == 2


def test_the_bootstrap_is_seeded_and_widens_with_seed_spread():
    rng = np.random.default_rng(1)
    same = [rng.random(50) < 0.8 for _ in range(3)]
    a = hierarchical_bootstrap(same)
    assert a == hierarchical_bootstrap(same)  # seeded: the same entries, the same interval
    mean = np.mean([v.mean() for v in same])
    assert a[0] < mean < a[1]
    spread = [rng.random(50) < p for p in (0.55, 0.8, 0.95)]
    b = hierarchical_bootstrap(spread)
    assert b[1] - b[0] > (a[1] - a[0]) * 1.3
    one = group_interval([same[0]])
    assert one["method"] == "clopper-pearson" and one["ci95"] == list(clopper_pearson(int(same[0].sum()), 50))


def test_the_paired_sign_test_is_mcnemars_exact_test_on_0_1_outcomes():
    rng = np.random.default_rng(0)
    a, b = (rng.random(200) < 0.85).astype(float), (rng.random(200) < 0.75).astype(float)
    got = paired_comparison([a], [b])
    table = [[int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
             [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())]]  # fmt: skip
    assert got["positive"] == table[0][1] and got["negative"] == table[1][0]
    assert got["p"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert got["difference"] == pytest.approx(a.mean() - b.mean())
    # two seeds: the signs are pooled
    two = paired_comparison([a, b], [b, a])
    assert two["positive"] == two["negative"] and two["p"] == 1.0 and abs(two["difference"]) < 1e-12


def test_on_fractional_values_the_paired_test_weighs_the_size_of_each_difference():
    # a random model 0.1 below the baseline at 30 points and 0.9 above it at 10: fewer wins, a larger mean
    model = [0.9] * 30 + [0.9] * 10
    base = [1.0] * 30 + [0.0] * 10
    got = paired_comparison([model], [base])
    assert got["positive"] == 10 and got["negative"] == 30
    assert got["difference"] == pytest.approx(0.15) and got["p"] < 0.05 and got["ci95"][0] > 0
    assert "permutation" in got["method"]


def test_a_single_non_zero_difference_tests_nothing():
    assert paired_comparison([[0.0, 0.3, 0.0]], [[0.0, 0.0, 0.0]])["p"] == 1.0


def test_holm_and_the_verdict_rule():
    p = [0.01, 0.04, 0.03, 0.2]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert decide(0.01, [0.02, 0.1]) == "better"
    assert decide(0.01, [-0.1, -0.02]) == "worse"
    assert decide(0.01, [-0.01, 0.1]) == "indistinguishable"  # the interval includes 0
    assert decide(0.2, [0.02, 0.1]) == "indistinguishable"  # the test does not reject
