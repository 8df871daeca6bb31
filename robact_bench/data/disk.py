"""Datasets read from disk in their standard formats; nothing is ever downloaded.

Layout under the data root (``root=``, ``$ROBACT_DATA`` or ``./data``):

* ``cifar10``: ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the python version) or
  ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (the binary version).
* ``cifar100``: ``cifar-100-python/{train,test}`` or ``cifar-100-binary/{train,test}.bin``
  (fine labels).
* ``mnist``: ``mnist/`` or ``MNIST/raw/`` holding ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (each optionally ``.gz``).

The CIFAR python batches are pickles. They are read with an unpickler that resolves only the
numpy array constructors such files contain and refuses every other global, so a planted file
cannot run code; the binary version involves no pickle at all.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robact_bench.data import DATASETS, DatasetInfo, DatasetNotFoundError
from robact_bench.data.families import CIFAR, MNIST

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds dicts, lists, bytes and numpy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_cifar_pickle(path: Path) -> dict[bytes, Any]:
    try:
        with path.open("rb") as fh:
            obj = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetNotFoundError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise DatasetNotFoundError(f"{path}: not a CIFAR python batch (expected a dict)")
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _images_from_rows(rows: np.ndarray, path: Path) -> torch.Tensor:
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 3072:
        raise DatasetNotFoundError(f"{path}: expected image rows of 3072 bytes, got {rows.shape}")
    return torch.from_numpy(rows.astype(np.float32).reshape(-1, 3, 32, 32) / 255.0)


def _cifar(
    root: Path,
    split: str,
    *,
    py_dir: str,
    py_files: dict[str, list[str]],
    label_key: bytes,
    bin_dir: str,
    bin_files: dict[str, list[str]],
    label_bytes: int,
    name: str,
    n_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    py, binary = root / py_dir, root / bin_dir
    xs, ys = [], []
    if py.is_dir():
        for fname in py_files[split]:
            path = py / fname
            if not path.is_file():
                raise DatasetNotFoundError(f"{name}: missing {path} (CIFAR python version)")
            batch = _read_cifar_pickle(path)
            if b"data" not in batch or label_key not in batch:
                raise DatasetNotFoundError(f"{path}: CIFAR batch without 'data' / {label_key.decode()!r}")
            xs.append(_images_from_rows(batch[b"data"], path))
            ys.append(torch.as_tensor(np.asarray(batch[label_key], dtype=np.int64)))
    elif binary.is_dir():
        rec = label_bytes + 3072
        for fname in bin_files[split]:
            path = binary / fname
            if not path.is_file():
                raise DatasetNotFoundError(f"{name}: missing {path} (CIFAR binary version)")
            raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
            if raw.size == 0 or raw.size % rec:
                raise DatasetNotFoundError(f"{path}: size {raw.size} is not a multiple of {rec}-byte records")
            raw = raw.reshape(-1, rec)
            xs.append(_images_from_rows(raw[:, label_bytes:], path))
            ys.append(torch.from_numpy(raw[:, label_bytes - 1].astype(np.int64)))
    else:
        raise DatasetNotFoundError(
            f"{name} not found: put the python version in {py} or the binary version in "
            f"{binary} (set the data root with --data-root or $ROBACT_DATA); "
            "nothing is downloaded"
        )
    x, y = torch.cat(xs), torch.cat(ys)
    if len(x) != len(y):
        raise DatasetNotFoundError(f"{name}: {len(x)} images but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise DatasetNotFoundError(f"{name}: labels outside 0..{n_classes - 1}")
    return x, y


def _load_cifar10(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _cifar(
        root,
        split,
        py_dir="cifar-10-batches-py",
        py_files={"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        label_key=b"labels",
        bin_dir="cifar-10-batches-bin",
        bin_files={"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]},
        label_bytes=1,
        name="cifar10",
        n_classes=10,
    )


def _load_cifar100(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _cifar(
        root,
        split,
        py_dir="cifar-100-python",
        py_files={"train": ["train"], "test": ["test"]},
        label_key=b"fine_labels",
        bin_dir="cifar-100-binary",
        bin_files={"train": ["train.bin"], "test": ["test.bin"]},
        label_bytes=2,
        name="cifar100",
        n_classes=100,
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DatasetNotFoundError(f"{path}: not a gzip file ({exc})") from None
    if len(data) < 4 + 4 * ndim or data[0:2] != b"\x00\x00" or data[2] != 0x08 or data[3] != ndim:
        raise DatasetNotFoundError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimensions")
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetNotFoundError(f"{path}: header says {dims.tolist()} but holds {body.size} bytes")
    return body.reshape(*dims.tolist())


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root / "mnist", root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DatasetNotFoundError(
        f"mnist not found: expected {stem}[.gz] (IDX format) in {root / 'mnist'} or "
        f"{root / 'MNIST' / 'raw'} (set the data root with --data-root or $ROBACT_DATA); "
        "nothing is downloaded"
    )


def _load_mnist(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if split == "train" else "t10k"
    img_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = _read_idx(img_path, 3), _read_idx(lbl_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise DatasetNotFoundError(f"mnist: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[1:] != (28, 28):
        raise DatasetNotFoundError(f"{img_path}: expected 28x28 images, got {images.shape[1:]}")
    if labels.size and labels.max() > 9:
        raise DatasetNotFoundError(f"{lbl_path}: labels outside 0..9")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


DATASETS.add(
    "cifar10",
    DatasetInfo(
        "cifar10",
        10,
        (3, 32, 32),
        ("train", "test"),
        False,
        "CIFAR-10 from disk (python or binary version)",
        _load_cifar10,
        CIFAR,
    ),
)
DATASETS.add(
    "cifar100",
    DatasetInfo(
        "cifar100",
        100,
        (3, 32, 32),
        ("train", "test"),
        False,
        "CIFAR-100 from disk, fine labels (python or binary version)",
        _load_cifar100,
        CIFAR,
    ),
)
DATASETS.add(
    "mnist",
    DatasetInfo(
        "mnist",
        10,
        (1, 28, 28),
        ("train", "test"),
        False,
        "MNIST from disk (IDX files, optionally gzipped)",
        _load_mnist,
        MNIST,
    ),
)
