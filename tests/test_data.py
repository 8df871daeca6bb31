import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from robact_bench import list_datasets, load_dataset
from robact_bench.data import DatasetNotFoundError, balanced_subset, dataset_info


def _check(x, y, n, shape, n_classes):
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (n, *shape) and y.shape == (n,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert int(y.min()) >= 0 and int(y.max()) < n_classes


def test_registry():
    assert set(list_datasets()) == {"mnist5k", "digits", "cifar10_sample", "cifar10", "cifar100", "mnist"}
    assert dataset_info("mnist5k").embedded and not dataset_info("cifar10").embedded


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    xtr, ytr = load_dataset("mnist5k", "train")
    xte, yte = load_dataset("mnist5k", "test")
    _check(xtr, ytr, 4000, (1, 28, 28), 10)
    _check(xte, yte, 1000, (1, 28, 28), 10)
    assert torch.bincount(ytr).tolist() == [400] * 10
    assert torch.bincount(yte).tolist() == [100] * 10
    assert float(xtr.max()) == 1.0 and float(xtr.min()) == 0.0  # 0..255 scaled exactly
    # real MNIST: about 19% of pixels are ink
    assert 0.10 < float((xte > 0.5).float().mean()) < 0.25
    # no test image appears in train
    tr = {row.numpy().tobytes() for row in xtr.flatten(1)}
    assert not any(row.numpy().tobytes() in tr for row in xte.flatten(1))
    # deterministic
    assert torch.equal(load_dataset("mnist5k", "test")[0], xte)


def test_digits_and_cifar10_sample():
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    _check(xtr, ytr, 1433, (1, 8, 8), 10)
    _check(xte, yte, 364, (1, 8, 8), 10)
    x, y = load_dataset("cifar10_sample", "test")
    _check(x, y, 20, (3, 32, 32), 10)
    assert y.tolist()[:4] == [3, 8, 8, 0]  # labels from the file names, in order
    with pytest.raises(ValueError, match="has splits test"):
        load_dataset("cifar10_sample", "train")


def test_unknown_dataset_and_split():
    with pytest.raises(KeyError, match="did you mean 'mnist5k'"):
        load_dataset("mnist5K0")
    with pytest.raises(ValueError, match="splits train, test; got 'val'"):
        load_dataset("mnist5k", "val")


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _write_cifar10_python(root, n=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {
            b"batch_label": b"x",
            b"labels": [(i + j) % 10 for j in range(n)],
            b"data": _rows(n, i),
            b"filenames": [b"f"] * n,
        }
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)


def test_cifar10_python_version(tmp_path):
    _write_cifar10_python(tmp_path)
    x, y = load_dataset("cifar10", "train", root=tmp_path)
    _check(x, y, 20, (3, 32, 32), 10)
    assert y[:4].tolist() == [0, 1, 2, 3]
    # the first image is the first row, channels first, scaled by 255
    first = _rows(4, 0)[0].reshape(3, 32, 32).astype(np.float32) / 255
    assert np.array_equal(x[0].numpy(), first)
    xt, yt = load_dataset("cifar10", "test", root=tmp_path)
    _check(xt, yt, 4, (3, 32, 32), 10)


def test_cifar10_binary_and_cifar100(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    for k, name in enumerate([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]):
        rows = _rows(3, k)
        labels = np.array([[7], [1], [9]], dtype=np.uint8)
        (d / name).write_bytes(np.concatenate([labels, rows], 1).tobytes())
    x, y = load_dataset("cifar10", "test", root=tmp_path)
    assert y.tolist() == [7, 1, 9]
    assert np.array_equal(x[1].numpy(), _rows(3, 5)[1].reshape(3, 32, 32) / np.float32(255))
    d100 = tmp_path / "cifar-100-python"
    d100.mkdir()
    for name in ("train", "test"):
        with open(d100 / name, "wb") as fh:
            pickle.dump({b"fine_labels": [99, 0], b"coarse_labels": [19, 0], b"data": _rows(2, 3)}, fh)
    x, y = load_dataset("cifar100", "train", root=tmp_path)
    _check(x, y, 2, (3, 32, 32), 100)
    assert y.tolist() == [99, 0]


def _idx(data: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, data.ndim) + struct.pack(f">{data.ndim}i", *data.shape) + data.tobytes()


@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, layout, gz):
    d = tmp_path / layout
    d.mkdir(parents=True)
    imgs = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([5, 0, 9], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", imgs), (f"{prefix}-labels-idx1-ubyte", labels)):
            raw = _idx(arr)
            if gz:
                (d / (stem + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (d / stem).write_bytes(raw)
    x, y = load_dataset("mnist", "test", root=tmp_path)
    _check(x, y, 3, (1, 28, 28), 10)
    assert y.tolist() == [5, 0, 9]
    assert x[0, 0, 0, 1].item() == pytest.approx(1 / 255)


def test_missing_dataset_names_the_path_and_format(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-batches-py.*cifar-10-batches-bin.*nothing is downloaded"):
        load_dataset("cifar10", "train", root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\] \(IDX format\)"):
        load_dataset("mnist", "test", root=tmp_path)
    monkeypatch.setenv("ROBACT_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetNotFoundError, match="elsewhere"):
        load_dataset("cifar100", "test")


def test_malformed_files_are_clear_errors(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(1, np.uint8)))
    with pytest.raises(DatasetNotFoundError, match=r"not an IDX file|header says"):
        load_dataset("mnist", "test", root=tmp_path)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    (d / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(DatasetNotFoundError, match="not a multiple of 3073-byte records"):
        load_dataset("cifar10", "test", root=tmp_path)


class _Planted:
    """Unpickling this would create a file (os.system would run a shell command)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_planted_pickle_in_a_cifar_batch_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Planted(str(marker)), b"labels": [0]}, fh)
    with pytest.raises(DatasetNotFoundError, match="refusing to load global"):
        load_dataset("cifar10", "test", root=tmp_path)
    assert not marker.exists()


def test_balanced_subset_round_robin():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    idx = balanced_subset(y, 6)
    assert idx.tolist() == [0, 3, 5, 1, 4, 6]
    assert torch.bincount(y[balanced_subset(y, 9)]).tolist() == [3, 2, 4]
    with pytest.raises(ValueError, match="asked for 10 examples"):
        balanced_subset(y, 10)
