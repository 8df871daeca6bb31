"""Architectures (every one takes ``act_layer``), the model spec, heads and checkpoints.

Models take float NCHW images in [0, 1], normalize inside, and return logits (RobustBench's
model contract).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from robact_bench.activations import ActLayer, get_activation
from robact_bench.fileio import to_jsonable
from robact_bench.models import lenet, mlp, preact_resnet, resnet, vgg, wide_resnet  # noqa: F401  (registers architectures)
from robact_bench.models.heads import HEAD_ACTS, has_rbf_output, with_drelu_head, with_rbf_output
from robact_bench.models.registry import MODELS
from robact_bench.parsing import one_line
from robact_bench.registry import check_kwargs

__all__ = ["MODELS", "ModelSpec", "create_model", "has_rbf_output", "list_models", "with_drelu_head", "with_rbf_output"]


def list_models(pattern: str = "*") -> list[str]:
    """Return the registered architecture names matching a glob ``pattern``."""
    return MODELS.list(pattern)


def create_model(arch: str, *, act_layer: ActLayer = "relu", num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a registered architecture with the given activation.

    Args:
        arch: Architecture name (see :func:`list_models`).
        act_layer: Activation name or ``nn.Module`` class used throughout the network.
        num_classes: Number of output classes.
        **kwargs: Architecture arguments (``in_chans``, ``img_size``, ``mean``, ``std``,
            ``act_kwargs``, and per-architecture ones such as ``batch_norm``).

    Returns:
        The model, in training mode, on the CPU, with 4-D weights in channels-last format.

    Example:
        >>> net = create_model("lenet5", act_layer="brelu")

    """
    name = MODELS.resolve(arch)
    factory = MODELS.get(name)
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    check_kwargs("architecture", name, factory, kwargs)
    if isinstance(act_layer, str):  # validate name and arguments once, with a clear message
        get_activation(act_layer, **dict(kwargs.get("act_kwargs") or {}))
    model = factory(act_layer=act_layer, num_classes=int(num_classes), **kwargs)
    return model.to(memory_format=torch.channels_last)  # see Normalize: faster CPU convs


def _string_keys(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _string_keys(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_string_keys(v) for v in value)
    return True


def _jsonable(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` as a dict, if it is a mapping of JSON values: string keys, finite numbers (saved as they are)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of arguments; got {type(value).__name__}")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise ValueError(f"{name} must hold only JSON values (finite numbers, strings, lists, mappings)") from None
    if not _string_keys(value):
        raise ValueError(f"{name} must hold only JSON values (mapping keys are strings)")
    return dict(value)


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _positive_float(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an int too large for a float
        return False


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model from names.

    The architecture comes from our registry, never from a checkpoint file.

    Attributes:
        arch: Registered architecture name.
        act: Registered activation name.
        act_kwargs: Activation arguments (JSON values only).
        num_classes: Output classes.
        arch_kwargs: Other architecture arguments (``in_chans``, ``img_size``, ``batch_norm``,
            ``fc_act_layer``, ...).
        drelu_head: Width of a D-ReLU head before the output layer (:func:`with_drelu_head`),
            or ``None`` for no head.
        drelu_head_m_init: Initial cap of the head's D-ReLU units (S-ReLU head: its fixed cap).
        drelu_head_act: The head's activation: ``"drelu"`` (learnable caps, the D-ReLU paper)
            or ``"srelu"`` (the fixed cap ``drelu_head_m_init``, its static predecessor).
        rbf_output: End the model with the symmetric-activation paper's final 1-D RBF layer
            (:func:`with_rbf_output`; the model then returns log-confidences ``-z^2``), which
            the ``saf`` recipe's hybrid loss needs.

    """

    arch: str
    act: str = "relu"
    act_kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    drelu_head: int | None = None
    drelu_head_m_init: float = 100.0
    drelu_head_act: str = "drelu"
    rbf_output: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", MODELS.resolve(self.arch))
        from robact_bench.activations import ACTIVATIONS

        object.__setattr__(self, "act", ACTIVATIONS.resolve(self.act))
        object.__setattr__(self, "act_kwargs", _jsonable("act_kwargs", self.act_kwargs))
        object.__setattr__(self, "arch_kwargs", _jsonable("arch_kwargs", self.arch_kwargs))
        if "act_kwargs" in self.arch_kwargs or "act_layer" in self.arch_kwargs:
            raise ValueError("give the activation as ModelSpec.act / act_kwargs, not in arch_kwargs")
        if not isinstance(self.rbf_output, bool):
            raise ValueError(f"rbf_output must be true or false; got {self.rbf_output!r}")
        if not _is_int(self.num_classes, 2):
            raise ValueError(f"num_classes must be an integer >= 2; got {self.num_classes!r}")
        if self.drelu_head is not None and not _is_int(self.drelu_head, 1):
            raise ValueError(f"drelu_head must be an integer >= 1 (the head's width) or null; got {self.drelu_head!r}")
        if not _positive_float(self.drelu_head_m_init):
            raise ValueError(f"drelu_head_m_init must be a finite number > 0; got {self.drelu_head_m_init!r}")
        if self.drelu_head_act not in HEAD_ACTS:
            raise ValueError(
                f"drelu_head_act must be one of {', '.join(HEAD_ACTS)}; got {one_line(repr(self.drelu_head_act))}"
            )

    def build(self, dataset: str | None = None) -> nn.Module:
        """Create the model (fresh weights).

        Args:
            dataset: The registered dataset the model is for: its input normalization is the
                dataset's (``DatasetInfo.mean``/``std``) unless ``arch_kwargs`` gives ``mean``
                and ``std``. ``None``: the architecture's default for its channel count. A
                checkpoint's weights carry their normalization either way.

        """
        kwargs = dict(self.arch_kwargs)
        if dataset is not None and "mean" not in kwargs and "std" not in kwargs:
            from robact_bench.data import dataset_info

            info = dataset_info(dataset)
            kwargs["mean"], kwargs["std"] = info.mean, info.std
        model = create_model(
            self.arch,
            act_layer=self.act,
            num_classes=self.num_classes,
            act_kwargs=self.act_kwargs,
            **kwargs,
        )
        if self.drelu_head is not None:
            with_drelu_head(model, self.drelu_head, m_init=self.drelu_head_m_init, act=self.drelu_head_act)
        if self.rbf_output:
            with_rbf_output(model)
        return model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a model spec must be a JSON object; got {type(data).__name__}")
        check_kwargs("model spec", "ModelSpec", cls, data, error=ValueError)
        if "arch" not in data:
            raise ValueError("a model spec needs 'arch'")
        return cls(**dict(data))

    def describe(self) -> str:
        """Short human-readable description, e.g. ``lenet5 / brelu``."""
        act = self.act + (f"({self.act_kwargs})" if self.act_kwargs else "")
        kind = "D-ReLU" if self.drelu_head_act == "drelu" else f"S-ReLU(m={self.drelu_head_m_init:g})"
        head = f" + {kind} head({self.drelu_head})" if self.drelu_head is not None else ""
        rbf = " + RBF output" if self.rbf_output else ""
        return f"{self.arch} / {act}{head}{rbf}"
