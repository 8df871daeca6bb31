import pytest
import torch

from robact_bench.attacks.autoattack import autoattack_attack
from robact_bench.attacks.common import ThreatModelViolation, check_inputs, check_threat_model
from robact_bench.attacks.torchattacks import torchattacks_attack
from robact_bench.evaluation.stochastic import score


def _points(digits, n):
    _, _, xte, yte = digits
    return xte[:n], yte[:n]


def _assert_valid(x, x_adv, eps):
    assert x_adv.shape == x.shape
    assert float((x_adv - x).abs().flatten(1).amax(1).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


@pytest.mark.parametrize(
    ("attack", "params"), [("FGSM", {}), ("PGD", {"steps": 10}), ("EOTPGD", {"steps": 5, "eot_iter": 3})]
)
def test_torchattacks_adapter_bounds_and_strength(digits_relu, digits, attack, params):
    x, y = _points(digits, 100)
    eps = 0.1
    out = torchattacks_attack(digits_relu, x, y, attack=attack, eps=eps, seed=0, batch_size=64, **params)
    _assert_valid(x, out.x_adv, eps)
    clean = score(digits_relu, x, y, 1).worst.float().mean()
    robust = score(digits_relu, out.x_adv, y, 1).worst.float().mean()
    assert robust <= clean
    assert robust < clean - 0.05  # eps = 0.1 on an undefended MLP: the attack must bite
    rec = out.record
    assert rec["backend"] == "torchattacks" and rec["backend_version"] == "3.5.1"
    assert rec["params"]["eps"] == eps and rec["seed"] == 0
    if attack != "FGSM":
        assert rec["params"]["steps"] == params["steps"] and rec["params"]["alpha"] == pytest.approx(eps / 4)
    # seeded: the same call gives the same images
    again = torchattacks_attack(digits_relu, x, y, attack=attack, eps=eps, seed=0, batch_size=64, **params)
    assert torch.equal(again.x_adv, out.x_adv)


def test_torchattacks_adapter_rejects_unknown_attack_and_params(digits_relu, digits):
    x, y = _points(digits, 4)
    with pytest.raises(ValueError, match="must be one of FGSM, PGD, EOTPGD, CW"):
        torchattacks_attack(digits_relu, x, y, attack="AutoAttack", eps=0.1)
    with pytest.raises(TypeError, match="does not take"):
        torchattacks_attack(digits_relu, x, y, attack="PGD", eps=0.1, restarts=3)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_torchattacks_cw_is_projected_into_the_threat_model(digits_relu, digits, norm):
    x, y = _points(digits, 60)
    eps = 0.05 if norm == "Linf" else 0.5
    out = torchattacks_attack(digits_relu, x, y, attack="CW", eps=eps, norm=norm, steps=30, seed=0)
    d = (out.x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6
    assert float(out.x_adv.min()) >= 0.0 and float(out.x_adv.max()) <= 1.0
    assert out.record["threat_model"] == {"norm": norm, "eps": eps} and out.record["projected_to_threat_model"] >= 0
    assert out.record["params"] == {"c": 1.0, "kappa": 0.0, "steps": 30, "lr": 0.01}
    clean = score(digits_relu, x, y, 1).worst.float().mean()
    assert score(digits_relu, out.x_adv, y, 1).worst.float().mean() <= clean


def test_torchattacks_pgd_l2(digits_relu, digits):
    x, y = _points(digits, 60)
    out = torchattacks_attack(digits_relu, x, y, attack="PGD", eps=0.5, norm="L2", steps=10, seed=0)
    assert float((out.x_adv - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-6
    assert out.record["attack"] == "PGDL2" and out.record["norm"] == "L2"
    clean = score(digits_relu, x, y, 1).worst.float().mean()
    assert score(digits_relu, out.x_adv, y, 1).worst.float().mean() < clean
    with pytest.raises(ValueError, match="FGSM is an Linf attack"):
        torchattacks_attack(digits_relu, x, y, attack="FGSM", eps=0.5, norm="L2")


def test_autoattack_adapter_equals_one_library_call(digits_relu, digits):
    """Component by component gives the same per-point flags and images as pyautoattack's
    own run_standard_evaluation (same seed), and reports the accuracy after each component."""
    from pyautoattack import AutoAttack

    x, y = _points(digits, 40)
    eps = 0.06
    outs = autoattack_attack(digits_relu, x, y, eps=eps, version="standard", seed=0, batch_size=64)
    assert [o.name for o in outs] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    aa = AutoAttack(digits_relu, eps=eps, version="standard", seed=0)
    x_ref, y_ref = aa.run_standard_evaluation(x, y, batch_size=64)
    assert torch.equal(outs[-1].library_robust, y_ref == y)
    assert torch.equal(outs[-1].x_adv, x_ref)
    accs = [float(o.library_robust.float().mean()) for o in outs]
    assert accs == sorted(accs, reverse=True)  # cumulative: never increases
    assert 0.0 < accs[-1] < float(score(digits_relu, x, y, 1).worst.float().mean())
    for o in outs:
        _assert_valid(x, o.x_adv, eps)
        assert o.record["backend"] == "pyautoattack" and o.record["backend_version"] == "0.2.0"
        assert o.record["version"] == "standard" and o.record["seed"] == 0
    assert outs[0].record["params"]["n_iter"] == 100
    assert outs[1].record["params"]["n_target_classes"] == 9
    assert outs[3].record["params"]["n_queries"] == 5000


def test_autoattack_rand_on_a_random_model(digits_brelu, digits):
    x, y = _points(digits, 30)
    outs = autoattack_attack(digits_brelu, x, y, eps=0.1, version="rand", seed=0)
    assert [o.name for o in outs] == ["apgd-ce", "apgd-dlr"]
    assert outs[0].record["params"]["eot_iter"] == 20
    for o in outs:
        _assert_valid(x, o.x_adv, 0.1)


def test_autoattack_component_subset(digits_relu, digits):
    x, y = _points(digits, 20)
    outs = autoattack_attack(digits_relu, x, y, eps=0.05, version="standard", attacks=["apgd-ce"])
    assert [o.name for o in outs] == ["apgd-ce"]
    assert outs[0].record["version"] == "standard" and outs[0].record["params"]["n_iter"] == 100
    with pytest.raises(ValueError, match="AutoAttack components are apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square"):
        autoattack_attack(digits_relu, x, y, eps=0.05, attacks=["apgd"])
    with pytest.raises(TypeError, match="has a setting 'n_queries'"):
        autoattack_attack(digits_relu, x, y, eps=0.05, attacks=["apgd-ce"], params={"n_queries": 10})
    few = autoattack_attack(digits_relu, x, y, eps=0.05, attacks=["apgd-ce"], params={"n_iter": 5})
    assert few[0].record["params"]["n_iter"] == 5


def test_autoattack_adapter_attacks_only_the_given_points(digits_relu, digits):
    x, y = _points(digits, 20)
    start = torch.zeros(20, dtype=torch.bool)
    start[:5] = True
    (out,) = autoattack_attack(digits_relu, x, y, eps=0.1, attacks=["apgd-ce"], robust=start)
    assert out.record["points_attacked"] == 5
    assert not out.library_robust[5:].any()  # never robust where not attacked
    assert torch.equal(out.x_adv[5:], x[5:])  # and untouched there


def test_input_and_output_checks():
    x = torch.rand(2, 1, 4, 4)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        check_inputs(x * 255, y, 0.1, "Linf")
    with pytest.raises(ValueError, match="norm must be one of Linf, L2"):
        check_inputs(x, y, 0.1, "L1")
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        check_inputs(x, y, float("inf"), "Linf")
    with pytest.raises(ValueError, match="one label per image"):
        check_inputs(x, y[:1], 0.1, "Linf")
    with pytest.raises(ThreatModelViolation, match=r"perturbation of 0\.2 > eps = 0\.1"):
        check_threat_model(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.2), 0.1, "Linf", "x")
    with pytest.raises(ThreatModelViolation, match="outside"):
        check_threat_model(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), -0.05), 0.1, "Linf", "x")
