"""Gradient-masking checks on models known to mask gradients, and on one known not to."""

from __future__ import annotations

import pytest
import torch

from robact_bench import evaluate
from robact_bench.evaluation.masking import CHECKS, margin, masking_checks, masking_verdict
from robact_bench.evaluation.result import EvalResult
from robact_bench.leaderboard.export import to_robustbench
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

MLP = {"img_size": 8, "hidden": [64, 64]}


def _train(digits, act: str, recipe: str = "standard", **act_kwargs) -> torch.nn.Module:
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    model = ModelSpec("mlp2", act, act_kwargs=act_kwargs, arch_kwargs=MLP).build()
    extra = {"eps": 0.1, "step_size": 0.025, "steps": 7} if recipe == "pgd_at" else {}
    train_model(model, xtr, ytr, TrainConfig(recipe=recipe, epochs=15, lr=3e-3, **extra), progress=False)
    return model.eval()


def _checks(result: EvalResult) -> dict[str, dict]:
    return {c["name"]: c for c in result.masking}


def test_margin():
    assert margin(50) == pytest.approx(0.02)
    assert margin(100) == pytest.approx(0.01)
    assert margin(1000) == pytest.approx(0.01)


def test_every_check_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "gradient-masking.md").read_text()
    for name in CHECKS.list():
        chk = CHECKS.get(name)
        anchor = chk.doc.split("#")[1]
        assert f"\n## {anchor}\n" in doc, name
        assert chk.reason and "\n" not in chk.reason


@pytest.fixture(scope="module")
def capped_result(digits) -> EvalResult:
    """An S-ReLU MLP with cap 0.05: 82% clean, but 2 in 5 points have an all-zero input gradient."""
    _, _, xte, yte = digits
    model = _train(digits, "srelu", m=0.05)
    return evaluate(model, xte, yte, "adaptive", eps=0.1, n_examples=100, progress=False)


def test_capped_activation_is_flagged(capped_result):
    r = capped_result
    c = _checks(r)
    assert r.clean_acc > 0.8
    # the check the model was built to fail: saturated caps zero the gradient
    assert c["zero_input_gradients"]["passed"] is False
    assert c["zero_input_gradients"]["value"] > 0.3
    # and what follows from it: attacks that cannot move, the surrogate (caps removed) that can
    assert c["large_eps_not_zero"]["passed"] is False and c["large_eps_not_zero"]["value"] > 0.05
    assert c["adaptive_below_nonadaptive"]["passed"] is False
    assert r.attack("apgd-ce-transfer").accuracy < r.attack("apgd-ce").accuracy - 0.3
    assert masking_verdict(r.masking)["unreliable"] is True


def test_flagged_entry_is_unreliable_with_footnote_and_external(capped_result):
    r = capped_result
    e = to_robustbench(r)
    assert e["unreliable"] is True
    failed = masking_verdict(r.masking)["failed"]
    assert all(name in e["footnote"] for name in failed)
    assert "Signs of gradient masking" in e["footnote"]
    assert r.robust_acc < r.autoattack_acc
    assert e["external"] == f"{100 * r.robust_acc:.2f}"
    assert float(e["external"]) < float(e["autoattack_acc"])


def test_checks_recompute_from_the_result_file(capped_result):
    again = EvalResult.from_dict(capped_result.to_dict())
    assert masking_checks(again) == list(capped_result.masking)


def test_random_model_where_eot_matters_is_flagged(digits, digits_brelu):
    """A naturally trained BReLU MLP: PGD-20 without EOT overstates its accuracy."""
    _, _, xte, yte = digits
    r = evaluate(digits_brelu, xte, yte, "adaptive", eps=0.1, n_examples=100, eot_iter=10, passes=5,
                 attacks=["pgd20", "pgd20-noeot", "fgsm"], sweeps=False, progress=False)  # fmt: skip
    c = _checks(r)["adaptive_below_nonadaptive"]
    assert r.stochastic
    assert c["passed"] is False
    gap = r.attack("pgd20-noeot").accuracy - r.attack("pgd20").accuracy
    assert gap > margin(100)
    assert c["value"] == pytest.approx(gap)
    assert "EOT: pgd20" in c["detail"]


def test_pgd_at_relu_is_not_flagged(digits):
    _, _, xte, yte = digits
    model = _train(digits, "relu", "pgd_at")
    r = evaluate(model, xte, yte, "adaptive", eps=0.1, n_examples=100, progress=False)
    verdict = masking_verdict(r.masking)
    assert verdict["failed"] == [], [c["detail"] for c in r.masking if c["passed"] is False]
    assert verdict["unreliable"] is False
    # every check was judged except the BPDA pair (a ReLU model has no surrogate)
    assert verdict["not_judged"] == ["adaptive_below_nonadaptive"]
    assert 0.6 < r.robust_acc < r.clean_acc
    assert to_robustbench(r)["unreliable"] is False


class _NoisyLogits(torch.nn.Module):
    """Declares nothing, but adds noise to the logits: measured random."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out + 0.5 * torch.randn_like(out)


def test_undeclared_randomness_goes_to_the_randomized_track_with_a_mismatch(digits, digits_relu):
    _, _, xte, yte = digits
    r = evaluate(_NoisyLogits(digits_relu), xte, yte, "adaptive", eps=0.1, n_examples=20, eot_iter=4, passes=3,
                 attacks=["pgd20", "pgd20-noeot"], sweeps=False, progress=False)  # fmt: skip
    e = to_robustbench(r)
    assert e["robact"]["track"] == "randomized"
    assert (e["robact"]["declared_random"], e["robact"]["measured_random"], e["robact"]["mismatch"]) == (
        False,
        True,
        True,
    )
    assert e["number_forward_passes"] == 3
    assert "Track mismatch: declared deterministic, measured random" in e["footnote"]
