"""The ART adapter: threat model, strength, records, errors, and ART's eval() on random models."""

import numpy as np
import pytest
import torch

from robact_bench.attacks.art import art_attack, art_classifier
from robact_bench.attacks.backends import BACKENDS
from robact_bench.attacks.common import perturbation_norm, project
from robact_bench.evaluation.stochastic import fraction, predict_passes
from robact_bench.models import ModelSpec

SPEC = {"arch_kwargs": {"img_size": 8, "hidden": [64, 64]}}


def _points(digits, n):
    _, _, xte, yte = digits
    return xte[:n], yte[:n]


def _acc(model, x, y) -> float:
    return fraction(predict_passes(model, x, 1)[0] == y)


def _assert_valid(x, x_adv, eps, norm):
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32 and x_adv.device.type == "cpu"
    assert float(perturbation_norm(x, x_adv, norm).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


# (attack, norm, eps, params, points): Square with few queries, AutoAttack at an eps where
# APGD-CE breaks every point (otherwise ART's 5 x 5000-query Square runs for minutes on a CPU)
CASES = [
    ("PGD", "Linf", 0.1, {"max_iter": 10}, 100),
    ("PGD", "L2", 1.0, {"max_iter": 10}, 100),
    ("Square", "Linf", 0.1, {"max_iter": 50}, 100),
    ("Square", "L2", 1.0, {"max_iter": 50}, 100),
    pytest.param("AutoAttack", "Linf", 0.3, {}, 32, marks=pytest.mark.slow),
    pytest.param("AutoAttack", "L2", 3.0, {}, 32, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("attack", "norm", "eps", "params", "n"), CASES)
def test_art_adapter_bounds_record_and_seed(digits_relu, digits, attack, norm, eps, params, n):
    x, y = _points(digits, n)
    out = art_attack(digits_relu, x, y, attack=attack, eps=eps, norm=norm, seed=0, batch_size=64, **params)
    _assert_valid(x, out.x_adv, eps, norm)
    clean, robust = _acc(digits_relu, x, y), _acc(digits_relu, out.x_adv, y)
    assert clean > 0.9  # the fixture is a trained model: robust <= clean means something
    assert robust <= clean
    assert out.name == f"art-{attack.lower()}" and out.library_robust is None
    rec = out.record
    assert rec["backend"] == "adversarial-robustness-toolbox" and rec["backend_version"] == "1.20.1"
    assert rec["attack"] == attack and rec["norm"] == norm and rec["seed"] == 0 and rec["batch_size"] == 64
    assert rec["params"]["eps"] == eps and rec["params"]["norm"] == ("inf" if norm == "Linf" else 2)
    assert rec["params"]["batch_size"] == 64 and rec["seconds"] > 0 and 0.0 <= rec["projection"] <= 1e-5
    if attack in ("PGD", "AutoAttack"):
        assert rec["params"]["eps_step"] == pytest.approx(eps / 4)
    if attack == "PGD":
        assert rec["params"]["max_iter"] == 10 and rec["params"]["num_random_init"] == 1
        assert rec["params"]["targeted"] is False
    if attack == "Square":
        assert rec["params"]["max_iter"] == 50 and rec["params"]["p_init"] == 0.8
        assert rec["params"]["nb_restarts"] == 1
    if attack == "AutoAttack":
        assert set(rec["params"]) == {"norm", "eps", "eps_step", "batch_size"}
        assert robust == 0.0  # measured: APGD-CE alone breaks all 32 points at this eps
    # seeded: the same call gives the same images (Square's L2 proposals use Python's `random` too)
    again = art_attack(digits_relu, x, y, attack=attack, eps=eps, norm=norm, seed=0, batch_size=64, **params)
    assert torch.equal(again.x_adv, out.x_adv)


def test_art_pgd_lowers_accuracy(digits_relu, digits):
    """Measured on this fixture (100 test digits): clean 0.92, ART PGD-20 Linf 0.1 -> 0.60, L2 1.0 -> 0.07."""
    x, y = _points(digits, 100)
    clean = _acc(digits_relu, x, y)
    linf = art_attack(digits_relu, x, y, attack="PGD", eps=0.1, seed=0)
    l2 = art_attack(digits_relu, x, y, attack="PGD", eps=1.0, norm="L2", seed=0)
    assert linf.record["params"] == {
        "norm": "inf", "eps": 0.1, "eps_step": 0.025, "max_iter": 20,
        "num_random_init": 1, "targeted": False, "verbose": False, "batch_size": 500,
    }  # fmt: skip
    assert _acc(digits_relu, linf.x_adv, y) < clean - 0.2
    assert _acc(digits_relu, l2.x_adv, y) < clean - 0.5
    # a larger ball never helps the model (same seed, same steps)
    small = art_attack(digits_relu, x, y, attack="PGD", eps=0.05, seed=0)
    assert _acc(digits_relu, small.x_adv, y) >= _acc(digits_relu, linf.x_adv, y)


def test_art_adapter_rejects_bad_input(digits_relu, digits):
    x, y = _points(digits, 4)
    with pytest.raises(ValueError, match="must be one of PGD, Square, AutoAttack"):
        art_attack(digits_relu, x, y, attack="FGSM", eps=0.1)
    with pytest.raises(TypeError, match=r"does not take \['restarts'\]"):
        art_attack(digits_relu, x, y, attack="PGD", eps=0.1, restarts=3)
    with pytest.raises(TypeError, match=r"ART PGD does not take \['p_init'\]"):
        art_attack(digits_relu, x, y, attack="PGD", eps=0.1, p_init=0.5)
    with pytest.raises(TypeError, match=r"ART AutoAttack does not take \['max_iter'\]"):
        art_attack(digits_relu, x, y, attack="AutoAttack", eps=0.1, max_iter=5)
    with pytest.raises(ValueError, match="norm must be one of"):
        art_attack(digits_relu, x, y, eps=0.1, norm="L1")
    with pytest.raises(ValueError, match="eps must be a finite number"):
        art_attack(digits_relu, x, y, eps=-0.1)
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        art_attack(digits_relu, x * 2, y, eps=0.1)
    assert BACKENDS.get("art").attack_names() == ("PGD", "Square", "AutoAttack")


def test_art_adapter_name_empty_input_and_training_mode(digits):
    x, y = _points(digits, 8)
    torch.manual_seed(0)
    model = ModelSpec("mlp2", "relu", **SPEC).build()  # fresh: training mode
    assert model.training
    out = art_attack(model, x, y, attack="PGD", eps=0.05, name="pgd-art", max_iter=2)
    assert out.name == "pgd-art"
    assert model.training  # ART calls eval(); the adapter gives the mode back
    _assert_valid(x, out.x_adv, 0.05, "Linf")
    empty = art_attack(model, x[:0], y[:0], attack="Square", eps=0.05)
    assert empty.x_adv.shape == (0, 1, 8, 8) and empty.record["params"]["max_iter"] == 1000


def test_art_keeps_brelu_random(digits_brelu, digits_relu, digits):
    """ART's PyTorchClassifier calls model.eval(); BReLU stays random there, so two ART
    predictions on the same input differ; a ReLU model gives identical ones."""
    x, _ = _points(digits, 50)
    xn = x.numpy()
    clf = art_classifier(digits_brelu, (1, 8, 8), 10)
    assert clf.device_type == "cpu" and clf.clip_values.tolist() == [0.0, 1.0]
    torch.manual_seed(0)
    p1, p2 = clf.predict(xn), clf.predict(xn)
    assert not digits_brelu.training
    assert p1.shape == (50, 10) and p1.dtype == np.float32
    assert float(np.abs(p1 - p2).max()) > 1e-2
    det = art_classifier(digits_relu, (1, 8, 8), 10)
    np.testing.assert_array_equal(det.predict(xn), det.predict(xn))


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_projection_fixes_art_slack_and_leaves_valid_points(norm):
    """ART's AutoAttack accepts ||delta|| up to eps / (1 - 1e-4): the adapter projects that back."""
    torch.manual_seed(0)
    eps = 0.2 if norm == "Linf" else 0.5
    x = torch.rand(6, 1, 8, 8) * 0.4 + 0.3  # away from 0 and 1: clamping to [0, 1] changes nothing
    d = torch.randn_like(x)
    unit = d / perturbation_norm(torch.zeros_like(d), d, norm).view(-1, 1, 1, 1)
    radius = torch.tensor([0.5, 0.999, 1.0, 1.0 + 5e-5, 1.0 / (1 - 1e-4), 1.01]).view(-1, 1, 1, 1) * eps
    x_adv = x + unit * radius
    assert float(x_adv.min()) > 0.0 and float(x_adv.max()) < 1.0
    assert float(perturbation_norm(x, x_adv, norm)[4]) > eps + 1e-6  # the slack the check would reject
    fixed, _ = project(x, x_adv, eps, norm)
    _assert_valid(x, fixed, eps, norm)
    assert torch.equal(fixed[:2], x_adv[:2])  # inside the ball: unchanged
    # minimal: each point moves by no more than its excess over eps
    excess = (radius.flatten() - eps).clamp_min(0)
    assert (perturbation_norm(x_adv, fixed, norm) <= excess + 1e-6).all()


def test_art_autoattack_smoke(digits):
    """ART's AutoAttack end to end in the default run, on a fresh (untrained) model that APGD-CE
    breaks within its first restart. The trained-model cases above are marked slow: about 20 s
    per 32-point run with 2 torch threads on a busy 2-core machine (under 1 s with 1 thread)."""
    x, y = _points(digits, 8)
    torch.manual_seed(0)
    model = ModelSpec("mlp2", "relu", **SPEC).build().eval()
    out = art_attack(model, x, y, attack="AutoAttack", eps=0.3, seed=0)
    _assert_valid(x, out.x_adv, 0.3, "Linf")
    assert out.name == "art-autoattack"
    assert out.record["params"] == {"norm": "inf", "eps": 0.3, "eps_step": 0.075, "batch_size": 500}
    clean, robust = _acc(model, x, y), _acc(model, out.x_adv, y)
    assert clean > 0.0 and robust < clean  # measured: 0.25 -> 0.0
