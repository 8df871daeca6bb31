"""Datasets: embedded real data (no download) and standard formats read from disk.

Every loader returns ``(x, y)``: ``x`` a float32 NCHW tensor in [0, 1], ``y`` int64 labels.
Nothing is ever downloaded; a missing dataset raises an error naming the expected path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from robact_bench.registry import Registry

__all__ = [
    "DATASETS",
    "DatasetFamily",
    "DatasetInfo",
    "DatasetNotFoundError",
    "balanced_subset",
    "data_root",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "validation_split",
]

Loader = Callable[[str, Path], tuple[torch.Tensor, torch.Tensor]]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing or malformed; the message says what is expected where."""


@dataclass(frozen=True)
class DatasetFamily:
    """Facts that datasets of one kind share, so nothing is guessed from a dataset's name.

    Attributes:
        name: Family name (``"mnist"``, ``"cifar"``).
        mean: Per-channel mean of the input normalization a model trained on it gets.
        std: Per-channel standard deviation of that normalization.
        saf_betas: The symmetric-activation paper's strength grid for it (``beta = 0`` first),
            or ``None`` when the paper gives none.
        recipe_defaults: ``{recipe: {TrainConfig field: value}}``: what each training recipe
            sets for this kind of data, over the recipe's own dataset-independent defaults.
        description: One line: what the family holds and where its numbers come from.

    """

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    saf_betas: tuple[float, ...] | None = None
    recipe_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        frozen = {str(k): MappingProxyType(dict(v)) for k, v in self.recipe_defaults.items()}
        object.__setattr__(self, "recipe_defaults", MappingProxyType(frozen))  # shared: read-only
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"family {self.name!r}: mean and std need one value per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"family {self.name!r}: std values must be > 0; got {self.std}")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, how to load it, and the facts the rest of the package reads from it.

    Attributes:
        name: Registry name.
        num_classes: Number of labels.
        shape: ``(C, H, W)`` of one image.
        splits: The splits the loader accepts.
        embedded: True when the data ships inside an installed package (no files needed).
        description: One line: what the data is and where it comes from.
        loader: ``loader(split, root) -> (x, y)``.
        family: Its :class:`DatasetFamily`: normalization, the symmetric-activation paper's
            beta grid and the recipes' per-dataset defaults (see the properties).

    """

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    splits: tuple[str, ...]
    embedded: bool
    description: str
    loader: Loader
    family: DatasetFamily

    def __post_init__(self) -> None:
        if len(self.family.mean) != self.shape[0]:
            raise ValueError(
                f"dataset {self.name!r}: family {self.family.name!r} normalizes {len(self.family.mean)} "
                f"channel(s), the images have {self.shape[0]}"
            )

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the normalization a model built for this dataset gets."""
        return self.family.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of that normalization."""
        return self.family.std

    @property
    def saf_betas(self) -> tuple[float, ...] | None:
        """The symmetric-activation paper's strength grid for this dataset (``None``: none)."""
        return self.family.saf_betas

    def recipe_defaults(self, recipe: str) -> dict[str, Any]:
        """The config values recipe ``recipe`` (a canonical name) sets for this dataset."""
        return dict(self.family.recipe_defaults.get(recipe, {}))


DATASETS: Registry[DatasetInfo] = Registry("dataset")

ENV_ROOT = "ROBACT_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding on-disk datasets: ``root``, else ``$ROBACT_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ENV_ROOT, "data"))


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of a registered dataset."""
    return DATASETS.get(name)


def list_datasets(pattern: str = "*") -> list[str]:
    """Return the registered dataset names matching a glob ``pattern``."""
    return DATASETS.list(pattern)


def load_dataset(
    name: str, split: str = "test", *, root: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split.

    Args:
        name: Dataset name (see :func:`list_datasets`).
        split: ``"train"`` or ``"test"`` (``cifar10_sample`` has only ``"test"``).
        root: Directory of on-disk datasets (default ``$ROBACT_DATA`` or ``./data``).

    Returns:
        ``(x, y)``: float32 ``(N, C, H, W)`` in [0, 1] and int64 ``(N,)``.

    Raises:
        KeyError: unknown dataset name.
        ValueError: unknown split.
        DatasetNotFoundError: files missing or malformed (the message names path and format).

    Example:
        >>> x, y = load_dataset("mnist5k", "test")
        >>> x.shape
        torch.Size([1000, 1, 28, 28])

    """
    info = DATASETS.get(name)
    if split not in info.splits:
        raise ValueError(f"dataset {info.name!r} has splits {', '.join(info.splits)}; got {split!r}")
    x, y = info.loader(split, data_root(root))
    return x.contiguous(), y.contiguous()


def balanced_subset(y: torch.Tensor, n: int, seed: int | None = None) -> torch.Tensor:
    """Indices of ``n`` points, class-balanced: round-robin over classes.

    The k-th point of class 0, then of class 1, ..., then the (k+1)-th of each class; a fixed
    rule, so every model and every rerun sees the same points. Within a class the order is the
    index order, or with ``seed`` a permutation drawn from ``torch.Generator().manual_seed(seed)``
    (one per class, in class order): a seeded subset, the same on every run with that seed.
    """
    if n > len(y):
        raise ValueError(f"asked for {n} examples but the split has {len(y)}")
    if n < 1:
        raise ValueError(f"asked for {n} examples; need at least 1")
    per_class = [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    rank = torch.empty(len(y), dtype=torch.long)
    for idx in per_class:
        rank[idx] = torch.arange(len(idx)) if gen is None else torch.randperm(len(idx), generator=gen)
    order = sorted(range(len(y)), key=lambda i: (int(rank[i]), int(y[i]), i))
    return torch.tensor(order[:n], dtype=torch.long)


VAL_SPLIT_SEED = 0


def validation_split(y: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split training indices into ``(train, validation)``, class-stratified.

    Within each class a fixed permutation (seed ``VAL_SPLIT_SEED``, independent of the
    training seed) puts ``round(fraction * n_class)`` images in the validation split, so every
    seed of a run and every recipe validate on the same images. Carve it from the *training*
    split only: the test set is for the final evaluation.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {fraction}")
    gen = torch.Generator().manual_seed(VAL_SPLIT_SEED)
    val_parts = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        val_parts.append(idx[: round(fraction * len(idx))])
    val = torch.sort(torch.cat(val_parts)).values if val_parts else torch.empty(0, dtype=torch.long)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[val] = False
    return torch.nonzero(keep).flatten(), val


from robact_bench.data import disk, embedded  # noqa: E402,F401  (registers the datasets)
