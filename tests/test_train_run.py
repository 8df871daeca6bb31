"""Configs, the `train` and `report` commands, and resuming: killed runs end bit-identical."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from robact_bench.cli import main
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig, list_configs, load_config_file, resolve_run_config
from robact_bench.training.loop import train_model
from robact_bench.training.recipes import RECIPES
from robact_bench.training.run import train_run
from robact_bench.training.state import state_header

DIGITS_MLP = {"arch": "mlp2", "arch_kwargs": {"hidden": [32, 32]}}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "robact_bench", *args], capture_output=True, text=True, **kw)


def _weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_configs())
def test_every_shipped_config_resolves_and_builds(name):
    data, source = load_config_file(name)
    run = resolve_run_config(data, source=source)
    assert run.name == name and run.description
    model = run.model.build()
    x = torch.rand(2, *((1, 28, 28) if run.dataset.startswith("mnist") else (3, 32, 32)))
    assert model(x).shape == (2, 10)
    check = RECIPES.get(run.train.recipe).check
    if check is not None:
        check(model)  # e.g. saf configs must build a model with the RBF output


def test_the_brelu_paper_config_holds_table_8():
    data, source = load_config_file("brelu_paper_resnet18_cifar10_pgd7_adamw_onecycle")
    run = resolve_run_config(data, source=source)
    t = run.train
    assert (run.dataset, run.model.arch, run.model.act) == ("cifar10", "resnet18_cifar", "brelu")
    assert (t.optimizer, t.batch_size, t.lr, t.weight_decay, t.scheduler) == ("adamw", 512, 0.01, 0.01, "onecycle")
    assert (t.eps, t.step_size, t.steps, t.epochs) == (0.03, 0.00784, 7, 100)


def test_precedence_recipe_defaults_then_file_then_flags():
    train = {"recipe": "pgd_at", "steps": 3}
    data = {"name": "r", "dataset": "cifar10", "model": {"arch": "lenet_cifar"}, "train": train}
    run = resolve_run_config(data, overrides={"train": {"lr": 0.5}})
    assert (run.train.eps, run.train.step_size) == (0.03, 0.00784)  # pgd_at's CIFAR defaults
    assert run.train.steps == 3 and run.train.lr == 0.5  # file, then flag
    run = resolve_run_config(data, overrides={"train": {"recipe": "trades"}})
    assert (run.train.recipe, run.train.eps, run.train.steps) == ("trades", 0.031, 3)
    assert run.model.num_classes == 10 and run.model.arch_kwargs["in_chans"] == 3  # from the dataset


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "r", "model": {"arch": "mlp2"}, "lr": 1}, r"unknown key\(s\) lr; allowed: name, description"),
        ({"name": "r", "model": {"arch": "mlp2"}, "train": {"lr_max": 1}}, r"train 'train' does not take lr_max"),
        ({"name": "r", "model": {"arch": "mlp2", "width": 3}}, r"model spec 'ModelSpec' does not take width"),
        ({"name": "r", "model": {"arch": "mlp2"}, "train": {"recipe": "trades2"}}, r"unknown recipe 'trades2'"),
        ({"name": "r", "model": {"arch": "mlp2"}, "train": {"eps": 8}}, r"write 8/255"),
        ({"name": "r", "model": {"arch": "mlp2"}, "train": {"trades_beta": -1}}, r"trades_beta must be in \[0, inf\)"),
        ({"name": "r", "model": {"arch": "mlp2"}, "dataset": "imagenet"}, r"unknown dataset 'imagenet'"),
        ({"model": {"arch": "mlp2"}}, r"a run needs a 'name'"),
        ({"name": "a b", "model": {"arch": "mlp2"}}, r"run name must be letters"),
        ({"name": "r", "model": {"arch": "mlp2"}, "train": [1]}, r"'train' must be a mapping"),
    ],
)
def test_bad_configs_are_one_line_errors(data, match):
    with pytest.raises(ValueError, match=match) as err:
        resolve_run_config(data, source="bad.yaml")
    assert "\n" not in str(err.value)


def test_yaml_syntax_errors_name_the_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\ntrain: {lr: 0.1\n")
    with pytest.raises(ValueError, match=r"broken.yaml: not valid YAML at line 3"):
        load_config_file(f)
    f.write_text("!!python/object/apply:os.system ['echo pwned']\n")  # safe_load refuses tags that run code
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config_file(f)
    with pytest.raises(ValueError, match="no shipped config of that name; did you mean mnist5k_lenet5_pgd_at"):
        load_config_file("mnist5k_lenet5_pgd_a")


# --- the train command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--eps", "8"], r"eps must be in \[0, 1\].*write 8/255"),
        (["--recipe", "trades2"], r"unknown recipe 'trades2'; did you mean 'trades'"),
        (["--optimizer", "lion"], r"optimizer must be one of adamw, adam, sgd"),
        (["--trades-beta", "-1"], r"trades_beta must be in \[0, inf\)"),
        (["--drelu-lambda", "-0.1"], r"drelu_lambda must be in \[0, inf\)"),
        (["--steps", "-1"], r"steps must be an integer >= 0"),
        (["--lr", "abc"], r"must be a number or a fraction"),
        (["--act", "relux"], r"unknown activation 'relux'"),
        (["--scheduler", "plateau", "--val-fraction", "0"], r"scheduler plateau needs a validation split"),
    ],
)
def test_train_bad_flags_exit_2_with_one_line(args, match, tmp_path, capsys):
    base = ["train", "--arch", "mlp2", "--dataset", "digits", "--out", str(tmp_path), "--no-progress"]
    try:
        code = main([*base, *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and __import__("re").search(match, err[0]), err
    assert not list(tmp_path.rglob("*.safetensors"))


def test_train_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: r\nmodel: {arch: mlp2}\ntrain: {epochs: 1, lr_max: 3}\n")
    for args in (["-c", str(bad)], ["-c", "no_such_config"], ["--arch", "mlp2", "--eps", "8"]):
        res = _cli("train", *args, "--dataset", "digits", "--out", str(tmp_path / "o"))
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "o").exists()


def test_train_writes_config_log_checkpoint_and_accepts_fractions(tmp_path, capsys):
    args = ["train", "--arch", "mlp2", "--dataset", "digits", "--recipe", "pgd_at", "--eps", "8/255",
            "--epochs", "2", "--seeds", "0", "1", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(r["run"], r["seed"], r["epochs"]) for r in lines] == [("mlp2_relu_pgd_at", s, 2) for s in (0, 1)]
    d0, d1 = tmp_path / "mlp2_relu_pgd_at" / "seed0", tmp_path / "mlp2_relu_pgd_at" / "seed1"
    cfg = yaml.safe_load((d0 / "config.yaml").read_text())
    assert cfg["train"]["eps"] == 8 / 255 and cfg["train"]["seed"] == 0 and cfg["train"]["val_fraction"] == 0.1
    log = (d0 / "history.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,penalty,lr,seconds,val_loss,val_acc,val_robust_acc") and len(log) == 3
    meta = json.loads((d0 / "model.json").read_text())["metadata"]["training"]
    assert meta["n_train"] + meta["n_val"] == 1433 and meta["n_val"] == 141  # digits train split, 10% per class
    w0, w1 = _weights(d0), _weights(d1)
    assert not any(torch.equal(w0[k], w1[k]) for k in w0 if k.endswith("weight"))  # seeds give other models
    # a second call without --resume refuses to overwrite; with --resume it keeps the finished run
    assert main(args) == 2 and "already holds a finished run" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0 and '"skipped": true' in capsys.readouterr().out


def test_report_gives_mean_and_std_over_seeds(tmp_path, capsys):
    args = ["train", "--arch", "mlp2", "--dataset", "digits", "--epochs", "3", "--lr", "0.01",
            "--seeds", "0", "1", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["report", str(tmp_path), "--eps", "0.1", "--steps", "5"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert [r["seed"] for r in rep["runs"]] == [0, 1]
    for r in rep["runs"]:
        assert 0.8 < r["clean_acc"] <= 1.0 and 0.0 <= r["robust_acc"] < r["clean_acc"]
        assert r["attack"]["backend"] == "torchattacks" and r["attack"]["params"]["steps"] == 5
        assert r["attack"]["n_examples"] == 364  # the whole digits test split
    table = (tmp_path / "report.md").read_text()
    clean = [100 * r["clean_acc"] for r in rep["runs"]]
    mean, std = sum(clean) / 2, abs(clean[0] - clean[1]) / 2**0.5
    assert f"| {mean:.1f} ± {std:.1f} |" in table


# --- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "act", "extra"),
    [
        ("pgd_at", "brelu", {}),  # stochastic activation: its Bernoulli draws must continue exactly
        ("drelu", "relu", {"drelu_lr": 0.5}),  # plateau scheduler + early-stopping counters
        ("trades", "relu", {"optimizer": "sgd"}),  # SGD momentum buffers
        ("saf", "mrelu", {}),
    ],
)
def test_interrupted_then_resumed_equals_uninterrupted(recipe, act, extra, digits, tmp_path):
    xtr, ytr, _, _ = digits
    x, y, val = xtr[144:], ytr[144:], (xtr[:144], ytr[:144])
    spec = ModelSpec("mlp2", act, arch_kwargs={"img_size": 8, "hidden": [32, 32]},
                     drelu_head=16 if recipe == "drelu" else None, rbf_output=recipe == "saf")  # fmt: skip
    cfg = TrainConfig(**{**RECIPES.get(recipe).defaults_for("digits"), "recipe": recipe, "epochs": 4, **extra})

    torch.manual_seed(0)
    whole = spec.build()
    hist_whole = train_model(whole, x, y, cfg, val=val, progress=False)

    class Crash(Exception):
        pass

    def crash_after_2(history):
        if len(history) == 2:
            raise Crash

    state = tmp_path / "state.safetensors"
    torch.manual_seed(0)
    with pytest.raises(Crash):
        train_model(spec.build(), x, y, cfg, val=val, progress=False, state_path=state, fingerprint="f",
                    on_epoch_end=crash_after_2)  # fmt: skip
    torch.manual_seed(1234)  # a different process state: everything must come from the file
    resumed = spec.build()
    hist = train_model(resumed, x, y, cfg, val=val, progress=False, state_path=state, resume=True, fingerprint="f")
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    timeless = [{k: v for k, v in r.items() if "seconds" not in k} for r in hist]
    assert timeless == [{k: v for k, v in r.items() if "seconds" not in k} for r in hist_whole]
    with pytest.raises(ValueError, match="started with a different config"):
        train_model(spec.build(), x, y, cfg, val=val, progress=False, state_path=state, resume=True, fingerprint="g")


def test_sigkill_during_training_then_resume_gives_the_same_weights(tmp_path):
    """A real ``robact-bench train`` process is killed mid-run; ``--resume`` finishes it."""
    args = ["train", "-c", "mnist5k_lenet5_brelu_pgd_at", "--n-train", "600", "--epochs", "3", "--no-progress"]
    ref = _cli(*args, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    run_dir = out / "mnist5k_lenet5_brelu_pgd_at" / "seed0"
    proc = subprocess.Popen([sys.executable, "-m", "robact_bench", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / "train_state.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "model.json").exists()  # killed before the end
    assert state_header(run_dir / "train_state.safetensors")["epoch"] >= 1  # the state left behind is complete
    refused = _cli(*args, "--out", str(out))
    assert refused.returncode == 2 and "pass --resume to continue it" in refused.stderr
    res = _cli(*args, "--out", str(out), "--resume")
    assert res.returncode == 0, res.stderr
    summary = json.loads(next(x for x in res.stdout.splitlines() if x.startswith("{")))
    assert 1 <= summary["resumed_from_epoch"] < 3 and summary["epochs"] == 3
    _assert_same_weights(_weights(run_dir), _weights(tmp_path / "ref" / "mnist5k_lenet5_brelu_pgd_at" / "seed0"))
    assert len((run_dir / "history.csv").read_text().splitlines()) == 4


def test_train_run_refuses_a_changed_config_on_resume(tmp_path, monkeypatch):
    import robact_bench.training.run as run_module

    data = {"name": "r", "dataset": "digits", "model": DIGITS_MLP, "train": {"epochs": 2}}
    run = resolve_run_config(data)
    changed = resolve_run_config({**data, "train": {"epochs": 3}})
    config_yaml = tmp_path / "r" / "seed0" / "config.yaml"

    class Crash(Exception):
        pass

    def crash(history):
        raise Crash

    real = run_module.train_model
    monkeypatch.setattr(run_module, "train_model", lambda *a, **kw: real(*a, **{**kw, "on_epoch_end": crash}))
    with pytest.raises(Crash):  # an unfinished run: it dies after epoch 1
        train_run(run, tmp_path, progress=False)
    monkeypatch.undo()
    before = config_yaml.read_bytes()
    with pytest.raises(ValueError, match="unfinished run with a different config"):
        train_run(changed, tmp_path, resume=True, progress=False)
    assert config_yaml.read_bytes() == before  # the refused call rewrote nothing
    assert len(train_run(run, tmp_path, resume=True, progress=False).history) == 2
    with pytest.raises(ValueError, match="finished run with a different config"):
        train_run(changed, tmp_path, resume=True, progress=False)
