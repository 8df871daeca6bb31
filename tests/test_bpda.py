"""BPDA: activation surrogates, the BPDA layer, and bpda_model copies (numbers, not smoke)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import BReLU, DReLU, SReLU, VBReLU, is_stochastic
from robact_bench.attacks.bpda import BPDA, MODES, bpda_model
from robact_bench.models import create_model


def _grad(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    module(x).sum().backward()
    return x.grad


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    F.cross_entropy(model(x), y).backward()
    return x.grad


def test_vbrelu_surrogate_is_its_expected_value():
    x = torch.linspace(-3.0, 3.0, 13)
    sur = VBReLU(alpha=2.0).surrogate()
    assert isinstance(sur, VBReLU) and sur.deterministic and not sur.stochastic and sur.alpha == 2.0
    assert torch.equal(sur(x), x * torch.sigmoid(2.0 * x))
    assert torch.equal(BReLU().surrogate()(x), x * torch.sigmoid(x))


@pytest.mark.parametrize("act", [SReLU(m=1.0), DReLU(3, m_init=1.0)], ids=["srelu", "drelu"])
def test_capped_surrogate_is_relu(act):
    sur = act.surrogate()
    assert type(sur) is nn.ReLU
    x = torch.tensor([[0.5, 2.0, -1.0]])
    assert torch.equal(act(x), torch.tensor([[0.5, 1.0, 0.0]]))  # forward unchanged
    assert torch.equal(sur(x), torch.tensor([[0.5, 2.0, 0.0]]))  # equal below the cap


def test_bpda_value_is_real_and_gradient_is_surrogate():
    real = DReLU(3, m_init=1.0)
    x = torch.tensor([[0.5, 2.0, -1.0]])
    layer = BPDA(real, real.surrogate())
    assert torch.equal(layer(x), torch.tensor([[0.5, 1.0, 0.0]]))
    assert torch.equal(_grad(real, x), torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.equal(_grad(layer, x), torch.tensor([[1.0, 1.0, 0.0]]))
    transfer = BPDA(real, real.surrogate(), mode="transfer")
    assert torch.equal(transfer(x), torch.tensor([[0.5, 2.0, 0.0]]))
    assert torch.equal(_grad(transfer, x), torch.tensor([[1.0, 1.0, 0.0]]))


def test_bpda_of_brelu_samples_like_the_real_unit_with_the_expected_gradient():
    real = VBReLU(alpha=2.0)
    layer = BPDA(real, real.surrogate())
    x = torch.linspace(-2.0, 2.0, 401)
    torch.manual_seed(7)
    y_real = real(x)
    torch.manual_seed(7)
    y_bpda = layer(x)
    assert torch.equal(y_bpda, y_real)
    assert 0 < int((y_real == 0).sum()) < len(x)  # a real random sample, not all kept or all dropped
    xg = x.clone().requires_grad_(True)
    (xg * torch.sigmoid(2.0 * xg)).sum().backward()
    assert torch.allclose(_grad(layer, x), xg.grad, atol=1e-6)
    assert layer.stochastic and not BPDA(real, real.surrogate(), mode="transfer").stochastic


def test_invalid_mode_raises():
    net = create_model("lenet5", act_layer="brelu")
    for bad in ("BPDA", "identity", ""):
        with pytest.raises(ValueError, match="bpda, transfer"):
            bpda_model(net, mode=bad)
        with pytest.raises(ValueError, match="bpda, transfer"):
            BPDA(nn.ReLU(), nn.ReLU(), mode=bad)
    assert MODES == ("bpda", "transfer")


@pytest.mark.parametrize("mode", MODES)
def test_bpda_model_wraps_every_brelu_and_leaves_the_original(mode):
    torch.manual_seed(0)
    net = create_model("lenet5", act_layer="brelu").eval()
    expected = sum(isinstance(m, BReLU) for m in net.modules())
    assert expected == 3  # after conv1, conv2 and fc1
    before = [(name, type(m), id(m)) for name, m in net.named_modules()]
    params = {k: v.clone() for k, v in net.state_dict().items()}

    copy, n = bpda_model(net, mode=mode)
    assert n == expected
    wrappers = [m for m in copy.modules() if isinstance(m, BPDA)]
    assert len(wrappers) == expected and all(w.mode == mode and not w.training for w in wrappers)
    assert all(isinstance(w.real, BReLU) and w.surrogate.deterministic for w in wrappers)
    assert not copy.training
    # the original: same module objects, same types, same weights, still random
    assert [(name, type(m), id(m)) for name, m in net.named_modules()] == before
    assert all(torch.equal(v, params[k]) for k, v in net.state_dict().items())
    assert is_stochastic(net)

    x = torch.rand(8, 1, 28, 28)
    assert not torch.equal(net(x), net(x))
    if mode == "transfer":  # the attacked model is the deterministic surrogate
        assert torch.equal(copy(x), copy(x))
        assert not is_stochastic(copy)
    else:  # value of the real model: as random, and equal to it under the same seed
        assert not torch.equal(copy(x), copy(x))
        assert is_stochastic(copy)
        torch.manual_seed(3)
        y_real = net(x)
        torch.manual_seed(3)
        assert torch.equal(copy(x), y_real)


def test_bpda_model_shared_module_is_wrapped_once():
    act = SReLU(m=1.0)
    net = nn.Sequential(nn.Linear(4, 4), act, nn.Linear(4, 4), act, nn.ReLU())
    copy, n = bpda_model(net)
    assert n == 1
    assert isinstance(copy[1], BPDA) and copy[1] is copy[3]
    assert type(copy[4]) is nn.ReLU and net[1] is act


def test_bpda_model_without_surrogates_returns_count_zero():
    torch.manual_seed(0)
    net = create_model("lenet5", act_layer="relu").eval()
    copy, n = bpda_model(net)
    assert n == 0 and copy is not net
    assert not any(isinstance(m, BPDA) for m in copy.modules())
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(copy(x), net(x))


def test_bpda_restores_gradients_that_saturated_caps_zero():
    """D-ReLU with caps at 0.01: most units sit above the cap, so the real input gradient is
    mostly exact zeros (measured 65% at seed 0); BPDA's is not (measured 0.23%)."""
    torch.manual_seed(0)
    net = create_model("lenet5", act_layer="drelu", act_kwargs={"m_init": 0.01}).eval()
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    net(x)  # materialize the lazy caps
    copy, n = bpda_model(net)
    assert n == 3
    assert torch.equal(copy(x), net(x))  # forward value unchanged
    zeros_real = float((_input_grad(net, x, y) == 0).float().mean())
    zeros_bpda = float((_input_grad(copy, x, y) == 0).float().mean())
    assert zeros_real > 0.55
    assert zeros_bpda < 0.01
    assert zeros_real - zeros_bpda > 0.5
