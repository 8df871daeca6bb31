"""An ART classifier for our models that keeps a randomized model randomized.

Nicolae et al., *Adversarial Robustness Toolbox v1.0.0*, arXiv:1807.01069
(https://arxiv.org/abs/1807.01069).

ART 1.20.1's ``PyTorchClassifier`` wraps the model in its own ``ModelWrapper`` and calls
``wrapper.train(mode=training_mode)`` (``training_mode=False`` by default) before every
``predict``, ``loss_gradient`` and ``class_gradient``, and ``wrapper.eval()`` in its framework
predictions; ``nn.Module.train`` recurses into every submodule. Our BReLU / VBReLU draw their
sample whatever the mode, so they stay random under ART on their own. A unit whose randomness
depends on training mode (``nn.Dropout``, ``relu_dropout``) is switched off there.

:func:`to_art_classifier` hands ART a :class:`KeepRandom` wrapper whenever the model *declares*
a random submodule (an attribute ``stochastic`` that is true, the flag
:func:`robact_bench.activations.is_stochastic` reads). During each forward pass the wrapper puts
exactly those submodules (not their children) in training mode and restores them afterwards, so
ART's ``train(False)`` still freezes BatchNorm statistics while the declared units stay random.
To make a Dropout layer count, declare it: ``model.drop.stochastic = True``.

Input range: images in [0, 1], ``(N, C, H, W)``; ``clip_values=(0, 1)`` by default.

Example:
    >>> clf = to_art_classifier(model, input_shape=(1, 28, 28))
    >>> p1, p2 = clf.predict(x), clf.predict(x)  # differ for a BReLU model

"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robact_bench.activations import is_stochastic
from robact_bench.attacks.art import art_classifier
from robact_bench.attacks.common import model_device
from robact_bench.interop._common import PathLike, load_ours, spec_input_shape
from robact_bench.models import ModelSpec

logger = logging.getLogger(__name__)

__all__ = ["KeepRandom", "declared_random", "to_art_classifier"]


def declared_random(model: nn.Module) -> list[nn.Module]:
    """The submodules of ``model`` (itself included) that declare ``stochastic = True``."""
    return [m for m in model.modules() if bool(getattr(m, "stochastic", False))]


class KeepRandom(nn.Module):
    """Run ``model`` with its declared-random submodules in training mode, whatever its own mode.

    ``train()`` / ``eval()`` act on the wrapped model as usual (BatchNorm, ordinary Dropout);
    only the forward pass differs: the submodules listed by :func:`declared_random` get
    ``training = True`` for the duration of the call (each one itself, not its children) and
    their own flag back afterwards.

    Args:
        model: The model (``nn.Module`` returning logits).

    Example:
        >>> net.drop.stochastic = True
        >>> wrapped = KeepRandom(net).eval()  # net.drop stays random in forward()

    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``model(x)`` with the declared-random submodules in training mode."""
        switched = [m for m in declared_random(self.model) if not m.training]
        for m in switched:
            m.training = True
        try:
            return self.model(x)
        finally:
            for m in switched:
                m.training = False


def _shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape) or len(shape) != len(input_shape):
        raise ValueError(f"input_shape must be positive sizes like (C, H, W); got {tuple(input_shape)}")
    return shape


def _count_logits(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> int:
    """Number of logits from one forward pass on a zero image (eval mode, global RNG untouched)."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            out = model(torch.zeros((1, *input_shape), device=device))
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"the model does not take input of shape {input_shape} ({first}); pass input_shape=") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape (N, classes); got {got} for one image")
    return int(out.shape[1])


def to_art_classifier(
    model: nn.Module | PathLike,
    *,
    input_shape: Sequence[int] | None = None,
    nb_classes: int | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    device: str | torch.device | None = None,
    spec: ModelSpec | None = None,
) -> Any:
    """An ART ``PyTorchClassifier`` for one of our models that keeps declared-random units random.

    Built by :func:`robact_bench.attacks.art.art_classifier` (cross-entropy loss). When the model
    declares a random submodule (:func:`declared_random`), ART gets a :class:`KeepRandom` wrapper
    around it, so ART's ``train(False)`` does not switch a training-mode-random unit (Dropout)
    off; BReLU is random in ``eval()`` anyway. A model that declares nothing is passed as it is.

    Args:
        model: An ``nn.Module`` taking images in ``clip_values`` (``(N, C, H, W)``) and
            returning logits, or the path of one of our checkpoints (a run folder with
            ``model.json`` + ``model.safetensors``, or its stem); a checkpoint is loaded from
            safetensors only and rebuilt from our registry.
        input_shape: Shape of one input, e.g. ``(3, 32, 32)``. Default: from the checkpoint's
            or ``spec``'s architecture (``in_chans``, ``img_size``); required otherwise.
        nb_classes: Number of logits. Default: counted by one forward pass on a zero image (in
            ``eval()`` mode, with the global RNG state restored); when given, checked the same way.
        clip_values: Smallest and largest pixel value (default ``(0.0, 1.0)``).
        device: Where ART runs the model. Default: the model's device (CPU for a checkpoint).
            ART moves the model there in place.
        spec: The :class:`~robact_bench.models.ModelSpec` of an in-memory model, to infer
            ``input_shape`` from.

    Returns:
        ``art.estimators.classification.PyTorchClassifier``.

    Raises:
        ValueError: ``input_shape`` cannot be inferred, does not fit the model, or ``nb_classes``
            disagrees with the model's output; bad ``clip_values``; no checkpoint at the path.
        ImportError: ART (or its undeclared ``packaging``) is not installed.

    Example:
        >>> clf = to_art_classifier("runs/brelu/seed0")  # input shape and classes from model.json
        >>> pgd = ProjectedGradientDescent(clf, eps=0.1, eps_step=0.025, max_iter=20)

    """
    if isinstance(model, nn.Module):
        net = model
    elif isinstance(model, str | os.PathLike):
        if spec is not None:
            raise ValueError("give spec= only with an in-memory model; a checkpoint brings its own")
        net, spec, _ = load_ours(model, device=device if device is not None else "cpu")
    else:
        raise TypeError(f"model must be an nn.Module or a checkpoint path; got {type(model).__name__}")
    lo, hi = (float(v) for v in clip_values)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"clip_values must be two finite numbers (min, max) with min < max; got {clip_values}")
    if input_shape is not None:
        shape = _shape(input_shape)
    elif spec is not None and (inferred := spec_input_shape(spec)) is not None:
        shape = inferred
    else:
        raise ValueError(
            "input_shape is needed, e.g. input_shape=(3, 32, 32): it is inferred only from a checkpoint or spec="
        )
    dev = torch.device(device) if device is not None else model_device(net)
    net.to(dev)
    counted = _count_logits(net, shape, dev)
    if nb_classes is not None and int(nb_classes) != counted:
        raise ValueError(f"nb_classes={nb_classes} but the model returns {counted} logits")
    stochastic = is_stochastic(net)
    logger.debug("ART classifier: input %s, %d classes, stochastic=%s, on %s", shape, counted, stochastic, dev)
    return art_classifier(KeepRandom(net) if stochastic else net, shape, counted, clip_values=(lo, hi), device=dev)
