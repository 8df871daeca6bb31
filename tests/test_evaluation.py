import pytest
import torch
from torch import nn

from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.diagnostics import drelu_saturation, stochastic_check
from robact_bench.evaluation.engine import run_evaluation
from robact_bench.evaluation.stochastic import measure_stochastic, predict_passes, score


class _Coin(nn.Module):
    """Predicts class 0 or 1 at random (p = 1/2), whatever the input."""

    stochastic = True

    def forward(self, x):
        b = torch.rand(len(x)) < 0.5
        return torch.stack([b.float(), (~b).float()], 1)


def test_score_all_right_mean_majority_on_a_coin():
    torch.manual_seed(0)
    x = torch.zeros(2000, 1, 1, 1)
    y = torch.zeros(2000, dtype=torch.long)
    s = score(_Coin(), x, y, passes=5)
    # correct on one pass with p = 1/2; on all 5 with p = 1/32; on 3 or more of 5 with p = 1/2
    assert float(s.mean.mean()) == pytest.approx(0.5, abs=0.02)
    assert float(s.worst.float().mean()) == pytest.approx(1 / 32, abs=0.012)
    assert float(s.majority.float().mean()) == pytest.approx(0.5, abs=0.04)
    assert s.counts.dtype == torch.int64 and s.passes == 5
    assert predict_passes(_Coin(), x[:3], 4).shape == (4, 3)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        predict_passes(_Coin(), x, 0)


def test_stochastic_measurement_and_declaration(digits_relu, digits_brelu, digits):
    x = digits[2][:32]
    assert not measure_stochastic(digits_relu, x)
    assert measure_stochastic(digits_brelu, x)
    assert stochastic_check(digits_brelu, x)["passed"]
    undeclared = _Coin()
    undeclared.stochastic = False
    check = stochastic_check(undeclared, torch.zeros(64, 1, 1, 1))
    assert not check["passed"] and check["value"] == {"declared": False, "measured": True}


def test_failed_check_warns_during_evaluation(digits):
    from robact_bench.activations import DReLU

    _, _, xte, yte = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), DReLU(10, m_init=100.0)).eval()
    with pytest.warns(UserWarning, match="check drelu_saturation failed"):
        r = run_evaluation(model, xte, yte, _cfg(n_examples=10), model_name="capped", progress=False)
    sat = next(d for d in r.diagnostics if d["name"] == "drelu_saturation")
    assert sat["value"] == 0.0 and not sat["passed"]


def test_drelu_saturation_reports_an_unreached_cap():
    from robact_bench.activations import DReLU

    model = nn.Sequential(nn.Flatten(), DReLU(4, m_init=100.0))
    x = torch.rand(10, 1, 2, 2)
    sat = drelu_saturation(model, x)
    assert sat["value"] == 0.0 and not sat["passed"] and sat["m_max"] == 100.0
    with torch.no_grad():
        model[1].m.fill_(0.5)
    sat = drelu_saturation(model, x)
    assert sat["value"] == pytest.approx(float((x >= 0.5).float().mean())) and sat["passed"]
    assert drelu_saturation(nn.Flatten(), x) is None


def _cfg(**kw):
    base = dict(suite="basic", eps=0.1, n_examples=30, eot_iter=4, passes=4, seed=0,
                attacks=("pgd7_reported", "pgd20", "apgd-ce"))  # fmt: skip
    return EvalConfig(**{**base, **kw})


def test_evaluate_deterministic_model(digits_relu, digits):
    _, _, xte, yte = digits
    r = run_evaluation(digits_relu, xte, yte, _cfg(), model_name="relu", dataset="digits", progress=False)
    assert r.n_examples == 30 and len(r.robust_flags) == 30 and r.passes == 1 and r.eot_iter is None
    assert not r.stochastic and r.autoattack_version == "standard"
    assert [a.name for a in r.attacks] == ["pgd7_reported", "pgd20", "apgd-ce"]
    # worst case per point: robust accuracy is at most every attack's accuracy, which are <= clean
    assert r.robust_acc == pytest.approx(sum(r.robust_flags) / 30)
    for a in r.attacks:
        assert r.robust_acc <= a.accuracy <= r.clean_acc
    assert r.robust_acc < r.clean_acc
    assert r.clean_acc == r.clean_acc_majority == r.clean_acc_all_right
    assert r.autoattack_acc == r.attack("apgd-ce").library_accuracy
    assert r.attack("pgd20").record["attack"] == "PGD"
    # the same call gives the same numbers
    again = run_evaluation(digits_relu, xte, yte, _cfg(), model_name="relu", dataset="digits", progress=False)
    assert again.robust_flags == r.robust_flags and again.attacks[1].accuracy == r.attacks[1].accuracy


def test_evaluate_random_model_uses_eot_and_repeated_passes(digits_brelu, digits):
    _, _, xte, yte = digits
    r = run_evaluation(digits_brelu, xte, yte, _cfg(), model_name="brelu", progress=False)
    assert r.stochastic and r.passes == 4 and r.eot_iter == 4 and r.autoattack_version == "rand"
    pgd = r.attack("pgd20")
    assert pgd.record["attack"] == "PGD" and pgd.record["eot"] == {"mode": "batched", "k": 4, "max_batch": 512}
    # batched EOT: the library's own loop is off, the EOT model draws K = 4 samples per gradient
    assert r.attack("apgd-ce").record["params"]["eot_iter"] == 1 and r.attack("apgd-ce").record["eot"]["k"] == 4
    assert r.clean_acc_all_right <= r.clean_acc <= 1.0
    # all passes right never exceeds the mean over passes of the same images
    for a in r.attacks:
        assert a.accuracy_all_right <= a.accuracy
    assert r.robust_acc_all_right <= min(a.accuracy_all_right for a in r.attacks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": 8}, r"Linf eps must be in \[0, 1\]"),
        ({"norm": "L2", "eps": -1.0}, "eps must be >= 0"),
        ({"suite": "nope"}, "unknown attack suite"),
        ({"eot_mode": "loop"}, "eot_mode must be one of batched, sequential"),
        ({"sweep_steps": (0,)}, "sweep_steps values must be integers >= 1"),
        ({"n_examples": 0}, "n_examples must be an integer >= 1"),
        ({"passes": 0}, "passes must be an integer >= 1"),
        ({"autoattack_backend": "apgd"}, "autoattack_backend must be one of auto, pyautoattack, autoattack"),
        ({"norm": "L1"}, "norm must be one of Linf, L2"),
    ],
)
def test_eval_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kwargs)
