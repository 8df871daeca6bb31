"""The recording and fixed-draw wrappers, AutoAttack's captured checks and its strongest images."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from robact_bench.attacks.autoattack import autoattack_attack, capture_checks
from robact_bench.attacks.common import perturbation_norm
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.record import FixedDraws, QueryRecorder, incomplete_optimization
from robact_bench.models import ModelSpec


def _linear(n_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, n_classes))


def test_queries_are_matched_to_their_points_in_full_batches_and_subsets():
    torch.manual_seed(1)
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    rec = QueryRecorder(_linear(), x, y, eps=0.05, norm="Linf")
    rec(x)  # the whole chunk, in order
    rec((x[[3, 7, 11]] + 0.04 * torch.sign(torch.randn(3, 1, 4, 4))).clamp(0, 1))  # a subset, perturbed
    rec(torch.rand(5, 1, 4, 4))  # nothing of ours
    s = rec.summary()
    assert s["calls"] == 3 and s["mapped_calls"] == 2 and s["unmapped_rows"] == 5
    assert s["seen"] == list(range(20))
    assert len(rec._trace[1][0]) == 3 and rec._trace[1][0].tolist() == [3, 7, 11]


def test_the_strongest_queried_image_inside_the_threat_model_is_kept():
    x, y = torch.full((2, 1, 4, 4), 0.5), torch.tensor([0, 0])
    model = _linear()
    rec = QueryRecorder(model, x, y, eps=0.1, norm="Linf")
    with torch.no_grad():
        w = model[1].weight[1] - model[1].weight[0]  # the direction that favours class 1 over class 0
    d = 0.1 * torch.sign(w).view(1, 1, 4, 4)
    rec(x + d / 2)
    rec(x + d)  # stronger: lower margin of the true class
    rec(x + 3 * d)  # outside the ball: never a candidate
    best = rec.best_images()
    assert torch.allclose(best, (x + d).expand_as(best))
    assert float(perturbation_norm(x, best, "Linf").max()) <= 0.1 + 1e-6


def test_gradients_are_recorded_through_a_hook_without_touching_the_input():
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    rec = QueryRecorder(_linear(), x, y, eps=0.1, norm="Linf")
    xa = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(rec(xa), y)
    (g,) = torch.autograd.grad(loss, xa)
    assert g.abs().sum() > 0 and xa._backward_hooks is None
    s = rec.summary()
    assert s["gradient_seen"] == [0, 1, 2, 3] and s["no_gradient"] == []

    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    torch.nn.init.zeros_(flat[1].weight)  # the output does not depend on the input: a zero gradient everywhere
    rec = QueryRecorder(flat, x, y, eps=0.1, norm="Linf")
    xa = x.clone().requires_grad_(True)
    torch.autograd.grad(torch.nn.functional.cross_entropy(rec(xa), y), xa)
    assert rec.summary()["no_gradient"] == [0, 1, 2, 3]


def test_incomplete_optimization_on_loss_traces():
    rising = [i / 60 for i in range(60)]
    assert incomplete_optimization(rising)  # still climbing over its last 10 queries
    converged = [min(i, 20) / 20 for i in range(60)]
    assert not incomplete_optimization(converged)
    assert not incomplete_optimization([1.0] * 60)  # a constant trace never counts
    noisy_but_flat = [1.0 - 0.5 ** i for i in range(60)]
    assert not incomplete_optimization(noisy_but_flat)


def test_fixed_draws_make_a_random_model_deterministic_and_leave_the_global_state_alone():
    model = ModelSpec("mlp2", "brelu", arch_kwargs={"img_size": 4, "hidden": [32, 32]}).build().eval()
    x = torch.rand(8, 1, 4, 4)
    assert not torch.equal(model(x), model(x))
    fixed = FixedDraws(model, seed=3)
    state = torch.get_rng_state()
    a, b = fixed(x), fixed(x)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(a, FixedDraws(model, seed=4)(x))


def test_autoattack_checks_are_captured_whatever_the_logging_level():
    logger = logging.getLogger("auto-attack")
    old = logger.level
    logger.setLevel(logging.ERROR)  # as the CLI sets it without -vv
    try:
        with pytest.warns(UserWarning, match="unrelated"), capture_checks() as cap:
            logger.warning("there are 3 points with zero gradient! See flags_doc.md for details.")
            print("Warning: it seems to be a dynamic defense! See flags_doc.md for details.")  # fra31 prints
            warnings.warn("it seems that the output is a probability distribution. See flags_doc.md", stacklevel=1)
            warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
    finally:
        logger.setLevel(old)
    assert cap.messages == [
        "there are 3 points with zero gradient! See flags_doc.md for details.",
        "it seems to be a dynamic defense! See flags_doc.md for details.",
        "it seems that the output is a probability distribution. See flags_doc.md",
    ]
    assert logger.level == logging.ERROR or old != logging.ERROR


def test_on_a_random_model_every_component_hands_back_its_strongest_image_never_the_clean_one():
    torch.manual_seed(0)
    model = ModelSpec("mlp2", "brelu", arch_kwargs={"img_size": 4, "hidden": [32, 32]}).build().eval()
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 10, (12,))
    outs = autoattack_attack(EOTModel(model, 2), x, y, eps=0.1, version="rand", seed=0, strongest=True,
                             attacks=["apgd-ce", "apgd-dlr", "apgd-t", "square"],
                             params={"n_iter": 5, "n_queries": 20, "n_target_classes": 2, "eot_iter": 1})  # fmt: skip
    for out in outs:
        for im in (out.x_adv, *out.candidates):
            assert float(perturbation_norm(x, im, "Linf").max()) <= 0.1 + 1e-6 and 0 <= float(im.min())
            assert bool((im - x).flatten(1).abs().amax(1).gt(0).all()), out.name  # no row is the clean image
        assert out.record["points_attacked"] == 12 and out.library_robust.shape == (12,)
    assert len(outs[2].candidates) == 1  # APGD-T: one image per target class (2), the first is x_adv


def _unique_within(rows: torch.Tensor, clean: torch.Tensor, radius: float, norm: str) -> list[int]:
    """The reference rule, by brute force: the only clean image within ``radius`` of a row, else -1."""
    out = []
    for r in rows.flatten(1):
        diff = r.unsqueeze(0) - clean.flatten(1)
        dist = diff.abs().amax(1) if norm == "Linf" else diff.norm(dim=1)
        near = torch.nonzero(dist <= radius).flatten().tolist()
        out.append(near[0] if len(near) == 1 else -1)
    return out


@pytest.mark.parametrize("norm, eps", [("Linf", 0.1), ("L2", 0.5)])
def test_subset_queries_map_exactly_as_the_brute_force_rule_with_close_and_duplicate_points(norm, eps):
    torch.manual_seed(3)
    x = torch.rand(40, 1, 6, 6)
    x[5] = x[4]  # a duplicate: no query near it belongs to a single point
    x[7] = (x[6] + 1.5 * eps / 36**0.5 * torch.sign(torch.randn(1, 6, 6))).clamp(0, 1)  # closer than 2 eps
    y = torch.randint(0, 3, (40,))
    rec = QueryRecorder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3)), x, y, eps=eps, norm=norm)
    assert not bool(rec._isolated[4]) and not bool(rec._isolated[5]) and int(rec._isolated.sum()) <= 38
    idx = torch.tensor([0, 3, 4, 5, 6, 7, 7, 12, 39, 6])
    delta = torch.randn(len(idx), 1, 6, 6)
    size = delta.abs().amax((1, 2, 3)) if norm == "Linf" else delta.flatten(1).norm(dim=1)
    scale = eps / size.view(-1, 1, 1, 1)
    q = x[idx] + torch.tensor([0.5, 0.99, 0.3, 0.2, 0.9, 0.9, 0.1, 1.5, 3.0, 0.0]).view(-1, 1, 1, 1) * scale * delta
    q = torch.cat([q, torch.rand(3, 1, 6, 6)])  # nothing of ours
    want = _unique_within(q, x, eps + 1e-5, norm)
    assert rec._map(q).tolist() == want
    assert want[:3] == [0, 3, -1] and want[3] == -1 and want[8] == -1 and want[-3:] == [-1, -1, -1]
