"""VGG-16 for CIFAR, as in the BReLU paper.

*Robustness through Random Activation: Adversarial Training with Bernoulli Rectified Linear
Units*, Appendix A.2, Table 9.

torchvision's VGG-16 (configuration D: 13 3x3 convolutions; Simonyan and Zisserman, ICLR 2015)
with, as the paper describes, several max-pools removed, a smaller hidden fully connected layer
(1024 units instead of 4096) and no Dropout. The paper's table is partly garbled; we keep the
max-pools after the first two stages (32 -> 16 -> 8), the 7x7 adaptive average pool of
torchvision, and two hidden layers of 1024 units, each followed by the activation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS

# 'M' = 2x2 max-pool. Configuration D with only the first two pools kept.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 512, 512, 512, 512, 512, 512)


@MODELS.register("vgg16_cifar", aliases=("vgg16",))
class VGG16CIFAR(nn.Module):
    """VGG-16 (13 convolutions, BatchNorm optional), CIFAR variant.

    Args:
        act_layer: Activation name or class, after every convolution and hidden dense layer.
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width.
        hidden: Width of the two hidden fully connected layers (1024).
        batch_norm: Add BatchNorm after each convolution (torchvision's ``vgg16_bn``).
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
        in_chans: int = 3,
        img_size: int = 32,
        hidden: int = 1024,
        batch_norm: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.normalize = normalizer(in_chans, img_size, mean, std)
        layers: list[nn.Module] = []
        cin = in_chans
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            cout = int(v)
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(make_act(act_layer, cout, act_kwargs))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.fc = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden),
            make_act(act_layer, hidden, act_kwargs),
            nn.Linear(hidden, hidden),
            make_act(act_layer, hidden, act_kwargs),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        x = torch.flatten(self.pool(self.features(self.normalize(x))), 1)
        return self.classifier(self.fc(x))
