"""Models of the paper *Dynamic-Max-Value ReLU* for MNIST-scale data.

The paper names a "two-hidden-layer dense network" and a "shallow convolutional network"
without giving their widths; the widths here are our choice, documented in each class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS


@MODELS.register("mlp2", aliases=("dense2", "dense"))
class MLP2(nn.Module):
    """Two-hidden-layer dense network: Flatten, (Linear, act) x 2, Linear ``classifier``.

    Args:
        act_layer: Activation name or class.
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width.
        hidden: Widths of the two hidden layers (our default: 256, 256).
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    classifier_name = "classifier"

    def __init__(
        self,
        *,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 28,
        hidden: Sequence[int] = (256, 256),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(hidden) != 2 or any(int(h) <= 0 for h in hidden):
            raise ValueError(f"hidden must be two positive widths; got {tuple(hidden)}")
        h1, h2 = (int(h) for h in hidden)
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_chans * img_size * img_size, h1),
            make_act(act_layer, h1, act_kwargs),
            nn.Linear(h1, h2),
            make_act(act_layer, h2, act_kwargs),
        )
        self.classifier = nn.Linear(h2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        return self.classifier(self.features(self.normalize(x)))


@MODELS.register("shallow_cnn", aliases=("shallowcnn",))
class ShallowCNN(nn.Module):
    """Shallow CNN: conv3x3(32) act maxpool - conv3x3(64) act maxpool - Linear(128) act - Linear.

    Args:
        act_layer: Activation name or class.
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (a multiple of 4 keeps every pixel).
        channels: The two conv widths (our default: 32, 64).
        hidden: Width of the dense layer (our default: 128).
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    classifier_name = "classifier"

    def __init__(
        self,
        *,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 28,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        side = img_size // 4
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, 3, padding=1),
            make_act(act_layer, c1, act_kwargs),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            make_act(act_layer, c2, act_kwargs),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            make_act(act_layer, hidden, act_kwargs),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        return self.classifier(self.features(self.normalize(x)))
