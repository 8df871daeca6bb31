"""The evaluation engine: agreement with pyautoattack, EOT, suites, sweeps, bad input, resume."""

import pytest
import torch
from torch import nn

from robact_bench import evaluate, list_suites
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.suites import get_suite
from robact_bench.evaluation.state import str_to_flags


def _test_points(digits, n):
    _, _, xte, yte = digits
    return xte[:n], yte[:n]


def test_suite_registry_lists_every_named_suite():
    assert {"standard", "rand", "brelu_paper", "drelu_paper", "saf_paper", "adaptive", "basic"} <= set(list_suites())
    assert [a.name for a in get_suite("standard").attacks] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [a.name for a in get_suite("rand").attacks] == ["apgd-ce", "apgd-dlr", "pgd20-noeot"]
    with pytest.raises(KeyError, match="adaptive"):
        get_suite("adaptiv")


def test_standard_suite_equals_one_pyautoattack_call(digits_relu, digits):
    """Same seed, same points: our [standard] suite's per-point flags are pyautoattack's."""
    from pyautoattack import AutoAttack

    x, y = _test_points(digits, 40)
    eps = 0.06
    r = evaluate(digits_relu, x, y, "standard", eps=eps, seed=0, batch_size=64, progress=False)
    aa = AutoAttack(digits_relu, eps=eps, version="standard", seed=0)
    _, y_ref = aa.run_standard_evaluation(x, y, batch_size=64)
    ref = y_ref == y
    assert r.robust_flags == tuple(bool(b) for b in ref)
    assert r.autoattack_acc == pytest.approx(float(ref.float().mean()))
    assert r.autoattack_version == "standard" and r.passes == 1 and r.eot_iter is None
    assert 0.0 < r.robust_acc < r.clean_acc
    for a in r.attacks:  # AutoAttack's own numbers come from (py)autoattack, 100 iterations
        assert a.record["backend"] == "pyautoattack" and a.cumulative
    assert r.attack("apgd-ce").record["params"]["n_iter"] == 100


def test_eot_model_batches_k_samples_into_one_mean(digits_relu):
    """EOTModel's output is the mean of the K sampled logits of one batched pass; chunking and
    checkpointing change neither values nor gradients."""
    from robact_bench.models import create_model

    torch.manual_seed(0)
    model = create_model("mlp2", act_layer="brelu", img_size=8, hidden=[16, 16], num_classes=3).eval()
    x = torch.rand(5, 1, 8, 8)
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[0], o.detach())))
    out = EOTModel(model, k=4, max_batch=8)(x)
    handle.remove()
    assert [n for n, _ in seen] == [8, 8, 4]  # 20 images in chunks of at most 8
    samples = torch.cat([o for _, o in seen]).view(4, 5, 3)
    assert torch.allclose(out, samples.mean(0), atol=1e-7)
    assert (samples[0] - samples[1]).abs().max() > 1e-3  # the K samples really are different draws
    # a deterministic model: the mean of K identical passes is the model itself
    xd = torch.rand(6, 1, 8, 8)
    assert torch.allclose(EOTModel(digits_relu, k=3, max_batch=4)(xd), digits_relu(xd), atol=1e-6)
    # gradient through checkpointed chunks equals the plain one (same random draws)
    xg = x.clone().requires_grad_(True)
    torch.manual_seed(2)
    (g1,) = torch.autograd.grad(EOTModel(model, k=4, max_batch=8, checkpoint=True)(xg).sum(), xg)
    torch.manual_seed(2)
    (g2,) = torch.autograd.grad(EOTModel(model, k=4, max_batch=8)(xg).sum(), xg)
    assert torch.allclose(g1, g2, atol=1e-6) and g1.abs().sum() > 0
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        EOTModel(model, k=0)


def test_random_model_gets_eot_and_repeated_passes(digits_brelu, digits):
    x, y = _test_points(digits, 30)
    r = evaluate(digits_brelu, x, y, "brelu_paper", eps=0.1, eot_iter=4, passes=4, sweeps=False, progress=False)
    assert r.stochastic and r.passes == 4 and r.eot_iter == 4 and r.eot_mode == "batched"
    assert [a.name for a in r.attacks] == ["fgsm", "pgd20", "cw"]
    for a in r.attacks:
        assert a.record["eot"] == {"mode": "batched", "k": 4, "max_batch": 512}
        assert a.record["passes"] == 4
        # all R right implies a majority, and counts fully in the mean
        assert a.accuracy_all_right <= min(a.accuracy, a.accuracy_majority)
        assert len(a.counts) == len(a.select) == len(a.confirm) == len(a.chosen) == 30
        assert all(0 <= c <= 4 for c in a.counts) and all(0 <= c <= r.confirm_passes for c in a.confirm)
        assert r.robust_acc_all_right <= a.accuracy_all_right
    assert r.robust_acc_all_right <= r.clean_acc_all_right <= r.clean_acc
    assert r.robust_acc_all_right == sum(r.robust_flags) / 30
    assert r.robust_acc == sum(r.robust_counts) / (30 * 4) and r.confirm_passes == 50
    # the headline's image is one attack's kept image (or the clean one), with that image's counts
    for i, src in enumerate(r.robust_source):
        counts = r.clean_counts if src == "clean" else r.attack(src).counts
        assert r.robust_counts[i] == counts[i]
    # the same call gives the same numbers (every unit reseeds)
    again = evaluate(digits_brelu, x, y, "brelu_paper", eps=0.1, eot_iter=4, passes=4, sweeps=False, progress=False)
    assert again.robust_flags == r.robust_flags and [a.counts for a in again.attacks] == [a.counts for a in r.attacks]


def test_sequential_eot_uses_the_libraries_loops(digits_brelu, digits):
    x, y = _test_points(digits, 20)
    r = evaluate(digits_brelu, x, y, "basic", eps=0.1, eot_iter=3, passes=3, eot_mode="sequential",
                 attacks=("pgd7_reported", "pgd20", "apgd-ce"), progress=False)  # fmt: skip
    assert r.attack("pgd20").record["attack"] == "EOTPGD" and r.attack("pgd20").record["params"]["eot_iter"] == 3
    assert r.attack("apgd-ce").record["params"]["eot_iter"] == 3
    rep = r.attack("pgd7_reported")
    assert rep.record["eot"] is None and rep.record["attack"] == "PGD"  # the non-adaptive reference
    assert r.reported_acc == rep.accuracy
    assert [s["name"] for s in r.skipped] == ["apgd-dlr"]


def test_attacks_respect_the_threat_model_and_clean_bound(digits_relu, digits):
    """Every attack of the paper suites: inside the ball (checked by the adapters), robust <= clean."""
    x, y = _test_points(digits, 20)
    r = evaluate(digits_relu, x, y, "drelu_paper", eps=0.05, sweep_eps=(0.0, 1.0, 4.0), progress=False)
    assert [a.name for a in r.attacks] == ["fgsm", "pgd20", "apgd-ce", "apgd-dlr", "cw", "square"]
    for a in r.attacks:
        assert r.robust_acc <= a.accuracy <= r.clean_acc
        assert not a.cumulative  # each attack alone on every point
    assert r.attack("cw").record["threat_model"] == {"norm": "Linf", "eps": 0.05}
    (sw,) = r.sweeps
    assert sw["kind"] == "eps" and sw["values"] == pytest.approx([0.0, 0.05, 0.2])
    assert sw["accuracy"][0] == r.clean_acc  # eps 0: APGD cannot move
    assert sw["accuracy"][1] == r.attack("apgd-ce").accuracy  # the suite's APGD-CE: reused, not rerun
    assert sw["reused"] == [None, "apgd-ce", None] and sw["n_points"] == 20 and sw["points"] == list(range(20))
    assert sw["accuracy"][2] < sw["accuracy"][1]


@pytest.mark.parametrize("random", [False, True])
def test_sweeps_run_on_a_seeded_balanced_subset_and_reuse_the_suite_pgd20(digits_relu, digits_brelu, digits, random):
    from robact_bench.data import balanced_subset
    from robact_bench.evaluation.masking import masking_checks

    model = digits_brelu if random else digits_relu
    x, y = _test_points(digits, 30)
    kw = {"eot_iter": 2, "passes": 3, "select_passes": 2, "confirm_passes": 2} if random else {}
    r = evaluate(model, x, y, "adaptive", eps=0.1, attacks=("pgd20",), sweep_eps=(0.5, 1.0), sweep_steps=(2, 20),
                 sweep_points=12, seed=4, progress=False, **kw)  # fmt: skip
    pgd = r.attack("pgd20")
    eps_sweep, steps_sweep = r.sweeps
    chosen = balanced_subset(y, 12, seed=4).sort().values.tolist()
    for sw in r.sweeps:
        assert sw["n_points"] == 12 and sw["points"] == chosen and "drawn with seed 4" in sw["point_rule"]
        assert all(len(c) == 12 for c in sw["counts"])
        for c in sw["counts"]:
            assert all(0 <= a <= r.passes for a in c)
            if not random:  # robust <= clean, point by point (a random model's passes are fresh draws)
                assert all(a <= r.clean_counts[i] for a, i in zip(c, chosen, strict=True))
    labels = torch.bincount(y[chosen], minlength=10)
    assert int(labels.max()) - int(labels.min()) <= 1  # class-balanced
    # the 1x eps point and the 20-step point are the suite's PGD-20: its counts on those points, not a rerun
    assert eps_sweep["reused"] == [None, "pgd20"] and steps_sweep["reused"] == [None, "pgd20"]
    assert eps_sweep["counts"][1] == steps_sweep["counts"][1] == [pgd.counts[i] for i in chosen]
    by_name = {c["name"]: c for c in masking_checks(r)}
    assert "(on 12 of the 30 points)" in by_name["accuracy_not_falling_with_steps"]["detail"]
    again = evaluate(model, x, y, "adaptive", eps=0.1, attacks=("pgd20",), sweep_eps=(0.5,), sweep_steps=(2,),
                     sweep_points=None, seed=4, progress=False, **kw)  # fmt: skip
    assert again.sweeps[0]["n_points"] == 30 and again.sweeps[0]["point_rule"] == "every evaluated point"


def test_adaptive_transfers_from_the_expected_value_surrogate(digits_brelu, digits):
    x, y = _test_points(digits, 16)
    r = evaluate(digits_brelu, x, y, "adaptive", eps=0.1, eot_iter=2, passes=3,
                 attacks=("apgd-ce-transfer", "pgd20-noeot"), progress=False)  # fmt: skip
    t = r.attack("apgd-ce-transfer")
    assert t.record["via"] == "transfer" and t.record["eot"] is None  # the surrogate is deterministic
    assert r.attack("pgd20-noeot").record["eot"] is None


def test_transfer_is_skipped_with_a_reason_on_a_model_without_surrogate(digits_relu, digits):
    x, y = _test_points(digits, 10)
    r = evaluate(digits_relu, x, y, "adaptive", eps=0.05, attacks=("apgd-ce-transfer", "pgd20"), progress=False)
    assert [a.name for a in r.attacks] == ["pgd20"]
    (skip,) = [s for s in r.skipped if s["name"] == "apgd-ce-transfer"]
    assert "no activation with a surrogate" in skip["reason"]


class _Softmax(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


class _NaN(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("eps_255", r"Linf eps must be in \[0, 1\].*8/255"),
        ("suite", "unknown attack suite 'standart'.*standard"),
        ("attack", "suite standard has no attack pgd; it has apgd-ce, apgd-t, fab-t, square"),
        ("option", "unknown evaluation option"),
        ("probabilities", "returns probabilities"),
        ("nan", "NaN or inf"),
        ("labels", r"labels must be in \[0, 9\]"),
        ("range", r"images must be in \[0, 1\]"),
    ],
)
def test_bad_input_is_one_clear_error(digits_relu, digits, case, match):
    x, y = _test_points(digits, 8)
    model, suite, opts = digits_relu, "standard", {"eps": 0.1, "progress": False}
    if case == "eps_255":
        opts["eps"] = 8
    elif case == "suite":
        suite = "standart"
    elif case == "attack":
        opts["attacks"] = ("pgd",)
    elif case == "option":
        opts["epsilon"] = 0.1
    elif case == "probabilities":
        model = _Softmax(digits_relu)
    elif case == "nan":
        model = _NaN(digits_relu)
    elif case == "labels":
        y = y.clone()
        y[0] = 10
    elif case == "range":
        x = x * 255
    with pytest.raises((ValueError, KeyError), match=match):
        evaluate(model, x, y, suite, **opts)


def test_resume_reuses_finished_units_and_refuses_a_changed_evaluation(digits_relu, digits, tmp_path):
    x, y = _test_points(digits, 20)
    state = tmp_path / "state.json"
    opts = {"eps": 0.05, "sweeps": False, "progress": False}
    full = evaluate(digits_relu, x, y, "brelu_paper", state_path=str(state), **opts)
    # a finished state: resuming runs nothing and gives the same flags
    again = evaluate(digits_relu, x, y, "brelu_paper", state_path=str(state), resume=True, **opts)
    assert again.robust_flags == full.robust_flags
    assert [a.record for a in again.attacks] == [a.record for a in full.attacks]
    with pytest.raises(ValueError, match="exists: pass resume"):
        evaluate(digits_relu, x, y, "brelu_paper", state_path=str(state), **opts)
    with pytest.raises(ValueError, match="different evaluation"):
        evaluate(digits_relu, x, y, "brelu_paper", state_path=str(state), resume=True, **{**opts, "eps": 0.06})
    assert sum(str_to_flags(full.attack("pgd20").flags)) == round(20 * full.attack("pgd20").accuracy)


def test_model_fingerprint_covers_every_tensor_including_scalars():
    from robact_bench.evaluation.state import model_fingerprint

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))  # num_batches_tracked is a 0-d int64
    a = model_fingerprint(m)
    assert a == model_fingerprint(m) and len(a) == 64
    m[1].num_batches_tracked += 1
    b = model_fingerprint(m)
    assert b != a
    with torch.no_grad():
        m[0].weight[0, 0] += 1e-6
    assert model_fingerprint(m) not in (a, b)


def test_art_suite_runs_through_the_art_adapter(digits_relu, digits_brelu, digits):
    x, y = _test_points(digits, 20)
    r = evaluate(digits_relu, x, y, "art", eps=0.1, progress=False)
    assert [a.name for a in r.attacks] == ["art-pgd20", "art-square"]
    for a in r.attacks:
        assert a.record["backend"] == "adversarial-robustness-toolbox" and a.record["backend_version"] == "1.20.1"
        assert r.robust_acc <= a.accuracy <= r.clean_acc
    assert r.attack("art-pgd20").accuracy < r.clean_acc  # eps 0.1 on an undefended MLP
    # a random model: ART attacks the batched EOT model (ART's own EoT is for input transforms only)
    rb = evaluate(digits_brelu, x, y, "art", eps=0.1, eot_iter=3, passes=3, attacks=("art-pgd20",), progress=False)
    assert rb.attack("art-pgd20").record["eot"]["k"] == 3


def test_the_weights_get_no_gradient_during_an_evaluation_and_require_it_again_after(digits_relu, digits):
    """torchattacks' CW calls backward(): with the parameters frozen for the evaluation no weight gradient is made."""
    import copy

    model = copy.deepcopy(digits_relu)
    for p in model.parameters():
        p.grad = None
    x, y = _test_points(digits, 10)
    r = evaluate(model, x, y, "adaptive", eps=0.1, attacks=("cw", "pgd20"), sweeps=False, progress=False)
    assert r.attack("cw").record["attack"] == "CW" and r.robust_acc <= r.clean_acc
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
