"""ResNet-18 for CIFAR, as in the BReLU paper.

*Robustness through Random Activation: Adversarial Training with Bernoulli Rectified Linear
Units*, Appendix A.1, Table 7.

torchvision's ResNet-18 with a 3x3 stride-1 ``conv1``, no max-pool and a ``num_classes``-way
``fc`` (He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016). Written here so
nothing imports torchvision. Every activation module is a separate instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        act_layer: ActLayer,
        act_kwargs: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = make_act(act_layer, cout, act_kwargs)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_act(act_layer, cout, act_kwargs)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward."""
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.downsample(x))


@MODELS.register("resnet18_cifar", aliases=("resnet18",))
class ResNet18CIFAR(nn.Module):
    """ResNet-18, CIFAR variant (3x3 stride-1 stem, no max-pool), ~11.2M parameters.

    Args:
        act_layer: Activation name or class, used after every BatchNorm.
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (any size works: the head pools globally).
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    classifier_name = "fc"

    def __init__(
        self,
        *,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = make_act(act_layer, 64, act_kwargs)
        stages = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(
                    BasicBlock(cin, cout, stride, act_layer, act_kwargs),
                    BasicBlock(cout, cout, 1, act_layer, act_kwargs),
                )
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        x = self.act1(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))
