"""Small building blocks shared by the architectures."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer, get_activation
from robact_bench.data.families import CIFAR, MNIST

MNIST_MEAN, MNIST_STD = MNIST.mean, MNIST.std
CIFAR10_MEAN, CIFAR10_STD = CIFAR.mean, CIFAR.std
# The normalization of a model built with neither a dataset nor mean/std (``create_model("lenet5")``):
# the dataset families' own, by channel count; a model built for a dataset (training, a run's
# config) takes its ``DatasetInfo.mean``/``std`` instead (:meth:`robact_bench.models.ModelSpec.build`).
_UNSTATED = {len(f.mean): (f.mean, f.std) for f in (MNIST, CIFAR)}


def default_normalization(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a model built without a dataset and without explicit ones.

    1 and 3 channels: the MNIST and CIFAR families' statistics; otherwise 0.5 / 0.5.
    """
    return _UNSTATED.get(in_chans, ((0.5,) * in_chans, (0.5,) * in_chans))


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so the model takes raw images in [0, 1].

    The output is in channels-last memory format: on the CPU, small convolution and max-pool
    layers run about 3x faster that way (measured on LeNet-5 with torch 2.13); the values are
    unchanged. :func:`~robact_bench.models.create_model` stores conv weights channels-last too.

    Args:
        mean: Per-channel means (one value per input channel).
        std: Per-channel standard deviations, all > 0.

    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel; got {mean} and {std}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std values must be > 0; got {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize an ``(N, C, H, W)`` batch."""
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def make_act(
    act_layer: ActLayer, num_features: int | None = None, act_kwargs: Mapping[str, Any] | None = None
) -> nn.Module:
    """Build an activation; per-feature ones (D-ReLU) get ``num_features`` when they take it."""
    kwargs = dict(act_kwargs or {})
    factory = act_layer
    if isinstance(act_layer, str):
        from robact_bench.activations import ACTIVATIONS

        factory = ACTIVATIONS.get(act_layer)
    if num_features is not None and "num_features" not in kwargs:
        try:
            takes = "num_features" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            kwargs["num_features"] = num_features
    return get_activation(act_layer, **kwargs)


def normalizer(in_chans: int, img_size: int, mean: Sequence[float] | None, std: Sequence[float] | None) -> Normalize:
    """Validate an architecture's input geometry; return its :class:`Normalize` first layer.

    ``mean``/``std`` default to :func:`default_normalization` of ``in_chans``.
    """
    if int(in_chans) <= 0:
        raise ValueError(f"in_chans must be a positive integer; got {in_chans!r}")
    if int(img_size) <= 0:
        raise ValueError(f"img_size must be a positive integer; got {img_size!r}")
    dm, ds = default_normalization(in_chans)
    mean, std = mean or dm, std or ds
    if len(mean) != in_chans:
        raise ValueError(f"mean needs {in_chans} values (one per input channel); got {list(mean)}")
    return Normalize(mean, std)
