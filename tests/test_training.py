import pytest
import torch
import torch.nn.functional as F

from robact_bench import ModelSpec
from robact_bench.activations.capped import drelu_modules
from robact_bench.attacks.pgd import pgd_linf
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import build_optimizer, train_model
from robact_bench.training.losses import drelu_penalty_term, natural_loss, pgd_at_loss

SPEC = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [32, 32]})


def _acc(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_natural_training_learns_digits(digits, digits_relu):
    _, _, xte, yte = digits
    assert _acc(digits_relu, xte, yte) > 0.90


def test_same_seed_gives_identical_weights(digits):
    xtr, ytr, _, _ = digits
    cfg = TrainConfig("pgd_at", epochs=1, eps=0.1, step_size=0.03, steps=2)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SPEC.build()
        hist = train_model(model, xtr[:256], ytr[:256], cfg, progress=False)
        states.append((model.state_dict(), hist[-1]["loss"]))
    assert states[0][1] == states[1][1]
    for k in states[0][0]:
        assert torch.equal(states[0][0][k], states[1][0][k]), k


def test_history_rows_and_lr_schedule(digits):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    hist = train_model(SPEC.build(), xtr, ytr, TrainConfig(epochs=3, lr=1e-2), progress=False)
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["lr"] < 1e-4  # OneCycle anneals to ~0 at the end


def test_pgd_linf_stays_in_the_ball_and_in_range(digits_relu, digits):
    _, _, xte, yte = digits
    x_adv = pgd_linf(digits_relu, xte, yte, eps=0.1, step_size=0.03, steps=5)
    assert float((x_adv - xte).abs().max()) <= 0.1 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert _acc(digits_relu, x_adv, yte) < _acc(digits_relu, xte, yte)


def test_pgd_at_loss_mixing_weight_of_eq1(digits_relu, digits):
    xtr, ytr, _, _ = digits
    x, y = xtr[:64], ytr[:64]
    digits_relu.train()
    try:
        clean = natural_loss(digits_relu, x, y)
        only_clean = pgd_at_loss(digits_relu, x, y, eps=0.1, step_size=0.03, steps=3, clean_weight=1.0)
        assert torch.allclose(only_clean, clean)
        torch.manual_seed(1)
        adv = pgd_at_loss(digits_relu, x, y, eps=0.1, step_size=0.03, steps=3, clean_weight=0.0)
        torch.manual_seed(1)
        half = pgd_at_loss(digits_relu, x, y, eps=0.1, step_size=0.03, steps=3, clean_weight=0.5)
        assert torch.allclose(half, 0.5 * adv + 0.5 * clean, atol=1e-6)
        assert adv > clean
        assert digits_relu.training  # mode restored after crafting in eval()
    finally:
        digits_relu.eval()
    with pytest.raises(ValueError, match="clean_weight must be in"):
        pgd_at_loss(digits_relu, x, y, eps=0.1, step_size=0.03, steps=1, clean_weight=2)


def test_drelu_caps_are_pulled_down_and_skip_weight_decay(digits):
    xtr, ytr, _, _ = digits
    spec = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [32, 32]}, drelu_head=16)
    torch.manual_seed(0)
    model = spec.build()
    cfg = TrainConfig("drelu", epochs=2, optimizer="adam", drelu_lambda=0.01, drelu_lr=0.5, weight_decay=0.1)
    opt = build_optimizer(model, cfg)
    cap_group = [g for g in opt.param_groups if any(p is drelu_modules(model)[0].m for p in g["params"])]
    assert cap_group[0]["lr"] == 0.5 and cap_group[0]["weight_decay"] == 0.0
    hist = train_model(model, xtr, ytr, cfg, progress=False)
    assert hist[0]["m_max"] < 100.0 and hist[-1]["m_max"] < hist[0]["m_max"]
    assert hist[-1]["penalty"] > 0
    assert drelu_penalty_term(model, 0.0).item() == 0.0
    caps = drelu_modules(model)[0].m.detach()
    assert drelu_penalty_term(model, 2.0).item() == pytest.approx(2 * float((caps**2).sum()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"recipe": "trades2"}, "unknown recipe 'trades2'"),
        ({"eps": 8}, r"eps must be in \[0, 1\].*8/255"),
        ({"eps": -0.1}, r"eps must be in \[0, 1\]; got -0.1"),
        ({"step_size": 2}, r"step_size must be in \[0, 1\].*2/255"),
        ({"steps": -1}, "steps must be an integer >= 0"),
        ({"drelu_lambda": -1e-3}, r"drelu_lambda must be in \[0, inf\); got -0.001"),
        ({"trades_beta": -1.0}, r"trades_beta must be in \[0, inf\)"),
        ({"optimizer": "lion"}, "optimizer must be one of adamw, adam, sgd"),
        ({"scheduler": "cosine"}, "scheduler must be one of onecycle, plateau, none"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"epochs": 2.5}, "epochs must be an integer >= 1"),
        ({"clean_weight": 1.5}, r"clean_weight must be in \[0, 1\]"),
        ({"lr": 0.0}, r"lr must be in \(0, inf\)"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
        ({"hybrid_p": 1.0}, r"hybrid_p must be in \(1, inf\)"),
        ({"eps": float("nan")}, "eps must be a finite number"),
        ({"val_robust": "yes"}, "val_robust must be true or false"),
        ({"scheduler": "plateau", "val_fraction": 0.0}, "scheduler plateau needs a validation split"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be an integer >= 1"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        TrainConfig(**kwargs)


def test_train_config_from_dict_rejects_unknown_keys():
    assert TrainConfig.from_dict({"recipe": "pgd_at", "eps": 0.3}).eps == 0.3
    assert TrainConfig.from_dict({"recipe": "pgd_at", "eps": "8/255"}).eps == 8 / 255
    with pytest.raises(ValueError, match=r"training config 'train' does not take lr_max; it takes: recipe"):
        TrainConfig.from_dict({"lr_max": 0.1})
    with pytest.raises(ValueError, match=r"eps must be a number or a fraction such as 0.1 or 8/255; got '8/x'"):
        TrainConfig.from_dict({"eps": "8/x"})


def test_losses_are_pure_cross_entropy_on_logits(digits_relu, digits):
    xtr, ytr, _, _ = digits
    assert torch.allclose(
        natural_loss(digits_relu, xtr[:10], ytr[:10]), F.cross_entropy(digits_relu(xtr[:10]), ytr[:10])
    )
