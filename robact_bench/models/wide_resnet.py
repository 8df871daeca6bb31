"""Wide ResNets in RobustBench's two parameter layouts: WRN-28-10, WRN-34-10 and WRN-70-16.

Zagoruyko and Komodakis, *Wide Residual Networks*, BMVC 2016: a 3x3 stem convolution with 16
channels, then three groups of ``(depth - 4) / 6`` pre-activation basic blocks (BN, activation,
3x3 conv, BN, activation, 3x3 conv; He et al., *Identity Mappings in Deep Residual Networks*,
ECCV 2016) of ``16k``, ``32k`` and ``64k`` channels (``k`` the widening factor; the second and
third groups start with stride 2), then BN, activation, global average pooling and a linear
layer. In a block whose channel count changes, the shortcut is a 1x1 convolution applied to the
*pre-activated* input, as in the wide-ResNet code RobustBench's models were trained with.

Two state-dict layouts, so RobustBench's checkpoints load by name (checked against RobustBench
commit 78fcc9e48a07a861268f295a777b975f25155964 by ``tests/test_wide_resnets.py``):

* :class:`WideResNet` (``wrn_28_10``, ``wrn_34_10``): the layout of RobustBench's
  ``WideResNet`` (from the TRADES code; Carmon2019Unlabeled, Zhang2019Theoretically, Standard,
  ...): ``conv1``, ``block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}``, ``bn1``,
  ``fc``. Those models take raw [0, 1] input (no normalization): convert them with
  ``--normalization none``. Many of them hold an unused ``sub_block1`` group (pass
  ``sub_block1=True``).
* :class:`DMWideResNet` (``wrn_70_16``): the layout of RobustBench's ``DMWideResNet`` (Gowal et
  al., *Uncovering the Limits of Adversarial Training against Norm-Bounded Adversarial
  Examples*, 2020): ``init_conv``, ``layer.{g}.block.{i}.{batchnorm_0,conv_0,batchnorm_1,
  conv_1,shortcut}``, ``batchnorm``, ``logits``. Its strided convolutions pad like TensorFlow's
  ``SAME`` (one row and column of zeros at the bottom and right only). RobustBench's class
  normalizes inside with CIFAR-10 statistics kept *out* of its state dict, so convert those
  models with ``--normalization 0.4914,0.4822,0.4465/0.2471,0.2435,0.2616`` (CIFAR-100:
  ``0.5071,0.4865,0.4409/0.2673,0.2564,0.2762``). Its zoo entries use Swish (``silu`` here,
  the same function); the class itself defaults to ReLU, as ours does.

Our :class:`~robact_bench.models.layers.Normalize` first layer keeps its buffers under
``normalize.mean`` / ``normalize.std``, names neither layout uses. Every activation is a separate
``act_layer`` module at the place of one of RobustBench's ReLUs, under RobustBench's module name
(``relu1``, ``relu2``, ``relu``; ``relu_0``, ``relu_1``, ``relu``), whatever its kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import ActLayer
from robact_bench.models.layers import make_act, normalizer
from robact_bench.models.registry import MODELS

__all__ = ["DMWideResNet", "WideResNet", "wrn_28_10", "wrn_34_10", "wrn_70_16"]


def _blocks_per_group(depth: int) -> int:
    if int(depth) < 10 or (int(depth) - 4) % 6:
        raise ValueError(f"a wide ResNet's depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 34, ...); got {depth!r}")
    return (int(depth) - 4) // 6


def _widths(widen_factor: int) -> tuple[int, int, int, int]:
    if int(widen_factor) < 1:
        raise ValueError(f"the widening factor must be an integer >= 1; got {widen_factor!r}")
    k = int(widen_factor)
    return 16, 16 * k, 32 * k, 64 * k


class WideBasicBlock(nn.Module):
    """Pre-activation basic block, RobustBench's ``WideResNet`` names.

    ``relu1(bn1(x))`` feeds ``conv1`` and, when the channel count changes, the 1x1
    ``convShortcut``; otherwise the shortcut is ``x`` itself.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        act_layer: ActLayer,
        act_kwargs: Mapping[str, Any] | None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = make_act(act_layer, cin, act_kwargs)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = make_act(act_layer, cout, act_kwargs)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.convShortcut: nn.Conv2d | None = None
        if cin != cout or stride != 1:
            self.convShortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward."""
        pre = self.relu1(self.bn1(x))
        shortcut = x if self.convShortcut is None else self.convShortcut(pre)
        out = self.relu2(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return shortcut + self.conv2(out)


class WideBlockGroup(nn.Module):
    """``n`` blocks under ``layer`` (RobustBench's ``NetworkBlock``); the first one strided."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, act_layer: ActLayer,
                 act_kwargs: Mapping[str, Any] | None, drop_rate: float) -> None:  # fmt: skip
        super().__init__()
        self.layer = nn.Sequential(
            *(
                WideBasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, act_layer, act_kwargs, drop_rate)
                for i in range(n)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks."""
        return self.layer(x)


class WideResNet(nn.Module):
    """Wide ResNet-``depth``-``widen_factor`` in RobustBench's ``WideResNet`` (TRADES) layout.

    Args:
        depth: Total depth, ``6n + 4`` (28: four blocks per group; 34: five).
        widen_factor: Widening factor ``k``.
        act_layer: Activation name or class, after every BatchNorm (RobustBench: ReLU).
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (any size works: the head pools globally; at 32 that is
            RobustBench's 8x8 average pool).
        mean: Per-channel normalization mean (default from ``in_chans``; RobustBench's models of
            this layout take raw [0, 1] input: mean 0, std 1).
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.
        sub_block1: Also hold RobustBench's ``sub_block1``, a copy of the first group that
            ``forward`` never uses (its parameters get no gradient) but that many TRADES-code
            checkpoints contain (Carmon2019Unlabeled, Zhang2019Theoretically, ...).
        drop_rate: Dropout probability between a block's two convolutions (0: none).

    """

    classifier_name = "fc"

    def __init__(
        self,
        *,
        depth: int = 28,
        widen_factor: int = 10,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
        sub_block1: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        n = _blocks_per_group(depth)
        c0, c1, c2, c3 = _widths(widen_factor)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1); got {drop_rate!r}")
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.conv1 = nn.Conv2d(in_chans, c0, 3, stride=1, padding=1, bias=False)
        self.block1 = WideBlockGroup(n, c0, c1, 1, act_layer, act_kwargs, drop_rate)
        if sub_block1:
            self.sub_block1 = WideBlockGroup(n, c0, c1, 1, act_layer, act_kwargs, drop_rate)
        self.block2 = WideBlockGroup(n, c1, c2, 2, act_layer, act_kwargs, drop_rate)
        self.block3 = WideBlockGroup(n, c2, c3, 2, act_layer, act_kwargs, drop_rate)
        self.bn1 = nn.BatchNorm2d(c3)
        self.relu = make_act(act_layer, c3, act_kwargs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        for m in self.modules():  # the wide-ResNet code's initialization (He et al., fan-out)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        out = self.block3(self.block2(self.block1(self.conv1(self.normalize(x)))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(self.pool(out), 1))


def _same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero padding of TensorFlow's ``SAME`` for a 3x3 kernel: all sides, or bottom/right only."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class DMBlock(nn.Module):
    """Pre-activation basic block, RobustBench's ``DMWideResNet`` names and ``SAME`` padding."""

    def __init__(self, cin: int, cout: int, stride: int, act_layer: ActLayer,
                 act_kwargs: Mapping[str, Any] | None) -> None:  # fmt: skip
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2; got {stride!r}")
        self.stride = stride
        self.batchnorm_0 = nn.BatchNorm2d(cin)
        self.relu_0 = make_act(act_layer, cin, act_kwargs)
        self.conv_0 = nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=False)  # padded in forward
        self.batchnorm_1 = nn.BatchNorm2d(cout)
        self.relu_1 = make_act(act_layer, cout, act_kwargs)
        self.conv_1 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Conv2d | None = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block forward."""
        pre = self.relu_0(self.batchnorm_0(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.relu_1(self.batchnorm_1(self.conv_0(_same_pad(pre, self.stride))))
        return shortcut + self.conv_1(out)


class DMBlockGroup(nn.Module):
    """``n`` blocks under ``block`` (RobustBench's ``_BlockGroup``); the first one strided."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, act_layer: ActLayer,
                 act_kwargs: Mapping[str, Any] | None) -> None:  # fmt: skip
        super().__init__()
        self.block = nn.Sequential(
            *(DMBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, act_layer, act_kwargs) for i in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks."""
        return self.block(x)


class DMWideResNet(nn.Module):
    """Wide ResNet-``depth``-``width`` in RobustBench's ``DMWideResNet`` layout (Gowal et al. 2020).

    Args:
        depth: Total depth, ``6n + 4`` (70: eleven blocks per group).
        width: Widening factor ``k``.
        act_layer: Activation name or class, after every BatchNorm (RobustBench's zoo: Swish,
            i.e. ``silu``).
        num_classes: Output classes.
        in_chans: Input channels.
        img_size: Input height = width (any size works: the head pools globally).
        mean: Per-channel normalization mean (default from ``in_chans``). RobustBench's class
            uses 0.4914, 0.4822, 0.4465 / 0.2471, 0.2435, 0.2616 on CIFAR-10 and does not save
            them: state them when converting.
        std: Per-channel normalization std.
        act_kwargs: Arguments of the activation.

    """

    classifier_name = "logits"

    def __init__(
        self,
        *,
        depth: int = 70,
        width: int = 16,
        act_layer: ActLayer = "relu",
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        act_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        n = _blocks_per_group(depth)
        c0, c1, c2, c3 = _widths(width)
        self.normalize = normalizer(in_chans, img_size, mean, std)
        self.init_conv = nn.Conv2d(in_chans, c0, 3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(
            DMBlockGroup(n, c0, c1, 1, act_layer, act_kwargs),
            DMBlockGroup(n, c1, c2, 2, act_layer, act_kwargs),
            DMBlockGroup(n, c2, c3, 2, act_layer, act_kwargs),
        )
        self.batchnorm = nn.BatchNorm2d(c3)
        self.relu = make_act(act_layer, c3, act_kwargs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.logits = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits for images in [0, 1]."""
        out = self.relu(self.batchnorm(self.layer(self.init_conv(self.normalize(x)))))
        return self.logits(torch.flatten(self.pool(out), 1))


@MODELS.register("wrn_28_10", aliases=("wideresnet28_10", "wide_resnet28_10"))
def wrn_28_10(
    *,
    act_layer: ActLayer = "relu",
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    act_kwargs: Mapping[str, Any] | None = None,
    sub_block1: bool = False,
    drop_rate: float = 0.0,
) -> WideResNet:
    """WRN-28-10 (~36.5M parameters) in RobustBench's ``WideResNet`` layout; see :class:`WideResNet`."""
    return WideResNet(depth=28, widen_factor=10, act_layer=act_layer, num_classes=num_classes, in_chans=in_chans,
                      img_size=img_size, mean=mean, std=std, act_kwargs=act_kwargs, sub_block1=sub_block1,
                      drop_rate=drop_rate)  # fmt: skip


@MODELS.register("wrn_34_10", aliases=("wideresnet34_10", "wide_resnet34_10"))
def wrn_34_10(
    *,
    act_layer: ActLayer = "relu",
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    act_kwargs: Mapping[str, Any] | None = None,
    sub_block1: bool = False,
    drop_rate: float = 0.0,
) -> WideResNet:
    """WRN-34-10 (~46.2M parameters; TRADES' network), RobustBench's ``WideResNet`` layout; see :class:`WideResNet`."""
    return WideResNet(depth=34, widen_factor=10, act_layer=act_layer, num_classes=num_classes, in_chans=in_chans,
                      img_size=img_size, mean=mean, std=std, act_kwargs=act_kwargs, sub_block1=sub_block1,
                      drop_rate=drop_rate)  # fmt: skip


@MODELS.register("wrn_70_16", aliases=("dm_wrn_70_16", "wideresnet70_16"))
def wrn_70_16(
    *,
    act_layer: ActLayer = "relu",
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    act_kwargs: Mapping[str, Any] | None = None,
) -> DMWideResNet:
    """WRN-70-16 (~267M parameters) in RobustBench's ``DMWideResNet`` layout; see :class:`DMWideResNet`."""
    return DMWideResNet(depth=70, width=16, act_layer=act_layer, num_classes=num_classes, in_chans=in_chans,
                        img_size=img_size, mean=mean, std=std, act_kwargs=act_kwargs)  # fmt: skip
