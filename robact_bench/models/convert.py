"""Convert a plain PyTorch state dict (``.pt`` / ``.pth``) into one of our checkpoints.

The only way a ``.pt`` file enters the package: :func:`convert_state_dict` reads it with
``torch.load(path, map_location="cpu", weights_only=True)`` (torch's restricted unpickler: only
tensors, numbers, strings and containers; no class of the file is imported and no code of the
file runs), takes the tensors, builds the architecture from our registry by name (never from the
file), checks that names, shapes and dtypes fit (:func:`~robact_bench.models.checkpoint.check_state_dict`,
the same checks :func:`~robact_bench.models.checkpoint.load_checkpoint` makes) and writes
``<out>/model.safetensors`` + ``<out>/model.json``. From then on only safetensors is read.

Two things a file made outside robact_bench never says, so the caller states them:

* **the input normalization** (``normalization``): every registered architecture takes images
  in [0, 1] and normalizes them in its first layer, whose ``mean``/``std`` are never read from
  the file. ``"none"`` is a model that takes raw [0, 1] images (pyautoattack's example ResNet-18,
  most RobustBench models); a ``(mean, std)`` pair is one trained on normalized images. A
  file that holds our own normalization buffers must agree with the stated values.
* **the parameter names** where its layout differs from ours (``rename``, or a named ``layout``:
  ``kuangliu`` for the common CIFAR ResNet-18 layout of kuangliu's pytorch-cifar, also
  pyautoattack's ``examples/model_test.pt``, which names its shortcut ``shortcut`` and its head
  ``linear`` where ours, torchvision's, says ``downsample`` and ``fc``).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import check_state_dict, checkpoint_paths, save_checkpoint
from robact_bench.models.layers import Normalize

__all__ = [
    "LAYOUTS",
    "ConvertedCheckpoint",
    "Normalization",
    "convert_state_dict",
    "extract_state_dict",
    "load_tensors_only",
    "parse_normalization",
    "rename_keys",
]

#: A model's input normalization: ``"none"`` (raw [0, 1] input) or ``(mean, std)`` per channel.
Normalization = str | tuple[Sequence[float], Sequence[float]]

#: Named parameter layouts of other code bases: (their name, ours) for whole dotted components.
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    # kuangliu/pytorch-cifar ResNet (and pyautoattack's example model): BasicBlock.shortcut, ResNet.linear
    "kuangliu": (("shortcut", "downsample"), ("linear", "fc")),
}

DDP_PREFIX = "module."
_NESTED_KEYS = ("state_dict", "model")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", re.S)


def _refusal_reason(exc: BaseException) -> str:
    """The one informative line of a ``torch.load(weights_only=True)`` refusal.

    torch's message is several lines, starts with advice to retry with ``weights_only=False``
    and holds terminal escape codes; the reason itself (``Unsupported global: GLOBAL io.open
    ...``) follows ``WeightsUnpickler error:``.
    """
    text = _ANSI.sub("", str(exc))
    found = _UNPICKLER_REASON.search(text)
    if found:
        return found.group(1).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def load_tensors_only(path: str | os.PathLike[str], data: bytes | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with a one-line error.

    Args:
        path: A ``.pt`` / ``.pth`` file (torch's zip format or a legacy pickle).
        data: The file's bytes, when already read (``path`` then only names it in messages).

    Returns:
        The file's content: tensors, numbers, strings and containers only.

    Raises:
        ValueError: ``<path>: not a plain tensor checkpoint, refused (...)`` when torch's
            restricted unpickler refuses the file (it names a class or function, i.e. code), or
            the file is not a torch file at all; ``<path>: cannot read`` for I/O errors.

    """
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": our own error says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # every refusal of the restricted unpickler, and non-torch files
        raise ValueError(
            f"{path}: not a plain tensor checkpoint, refused (torch.load with weights_only=True: "
            f"{_refusal_reason(exc)}); nothing in it was run"
        ) from None


def extract_state_dict(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in what :func:`load_tensors_only` returned.

    Accepts a mapping of names to tensors, or one nested under ``"state_dict"`` or ``"model"``
    (training scripts save ``{"epoch": ..., "state_dict": ...}``). A ``module.`` prefix on
    every name (``DistributedDataParallel``) is removed.

    Args:
        obj: The loaded object.
        source: The file, for messages.

    Returns:
        ``(tensors, stripped prefix or None)``.

    Raises:
        ValueError: one line: ``obj`` is not a mapping, holds no tensors, or holds something
            other than string names and tensors.

    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: holds a {type(obj).__name__}, not a state dict (a dict of names to tensors)")
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is not None:
            obj = nested
    if not obj:
        raise ValueError(f"{source}: holds an empty dict, not a state dict (a dict of names to tensors)")
    bad = [
        f"{k!r} ({type(v).__name__})"
        for k, v in obj.items()
        if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    ]
    if bad:
        raise ValueError(
            f"{source}: not a state dict: entries that are not name -> tensor: {'; '.join(bad[:5])}"
            f"{'...' if len(bad) > 5 else ''}"
        )
    tensors = dict(obj)
    if all(k.startswith(DDP_PREFIX) for k in tensors):
        return {k[len(DDP_PREFIX) :]: v for k, v in tensors.items()}, DDP_PREFIX
    return tensors, None


def parse_normalization(text: str) -> Normalization:
    """``"none"`` or ``"M1,M2,.../S1,S2,..."`` (means, a slash, stds) as a :data:`Normalization`.

    Raises:
        ValueError: one line saying what is allowed.

    """
    allowed = "give 'none' (the model takes raw [0, 1] images) or MEANS/STDS such as 0.49,0.48,0.45/0.25,0.24,0.26"
    if text.strip().lower() == "none":
        return "none"
    parts = text.split("/")
    try:
        mean, std = ([float(v) for v in part.split(",")] for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        mean, std = None, None
    if mean is None or std is None or len(mean) != len(std):
        raise ValueError(f"--normalization {text!r}: {allowed}")
    if not all(math.isfinite(v) for v in (*mean, *std)) or any(v <= 0 for v in std):
        raise ValueError(f"--normalization {text!r}: means must be finite and stds finite and > 0")
    return (tuple(mean), tuple(std))


def _normalization_kwargs(normalization: Normalization, in_chans: int) -> dict[str, list[float]]:
    if isinstance(normalization, str):
        if normalization != "none":
            raise ValueError(f"normalization {normalization!r}: give 'none' or a (mean, std) pair")
        return {"mean": [0.0] * in_chans, "std": [1.0] * in_chans}
    mean, std = ([float(v) for v in values] for values in normalization)
    if len(mean) != len(std) or not all(math.isfinite(v) for v in (*mean, *std)) or any(v <= 0 for v in std):
        raise ValueError(f"normalization {normalization!r}: one finite mean and one finite std > 0 per channel")
    return {"mean": mean, "std": std}


def rename_keys(tensors: Mapping[str, torch.Tensor], pairs: Sequence[tuple[str, str]],
                source: str) -> tuple[dict[str, torch.Tensor], int]:  # fmt: skip
    """Rename whole dotted components of every key.

    ``("shortcut", "downsample")`` turns ``layer1.0.shortcut.0.weight`` into
    ``layer1.0.downsample.0.weight``.

    Returns:
        ``(renamed tensors, number of keys changed)``.

    Raises:
        ValueError: two keys end up with one name.

    """
    table = dict(pairs)
    out: dict[str, torch.Tensor] = {}
    changed = 0
    for key, value in tensors.items():
        new = ".".join(table.get(part, part) for part in key.split("."))
        if new in out:
            raise ValueError(f"{source}: renaming gives two tensors the name {new!r}; check the layout or --rename")
        changed += new != key
        out[new] = value
    return out, changed


@dataclass(frozen=True)
class ConvertedCheckpoint:
    """What :func:`convert_state_dict` wrote.

    Attributes:
        weights: ``<out>/model.safetensors``.
        metadata_path: ``<out>/model.json`` (what ``robact-bench eval --checkpoint`` reads).
        spec: The model spec recorded in it.
        n_tensors: Tensors converted.
        source_sha256: SHA-256 of the source file.
        stripped_prefix: ``"module."`` when a DDP prefix was removed, else ``None``.

    """

    weights: Path
    metadata_path: Path
    spec: ModelSpec
    n_tensors: int
    source_sha256: str
    stripped_prefix: str | None


def convert_state_dict(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    spec: ModelSpec,
    *,
    normalization: Normalization,
    dataset: str | None = None,
    name: str | None = None,
    layout: str | None = None,
    rename: Sequence[tuple[str, str]] = (),
    overwrite: bool = False,
) -> ConvertedCheckpoint:
    """Convert a PyTorch state dict file into our checkpoint format (safetensors + JSON).

    The file is read with ``torch.load(weights_only=True)`` (no code in it runs); the
    architecture comes from ``spec`` (our registry), never from the file. Nothing is written
    unless every tensor fits.

    Args:
        source: The ``.pt`` / ``.pth`` file: a dict of tensors, or one under ``"state_dict"`` /
            ``"model"``; a ``module.`` prefix is removed.
        out: Folder for ``model.safetensors`` + ``model.json``.
        spec: The architecture and activation the tensors belong to; its ``mean``/``std``
            architecture arguments are replaced by ``normalization``.
        normalization: The model's input normalization, never read from the file: ``"none"``
            (it takes raw [0, 1] images) or ``(mean, std)`` per input channel.
        dataset: Dataset the model was trained on, recorded so ``robact-bench eval`` finds it.
        name: Model name recorded in the metadata (default: the name of ``out``).
        layout: A named layout of :data:`LAYOUTS` whose parameter names are translated to ours.
        rename: Further ``(their component, ours)`` renames, applied after ``layout``.
        overwrite: Replace a checkpoint already in ``out``.

    Returns:
        A :class:`ConvertedCheckpoint`. The metadata holds ``converted`` (source file name,
        SHA-256, size, stripped prefix) and ``training`` (``name``, ``dataset``).

    Raises:
        ValueError: one line: the source is missing or not a plain tensor file, the tensors do
            not fit ``spec`` (naming each tensor, the shape/dtype expected and the one found),
            or ``out`` is a file or already holds a checkpoint and ``overwrite`` is off.

    Example:
        >>> spec = ModelSpec("lenet5", "relu")
        >>> convert_state_dict("lenet5_mnist.pt", "runs/converted/lenet5", spec, normalization="none",
        ...                    dataset="mnist5k")

    """
    src = Path(source)
    if not src.is_file():
        raise ValueError(f"{src}: no such file (give a .pt/.pth state dict)")
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"{Path(out)}: not a folder (give a folder for model.safetensors + model.json)")
    weights, meta_path = checkpoint_paths(Path(out) / "model")
    if not overwrite and (weights.exists() or meta_path.exists()):
        raise ValueError(f"{Path(out)} already holds a checkpoint: pass overwrite (--overwrite) or another folder")
    try:
        data = src.read_bytes()  # read once: the hash is that of the bytes converted
    except OSError as exc:
        raise ValueError(f"{src}: cannot read ({exc.strerror or exc})") from None
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(sorted(LAYOUTS))}")
    model = spec.build()
    norms = [m for m in model.modules() if isinstance(m, Normalize)]
    in_chans = int(norms[0].mean.numel())
    stated = _normalization_kwargs(normalization, in_chans)
    if len(stated["mean"]) != in_chans:
        raise ValueError(f"mean needs {in_chans} values (one per input channel); got {stated['mean']}")
    for m in norms:  # the model as `spec` with the stated mean/std would build it, without building it twice
        m.mean.copy_(torch.tensor(stated["mean"]).view_as(m.mean))
        m.std.copy_(torch.tensor(stated["std"]).view_as(m.std))
    spec = _with_normalization(spec, stated)
    tensors, prefix = extract_state_dict(load_tensors_only(src, data), str(src))
    pairs = (*(LAYOUTS[layout] if layout is not None else ()), *rename)
    tensors, renamed = rename_keys(tensors, pairs, str(src))
    tensors = _stated_normalization(tensors, model, str(src))
    try:
        check_state_dict(tensors, model, spec, source=str(src))
    except ValueError as exc:
        raise ValueError(f"{exc}{_layout_hint(tensors, model)}") from None
    model.load_state_dict(tensors, strict=True)
    model.eval()
    sha = hashlib.sha256(data).hexdigest()
    training: dict[str, Any] = {"name": name if name is not None else Path(out).resolve().name}
    if dataset is not None:
        training["dataset"] = dataset
    metadata = {
        "converted": {
            "from": "PyTorch state dict, read with torch.load(weights_only=True)",
            "source": src.name,
            "source_sha256": sha,
            "source_bytes": len(data),
            "stripped_prefix": prefix,
            "n_tensors": len(tensors),
            "normalization": normalization if isinstance(normalization, str) else stated,
            "layout": layout,
            "renamed": [list(p) for p in pairs],
            "renamed_tensors": renamed,
        },
        "training": training,
    }
    save_checkpoint(weights, model, spec, metadata)
    return ConvertedCheckpoint(weights, meta_path, spec, len(tensors), sha, prefix)


def _with_normalization(spec: ModelSpec, norm: dict[str, list[float]]) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, arch_kwargs={**spec.arch_kwargs, **norm})


def _stated_normalization(tensors: dict[str, torch.Tensor], model: torch.nn.Module,
                          source: str) -> dict[str, torch.Tensor]:  # fmt: skip
    """The file's tensors with the model's :class:`Normalize` buffers set to the stated values.

    A file from elsewhere has no such buffers; one of ours has them, and they must then agree with
    the stated normalization (a mismatch is an error, never silently one or the other).
    """
    out = dict(tensors)
    for prefix, module in model.named_modules():
        if not isinstance(module, Normalize):
            continue
        for buf in ("mean", "std"):
            key = f"{prefix}.{buf}" if prefix else buf
            stated = getattr(module, buf)
            found = out.get(key)
            if found is not None and (found.shape != stated.shape or not torch.allclose(found.float(), stated)):
                raise ValueError(
                    f"{source}: the file's {key} {found.flatten().tolist()} differs from the stated normalization "
                    f"{stated.flatten().tolist()}; state the model's own (--normalization)"
                )
            out[key] = stated.clone()
    return out


def _layout_hint(tensors: Mapping[str, torch.Tensor], model: torch.nn.Module) -> str:
    """``"; the names look like ...: try --layout X"`` when a known layout explains the misfit."""
    ours = set(model.state_dict())
    for name, pairs in LAYOUTS.items():
        renamed, changed = rename_keys(tensors, pairs, "")
        if changed and set(renamed) == ours:
            return f"; the names are those of the {name} layout: convert with --layout {name}"
    return ""
