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
from robact_bench.models.layers import Normalize, check_input, default_normalization, make_act
from robact_bench.models.registry import MODELS


def _conv_block(cin: int, cout: int, act: nn.Module, pool: nn.Module, bn: bool, pad: int) -> list:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5, padding=pad)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return [*layers, act, pool]


class _LeNetBase(nn.Module):
    classifier_name = "classifier"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        return self.classifier(self.fc(self.features(self.normalize(x))))


@MODELS.register("lenet5", aliases=("lenet",))
class LeNet5(_LeNetBase):
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
        super().__init__()
        check_input(in_chans, img_size)
        side = ((img_size - 4) // 2 - 4) // 2
        if side <= 0:
            raise ValueError(f"lenet5 needs img_size >= 16; got {img_size}")
        dm, ds = default_normalization(in_chans)
        fc_act = act_layer if fc_act_layer is None else fc_act_layer
        fc_kwargs = act_kwargs if fc_act_layer is None else None
        self.normalize = Normalize(mean or dm, std or ds)
        self.features = nn.Sequential(
            *_conv_block(in_chans, 20, make_act(act_layer, 20, act_kwargs), nn.MaxPool2d(2), batch_norm, 0),
            *_conv_block(20, 50, make_act(act_layer, 50, act_kwargs), nn.MaxPool2d(2), batch_norm, 0),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(50 * side * side, 500), make_act(fc_act, 500, fc_kwargs))
        self.classifier = nn.Linear(500, num_classes)


@MODELS.register("lenet_cifar", aliases=("lenet_c10",))
class LeNetCIFAR(_LeNetBase):
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
        super().__init__()
        check_input(in_chans, img_size)
        side = img_size // 8
        if side <= 0:
            raise ValueError(f"lenet_cifar needs img_size >= 8; got {img_size}")
        dm, ds = default_normalization(in_chans)
        fc_act = act_layer if fc_act_layer is None else fc_act_layer
        fc_kwargs = act_kwargs if fc_act_layer is None else None
        self.normalize = Normalize(mean or dm, std or ds)
        self.features = nn.Sequential(
            *_conv_block(in_chans, 32, make_act(act_layer, 32, act_kwargs), nn.MaxPool2d(2), batch_norm, 2),
            *_conv_block(32, 32, make_act(act_layer, 32, act_kwargs), nn.AvgPool2d(2), batch_norm, 2),
            *_conv_block(32, 64, make_act(act_layer, 64, act_kwargs), nn.AvgPool2d(2), batch_norm, 2),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(64 * side * side, 64), make_act(fc_act, 64, fc_kwargs))
        self.classifier = nn.Linear(64, num_classes)
