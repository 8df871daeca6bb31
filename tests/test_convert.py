"""Third-party state dicts: the input normalization is stated, never read from the file, and other
code bases' parameter names are translated (pyautoattack's example CIFAR-10 ResNet-18, kuangliu's layout)."""

import json
from pathlib import Path

import pytest
import torch

from robact_bench.cli import main
from robact_bench.data import load_dataset
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import load_checkpoint
from robact_bench.models.convert import LAYOUTS, convert_state_dict, parse_normalization, rename_keys

pyautoattack = pytest.importorskip("pyautoattack")
EXAMPLE = Path(pyautoattack.__file__).parent / "examples" / "model_test.pt"
CIFAR_STATS = "0.4914,0.4822,0.4465/0.2470,0.2435,0.2616"  # the registry's CIFAR-10 default


def _convert(tmp_path, name, *flags):
    out = tmp_path / name
    args = ["convert", str(EXAMPLE), "--arch", "resnet18_cifar", "--dataset", "cifar10_sample", "--out", str(out)]
    return main([*args, *flags]), out


def _correct(model, x, y):
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


@pytest.fixture(scope="module")
def cifar20():
    return load_dataset("cifar10_sample", "test")


def test_pyautoattacks_example_resnet18_converts_with_no_normalization(tmp_path, cifar20, capsys):
    """The example model expects raw [0, 1] input: stated as such it keeps its 20/20 on the 20 CIFAR-10
    images and gives the logits of pyautoattack's own ResNet-18 class; stated with the registry's CIFAR-10
    statistics (what the old convert took from the default) the same weights get 4 of 20 here."""
    x, y = cifar20
    assert len(y) == 20
    code, out = _convert(tmp_path, "raw", "--layout", "kuangliu", "--normalization", "none")
    assert code == 0, capsys.readouterr().err
    model, spec, meta = load_checkpoint(out / "model.json")
    assert spec.arch_kwargs["mean"] == [0.0, 0.0, 0.0] and spec.arch_kwargs["std"] == [1.0, 1.0, 1.0]
    conv = meta["converted"]
    assert conv["normalization"] == "none" and conv["layout"] == "kuangliu"
    assert conv["renamed_tensors"] == 20  # 3 shortcuts x 6 tensors (conv, 5 of BatchNorm) + the head's 2
    assert _correct(model, x, y) == 20
    from pyautoattack.examples.resnet import ResNet18  # the library's own class for its own file

    ref = ResNet18().eval()
    ref.load_state_dict(torch.load(EXAMPLE, map_location="cpu", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)
    code, out = _convert(tmp_path, "normalized", "--layout", "kuangliu", "--normalization", CIFAR_STATS)
    assert code == 0
    wrong, _, _ = load_checkpoint(out / "model.json")
    assert _correct(wrong, x, y) <= 10  # measured: 4


def test_the_layout_is_declared_or_the_error_names_it(tmp_path, capsys):
    code, out = _convert(tmp_path, "plain", "--normalization", "none")
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "tensors do not fit resnet18_cifar / relu: missing" in err
    assert err.rstrip().endswith("the names are those of the kuangliu layout: convert with --layout kuangliu")
    # the same translation spelled out with --rename gives the same tensors
    code, by_rename = _convert(tmp_path, "renamed", "--normalization", "none",
                               "--rename", "shortcut=downsample", "--rename", "linear=fc")  # fmt: skip
    assert code == 0
    code, by_layout = _convert(tmp_path, "layout", "--normalization", "none", "--layout", "kuangliu")
    assert code == 0
    a, b = load_checkpoint(by_rename / "model.json")[0], load_checkpoint(by_layout / "model.json")[0]
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_a_files_own_normalization_must_agree_with_the_stated_one(tmp_path, capsys):
    spec = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [16, 16]})
    torch.manual_seed(0)
    module = spec.build().eval()
    path = tmp_path / "ours.pt"
    torch.save(module.state_dict(), path)  # holds normalize.mean = 0.1307, normalize.std = 0.3081
    args = ["convert", str(path), "--arch", "mlp2", "--dataset", "digits", "--arch-kwargs", '{"hidden": [16, 16]}']
    assert main([*args, "--normalization", "none", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"robact-bench: error: {path}: the file's normalize.mean [0.130")
    assert "differs from the stated normalization [0.0]" in err and not (tmp_path / "a").exists()
    # without the buffers (a file from elsewhere) the stated values are used, whatever they are
    del_state = {k: v for k, v in module.state_dict().items() if not k.startswith("normalize.")}
    torch.save(del_state, path)
    assert main([*args, "--normalization", "0.5/0.25", "--out", str(tmp_path / "b")]) == 0
    loaded, _, meta = load_checkpoint(tmp_path / "b" / "model.json")
    assert meta["converted"]["normalization"] == {"mean": [0.5], "std": [0.25]}
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        inner = module.classifier(module.features((x - 0.5) / 0.25))
        torch.testing.assert_close(loaded(x), inner)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "the following arguments are required: --normalization"),
        (["--normalization", "cifar"], "--normalization 'cifar': give 'none' (the model takes raw [0, 1] images)"),
        (["--normalization", "0.5,0.5/0.25"], "--normalization '0.5,0.5/0.25': give 'none'"),
        (["--normalization", "0.5/0"], "means must be finite and stds finite and > 0"),
        (["--normalization", "nan/1"], "means must be finite and stds finite and > 0"),
        (["--normalization", "0.5,0.5/1,1"], "mean needs 3 values (one per input channel)"),
        (["--normalization", "none", "--layout", "timm"], "unknown layout 'timm'; known: kuangliu"),
        (["--normalization", "none", "--rename", "shortcut"], "--rename 'shortcut': give THEIRS=OURS"),
        (["--normalization", "none", "--rename", "a.b=c"], "--rename 'a.b=c': give THEIRS=OURS"),
    ],
)
def test_bad_normalization_layout_and_rename_flags_are_one_line_errors(flags, message, tmp_path, capsys):
    try:
        code, out = _convert(tmp_path, "x", *flags)
    except SystemExit as exc:  # argparse's own refusals
        code, out = exc.code, tmp_path / "x"
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and message in err and not out.exists(), err


def test_rename_keys_renames_whole_components_and_refuses_collisions():
    t = torch.zeros(1)
    got, changed = rename_keys({"layer1.0.shortcut.0.weight": t, "linear.bias": t, "linears.bias": t},
                               LAYOUTS["kuangliu"], "f")  # fmt: skip
    assert set(got) == {"layer1.0.downsample.0.weight", "fc.bias", "linears.bias"} and changed == 2
    with pytest.raises(ValueError, match=r"^f: renaming gives two tensors the name 'fc.bias'"):
        rename_keys({"linear.bias": t, "fc.bias": t}, LAYOUTS["kuangliu"], "f")
    assert parse_normalization(" None ") == "none"
    assert parse_normalization("0.1,0.2/0.3,0.4") == ((0.1, 0.2), (0.3, 0.4))


def test_the_library_call_needs_the_normalization(tmp_path):
    spec = ModelSpec("resnet18_cifar", "relu")
    with pytest.raises(TypeError, match="normalization"):
        convert_state_dict(EXAMPLE, tmp_path / "x", spec, layout="kuangliu")  # type: ignore[call-arg]
    res = convert_state_dict(EXAMPLE, tmp_path / "y", spec, normalization="none", layout="kuangliu")
    assert res.n_tensors == 124 and json.loads(res.metadata_path.read_text())["spec"]["arch"] == "resnet18_cifar"
