"""The symmetric-activation paper's evaluation samples and error rates: exact checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import is_stochastic
from robact_bench.attacks.saf import noisy_samples, nonsense_seed, saf_direction, saf_fgs
from robact_bench.evaluation.saf import (
    SAF_GRIDS,
    is_rejected,
    saf_confidences,
    saf_error_rates,
    saf_grid_for,
    saf_psnr,
)
from robact_bench.models.heads import RBFOutput
from robact_bench.training.losses import hybrid_loss

# Tables 2 and 4 of the paper, strength and PSNR rows ("clean" is beta = 0, PSNR "-").
PAPER_MNIST_BETAS = (0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)
PAPER_MNIST_PSNR = (40.00, 33.98, 30.46, 27.96, 26.02, 20.00, 16.48, 13.98, 12.04, 10.46, 7.96, 6.02)
PAPER_CIFAR_BETAS = (0, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.045, 0.050, 0.075, 0.100, 0.150)
PAPER_CIFAR_PSNR = (40.00, 36.48, 33.98, 32.04, 30.46, 29.12, 27.96, 26.94, 26.02, 22.50, 20.00, 16.48)


def linear_model(rbf: bool, classes: int = 4, shape: tuple[int, ...] = (1, 3, 3), seed: int = 0) -> nn.Module:
    """``Flatten -> Linear`` in float64 (``-> RBFOutput`` when ``rbf``)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(math.prod(shape), classes)]
    if rbf:
        layers.append(RBFOutput())
    return nn.Sequential(*layers).double().eval()


def images(n: int, shape: tuple[int, ...] = (1, 3, 3), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class Lookup(nn.Module):
    """Returns row ``round(255 * x[:, 0, 0, 0])`` of a fixed table (hand-made outputs)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]


class Alternating(nn.Module):
    """Declared random; forward call 0, 2, 4, ... predicts class 0, calls 1, 3, ... class 1."""

    stochastic = True

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row = torch.tensor([0.8, 0.1, 0.1]) if self.calls % 2 == 0 else torch.tensor([0.1, 0.8, 0.1])
        self.calls += 1
        return row.log().expand(len(x), 3)


# ---------------------------------------------------------------- grids


def test_grids_and_psnr_rows_are_the_papers():
    assert SAF_GRIDS["mnist"] == PAPER_MNIST_BETAS
    assert SAF_GRIDS["cifar10"] == PAPER_CIFAR_BETAS
    for grid, psnr in ((SAF_GRIDS["mnist"], PAPER_MNIST_PSNR), (SAF_GRIDS["cifar10"], PAPER_CIFAR_PSNR)):
        assert saf_psnr(grid[0]) is None
        assert [round(saf_psnr(b), 2) for b in grid[1:]] == list(psnr)


@pytest.mark.parametrize(
    ("name", "grid"),
    [("mnist", "mnist"), ("mnist5k", "mnist"), ("MNIST", "mnist"), ("digits", "mnist"), ("cifar10", "cifar10"),
     ("cifar10_sample", "cifar10"), ("cifar100", "cifar10")],
)  # fmt: skip
def test_grid_for_dataset(name, grid):
    assert saf_grid_for(name) == SAF_GRIDS[grid]


def test_grid_for_unknown_dataset_lists_the_datasets_with_a_grid():
    with pytest.raises(ValueError, match=r"imagenet.*not a registered dataset \(with a grid: cifar10, cifar100, "
                                         r"cifar10_sample, digits, mnist, mnist5k\); give saf_betas"):
        saf_grid_for("imagenet")


# ---------------------------------------------------------------- the FGS step (eq. 10)


def closed_form_gradients(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``grad_x L_h(x, l)`` for every class ``l`` of a softmax linear model, a = (1, 1, 0), p = 2.

    ``L = CE(z, l) + (1 - q_l)^2`` with ``q = softmax(z)``, ``z = W x + b``:
    ``dL/dz = (q - e_l) - 2 (1 - q_l) q_l (e_l - q)`` and ``grad_x L = W^T dL/dz``.
    Returns ``(classes, N, D)``.
    """
    w, b = model[1].weight, model[1].bias
    with torch.no_grad():
        q = F.softmax(x.flatten(1) @ w.T + b, dim=1)
        eye = torch.eye(w.shape[0], dtype=x.dtype)
        out = []
        for cls in range(w.shape[0]):
            e = eye[cls]
            ql = q[:, cls : cls + 1]
            dz = (q - e) - 2 * (1 - ql) * ql * (e - q)
            out.append(dz @ w)
    return torch.stack(out)


def test_the_saf_suite_without_a_dataset_or_grid_is_an_error_not_a_guess():
    from robact_bench import evaluate

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    with pytest.raises(ValueError, match=r"suite saf_paper draws .* give dataset= \(a registered dataset\) or saf_"):
        evaluate(model, x, y, "saf_paper", eps=0.1, progress=False)
    r = evaluate(model, x, y, "saf_paper", eps=0.1, saf_betas=(0.0, 0.1), progress=False)
    assert r.saf["betas"] == [0.0, 0.1] and len(r.saf["adversarial"]["error"]) == 2


def test_l_max_and_direction_match_the_closed_form_on_a_linear_softmax_model():
    model = linear_model(rbf=False)
    x, y = images(40), torch.arange(40) % 4
    grads = closed_form_gradients(model, x)  # (C, N, D)
    norms = grads.abs().sum(2)  # (C, N)
    norms[y, torch.arange(40)] = -math.inf  # the true class is never a target
    want = norms.argmax(0)
    direction, l_max = saf_direction(model, x, y)
    assert torch.equal(l_max, want)
    assert (l_max != y).all()
    expect = -grads[want, torch.arange(40)].sign().view_as(x)
    assert torch.equal(direction, expect)
    # nonsense (y=None): every class may be l_max, including the argmax of the clean output
    _, l_all = saf_direction(model, x, None)
    assert torch.equal(l_all, grads.abs().sum(2).argmax(0))


def test_l_max_matches_a_brute_force_loop_on_an_rbf_model_with_cifar_weights():
    model = linear_model(rbf=True, classes=5, shape=(3, 2, 2), seed=3)
    x, y = images(12, (3, 2, 2), seed=4), torch.arange(12) % 5
    kw = {"a1": 1.0, "a2": 1.0, "a3": 1 / 9, "p": 2.0}
    direction, l_max = saf_direction(model, x, y, **kw)
    for i in range(12):
        best, best_grad = -1.0, None
        for cls in range(5):
            if cls == int(y[i]):
                continue
            xi = x[i : i + 1].clone().requires_grad_(True)
            loss = hybrid_loss(model(xi), torch.tensor([cls]), **kw)
            (g,) = torch.autograd.grad(loss, xi)
            if float(g.abs().sum()) > best:
                best, best_grad, best_cls = float(g.abs().sum()), g, cls
        assert int(l_max[i]) == best_cls
        assert torch.equal(direction[i : i + 1], -best_grad.sign())


def test_candidates_restrict_l_max():
    model = linear_model(rbf=False)
    x, y = images(20), torch.zeros(20, dtype=torch.long)
    _, l_max = saf_direction(model, x, y, candidates=[0, 2])
    assert (l_max == 2).all()  # class 0 is every image's label
    with pytest.raises(ValueError, match="no candidate class"):
        saf_direction(model, x, y, candidates=[0])
    with pytest.raises(ValueError, match="candidates must be classes"):
        saf_direction(model, x, y, candidates=[7])


@pytest.mark.parametrize("rbf", [False, True])
@pytest.mark.parametrize("beta", [0.01, 0.1, 0.5])
def test_fgs_step_stays_in_the_beta_ball_and_in_range(rbf, beta):
    model = linear_model(rbf=rbf)
    x, y = images(30), torch.arange(30) % 4
    x_adv = saf_fgs(model, x, y, beta=beta)
    assert float((x_adv - x).abs().max()) <= beta + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    inside = (x > beta) & (x < 1 - beta)  # no clipping there: the step is exactly beta
    assert torch.allclose((x_adv - x)[inside].abs(), torch.full_like(x[inside], beta), atol=1e-12)
    # same direction as saf_direction, and the step lowers L_h(l_max) (first order, small beta)
    direction, l_max = saf_direction(model, x, y)
    assert torch.equal(x_adv, (x + beta * direction).clamp(0, 1))
    if beta == 0.01:
        before = hybrid_loss(model(x) if rbf else F.log_softmax(model(x), 1), l_max, reduction="none")
        after = hybrid_loss(model(x_adv) if rbf else F.log_softmax(model(x_adv), 1), l_max, reduction="none")
        assert (after < before).all()


def test_beta_zero_returns_the_inputs():
    model = linear_model(rbf=True)
    x, y = images(10), torch.arange(10) % 4
    out = saf_fgs(model, x, y, beta=0.0)
    assert torch.equal(out, x) and out is not x
    assert torch.equal(noisy_samples(x, 0.0), x)


def test_fgs_rejects_bad_inputs():
    model = linear_model(rbf=False)
    x, y = images(4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="beta"):
        saf_fgs(model, x, y, beta=-0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        saf_fgs(model, x * 2, y, beta=0.1)


# ---------------------------------------------------------------- nonsense and noisy samples


def test_nonsense_seed_spans_zero_to_one_and_is_reproducible():
    a = nonsense_seed(50, (1, 28, 28), generator=torch.Generator().manual_seed(0))
    b = nonsense_seed(50, (1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert a.shape == (50, 1, 28, 28) and torch.equal(a, b)
    flat = a.flatten(1)
    assert torch.equal(flat.amin(1), torch.zeros(50)) and torch.equal(flat.amax(1), torch.ones(50))
    # affine image of N(0, 1): mean ~0.5, std ~1 / (range of 784 normals) ~ 0.16
    assert abs(float(flat.mean()) - 0.5) < 0.02
    assert 0.12 < float(flat.std()) < 0.20


@pytest.mark.parametrize("beta", [0.01, 0.05, 0.1])
def test_noisy_samples_have_std_beta(beta):
    x = torch.full((200, 1, 28, 28), 0.5)  # middle grey: no clipping below beta = 0.1 (5 sigma)
    out = noisy_samples(x, beta, generator=torch.Generator().manual_seed(0))
    d = out - x
    # 156,800 draws: the std estimate's relative standard error is ~0.18%; tolerance 1%
    assert abs(float(d.std()) / beta - 1.0) < 0.01
    assert abs(float(d.mean())) < 0.01 * beta
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    again = noisy_samples(x, beta, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_noisy_samples_clip_to_the_image_range():
    out = noisy_samples(torch.ones(10, 1, 4, 4), 0.5, generator=torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0.0 and float(out.max()) == 1.0


# ---------------------------------------------------------------- rejection and error rates


def test_rejection_rule_is_every_confidence_strictly_below_the_threshold():
    conf = torch.tensor([[0.5, 0.1], [0.49, 0.49], [0.0, 0.51], [0.2, 0.2]])
    assert is_rejected(conf, 0.5).tolist() == [False, True, False, True]
    assert is_rejected(conf, 0.0).tolist() == [False, False, False, False]
    assert saf_confidences(torch.log(conf[:1]), rbf=True)[0].tolist() == pytest.approx([0.5, 0.1])
    soft = saf_confidences(torch.tensor([[0.0, 0.0]]), rbf=False)
    assert soft.tolist() == [[0.5, 0.5]]


# (confidences, label): correct+accepted, wrong+accepted, right but rejected, rejected,
# correct with two classes above 0.5, wrong with all three above 0.5
RBF_ROWS = (
    ((0.9, 0.2, 0.1), 0),
    ((0.9, 0.2, 0.1), 1),
    ((0.45, 0.3, 0.2), 0),
    ((0.3, 0.49, 0.1), 1),
    ((0.2, 0.7, 0.6), 1),
    ((0.51, 0.6, 0.55), 2),
)
SOFTMAX_ROWS = (
    ((0.8, 0.1, 0.1), 0),
    ((0.8, 0.1, 0.1), 1),
    ((0.45, 0.35, 0.2), 0),
    ((0.3, 0.4, 0.3), 1),
    ((0.2, 0.6, 0.2), 1),
    ((0.3, 0.6, 0.1), 2),
)


@pytest.mark.parametrize("rbf", [True, False])
def test_error_rates_at_beta_zero_follow_the_definitions_exactly(rbf):
    rows = RBF_ROWS if rbf else SOFTMAX_ROWS
    conf = torch.tensor([r for r, _ in rows], dtype=torch.float64)
    if rbf:  # log y = -z^2, z = sqrt(-log y)
        model = nn.Sequential(Lookup((-conf.log()).sqrt()), RBFOutput())
    else:
        model = Lookup(conf.log())
    x = torch.zeros(6, 1, 2, 2, dtype=torch.float64)
    x[:, 0, 0, 0] = torch.arange(6) / 255
    y = torch.tensor([label for _, label in rows])
    res = saf_error_rates(model, x, y, betas=(0.0,), n_nonsense=0, progress=False)
    assert res["confidence"] == ("rbf" if rbf else "softmax")
    assert res["passes"] == 1 and res["stochastic"] is False
    for kind in ("adversarial", "noisy"):  # beta 0: both are the clean images
        assert res[kind]["error"] == [4 / 6]  # rows 1, 2, 3, 5
        assert res[kind]["rejected"] == [2 / 6]  # rows 2, 3
        assert res[kind]["error_mean"] == [4 / 6]
    assert res["nonsense"]["error"] == [None]


@pytest.mark.parametrize(("conf", "expect_error"), [((0.4, 0.3, 0.2), 0.0), ((0.1, 0.1, 0.9), 1.0)])
def test_nonsense_error_is_not_rejected(conf, expect_error):
    model = nn.Sequential(Lookup((-torch.tensor([conf]).log()).sqrt().expand(256, 3).contiguous()), RBFOutput())
    x, y = torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 2])
    res = saf_error_rates(model, x, y, betas=(0.0,), n_nonsense=20)
    assert res["nonsense"]["error"] == [expect_error]
    if expect_error == 0.0:  # everything rejected: every adversarial/noisy sample is an error
        assert res["adversarial"]["error"] == [1.0] and res["adversarial"]["rejected"] == [1.0]
    else:  # always class 2, never rejected
        assert res["adversarial"]["error"] == [0.5] and res["noisy"]["rejected"] == [0.0]


def test_error_rates_match_saf_fgs_and_are_reproducible_bit_for_bit():
    model = linear_model(rbf=True, classes=4)
    x, y = images(60), torch.arange(60) % 4
    betas = (0.0, 0.05, 0.3)
    res = saf_error_rates(model, x, y, betas=betas, n_nonsense=30, seed=5, batch_size=16)
    assert res == saf_error_rates(model, x, y, betas=betas, n_nonsense=30, seed=5, batch_size=16)
    assert res["betas"] == list(betas) and res["n_examples"] == 60 and res["n_nonsense"] == 30
    assert res["params"]["eot_iter"] is None and res["params"]["seed"] == 5
    for i, b in enumerate(betas):
        with torch.no_grad():
            out = model(saf_fgs(model, x, y, beta=b))
        bad = (out.argmax(1) != y) | (out.exp().amax(1) < 0.5)
        assert res["adversarial"]["error"][i] == int(bad.sum()) / 60
    other = saf_error_rates(model, x, y, betas=betas, n_nonsense=30, seed=6)
    assert other["adversarial"] == res["adversarial"]  # the FGS step has no randomness
    assert other["noisy"] != res["noisy"] or other["nonsense"] != res["nonsense"]


# ---------------------------------------------------------------- random models


def test_random_model_is_scored_on_every_pass_not_one():
    x, y = torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long)
    model = Alternating()
    assert is_stochastic(model)
    res = saf_error_rates(model, x, y, betas=(0.0,), passes=4, n_nonsense=3)
    assert res["passes"] == 4 and res["stochastic"] is True and res["params"]["eot_iter"] == 20
    # passes alternate right (class 0) and wrong (class 1): worst case all wrong, mean one half
    for kind in ("adversarial", "noisy"):
        assert res[kind]["error"] == [1.0] and res[kind]["error_mean"] == [0.5]
        assert res[kind]["rejected"] == [0.0]
    assert res["nonsense"]["error"] == [1.0]  # confidence 0.8 every pass: never rejected
    single = saf_error_rates(Alternating(), x, y, betas=(0.0,), passes=1, n_nonsense=3)
    assert single["passes"] == 1 and single["adversarial"]["error"] == [0.0]  # what one pass hides


def test_brelu_model_with_eot(digits_brelu, digits):
    _, _, xte, yte = digits
    x, y = xte[:60], yte[:60]
    kw = {"betas": (0.0, 0.1), "passes": 5, "eot_iter": 4, "n_nonsense": 40, "seed": 1}
    res = saf_error_rates(digits_brelu, x, y, **kw)
    assert res["passes"] == 5 and res["params"]["eot_iter"] == 4 and res["confidence"] == "softmax"
    for kind in ("adversarial", "noisy", "nonsense"):
        for worst, mean in zip(res[kind]["error"], res[kind]["error_mean"], strict=True):
            assert 0.0 <= mean <= worst <= 1.0
    assert res["adversarial"]["error"][1] >= res["adversarial"]["error"][0] - 0.05
    assert res == saf_error_rates(digits_brelu, x, y, **kw)  # seeded: the random model repeats too
