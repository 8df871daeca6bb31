"""Reduced-precision attacks: the attacked model's layers under bf16 autocast, everything else fp32.

:class:`Bf16Model` wraps the module an attack sees. Its forward pass runs the wrapped model under
``torch.autocast(device_type=<the input's device>, dtype=torch.bfloat16)`` and returns the logits
cast to float32, so each library's own arithmetic (losses, DLR, step sizes, projections,
AutoAttack's checks) stays in fp32; only the model's layers run in bf16. Scoring never goes
through it: the engine scores every image on the unwrapped fp32 model.

A device without native bf16 (a CPU without AVX512-BF16 or AMX, a CUDA GPU where
``torch.cuda.is_bf16_supported()`` is false) is refused (:func:`check_precision`): a result
records the precision it was attacked in, and a silent fallback to fp32 would make the recorded
mode untrue, while CPU emulation of bf16 is slower than fp32 and so defeats the mode's purpose.

Example:
    >>> attacked = Bf16Model(model)      # model: any fp32 nn.Module
    >>> attacked(x).dtype                # torch.float32

"""

from __future__ import annotations

import torch
from torch import nn

#: the precisions an evaluation's attacks can run in
PRECISIONS = ("fp32", "bf16")

_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_supported(device: torch.device | str) -> bool:
    """True when ``device`` computes bf16 natively (CUDA: ``is_bf16_supported``; CPU: AVX512-BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if mkldnn is not None and torch.backends.mkldnn.is_available():
            try:
                if not bool(mkldnn()):
                    return False
            except RuntimeError:
                return False
        return bool(_cpu_flags() & set(_CPU_FLAGS))
    return False


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ``ValueError`` (one line) when ``precision`` is unknown or ``device`` cannot run it natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(
            f"precision bf16 needs native bf16 on {torch.device(device)} (CPU: avx512_bf16 or amx_bf16; "
            "CUDA: torch.cuda.is_bf16_supported()), which it lacks: use precision fp32"
        )


class Bf16Model(nn.Module):
    """The wrapped model's forward pass under bf16 autocast, its logits returned as float32.

    Args:
        model: The module the attack sees (images in, logits out).

    Shape:
        Input ``(N, *)`` (any float dtype); output ``(N, C)``, float32.

    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` computed under bf16 autocast, cast to float32."""
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = self.model(x)
        return out.float()


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for ``fp32``, :class:`Bf16Model` around it for ``bf16``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return Bf16Model(model) if precision == "bf16" else model
