import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robact_bench import drelu_penalty, get_activation, is_stochastic, list_activations, swap_activations
from robact_bench.activations import BReLU, DReLU, MReLU, VBReLU, activation_name

# Arguments that make every parameter of the activation receive a gradient on N(0, 3^2) input.
TEST_KWARGS = {"drelu": {"num_features": 8, "m_init": 0.5}, "srelu": {"m": 0.5}}

EXPECTED = {
    "relu",
    "lrelu",
    "prelu",
    "gelu",
    "silu",
    "elu",
    "relu_dropout",
    "brelu",
    "vbrelu",
    "srelu",
    "drelu",
    "mrelu",
    "rbf",
}


def test_registry_has_every_seed_activation():
    assert set(list_activations()) == EXPECTED
    assert list_activations("*brelu") == ["brelu", "vbrelu"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_backward_no_nan_all_params_get_grad(name):
    torch.manual_seed(0)
    act = get_activation(name, **TEST_KWARGS.get(name, {}))
    act.train()
    x = (3 * torch.randn(16, 8)).requires_grad_()
    y = act(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    for pname, p in act.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} got a zero gradient"


def test_unknown_name_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean 'brelu'"):
        get_activation("brelux")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("vbrelu", {"alpha": 0.0}, r"alpha must be a finite number > 0"),
        ("vbrelu", {"alpha": -1}, r"alpha must be a finite number > 0"),
        ("vbrelu", {"alpha": float("nan")}, r"alpha must be a finite number > 0"),
        ("srelu", {"m": 0}, r"m must be a finite number > 0"),
        ("drelu", {"m_init": -5}, r"m_init must be a finite number > 0"),
        ("relu_dropout", {"p": 1.0}, r"p must be in \[0, 1\)"),
        ("relu_dropout", {"p": -0.1}, r"p must be in \[0, 1\)"),
        ("brelu", {"grad": "magic"}, r"grad must be one of straight_through, expected, relaxed"),
        ("brelu", {"temperature": 0}, r"temperature must be a finite number > 0"),
    ],
)
def test_bad_arguments_raise_value_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_activation(name, **kwargs)


def test_unknown_keyword_is_a_type_error_listing_the_accepted_ones():
    with pytest.raises(TypeError, match=r"activation 'brelu' does not take alpha; it takes: deterministic"):
        get_activation("brelu", alpha=2.0)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 5.0])
def test_brelu_monte_carlo_mean_matches_expected_value(alpha):
    """Mean of N samples within 5 standard errors of x * sigmoid(alpha x), at every point."""
    torch.manual_seed(1)
    n = 20000
    xs = torch.linspace(-4, 4, 17)
    act = VBReLU(alpha).eval()
    samples = act(xs.expand(n, -1))
    p = torch.sigmoid(alpha * xs)
    expected = xs * p
    stderr = (xs.square() * p * (1 - p) / n).sqrt()
    assert ((samples.mean(0) - expected).abs() <= 5 * stderr + 1e-7).all()
    # the deterministic ablation is exactly the expected value
    assert torch.allclose(VBReLU(alpha, deterministic=True)(xs), expected)


def test_brelu_outputs_are_x_or_zero_and_stay_random_in_eval():
    act = BReLU().eval()
    x = torch.full((4096,), 0.3)
    y1, y2 = act(x), act(x)
    assert torch.equal(torch.unique(y1), torch.tensor([0.0, 0.3]))
    assert not torch.equal(y1, y2)  # random at evaluation time too
    assert act.stochastic and not BReLU(deterministic=True).stochastic
    keep_rate = float((y1 != 0).float().mean())
    assert keep_rate == pytest.approx(float(torch.sigmoid(torch.tensor(0.3))), abs=0.03)


def test_seeded_brelu_repeats_exactly():
    x = torch.randn(64, 32)
    torch.manual_seed(123)
    a = BReLU()(x)
    torch.manual_seed(123)
    b = BReLU()(x)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(BReLU(generator=g1)(x), BReLU(generator=g2)(x))


def test_the_16_bit_draw_keeps_a_unit_with_probability_within_2_to_the_minus_17_of_sigmoid():
    """All 65,536 words, exactly: u < p holds for ceil(2^16 p - 1/2) of them, within 2^-17 of p."""
    from robact_bench.activations.stochastic import uniform_from_words

    words = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    u = uniform_from_words(words)
    assert u.dtype == torch.float32 and len(torch.unique(u)) == 2**16
    assert float(u.min()) == 0.5 / 2**16 and float(u.max()) == 1 - 0.5 / 2**16
    assert torch.equal(uniform_from_words(words, torch.float64), u.double())  # the grid is exact in fp32
    p = torch.sigmoid(torch.linspace(-12, 12, 4001))  # keep probabilities, fp32 as the unit computes them
    kept = (u[:, None] < p[None, :]).sum(0)  # words that keep the unit, for each p
    expected = torch.ceil(p.double() * 2**16 - 0.5).clamp(0, 2**16).long()
    assert torch.equal(kept, expected)
    assert float((kept.double() / 2**16 - p.double()).abs().max()) <= 2**-17


def test_the_16_bit_draws_are_uniform_words_and_independent_of_position():
    """2^22 draws: every bit is 1 with frequency 1/2 (5 sigma), and the 65,536 words are chi-square uniform."""
    from robact_bench.activations.stochastic import uniform16

    g = torch.Generator().manual_seed(11)
    n = 2**22
    u = uniform16((n,), generator=g)
    j = (u * 2**16 - 0.5).round().long()
    assert torch.equal(j.double(), u.double() * 2**16 - 0.5)  # on the grid
    bits = (j[:, None] >> torch.arange(16)) & 1
    for pos in range(4):  # each of the four int16 words a 64-bit generator word is cut into
        freq = bits[pos::4].double().mean(0)
        assert float((freq - 0.5).abs().max()) <= 5 * math.sqrt(0.25 / (n / 4)), (pos, freq)
    counts = torch.bincount(j, minlength=2**16).double()
    e = n / 2**16
    chi2 = float(((counts - e) ** 2 / e).sum())
    dof = 2**16 - 1
    assert abs(chi2 - dof) <= 5 * math.sqrt(2 * dof)  # chi-square with 65,535 dof, 5 sigma
    assert uniform16((3, 5), generator=g).shape == (3, 5) and uniform16((0,)).numel() == 0


def test_brelu_keep_rate_matches_sigmoid_within_the_stated_tolerance():
    """P(keep) = sigmoid(x) within 2^-17 (the draw) plus 5 binomial standard errors, per x."""
    torch.manual_seed(3)
    n = 200_000
    xs = torch.tensor([-6.0, -2.0, -0.5, 0.25, 1.0, 3.0, 8.0])  # not 0: BReLU(0) is 0 either way
    kept = (BReLU()(xs.expand(n, -1)) != 0).double().mean(0)
    p = torch.sigmoid(xs).double()
    assert ((kept - p).abs() <= 2**-17 + 5 * (p * (1 - p) / n).sqrt() + 1e-12).all(), (kept, p)
    # an input of another precision (bf16 under autocast) draws on the same float32 grid
    y = BReLU()(torch.full((50_000,), 1.0, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert abs(float((y != 0).float().mean()) - float(torch.sigmoid(torch.tensor(1.0)))) <= 5 * math.sqrt(
        0.25 / 50_000
    )


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_gradient_modes_share_the_forward_and_differ_in_backward(alpha):
    x0 = torch.linspace(-2, 2, 41)
    outs, grads = {}, {}
    for mode in ("straight_through", "expected", "relaxed"):
        x = x0.clone().requires_grad_()
        torch.manual_seed(5)
        y = VBReLU(alpha, grad=mode, temperature=0.5)(x)
        y.sum().backward()
        outs[mode], grads[mode] = y.detach(), x.grad
    assert torch.equal(outs["straight_through"], outs["expected"])
    assert torch.equal(outs["straight_through"], outs["relaxed"])
    keep = (outs["straight_through"] != 0).float()
    assert torch.equal(grads["straight_through"], keep)  # b held constant: dy/dx = b
    s = torch.sigmoid(alpha * x0)
    assert torch.allclose(grads["expected"], s + alpha * x0 * s * (1 - s), atol=1e-6)
    assert torch.isfinite(grads["relaxed"]).all()
    assert not torch.equal(grads["relaxed"], grads["straight_through"])


def test_drelu_forward_is_clamp_and_cap_gets_gradient():
    act = DReLU(3, m_init=1.5)
    x = torch.tensor([[-1.0, 0.5, 4.0], [2.0, 1.0, -3.0]], requires_grad=True)
    y = act(x)
    assert torch.equal(y, x.detach().clamp(0, 1.5))
    assert act.at_cap(x).tolist() == [[False, False, True], [True, False, False]]
    assert act.saturation(x) == pytest.approx(2 / 6)
    y.sum().backward()
    # d/dm of sum(min(relu(x), m)) = number of entries above the cap, per neuron
    assert act.m.grad.tolist() == [1.0, 0.0, 1.0]
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]


def test_drelu_per_channel_on_conv_input_and_lazy_size():
    act = DReLU(m_init=2.0)
    x = torch.randn(2, 5, 4, 4) * 4
    y = act(x)
    assert act.m.shape == (5,)
    assert torch.equal(y, x.clamp(0, 2.0))
    with torch.no_grad():
        act.m.copy_(torch.arange(1.0, 6.0))
    y = act(x)
    for c in range(5):
        assert torch.equal(y[:, c], x[:, c].clamp(0, c + 1.0))


def test_drelu_penalty_is_sum_of_squared_caps():
    model = nn.Sequential(nn.Linear(4, 3), DReLU(3, m_init=2.0), nn.Linear(3, 2), DReLU(2, m_init=5.0))
    pen = drelu_penalty(model)
    assert pen.item() == pytest.approx(3 * 4.0 + 2 * 25.0)
    pen.backward()
    assert model[1].m.grad.tolist() == [4.0, 4.0, 4.0]  # d(m^2)/dm = 2m
    assert drelu_penalty(nn.Linear(2, 2)).item() == 0.0


def test_mrelu_and_rbf_match_their_formulas():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5])
    assert MReLU()(x).tolist() == [0.0, 0.0, 0.5, 1.0, 0.75, 0.0, 0.0]
    rbf = get_activation("rbf")(x)
    assert torch.allclose(rbf, torch.tensor([math.exp(-v * v) for v in x.tolist()]))
    assert rbf[3].item() == 1.0
    # mReLU's derivative (paper eq. 3): +1 on (-1, 0), -1 on (0, 1), 0 outside
    xg = torch.tensor([-1.5, -0.5, 0.5, 1.5], requires_grad=True)
    MReLU()(xg).sum().backward()
    assert xg.grad.tolist() == [0.0, 1.0, -1.0, 0.0]


def test_relu_dropout_random_in_train_only():
    act = get_activation("relu_dropout", p=0.5)
    x = torch.ones(10000)
    act.train()
    kept = float((act(x) != 0).float().mean())
    assert kept == pytest.approx(0.5, abs=0.03)
    act.eval()
    assert torch.equal(act(x), x)
    assert not is_stochastic(nn.Sequential(act))


class _Block(nn.Module):
    """torchvision-style block that reuses one ReLU module twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.relu(x)))


def _mixed_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1),
        nn.ReLU(),
        nn.LeakyReLU(0.1),
        nn.PReLU(),
        nn.Sequential(nn.GELU(), nn.SiLU(), nn.ELU()),
        _Block(),
        MReLU(),
        nn.Flatten(),
        nn.Linear(3 * 8 * 8, 4),
        nn.Softmax(dim=1),
    )


def test_swap_activations_counts_and_replaces_every_activation():
    model = _mixed_model().double()
    n = swap_activations(model, "brelu")
    # ReLU, LeakyReLU, PReLU, GELU, SiLU, ELU, the block's shared ReLU (once), mReLU
    assert n == 8
    types = [type(m) for m in model.modules()]
    for t in (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.ELU, MReLU):
        assert t not in types
    assert types.count(BReLU) == 8
    assert isinstance(model[-1], nn.Softmax)  # not an activation we replace
    assert is_stochastic(model)
    y = model(torch.rand(2, 3, 8, 8, dtype=torch.float64))
    assert y.dtype == torch.float64 and torch.isfinite(y).all()


def test_swap_to_lazy_drelu_then_forward_sizes_the_caps():
    model = _mixed_model()
    assert swap_activations(model, "drelu", m_init=3.0) == 8
    model(torch.rand(2, 3, 8, 8))
    sizes = [m.m.numel() for m in model.modules() if isinstance(m, DReLU)]
    assert sizes == [3] * 8
    assert drelu_penalty(model).item() == pytest.approx(8 * 3 * 9.0)


def test_swap_validates_before_touching_the_model():
    model = _mixed_model()
    with pytest.raises(ValueError):
        swap_activations(model, "vbrelu", alpha=-1)
    assert isinstance(model[1], nn.ReLU)


def test_functional_activations_are_not_counted():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return F.relu(self.fc(x))

    assert swap_activations(Functional(), "brelu") == 0


def test_activation_name_reverse_lookup():
    assert activation_name(nn.ReLU()) == "relu"
    assert activation_name(BReLU()) == "brelu"
    assert activation_name(VBReLU(2.0)) == "vbrelu"
    assert activation_name(nn.Tanh()) is None


def test_swap_replaces_a_module_reused_twice_in_one_parent():
    from robact_bench.activations import SReLU

    act = nn.ReLU()
    net = nn.Sequential(nn.Linear(2, 2), act, nn.Linear(2, 2), act)
    assert swap_activations(net, "srelu", m=1.0) == 1  # one module object, counted once
    assert isinstance(net[1], SReLU) and net[3] is net[1]  # both places, still one object
