"""Untrusted files: a planted pickle passed everywhere a checkpoint is accepted, and `robact-bench convert`.

The planted file, when unpickled, creates a marker file (``open(marker, "w")``): a stand-in for
code hidden in a checkpoint. Every entry point must refuse it with a one-line error naming the
problem, and the marker must never appear.
"""

import hashlib
import json
import pickle
import re

import pytest
import torch

from robact_bench.cli import main
from robact_bench.interop import robustbench as rbi
from robact_bench.interop._common import load_ours
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import load_checkpoint, save_checkpoint
from robact_bench.models.convert import convert_state_dict, extract_state_dict, load_tensors_only

SPEC = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [16, 16]})  # digits-sized
# the MLP's own normalization (the registry's MNIST default), stated as `convert` requires
CONVERT_ARGS = ["--arch", "mlp2", "--dataset", "digits", "--arch-kwargs", '{"hidden": [16, 16]}',
                "--normalization", "0.1307/0.3081"]  # fmt: skip


class _Planted:
    """Unpickling this opens (creates) ``path`` for writing."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plant(path, marker, how):
    """Write a planted pickle to ``path``: a raw ``pickle.dump`` or ``torch.save``'s zip format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"features.1.weight": torch.zeros(2)}, "x": _Planted(str(marker))}
    if how == "pickle":
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    else:
        torch.save(payload, path)
    assert not marker.exists()  # writing it ran nothing
    return path


def _good_checkpoint(folder):
    torch.manual_seed(0)
    save_checkpoint(folder / "model", SPEC.build(), SPEC, {"training": {"dataset": "digits", "name": "evil"}})
    return folder


def _run_cli(capsys, args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err.splitlines()


# --- each place a checkpoint is accepted: (setup, call) -> the error message ------------------------------------


def _load_checkpoint_weights(tmp_path, marker, how, capsys):
    run = _good_checkpoint(tmp_path / "run")
    _plant(run / "model.safetensors", marker, how)
    with pytest.raises(ValueError) as info:
        load_checkpoint(run / "model")
    return str(info.value)


def _load_checkpoint_metadata(tmp_path, marker, how, capsys):
    run = _good_checkpoint(tmp_path / "run")
    _plant(run / "model.json", marker, how)
    with pytest.raises(ValueError) as info:
        load_checkpoint(run / "model")
    return str(info.value)


def _cli_eval(tmp_path, marker, how, capsys):
    run = _good_checkpoint(tmp_path / "run")
    _plant(run / "model.safetensors", marker, how)
    code, lines = _run_cli(capsys, ["eval", "--checkpoint", run, "--dataset", "digits", "--n-examples", "4",
                                    "--no-sweeps", "--no-progress"])  # fmt: skip
    assert code == 2 and len(lines) == 1, lines
    assert not (run / "eval").exists()
    return lines[0]


def _cli_report(tmp_path, marker, how, capsys):
    runs = tmp_path / "runs"
    run = _good_checkpoint(runs / "evil" / "seed0")
    _plant(run / "model.safetensors", marker, how)
    code, lines = _run_cli(capsys, ["report", runs, "--eps", "0.1", "--steps", "1", "--n-examples", "10"])
    assert code == 2 and len(lines) == 1, lines
    assert not (runs / "report.md").exists() and not (runs / "report.json").exists()
    return lines[0]


def _cli_train_resume(tmp_path, marker, how, capsys):
    runs = tmp_path / "runs"
    state = _plant(runs / "evil" / "seed0" / "train_state.safetensors", marker, how)
    code, lines = _run_cli(capsys, ["train", "--arch", "mlp2", "--dataset", "digits", "--name", "evil", "--out", runs,
                                    "--resume", "--epochs", "1", "--no-progress"])  # fmt: skip
    assert code == 2 and len(lines) == 1, lines
    assert sorted(p.name for p in state.parent.iterdir()) == ["train_state.safetensors"]  # nothing trained or written
    return lines[0]


def _cli_convert(tmp_path, marker, how, capsys):
    planted = _plant(tmp_path / "evil.pt", marker, how)
    out = tmp_path / "converted"
    code, lines = _run_cli(capsys, ["convert", planted, *CONVERT_ARGS, "--out", out])
    assert code == 2 and len(lines) == 1, lines
    assert not out.exists()  # nothing written
    return lines[0]


def _robustbench_gate(tmp_path, marker, how, capsys):
    planted = _plant(tmp_path / "models" / "cifar10" / "Linf" / "Robact2026Evil.pt", marker, how)
    with pytest.raises(ValueError) as info:
        rbi.check_tensors_only(planted)
    return str(info.value)


def _interop_load_ours(tmp_path, marker, how, capsys):
    run = _good_checkpoint(tmp_path / "run")
    _plant(run / "model.safetensors", marker, how)
    with pytest.raises(ValueError) as info:
        load_ours(run)
    return str(info.value)


def _art_classifier(tmp_path, marker, how, capsys):
    from robact_bench.interop.art import to_art_classifier

    run = _good_checkpoint(tmp_path / "run")
    _plant(run / "model.safetensors", marker, how)
    with pytest.raises(ValueError) as info:
        to_art_classifier(run)
    return str(info.value)


SAFETENSORS_REFUSAL = r"/model\.safetensors: not a safetensors file .*; pickle checkpoints \(\.pt/\.pth\) are refused"
TORCH_REFUSAL = (
    r"not a plain tensor checkpoint, refused \(torch\.load with weights_only=True: .+\); nothing in it was run"
)

PLACES = {
    "load_checkpoint": (_load_checkpoint_weights, "/run" + SAFETENSORS_REFUSAL),
    "load_checkpoint-metadata": (_load_checkpoint_metadata, r"/run/model\.json: not valid JSON"),
    "cli-eval": (_cli_eval, "^robact-bench: error: /.*/run" + SAFETENSORS_REFUSAL),
    "cli-report": (_cli_report, r"^robact-bench: error: /.*/evil/seed0" + SAFETENSORS_REFUSAL),
    "cli-train-resume": (
        _cli_train_resume,
        r"^robact-bench: error: .*evil/seed0/train_state\.safetensors: not a readable training-state file",
    ),
    "cli-convert": (_cli_convert, r"^robact-bench: error: .*evil\.pt: " + TORCH_REFUSAL),
    "robustbench-load_model-gate": (_robustbench_gate, r"Robact2026Evil\.pt: " + TORCH_REFUSAL),
    "interop-load_ours": (_interop_load_ours, "/run" + SAFETENSORS_REFUSAL),
    "art-to_art_classifier": (_art_classifier, "/run" + SAFETENSORS_REFUSAL),
}


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
@pytest.mark.parametrize("place", list(PLACES))
def test_a_planted_pickle_is_refused_everywhere_and_never_run(place, how, tmp_path, capsys):
    marker = tmp_path / "pwned"
    call, pattern = PLACES[place]
    message = call(tmp_path, marker, how, capsys)
    assert not marker.exists(), f"{place}: the planted pickle ran"
    assert "\n" not in message and "Traceback" not in message
    assert re.search(pattern, message), message


def test_the_refusal_names_the_forbidden_global(tmp_path):
    marker = tmp_path / "pwned"
    planted = _plant(tmp_path / "evil.pt", marker, "torch.save")
    with pytest.raises(ValueError) as info:
        load_tensors_only(planted)
    assert str(info.value) == (
        f"{planted}: not a plain tensor checkpoint, refused (torch.load with weights_only=True: Unsupported global: "
        "GLOBAL io.open was not an allowed global by default); nothing in it was run"
    )
    assert "\x1b" not in str(info.value)  # torch's terminal escape codes are gone
    assert not marker.exists()


# --- convert: a good state dict round-trips; a bad one is a one-line error -------------------------------------------


def _module_and_file(tmp_path, wrap):
    torch.manual_seed(1)
    module = SPEC.build().eval()
    state = module.state_dict()
    if wrap == "ddp-nested":  # what a DDP training script saves
        obj = {"epoch": 7, "model": {"module." + k: v for k, v in state.items()}, "best_acc": 0.93}
    else:
        obj = dict(state)
    path = tmp_path / "mine.pth"
    torch.save(obj, path)
    return module, path


@pytest.mark.parametrize("wrap", ["plain", "ddp-nested"])
def test_convert_round_trips_exactly_and_records_the_source(wrap, tmp_path, capsys):
    module, path = _module_and_file(tmp_path, wrap)
    out = tmp_path / "conv"
    code = main(["convert", str(path), *CONVERT_ARGS, "--out", str(out), "--name", "MyMLP"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    summary = json.loads(cap.out.splitlines()[0])
    assert summary == {
        "model": "mlp2 / relu",
        "tensors": 8,
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "stripped_prefix": "module." if wrap == "ddp-nested" else None,
        "dataset": "digits",
    }
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    loaded, spec, meta = load_checkpoint(out / "model.json")
    assert spec == ModelSpec("mlp2", "relu", arch_kwargs={"in_chans": 1, "img_size": 8, "hidden": [16, 16],
                                                          "mean": [0.1307], "std": [0.3081]})  # fmt: skip
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(x), module(x))
    for k, v in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    conv = meta["converted"]
    assert conv["source"] == "mine.pth" and conv["source_sha256"] == summary["source_sha256"]
    assert conv["source_bytes"] == path.stat().st_size and conv["n_tensors"] == 8
    assert conv["from"] == "PyTorch state dict, read with torch.load(weights_only=True)"
    assert meta["training"] == {"name": "MyMLP", "dataset": "digits"}  # what `eval --checkpoint` reads


def test_a_converted_checkpoint_is_accepted_by_eval(tmp_path, capsys):
    _, path = _module_and_file(tmp_path, "plain")
    out = tmp_path / "conv"
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(out)]) == 0
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(out), "--suite", "brelu_paper", "--attacks", "fgsm", "--eps", "0.05",
                 "--n-examples", "10", "--no-sweeps", "--no-progress"])  # fmt: skip
    cap = capsys.readouterr()
    assert code == 0, cap.err
    summary = json.loads(cap.out.splitlines()[0])
    assert summary["model"] == "conv" and summary["n"] == 10 and summary["eps"] == 0.05  # dataset from metadata
    assert (out / "eval" / "brelu_paper_Linf_eps0.05_seed0.json").is_file()


def test_convert_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    _, path = _module_and_file(tmp_path, "plain")
    out = tmp_path / "conv"
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"robact-bench: error: {out} already holds a checkpoint: pass overwrite (--overwrite) or another folder\n"
    )
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: {**s, "features.1.weight": torch.zeros(16, 65)},
            "tensors do not fit mlp2 / relu: features.1.weight (16, 65)/torch.float32 "
            "(expected (16, 64)/torch.float32)",
        ),
        (
            lambda s: {**s, "classifier.bias": s["classifier.bias"].double()},
            "tensors do not fit mlp2 / relu: classifier.bias (10,)/torch.float64 (expected (10,)/torch.float32)",
        ),
        (
            lambda s: {k: v for k, v in s.items() if k != "classifier.bias"},
            "tensors do not fit mlp2 / relu: missing ['classifier.bias'], unexpected []",
        ),
        (
            lambda s: {**s, "extra.weight": torch.zeros(1)},
            "tensors do not fit mlp2 / relu: missing [], unexpected ['extra.weight']",
        ),
        (
            lambda s: {**s, "classifier.bias": [0.0] * 10},
            "not a state dict: entries that are not name -> tensor: 'classifier.bias' (list)",
        ),
        (lambda s: list(s.values()), "holds a list, not a state dict (a dict of names to tensors)"),
        (lambda s: torch.zeros(3), "holds a Tensor, not a state dict (a dict of names to tensors)"),
        (lambda s: {}, "holds an empty dict, not a state dict (a dict of names to tensors)"),
        (
            lambda s: {"state_dict": {}, "epoch": 3},
            "holds an empty dict, not a state dict (a dict of names to tensors)",
        ),
    ],
    ids=["shape", "dtype", "missing", "unexpected", "not-a-tensor", "list", "tensor", "empty", "empty-nested"],
)
def test_convert_bad_state_dicts_are_one_line_errors_and_write_nothing(change, message, tmp_path, capsys):
    torch.manual_seed(0)
    state = SPEC.build().state_dict()
    path = tmp_path / "bad.pt"
    torch.save(change(dict(state)), path)
    out = tmp_path / "conv"
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"robact-bench: error: {path}: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "lenet9"], "unknown architecture 'lenet9'; did you mean 'lenet', 'lenet5'"),
        (["--arch", "mlp2", "--act", "relu9"], "unknown activation 'relu9'"),
        (["--arch", "mlp2", "--arch-kwargs", "[16]"], "--arch-kwargs must be a JSON object"),
        (["--arch", "mlp2", "--act-kwargs", "{bad"], "--act-kwargs must be a JSON object"),
        (["--arch", "mlp2", "--dataset", "digits", "--num-classes", "3"], "--num-classes 3: digits has 10 classes"),
        (["--arch", "mlp2", "--dataset", "digitz"], "unknown dataset 'digitz'"),
        (["--arch", "mlp2", "--arch-kwargs", '{"depth": 3}'], "architecture 'mlp2' does not take depth"),
    ],
)
def test_convert_bad_flags_are_one_line_errors(args, message, tmp_path, capsys):
    _, path = _module_and_file(tmp_path, "plain")
    assert main(["convert", str(path), "--out", str(tmp_path / "conv"), "--normalization", "none", *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("robact-bench: error: ") and message in lines[0], lines
    assert not (tmp_path / "conv").exists()


def test_convert_missing_source_an_out_that_is_a_file_and_the_help(tmp_path, capsys):
    _, path = _module_and_file(tmp_path, "plain")
    (tmp_path / "taken").write_text("x")
    assert main(["convert", str(path), *CONVERT_ARGS, "--out", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == (
        f"robact-bench: error: {tmp_path / 'taken'}: not a folder (give a folder for model.safetensors + model.json)\n"
    )
    assert (tmp_path / "taken").read_text() == "x"
    assert main(["convert", str(tmp_path / "absent.pt"), "--arch", "mlp2", "--normalization", "none",
                 "--out", str(tmp_path / "c")]) == 2  # fmt: skip
    assert (
        capsys.readouterr().err
        == f"robact-bench: error: {tmp_path / 'absent.pt'}: no such file (give a .pt/.pth state dict)\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["convert", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "torch.load(weights_only=True)" in text and "no code in the file is run" in text
    assert "The architecture comes from our registry (--arch, --act), never from the file" in text


def test_extract_state_dict_library_contract():
    w = torch.zeros(2)
    assert extract_state_dict({"a": w}, "f") == ({"a": w}, None)
    assert extract_state_dict({"state_dict": {"module.a": w}, "epoch": 1}, "f") == ({"a": w}, "module.")
    assert extract_state_dict({"module.a": w, "b": w}, "f") == ({"module.a": w, "b": w}, None)  # not all prefixed
    with pytest.raises(ValueError, match=r"^f: not a state dict: entries that are not name -> tensor: 3 \(Tensor\)$"):
        extract_state_dict({3: w}, "f")


def test_convert_state_dict_library_call(tmp_path):
    module, path = _module_and_file(tmp_path, "plain")
    spec = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [16, 16]})
    res = convert_state_dict(path, tmp_path / "lib", spec, normalization=((0.1307,), (0.3081,)))
    assert res.weights == tmp_path / "lib" / "model.safetensors" and res.n_tensors == 8
    assert res.metadata_path == tmp_path / "lib" / "model.json" and res.stripped_prefix is None
    loaded, _, meta = load_checkpoint(res.weights)
    assert meta["training"] == {"name": "lib"}  # no dataset given: eval then needs --dataset
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(loaded(x), module(x))
