import json
import pickle

import pytest
import torch

from robact_bench import ModelSpec, load_checkpoint, save_checkpoint
from robact_bench.fileio import atomic_write_bytes


def test_round_trip_gives_identical_outputs(tmp_path):
    spec = ModelSpec("lenet5", "relu", drelu_head=16, drelu_head_m_init=3.0, arch_kwargs={"batch_norm": True})
    torch.manual_seed(0)
    model = spec.build()
    model.train()
    model(torch.rand(8, 1, 28, 28))  # move BatchNorm running stats away from their init
    model.eval()
    x = torch.rand(5, 1, 28, 28)
    weights = save_checkpoint(tmp_path / "m", model, spec, {"seed": 3})
    assert weights.name == "m.safetensors" and (tmp_path / "m.json").is_file()
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["spec"]["arch"] == "lenet5" and meta["metadata"] == {"seed": 3} and "torch" in meta["versions"]
    loaded, spec2, md = load_checkpoint(tmp_path / "m.json")
    assert spec2 == spec and md == {"seed": 3} and not loaded.training
    assert torch.equal(loaded(x), model(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temp files left


class _Planted:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_checkpoint_is_refused_and_never_unpickled(tmp_path):
    spec = ModelSpec("mlp2", "relu")
    save_checkpoint(tmp_path / "m", spec.build(), spec)
    marker = tmp_path / "pwned"
    with open(tmp_path / "m.safetensors", "wb") as fh:  # a torch.save-style pickle in its place
        pickle.dump({"state_dict": _Planted(str(marker))}, fh)
    with pytest.raises(ValueError, match=r"not a safetensors file.*pickle checkpoints .* refused"):
        load_checkpoint(tmp_path / "m")
    assert not marker.exists()


def test_mismatched_tensors_are_a_clear_error(tmp_path):
    small = ModelSpec("mlp2", "relu", arch_kwargs={"hidden": [32, 32]})
    save_checkpoint(tmp_path / "m", small.build(), small)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["spec"]["arch_kwargs"] = {"hidden": [64, 64]}  # the file claims another architecture
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"tensors do not fit mlp2 / relu: features.1.weight \(32, 784\)"):
        load_checkpoint(tmp_path / "m")
    meta["spec"]["act"] = "drelu"  # D-ReLU adds caps the weights file does not have
    meta["spec"]["arch_kwargs"] = {"hidden": [32, 32]}
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"missing \['features.2.m', 'features.4.m'\]"):
        load_checkpoint(tmp_path / "m")


def test_metadata_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "m.json").write_text('{"format": "something/else"}')
    with pytest.raises(ValueError, match="not a robact_bench checkpoint"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "n.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path / "n")
    with pytest.raises(ValueError, match="file not found"):
        load_checkpoint(tmp_path / "absent")


def test_lazy_parameters_cannot_be_saved(tmp_path):
    from robact_bench import swap_activations

    spec = ModelSpec("mlp2", "relu")
    model = spec.build()
    swap_activations(model, "drelu")
    with pytest.raises(ValueError, match="run one forward pass first"):
        save_checkpoint(tmp_path / "m", model, spec)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("robact_bench.fileio.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
