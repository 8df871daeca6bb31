"""LeNet models of the symmetric-activation paper.

*Suppressing the Unusual: towards Robust CNNs using Symmetric Activation Functions*
(Q. Zhao and L. D. Griffin).

``lenet5`` follows the paper's Table 1 (MNIST): conv5x5(20) act maxpool - conv5x5(50) act
maxpool - fc(500) act - fc(classes). ``lenet_cifar`` follows Table 3 (CIFAR-10): conv5x5(32) act
maxpool - conv5x5(32) act avgpool - conv5x5(64) act avgpool - fc(64) act - fc(classes); its
convolutions are padded by 2 and its pools are 2x2 (the table gives neither).

In the paper the robust CNNs put the symmetric activation after the convolutions and keep a
ReLU after ``fc1``: pass ``fc_act_layer="relu"`` for that structure. ``batch_norm=True`` adds
BatchNorm after each convolution (the paper: "batch normalization ... is necessary to
accelerate training robust CNNs").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS


class _LeNet(nn.Module):
    """A LeNet: 5x5 convolutions (each + optional BatchNorm, activation, pool), ``fc1``, ``classifier``."""

    classifier_name = "classifier"

    def __init__(
        self,
        convs: Sequence[tuple[int, type[nn.Module]]],
        padding: int,
        fc_width: int,
        *,
        act_layer: ActLayer,
        num_classes: int,
        in_chans: int,
        img_size: int,
        fc_act_layer: ActLayer | None,
        batch_norm: bool,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        act_kwargs: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        self.normalize = normalizer(in_chans, img_size, mean, std)
        layers: list[nn.Module] = []
        side, cin = img_size, in_chans
        for cout, pool in convs:
            layers.append(nn.Conv2d(cin, cout, 5, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers += [make_act(act_layer, cout, act_kwargs), pool(2)]
            side, cin = (side + 2 * padding - 4) // 2, cout
        if side <= 0:
            raise ValueError(f"img_size {img_size} is too small for {len(convs)} conv/pool stages")
        self.features = nn.Sequential(*layers, nn.Flatten())
        fc_act = act_layer if fc_act_layer is None else fc_act_layer
        fc_kwargs = act_kwargs if fc_act_layer is None else None
        self.fc = nn.Sequential(nn.Linear(cin * side * side, fc_width), make_act(fc_act, fc_width, fc_kwargs))
        self.classifier = nn.Linear(fc_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        return self.classifier(self.fc(self.features(self.normalize(x))))


@MODELS.register("lenet5", aliases=("lenet",))
class LeNet5(_LeNet):
    """LeNet-5 of the symmetric-activation paper (Table 1), for 28x28 inputs.

    Args:
        act_layer: Activation after each convolution (and after ``fc1``).
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (28 for MNIST).
        fc_act_layer: Activation after ``fc1``; ``None`` uses ``act_layer``.
        batch_norm: Add BatchNorm after each convolution.
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    def __init__(
        self,
        *,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 28,
        fc_act_layer: ActLayer | None = None,
        batch_norm: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            [(20, nn.MaxPool2d), (50, nn.MaxPool2d)], 0, 500,
            act_layer=act_layer, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
            fc_act_layer=fc_act_layer, batch_norm=batch_norm, mean=mean, std=std, act_kwargs=act_kwargs,
        )  # fmt: skip


@MODELS.register("lenet_cifar", aliases=("lenet_c10",))
class LeNetCIFAR(_LeNet):
    """The deeper LeNet of the symmetric-activation paper (Table 3), for 32x32 inputs.

    Args:
        act_layer: Activation after each convolution (and after ``fc1``).
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (32 for CIFAR).
        fc_act_layer: Activation after ``fc1``; ``None`` uses ``act_layer``.
        batch_norm: Add BatchNorm after each convolution.
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    def __init__(
        self,
        *,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int = 32,
        fc_act_layer: ActLayer | None = None,
        batch_norm: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            [(32, nn.MaxPool2d), (32, nn.AvgPool2d), (64, nn.AvgPool2d)], 2, 64,
            act_layer=act_layer, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
            fc_act_layer=fc_act_layer, batch_norm=batch_norm, mean=mean, std=std, act_kwargs=act_kwargs,
        )  # fmt: skip
