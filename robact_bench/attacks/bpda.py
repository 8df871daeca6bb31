"""Backward Pass Differentiable Approximation (BPDA) for activations that mask gradients.

Athalye, Carlini and Wagner, *Obfuscated Gradients Give a False Sense of Security:
Circumventing Defenses to Adversarial Examples*, ICML 2018 (https://arxiv.org/abs/1802.00420),
Section 4.1: when a layer ``f`` of a defense gives useless gradients (zero, random, or
none), attack the model with ``f`` in the forward pass and a differentiable ``g ~ f`` in the
backward pass.

Here the layers are our robust activations. Each one that gives useless gradients defines
``surrogate()`` (returning ``g`` as a new module):

* BReLU / VBReLU (random): the expected value ``x * sigmoid(alpha x)``
  (:meth:`~robact_bench.activations.VBReLU.surrogate`).
* S-ReLU / D-ReLU (capped): ``nn.ReLU``, the identity beyond the cap, whose gradient the flat
  clamp zeroes (:meth:`~robact_bench.activations.DReLU.surrogate`).

:func:`bpda_model` returns a copy of a model in which each such activation is wrapped in a
:class:`BPDA` module, in one of two modes:

* ``"bpda"``: forward through the real activation, backward through the surrogate
  (``real(x).detach() + (g(x) - g(x).detach())``). The attacked model computes the real
  model's outputs. A BReLU model stays random in this mode, so the engine still applies EOT
  (:class:`~robact_bench.attacks.eot.EOTModel`) on top.
* ``"transfer"``: forward and backward through the surrogate: the attack runs on the surrogate
  model and its adversarial examples are then applied to the real model, which scores them
  (a transfer attack). A BReLU model's surrogate is deterministic, so no EOT is needed to
  attack it; the randomness is met only when the real model scores.

Activations without ``surrogate()`` (ReLU, mReLU, RBF, ...) are kept as they are; a model with
none to replace gives a count of 0, and the caller decides (the engine skips BPDA attacks on
such a model and records why).

Example:
    >>> net = create_model("lenet5", act_layer="drelu", act_kwargs={"m_init": 1.0})
    >>> attacked, n = bpda_model(net, mode="bpda")   # n == 3: three D-ReLUs wrapped
    >>> # run any attack on `attacked`; score x_adv on `net`

"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from robact_bench.activations.swap import _placement

MODES = ("bpda", "transfer")
"""The modes of :class:`BPDA` and :func:`bpda_model`."""


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"BPDA mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def has_surrogate(module: nn.Module) -> bool:
    """True when ``module``'s class defines a ``surrogate()`` method (a submodule of that name does not count)."""
    return callable(getattr(type(module), "surrogate", None))


class BPDA(nn.Module):
    """A layer whose forward value is ``real``'s and whose gradient is ``surrogate``'s.

    Args:
        real: The layer of the defended model (e.g. a BReLU or D-ReLU).
        surrogate: A differentiable approximation of ``real`` (e.g. ``real.surrogate()``).
        mode: ``"bpda"`` (value of ``real``, gradient of ``surrogate``) or ``"transfer"``
            (value and gradient of ``surrogate``).

    In ``"transfer"`` mode ``real`` is kept as a plain attribute, not a submodule: it is never
    called, so its parameters, buffers and ``stochastic`` declaration are not part of the
    attacked model (:func:`~robact_bench.activations.is_stochastic` of a transfer copy of a
    BReLU model is ``False``, and ``.to()`` does not move ``real``).

    Shape:
        Whatever ``real`` and ``surrogate`` take; they must return the same shape.

    Example:
        >>> act = BPDA(DReLU(3, m_init=1.0), nn.ReLU())
        >>> x = torch.tensor([[0.5, 2.0, -1.0]], requires_grad=True)
        >>> act(x).sum().backward()       # value [0.5, 1, 0], x.grad [1, 1, 0]

    """

    real: nn.Module
    surrogate: nn.Module

    def __init__(self, real: nn.Module, surrogate: nn.Module, mode: str = "bpda") -> None:
        super().__init__()
        self._mode = _check_mode(mode)
        self.surrogate = surrogate
        if mode == "bpda":
            self.real = real
        else:  # never called: keep its parameters, buffers and randomness out of the model
            object.__setattr__(self, "real", real)

    @property
    def mode(self) -> str:
        """``"bpda"`` or ``"transfer"``, fixed at construction."""
        return self._mode

    @property
    def stochastic(self) -> bool:
        """Whether the output is random: ``real``'s in ``"bpda"`` mode, ``surrogate``'s in ``"transfer"``."""
        used = self.real if self.mode == "bpda" else self.surrogate
        return any(bool(getattr(m, "stochastic", False)) for m in used.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``real(x)`` with ``surrogate``'s gradient (``"bpda"``), or ``surrogate(x)``."""
        s = self.surrogate(x)
        if self.mode == "transfer":
            return s
        with torch.no_grad():  # only its value is used: keep no graph for it
            value = self.real(x)
        if value.shape != s.shape:
            raise RuntimeError(f"BPDA surrogate returned shape {tuple(s.shape)}, the real layer {tuple(value.shape)}")
        return value + (s - s.detach())

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"mode={self.mode!r}"


def _generators(model: nn.Module) -> dict[int, Any]:
    """``deepcopy`` memo entries that keep every ``torch.Generator`` of ``model`` shared, not copied."""
    return {id(v): v for m in model.modules() for v in vars(m).values() if isinstance(v, torch.Generator)}


def _wrap(module: nn.Module, parent: nn.Module | None, mode: str) -> BPDA:
    surrogate = module.surrogate()
    if not isinstance(surrogate, nn.Module):
        raise TypeError(f"{type(module).__name__}.surrogate() returned a {type(surrogate).__name__}, not an nn.Module")
    device, dtype = _placement(module, parent if parent is not None else module)
    lazy = any(isinstance(p, nn.parameter.UninitializedTensorMixin) for p in surrogate.parameters())
    if device is not None and not lazy:
        surrogate = surrogate.to(device=device, dtype=dtype)
    surrogate.train(module.training)
    wrapper = BPDA(module, surrogate, mode)
    wrapper.training = module.training  # not .train(): that would reset the modes inside ``module``
    return wrapper


def bpda_model(model: nn.Module, mode: str = "bpda") -> tuple[nn.Module, int]:
    """Return a copy of ``model`` with every activation that has a surrogate wrapped in :class:`BPDA`.

    Every submodule whose class defines ``surrogate()`` (BReLU, VBReLU, S-ReLU, D-ReLU) is
    replaced by ``BPDA(module, module.surrogate(), mode)``; its subtree is not searched further.
    The copy is a ``copy.deepcopy`` of ``model`` (same device, dtype, parameter values and
    train/eval mode; surrogates are moved to the device and dtype around them); the
    ``torch.Generator`` objects of the model are shared with the copy, not duplicated, so the
    copy draws from the same random streams. ``model`` itself is not modified. A module object
    used at several places is wrapped once (one shared :class:`BPDA`) and counted once, as in
    :func:`~robact_bench.activations.swap_activations`.

    Args:
        model: Any module (images in, logits out).
        mode: ``"bpda"`` (forward through the real activations, backward through the
            surrogates) or ``"transfer"`` (forward and backward through the surrogates).

    Returns:
        ``(copy, count)``: the copy to attack and the number of modules wrapped. ``count == 0``
        means the copy computes exactly ``model``; the caller decides what to do then.

    Raises:
        ValueError: ``mode`` is not ``"bpda"`` or ``"transfer"``.

    Example:
        >>> net = create_model("lenet5", act_layer="brelu")
        >>> surrogate_net, n = bpda_model(net, mode="transfer")   # n == 3, deterministic

    """
    _check_mode(mode)
    clone = copy.deepcopy(model, memo=_generators(model))
    if has_surrogate(clone):  # the model is itself one activation
        return _wrap(clone, None, mode), 1
    replaced: dict[int, BPDA] = {}
    visited: set[int] = set()

    def walk(parent: nn.Module) -> None:
        if id(parent) in visited:
            return
        visited.add(id(parent))
        for name, child in list(parent._modules.items()):  # named_children() yields a repeated child once
            if child is None:
                continue
            new = replaced.get(id(child))
            if new is None and has_surrogate(child):
                new = replaced[id(child)] = _wrap(child, parent, mode)
            if new is not None:
                setattr(parent, name, new)
            elif not isinstance(child, BPDA):  # an existing BPDA is already approximated
                walk(child)

    walk(clone)
    return clone, len(replaced)
