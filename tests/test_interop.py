"""Interop: the ART classifier that keeps random models random, and RobustBench zoo registration.

RobustBench 1.1.1 cannot be imported on these machines (its torchvision does not load beside the
CPU torch: ``RuntimeError: operator torchvision::nms does not exist``). So the RobustBench tests
are of two kinds:

* the real unavailable paths: robustbench not installed (this environment), and installed but
  failing the way it fails here;
* registration and loading against an installed RobustBench (skipped where it is not importable,
  as here: we do not vendor its code).

Where it runs, what that proves: RobustBench's own ``load_model`` finds our entry under its real enum keys,
reads our ``.pt`` with torch's default ``weights_only=True``, undoes our key prefix with its own
``rm_substr_from_state_dict``, loads strictly and returns our model, without downloading. What it
does not prove: that a full RobustBench install imports, that its real zoo tables have no entry
under our test names, or anything about ``robustbench.benchmark`` beyond our refusals before it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robact_bench import ModelSpec, is_stochastic, save_checkpoint
from robact_bench.interop import robustbench as rbi
from robact_bench.interop.art import KeepRandom, declared_random, to_art_classifier

DIGITS_SPEC = {"arch_kwargs": {"img_size": 8, "hidden": [64, 64]}}


def _points(digits, n):
    _, _, xte, yte = digits
    return xte[:n], yte[:n]


# ----------------------------------------------------------------------------------------- ART


def test_brelu_stays_random_through_art_and_relu_does_not(digits_brelu, digits_relu, digits):
    x, _ = _points(digits, 64)
    xn = x.numpy()
    clf = to_art_classifier(digits_brelu, input_shape=(1, 8, 8))
    assert clf.nb_classes == 10 and clf.input_shape == (1, 8, 8) and clf.clip_values.tolist() == [0.0, 1.0]
    assert isinstance(clf.model, KeepRandom)  # ART's .model is what it was given: our wrapper
    torch.manual_seed(0)
    p1, p2 = clf.predict(xn), clf.predict(xn)
    assert not digits_brelu.training  # ART did call train(False)
    assert p1.shape == (64, 10) and p1.dtype == np.float32 and np.isfinite(p1).all()
    assert float(np.abs(p1 - p2).max()) > 0.1  # measured: 5.8 (largest logit change between two calls)
    det = to_art_classifier(digits_relu, input_shape=(1, 8, 8))
    assert det.model is digits_relu  # nothing declared random: no wrapper
    np.testing.assert_array_equal(det.predict(xn), det.predict(xn))
    # a ReLU model gives ART's predictions exactly its own logits
    with torch.no_grad():
        np.testing.assert_allclose(det.predict(xn), digits_relu(x).numpy(), rtol=0, atol=1e-6)


def test_counting_logits_leaves_the_global_rng_alone(digits_brelu):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    to_art_classifier(digits_brelu, input_shape=(1, 8, 8))  # one BReLU forward pass inside
    assert torch.equal(torch.rand(3), expected)


def test_loss_gradient_shape_finite_and_random(digits_brelu, digits):
    x, y = _points(digits, 32)
    clf = to_art_classifier(digits_brelu, input_shape=(1, 8, 8))
    torch.manual_seed(0)
    onehot = np.eye(10, dtype=np.float32)[y.numpy()]
    g1 = clf.loss_gradient(x.numpy(), onehot)
    g2 = clf.loss_gradient(x.numpy(), onehot)
    assert g1.shape == (32, 1, 8, 8) and np.isfinite(g1).all()
    assert float(np.abs(g1).max()) > 1e-2  # not a masked (zero) gradient (measured: 0.085)
    assert float(np.abs(g1 - g2).max()) > 1e-3  # a fresh BReLU sample per call (measured: 0.064)


@pytest.mark.parametrize("fixture", ["digits_relu", "digits_brelu"])
def test_art_pgd_through_the_classifier_respects_the_threat_model(fixture, request, digits):
    from art.attacks.evasion import ProjectedGradientDescent

    model = request.getfixturevalue(fixture)
    x, y = _points(digits, 100)
    eps = 0.1
    clf = to_art_classifier(model, input_shape=(1, 8, 8))
    pgd = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=0.025, max_iter=10, verbose=False)
    np.random.seed(0)
    torch.manual_seed(0)
    x_adv = pgd.generate(x.numpy(), y=y.numpy().astype(np.int64))
    assert x_adv.shape == (100, 1, 8, 8)
    assert float(np.abs(x_adv - x.numpy()).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    torch.manual_seed(1)
    clean = float((clf.predict(x.numpy()).argmax(1) == y.numpy()).mean())
    robust = float((clf.predict(x_adv).argmax(1) == y.numpy()).mean())
    assert clean > 0.8
    assert robust < clean - 0.2  # measured: ReLU 0.92 -> 0.60, BReLU 0.88 -> 0.54 (through the wrapper)


def _dropout_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
    )


def test_declared_dropout_stays_random_under_art_and_batchnorm_stays_frozen(digits):
    x, _ = _points(digits, 50)
    xn = x.numpy()
    net = _dropout_net()
    undeclared = to_art_classifier(net, input_shape=(1, 8, 8))
    assert not is_stochastic(net) and undeclared.model is net
    # ART's train(False) switches Dropout off: identical predictions
    np.testing.assert_array_equal(undeclared.predict(xn), undeclared.predict(xn))

    net[4].stochastic = True  # declare the Dropout random
    assert is_stochastic(net) and declared_random(net) == [net[4]]
    clf = to_art_classifier(net, input_shape=(1, 8, 8))
    stats = net[2].running_mean.clone(), net[2].running_var.clone()
    torch.manual_seed(0)
    p1, p2 = clf.predict(xn), clf.predict(xn)
    assert float(np.abs(p1 - p2).max()) > 0.1  # measured: 0.48
    # after the calls: the Dropout's own flag is back, BatchNorm ran in eval mode (stats unchanged)
    assert not net[4].training and not net[2].training
    assert torch.equal(net[2].running_mean, stats[0]) and torch.equal(net[2].running_var, stats[1])
    # the fraction of zeroed hidden units under ART is Dropout's p (0.5), measured on 50 x 32 units
    hidden = []
    hook = net[4].register_forward_hook(lambda m, i, o: hidden.append(o))
    torch.manual_seed(0)
    clf.predict(xn)
    hook.remove()
    pre = torch.relu(net[2](net[1](net[0](x))))  # eval-mode BatchNorm, as ART ran it
    zeroed = ((hidden[0] == 0) & (pre > 0)).sum().item() / max(1, int((pre > 0).sum()))
    assert 0.4 < zeroed < 0.6  # measured: 0.484


def test_shapes_come_from_a_checkpoint_or_a_spec(digits_brelu, tmp_path):
    spec = ModelSpec("mlp2", "brelu", **DIGITS_SPEC)
    save_checkpoint(tmp_path / "run" / "model", digits_brelu, spec)
    for path in (tmp_path / "run", tmp_path / "run" / "model.json", str(tmp_path / "run" / "model")):
        clf = to_art_classifier(path)
        assert clf.input_shape == (1, 8, 8) and clf.nb_classes == 10
        assert isinstance(clf.model, KeepRandom)
    clf = to_art_classifier(digits_brelu, spec=spec)
    assert clf.input_shape == (1, 8, 8) and clf.nb_classes == 10
    # a spec without img_size: the architecture's default (mlp2: 1 x 28 x 28)
    fresh = ModelSpec("mlp2", "relu", arch_kwargs={"hidden": [8, 8]})
    assert to_art_classifier(fresh.build(), spec=fresh).input_shape == (1, 28, 28)


def test_bad_arguments_are_one_line_errors(digits_relu, tmp_path):
    cases = [
        ({}, ValueError, r"input_shape is needed"),
        ({"input_shape": (1, 8, 8), "nb_classes": 7}, ValueError, r"nb_classes=7 but the model returns 10 logits"),
        ({"input_shape": (3, 8, 8)}, ValueError, r"does not take input of shape \(3, 8, 8\)"),
        ({"input_shape": (1, 0, 8)}, ValueError, r"input_shape must be positive sizes"),
        ({"input_shape": (1, 8, 8), "clip_values": (1.0, 0.0)}, ValueError, r"clip_values must be"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match) as info:
            to_art_classifier(digits_relu, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"no robact_bench checkpoint there"):
        to_art_classifier(tmp_path / "nothing")
    with pytest.raises(TypeError, match=r"nn.Module or a checkpoint path"):
        to_art_classifier(42)  # type: ignore[arg-type]
    spec = ModelSpec("mlp2", "relu", **DIGITS_SPEC)
    save_checkpoint(tmp_path / "m", digits_relu, spec)
    with pytest.raises(ValueError, match=r"give spec= only with an in-memory model"):
        to_art_classifier(tmp_path / "m", spec=spec)


def test_keep_random_restores_training_flags():
    net = _dropout_net()
    net[4].stochastic = True
    wrapped = KeepRandom(net).eval()
    assert not net[4].training
    seen = []
    net[4].register_forward_hook(lambda m, i, o: seen.append(m.training))
    wrapped(torch.rand(4, 1, 8, 8))
    assert seen == [True] and not net[4].training and not net[2].training
    wrapped.train()  # in training mode nothing is switched, and the flag stays
    wrapped(torch.rand(4, 1, 8, 8))
    assert seen == [True, True] and net[4].training


# ----------------------------------------------------------------------- RobustBench: unavailable


def test_robustbench_not_installed_every_function_says_so_in_one_line(tmp_path, isolated_modules):
    # not installed: no sys.path entry holds it (CI's environment has none; a developer's may)
    hidden = [p for p in sys.path if (Path(p or ".") / "robustbench").exists()]
    isolated_modules.setattr(sys, "path", [p for p in sys.path if p not in hidden])
    importlib.invalidate_caches()
    assert importlib.util.find_spec("robustbench") is None
    assert rbi.is_available() is False
    calls = [
        lambda: rbi.register_model("X2026Y", tmp_path),
        lambda: rbi.load_model("X2026Y"),
        lambda: rbi.benchmark(nn.Linear(2, 2), eps=8 / 255),
    ]
    for call in calls:
        with pytest.raises(rbi.RobustBenchUnavailable) as info:
            call()
        msg = str(info.value)
        assert msg.startswith("robustbench is not installed (optional extra): pip install 'robact_bench[robustbench]'")
        assert "torchvision" in msg and "timm" in msg and "setuptools<81" in msg and "\n" not in msg
        assert info.value.__cause__ is None and info.value.__context__ is None  # no chained traceback
    assert issubclass(rbi.RobustBenchUnavailable, ImportError)
    assert not any(name == "robustbench" or name.startswith("robustbench.") for name in sys.modules)


@pytest.fixture
def isolated_modules(monkeypatch):
    """Take robustbench/timm/gdown/requests out of sys.modules for one test, and put them back after."""
    names = ("robustbench", "timm", "gdown", "requests")

    def ours(key: str) -> bool:
        return any(key == n or key.startswith(n + ".") for n in names)

    for key in [k for k in sys.modules if ours(k)]:
        monkeypatch.delitem(sys.modules, key)
    yield monkeypatch
    for key in [k for k in sys.modules if ours(k)]:
        del sys.modules[key]
    importlib.invalidate_caches()


def test_robustbench_installed_but_broken_is_one_line(tmp_path, isolated_modules):
    """The failure seen here with robustbench 1.1.1 + PyPI's torchvision 0.28 beside the CPU torch."""
    pkg = tmp_path / "site" / "robustbench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    isolated_modules.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert rbi.is_available() is False
    with pytest.raises(rbi.RobustBenchUnavailable) as info:
        rbi.load_model("X2026Y")
    msg = str(info.value)
    assert msg.startswith(
        "robustbench is installed but cannot be imported (RuntimeError: operator torchvision::nms does not exist)"
    )
    assert "setuptools<81" in msg and "\n" not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the RuntimeError is not chained


# ----------------------------------------------------------- RobustBench: against its real source

@pytest.fixture
def real_rb():
    """The installed RobustBench's ``utils`` module; skips where robustbench is not importable.

    RobustBench 1.1.1 cannot be imported beside the CPU torch of these machines (see the module
    docstring), so these tests run only where a user installed the optional extra.
    """
    if not rbi.is_available():
        pytest.skip("robustbench is not importable here (optional extra: robact_bench[robustbench])")
    utils = importlib.import_module("robustbench.utils")

    def no_download(*args, **kwargs):
        raise AssertionError(f"robustbench tried to download {args}")

    mp = pytest.MonkeyPatch()
    mp.setattr(utils, "download_gdrive_new", no_download, raising=False)
    yield utils
    mp.undo()


def _cifar_checkpoint(path: Path, act: str = "brelu", num_classes: int = 10) -> tuple[nn.Module, ModelSpec]:
    spec = ModelSpec(
        "mlp2", act, num_classes=num_classes, arch_kwargs={"in_chans": 3, "img_size": 32, "hidden": [16, 16]}
    )
    torch.manual_seed(0)
    model = spec.build().eval()
    save_checkpoint(path / "model", model, spec)
    return model, spec


def test_register_then_robustbench_load_model_returns_our_model(real_rb, tmp_path):
    ours, _ = _cifar_checkpoint(tmp_path / "run")
    enums = importlib.import_module("robustbench.model_zoo.enums")
    zoo = importlib.import_module("robustbench.model_zoo.models").model_dicts
    assert rbi.is_available()
    path = rbi.register_model("Robact2026BReLU_MLP", tmp_path / "run", model_dir=tmp_path / "models")
    assert path == tmp_path / "models" / "cifar10" / "Linf" / "Robact2026BReLU_MLP.pt" and path.is_file()
    assert (path.parent / "Robact2026BReLU_MLP.robact.json").is_file()
    entry = zoo[enums.BenchmarkDataset.cifar_10][enums.ThreatModel.Linf]["Robact2026BReLU_MLP"]
    assert entry["gdrive_id"] is not None and not isinstance(entry["gdrive_id"], list)
    assert importlib.import_module("robustbench.model_zoo").model_dicts is zoo  # the object load_model reads
    # the file is tensors only: it loads under weights_only=True, which is what load_model's torch.load does
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"state_dict"} and all(k.startswith("module.model.") for k in raw["state_dict"])

    loaded = real_rb.load_model("Robact2026BReLU_MLP", model_dir=str(tmp_path / "models"), dataset="cifar10")
    assert type(loaded) is type(ours) and not loaded.training and is_stochastic(loaded)
    mine, theirs = ours.state_dict(), loaded.state_dict()
    assert list(theirs) == list(mine) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    x = torch.rand(5, 3, 32, 32)
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    b = loaded(x)
    assert torch.equal(a, b)  # same weights, same BReLU samples


def test_our_load_model_and_a_new_process_registration(real_rb, tmp_path):
    ours, _ = _cifar_checkpoint(tmp_path / "run", act="relu", num_classes=100)
    rbi.register_model(
        "Robact2026ReLU_MLP", tmp_path / "run", dataset="cifar100", threat_model="L2", model_dir=tmp_path
    )
    enums = importlib.import_module("robustbench.model_zoo.enums")
    zoo = importlib.import_module("robustbench.model_zoo.models").model_dicts
    # CIFAR-100 has no L2 table in RobustBench 1.1.1: registration adds one
    assert "Robact2026ReLU_MLP" in zoo[enums.BenchmarkDataset.cifar_100][enums.ThreatModel.L2]
    x = torch.rand(4, 3, 32, 32)
    kw = {"dataset": "cifar100", "threat_model": "L2", "model_dir": tmp_path}
    assert torch.equal(rbi.load_model("Robact2026ReLU_MLP", **kw)(x), ours(x))
    # a new process has an empty zoo: the entry comes back from <name>.robact.json
    del zoo[enums.BenchmarkDataset.cifar_100][enums.ThreatModel.L2]["Robact2026ReLU_MLP"]
    assert torch.equal(rbi.load_model("Robact2026ReLU_MLP", **kw)(x), ours(x))
    # missing weights: a clear error, not RobustBench's Google Drive download
    (tmp_path / "cifar100" / "L2" / "Robact2026ReLU_MLP.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Robact2026ReLU_MLP.pt: weights missing"):
        rbi.load_model("Robact2026ReLU_MLP", **kw)


def test_key_prefix_survives_robustbench_key_rewriting(real_rb):
    """rm_substr_from_state_dict cuts the first 7/6 characters of any key *containing* 'module.'/'model.'."""
    keys = ["features.1.weight", "head.model.weight", "wrapper.module.bias", "model.x", "module.y"]
    cut = real_rb.rm_substr_from_state_dict(dict.fromkeys(keys, 0), "model.")
    assert list(cut) == ["features.1.weight", "odel.weight", "wrapper.module.bias", "x", "module.y"]  # broken
    saved = {"module.model." + k: 0 for k in keys}
    back = real_rb.rm_substr_from_state_dict(real_rb.rm_substr_from_state_dict(saved, "module."), "model.")
    assert list(back) == keys  # with our prefix, every key comes back


def test_register_refusals_are_one_line(real_rb, tmp_path):
    _cifar_checkpoint(tmp_path / "run")
    digits_spec = ModelSpec("mlp2", "relu", **DIGITS_SPEC)
    save_checkpoint(tmp_path / "digits" / "model", digits_spec.build(), digits_spec)
    cases = [
        (("Carmon2019Unlabeled", tmp_path / "run"), {}, r"already in RobustBench's cifar10/Linf zoo"),
        (("../evil", tmp_path / "run"), {}, r"model name must be letters"),
        (("Kireev2021EffectivenessX", tmp_path / "run"), {}, r"checkpoint\['last'\]"),
        (("Robact2026X", tmp_path / "run"), {"dataset": "imagenet"}, r"dataset must be one of cifar10, cifar100"),
        (("Robact2026X", tmp_path / "run"), {"threat_model": "L1"}, r"threat_model must be one of"),
        (("Robact2026X", tmp_path / "run"), {"dataset": "cifar100"}, r"needs \(3, 32, 32\) and 100"),
        (("Robact2026X", tmp_path / "digits"), {}, r"takes \(1, 8, 8\) and returns 10 logits"),
        (("Robact2026X", tmp_path / "none"), {}, r"no robact_bench checkpoint there"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            rbi.register_model(*args, model_dir=tmp_path / "models", **kwargs)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "models").exists()  # nothing written by a refused registration
    # re-registering our own name replaces our entry
    first = rbi.register_model("Robact2026Again", tmp_path / "run", model_dir=tmp_path / "models")
    assert rbi.register_model("Robact2026Again", tmp_path / "run", model_dir=tmp_path / "models") == first


def test_benchmark_refuses_where_robustbench_would_download(real_rb, tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"cifar-10-batches-py: cifar10 is not there \(missing data_batch_1"):
        rbi.benchmark(model, eps=8 / 255, data_dir=tmp_path)
    # every file present but not the published one: torchvision's MD5 check fails and it would download
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).write_bytes(b"not cifar")
    (folder / "batches.meta").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"data_batch_1, .*batches.meta differ from the published cifar10 \(MD5\)"):
        rbi.benchmark(model, eps=8 / 255, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"cifar-100-python: cifar100 is not there"):
        rbi.benchmark(model, eps=8 / 255, dataset="cifar100", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"threat_model must be Linf or L2"):
        rbi.benchmark(model, eps=8 / 255, threat_model="corruptions", data_dir=tmp_path)
    assert "robustbench.eval" not in sys.modules  # refused before RobustBench's benchmark was imported


def test_registration_leaves_the_zoo_tables_ordered(real_rb, tmp_path):
    _cifar_checkpoint(tmp_path / "run")
    rbi.register_model("Robact2026Order", tmp_path / "run", model_dir=tmp_path)
    zoo = importlib.import_module("robustbench.model_zoo.models").model_dicts
    enums = importlib.import_module("robustbench.model_zoo.enums")
    table = zoo[enums.BenchmarkDataset.cifar_10][enums.ThreatModel.Linf]
    assert isinstance(table, OrderedDict) and list(table) == ["Carmon2019Unlabeled", "Robact2026Order"]
    assert list(zoo) == [enums.BenchmarkDataset.cifar_10, enums.BenchmarkDataset.cifar_100,
                         enums.BenchmarkDataset.imagenet]  # fmt: skip


class _Plant:
    """Unpickling this creates a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_is_refused_before_robustbench_sees_it(tmp_path):
    planted = tmp_path / "Robact2026Evil.pt"
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _Plant(str(marker))}, planted)
    with pytest.raises(ValueError, match=r"Robact2026Evil\.pt: not a plain tensor checkpoint, refused") as info:
        rbi.check_tensors_only(planted)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"module.model.w": torch.zeros(2)}}, good)
    rbi.check_tensors_only(good)  # plain tensors pass
