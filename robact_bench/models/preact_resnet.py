"""Pre-activation ResNet-18 for CIFAR, in RobustBench's ``PreActResNet`` layout.

He et al., *Identity Mappings in Deep Residual Networks*, ECCV 2016: each basic block computes
``conv2(act(bn2(conv1(act(bn1(x))))))`` and adds a shortcut, so BN and activation come *before*
each convolution. The CIFAR ResNet-18 shape: a 3x3 stride-1 stem convolution with 64 channels
and no activation after it, four stages of two blocks (64, 128, 256, 512 channels; stages 2-4
start with stride 2), global average pooling and a linear layer.

Parameter names are those of RobustBench's ``PreActResNet(PreActBlock, [2, 2, 2, 2])``
(Andriushchenko2020Understanding, Wong2020Fast; checked against RobustBench commit
78fcc9e48a07a861268f295a777b975f25155964 by ``tests/test_wide_resnets.py``): ``conv1``,
``layer{1..4}.{0,1}.{bn1,conv1,bn2,conv2}``, ``shortcut.0`` (a 1x1 convolution without BN,
where the shape changes) and ``linear``. Two details of that code are kept, each as an
argument with RobustBench's default:

* ``out_shortcut=False``: the projection shortcut reads the block's raw input ``x``
  (RobustBench's ``PreActBlock``); ``True`` reads the pre-activated ``act(bn1(x))``, as He et al.
  and RobustBench's ``PreActBlockV2`` (Rice2020Overfitting L2, Kireev2021Effectiveness) do.
* ``bn_before_fc=False``: no BN + activation after the last stage; ``True`` adds them (as
  ``bn``), as He et al. and the ``PreActBlockV2`` models do.

RobustBench's class uses functional ReLUs; here each is a separate ``act_layer`` module
(``act1``, ``act2`` in a block, ``act`` after ``bn``). RobustBench's models of this layout take
raw [0, 1] input, or normalize with buffers (``mu``/``sigma``) their checkpoints do not hold:
convert with ``--normalization none`` (Andriushchenko2020Understanding) or
``--normalization 0.4914,0.4822,0.4465/0.2471,0.2435,0.2616`` (Wong2020Fast, Rice2020Overfitting
L2). Our own normalization buffers are ``normalize.mean`` / ``normalize.std``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS

__all__ = ["PreActBlock", "PreActResNet18"]


class PreActBlock(nn.Module):
    """Pre-activation basic block with an identity or 1x1-conv (``shortcut.0``) shortcut."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        act_layer: ActLayer,
        act_kwargs: Mapping[str, Any] | None,
        out_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.out_shortcut = bool(out_shortcut)
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = make_act(act_layer, cin, act_kwargs)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_act(act_layer, cout, act_kwargs)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward."""
        pre = self.act1(self.bn1(x))
        shortcut = x
        if self.shortcut is not None:
            shortcut = self.shortcut(pre if self.out_shortcut else x)
        return self.conv2(self.act2(self.bn2(self.conv1(pre)))) + shortcut


@MODELS.register("preact_resnet18", aliases=("preactresnet18", "preact_resnet18_cifar"))
class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18, CIFAR variant, ~11.2M parameters.

    Args:
        act_layer: Activation name or class, after every BatchNorm (RobustBench: ReLU).
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (any size works: the head pools globally; at 32 that is
            RobustBench's 4x4 average pool).
        mean: Per-channel normalization mean (default from ``in_chans``).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.
        out_shortcut: Projection shortcuts read the pre-activated input (see the module notes).
        bn_before_fc: BN + activation after the last stage (see the module notes).

    """

    classifier_name = "linear"

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
        out_shortcut: bool = False,
        bn_before_fc: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        stages = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(
                    PreActBlock(cin, cout, stride, act_layer, act_kwargs, out_shortcut),
                    PreActBlock(cout, cout, 1, act_layer, act_kwargs, out_shortcut),
                )
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn: nn.BatchNorm2d | None = None
        self.act: nn.Module | None = None
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(512)
            self.act = make_act(act_layer, 512, act_kwargs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.bn is not None and self.act is not None:
            out = self.act(self.bn(out))
        return self.linear(torch.flatten(self.pool(out), 1))
