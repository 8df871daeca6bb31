"""Each recipe does what it must, on real mnist5k digits with LeNet-5 (a few steps each)."""

import pytest
import torch
import torch.nn.functional as F

import robact_bench.training.losses as losses
from robact_bench.activations.capped import drelu_modules
from robact_bench.data import balanced_subset, load_dataset
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model
from robact_bench.training.recipes import RECIPES, RecipeContext

LENET = ModelSpec("lenet5", "relu", num_classes=10, arch_kwargs={"in_chans": 1, "img_size": 28})


@pytest.fixture(scope="module")
def mnist():
    x, y = load_dataset("mnist5k", "train")
    keep = balanced_subset(y, 2000)
    xt, yt = load_dataset("mnist5k", "test")
    return x[keep], y[keep], xt, yt


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_pgd_at_trains_on_examples_inside_the_eps_ball(mnist, monkeypatch):
    x, y, _, _ = mnist
    pairs, train_inputs = [], []
    real = losses.pgd_linf

    def recording(model, xb, yb, **kw):
        out = real(model, xb, yb, **kw)
        pairs.append((xb.clone(), out.clone()))
        return out

    monkeypatch.setattr(losses, "pgd_linf", recording)
    torch.manual_seed(0)
    model = LENET.build()
    model.register_forward_pre_hook(lambda m, a: train_inputs.append(a[0].clone()) if m.training else None)
    cfg = TrainConfig("pgd_at", epochs=1, batch_size=128, eps=0.1, step_size=0.025, steps=5, clean_weight=0.0)
    train_model(model, x[:512], y[:512], cfg, progress=False)
    assert len(pairs) == 4 and len(train_inputs) == 4  # one attack and one training forward per step
    for (xb, x_adv), seen in zip(pairs, train_inputs, strict=True):
        dist = (x_adv - xb).abs().amax()
        assert float(dist) <= 0.1 + 1e-6
        assert float(dist) >= 0.099  # the attack uses its budget: a real perturbation, not x itself
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
        assert torch.equal(seen, x_adv)  # the model is trained on exactly these examples


def test_trades_with_beta_zero_is_standard_training_step_for_step(mnist):
    x, y, _, _ = mnist
    x, y = x[:128], y[:128]

    def run(recipe, **kw):
        torch.manual_seed(0)
        model = LENET.build()
        snaps = []
        cfg = TrainConfig(recipe, epochs=4, batch_size=128, val_fraction=0.0, **kw)  # one step per epoch
        hist = train_model(model, x, y, cfg, progress=False, on_epoch_end=lambda h: snaps.append(_snapshot(model)))
        return [r["loss"] for r in hist], snaps

    std_loss, std_w = run("standard")
    tr0_loss, tr0_w = run("trades", trades_beta=0.0)
    tr6_loss, _ = run("trades", trades_beta=6.0)
    assert tr0_loss == std_loss
    for a, b in zip(std_w, tr0_w, strict=True):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert tr6_loss[0] > std_loss[0]  # beta > 0 adds a positive KL term at the same first step


def test_trades_loss_is_ce_plus_beta_batchmean_kl(mnist):
    x, y, _, _ = mnist
    torch.manual_seed(0)
    model = LENET.build().train()
    xb, yb = x[:32], y[:32]
    torch.manual_seed(1)
    total = losses.trades_loss(model, xb, yb, beta=6.0, eps=0.1, step_size=0.025, steps=3)
    torch.manual_seed(1)
    with losses.eval_mode(model), torch.no_grad():
        p = F.softmax(model(xb), 1)
    x_adv = losses.pgd_linf(model.eval(), xb, p, eps=0.1, step_size=0.025, steps=3, loss_fn=losses._kl_sum,
                            x_init=xb + 0.001 * torch.randn_like(xb))  # fmt: skip
    model.train()
    logits = model(xb)
    p_clean = F.softmax(logits, 1)
    kl = (p_clean * (p_clean.log() - F.log_softmax(model(x_adv), 1))).sum(1).mean()
    assert float(kl.detach()) > 0
    assert float(total.detach()) == pytest.approx(float((F.cross_entropy(logits, yb) + 6.0 * kl).detach()), rel=1e-5)


def test_drelu_penalty_lowers_the_caps_and_without_it_they_stay(mnist):
    x, y, _, _ = mnist
    spec = ModelSpec("lenet5", "relu", num_classes=10, drelu_head=64, arch_kwargs={"in_chans": 1, "img_size": 28})
    means = {}
    for lam in (0.0, 0.01):
        torch.manual_seed(0)
        model = spec.build()
        cfg = TrainConfig("drelu", epochs=3, optimizer="adam", scheduler="none", weight_decay=0.0,
                          drelu_lambda=lam, drelu_lr=0.5, val_fraction=0.0)  # fmt: skip
        hist = train_model(model, x[:1024], y[:1024], cfg, progress=False)
        means[lam] = [r["m_mean"] for r in hist]
        pens = [r["penalty"] for r in hist]  # epoch means of lambda * sum m^2
        assert pens == [0.0, 0.0, 0.0] if lam == 0 else pens[2] < pens[1] < pens[0]
        assert float(drelu_modules(model)[0].m.detach().mean()) == pytest.approx(means[lam][-1], rel=1e-6)
    # The cap (100) is far above every activation: cross-entropy gives it no gradient, so only
    # the penalty moves it.
    assert means[0.0] == [100.0, 100.0, 100.0]
    assert means[0.01][0] < 100.0
    assert means[0.01][2] < means[0.01][1] < means[0.01][0]


def test_saf_recipe_gives_low_confidence_on_noisy_mean_images(mnist):
    x, y, xt, yt = mnist
    kw = {"in_chans": 1, "img_size": 28, "fc_act_layer": "relu", "batch_norm": True}
    spec = ModelSpec("lenet5", "mrelu", num_classes=10, rbf_output=True, arch_kwargs=kw)
    probe = (x.mean(0, keepdim=True) + 0.3 * torch.randn(200, 1, 28, 28, generator=torch.Generator().manual_seed(9)))
    probe = probe.clamp(0, 1)
    conf, acc = {}, {}
    for copies in (16, 0):
        torch.manual_seed(0)
        model = spec.build()
        cfg = TrainConfig("saf", epochs=3, batch_size=64, lr=3e-3, saf_mean_copies=copies, val_fraction=0.0)
        train_model(model, x, y, cfg, progress=False)
        with torch.no_grad():
            conf[copies] = model(probe).exp().amax(1)  # the paper's confidences exp(-z^2)
            acc[copies] = float((model(xt).argmax(1) == yt).float().mean())
    assert float((conf[16] < 0.5).float().mean()) >= 0.95  # rejected: every class below 0.5
    assert float(conf[16].mean()) < 0.05
    assert acc[16] >= 0.8
    assert float(conf[0].mean()) > 0.5  # without mean training the same images get high confidence


def test_saf_recipe_refuses_a_model_without_rbf_output(mnist):
    x, y, _, _ = mnist
    with pytest.raises(ValueError, match="recipe 'saf' needs a model that ends with the final 1-D RBF layer"):
        train_model(LENET.build(), x[:64], y[:64], TrainConfig("saf", epochs=1, val_fraction=0.0), progress=False)


def test_hybrid_loss_matches_equation_7():
    log_conf = torch.tensor([[-0.1, -2.0, -0.5], [-3.0, -0.2, -1.0]])
    y = torch.tensor([0, 1])
    conf = log_conf.exp()
    expected = []
    for i, label in enumerate(y.tolist()):
        c = conf[i]
        t1 = -torch.log(c[label] / c.sum())
        t2 = (1 - c[label]) ** 2
        t3 = sum(c[j] ** 2 for j in range(3) if j != label)
        expected.append(1.0 * t1 + 0.5 * t2 + 0.25 * t3)
    got = losses.hybrid_loss(log_conf, y, a1=1.0, a2=0.5, a3=0.25, p=2, reduction="none")
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)
    assert float(losses.nonsense_loss(log_conf[:1])) == pytest.approx(float((conf[0] ** 2).sum()), rel=1e-6)


class _PassCounter:
    """Counts forward passes and backward passes (gradient flowing into a forward's output)."""

    def __init__(self, model):
        self.forward = self.backward = 0
        model.register_forward_hook(self._on_forward)

    def _on_forward(self, module, args, out):
        self.forward += 1
        if out.requires_grad:
            out.register_hook(self._on_backward)

    def _on_backward(self, grad):
        self.backward += 1


@pytest.mark.parametrize(
    ("recipe", "kwargs", "forwards", "backwards"),
    [
        ("standard", {}, 1, 1),
        ("fast_at", {"eps": 0.1, "step_size": 0.125}, 2, 2),
        ("pgd_at", {"steps": 7, "clean_weight": 0.0}, 8, 8),  # Madry: steps + 1
        ("pgd_at", {"steps": 3, "clean_weight": 0.0}, 4, 4),
        ("pgd_at", {"steps": 7, "clean_weight": 0.5}, 9, 9),  # eq. 1 mix: one clean pass more
        ("trades", {"steps": 7, "trades_beta": 6.0}, 10, 9),  # + clean target (no backward) + clean pass
        ("saf", {}, 1, 1),
    ],
)
def test_forward_backward_passes_per_batch(mnist, recipe, kwargs, forwards, backwards):
    x, y, _, _ = mnist
    spec = LENET if recipe != "saf" else ModelSpec("lenet5", "mrelu", num_classes=10, rbf_output=True,
                                                   arch_kwargs={"in_chans": 1, "img_size": 28})  # fmt: skip
    torch.manual_seed(0)
    model = spec.build().train()
    counter = _PassCounter(model)
    cfg = TrainConfig(recipe, val_fraction=0.0, **kwargs)
    loss = RECIPES.get(recipe).loss(model, x[:64], y[:64], cfg, RecipeContext(train_mean=x.mean(0, keepdim=True)))
    loss.backward()
    assert (counter.forward, counter.backward) == (forwards, backwards)


def test_per_dataset_defaults_of_the_recipes():
    pgd = RECIPES.get("pgd_at")
    assert pgd.defaults_for("cifar10") == {"optimizer": "adamw", "scheduler": "onecycle", "eps": 0.03,
                                           "step_size": 0.00784, "steps": 7}  # fmt: skip
    assert pgd.defaults_for("mnist5k")["eps"] == 0.1 and pgd.defaults_for("mnist")["eps"] == 0.1
    assert RECIPES.get("trades").defaults_for("cifar100")["steps"] == 10
    assert RECIPES.get("saf").defaults_for("cifar10")["hybrid_a3"] == pytest.approx(1 / 9)
    assert RECIPES.get("fast_at").defaults_for("cifar10")["step_size"] == pytest.approx(10 / 255)
    drelu = RECIPES.get("drelu").defaults_for("cifar100")  # the same on every dataset
    assert (drelu["optimizer"], drelu["lr"], drelu["scheduler"]) == ("adam", 1e-3, "plateau")
    assert drelu["plateau_factor"] == 0.5
    assert (drelu["plateau_patience"], drelu["early_stopping_patience"]) == (5, 10)
    assert RECIPES.get("drelu").defaults_for("digits") == drelu


def test_plateau_halves_the_lr_and_early_stopping_ends_the_run(mnist):
    x, y, xt, yt = mnist
    torch.manual_seed(0)
    model = LENET.build()
    # SGD at lr 1e-30 leaves float32 weights unchanged, so the validation loss is exactly the same
    # every epoch: epoch 1 sets the best, epochs 2, 3, 4 are bad. ReduceLROnPlateau (patience 0)
    # halves the lr after each bad epoch; early stopping (patience 3) ends the run after epoch 4.
    cfg = TrainConfig("standard", epochs=10, optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=1e-30,
                      scheduler="plateau", plateau_patience=0, early_stopping_patience=3, val_robust=False)  # fmt: skip
    before = _snapshot(model)
    hist = train_model(model, x[:256], y[:256], cfg, val=(xt[:200], yt[:200]), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len({r["val_loss"] for r in hist}) == 1
    assert len(hist) == 4 and hist[-1]["stopped_early"] == 1.0
    assert [r["lr"] for r in hist] == pytest.approx([1e-30, 1e-30, 5e-31, 2.5e-31], rel=1e-12)
