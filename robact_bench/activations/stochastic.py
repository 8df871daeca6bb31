"""Bernoulli ReLU (BReLU) and Variable BReLU (VBReLU).

From *Robustness through Random Activation: Adversarial Training with Bernoulli Rectified
Linear Units* (anonymous submission under double-blind review): ``y = x * b`` with
``b ~ Bernoulli(sigmoid(alpha * x))``. BReLU is ``alpha = 1``; VBReLU takes any ``alpha > 0``
(paper Section 4.4.2: ``alpha < 1`` is more random, ``alpha > 1`` less).

The unit is random in training **and** in evaluation (the paper's point), so a model that uses
it is a randomized defense: evaluate it with EOT and never with a single forward pass.

The forward pass always draws an exact Bernoulli sample ``b = 1[u < sigmoid(alpha x)]``
with ``u ~ U(0, 1)`` (equivalently ``b = 1[alpha x > logit(u)]``); the three gradient modes
change the backward pass only, so the model that is attacked and the model that is scored are
the same random function:

* ``straight_through`` (default): ``b`` is held constant, ``dy/dx = b``.
* ``expected``: the gradient of the expected value ``x * sigmoid(alpha x)``.
* ``relaxed``: the reparameterized Concrete (Gumbel-sigmoid) relaxation
  ``s = sigmoid((alpha x - logit(u)) / temperature)`` (Maddison et al. 2017; Jang et al. 2017),
  whose hard value is ``b``; the gradient is that of ``x * s``.

``deterministic=True`` replaces the sample by its expectation, ``x * sigmoid(alpha x)``
(the ablation, and the BPDA surrogate of the random unit).
"""

from __future__ import annotations

import torch
from torch import nn

from robact_bench.activations import ACTIVATIONS
from robact_bench.activations._validate import positive

GRAD_MODES = ("straight_through", "expected", "relaxed")
_U_EPS = 1e-6


@ACTIVATIONS.register("vbrelu", aliases=("variable_brelu",))
class VBReLU(nn.Module):
    """Variable Bernoulli ReLU: ``x * Bernoulli(sigmoid(alpha * x))``.

    Args:
        alpha: Slope of the sigmoid that gives the keep probability; must be > 0.
        deterministic: Return the expected value ``x * sigmoid(alpha * x)`` instead of a sample.
        grad: Gradient mode, one of ``straight_through``, ``expected``, ``relaxed``.
        temperature: Temperature of the ``relaxed`` gradient; must be > 0.
        generator: Optional ``torch.Generator`` (on the input's device) for the samples;
            by default the global RNG is used, so ``torch.manual_seed`` repeats a run.

    Shape:
        Any shape; output has the input's shape.

    Example:
        >>> torch.manual_seed(0)
        >>> act = VBReLU(alpha=5.0)
        >>> y = act(torch.randn(4, 8))

    """

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        deterministic: bool = False,
        grad: str = "straight_through",
        temperature: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.alpha = positive("alpha", alpha, "the slope of sigmoid(alpha * x)")
        if grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {', '.join(GRAD_MODES)}; got {grad!r}")
        self.grad = grad
        self.temperature = positive("temperature", temperature, "of the relaxed gradient")
        self.deterministic = bool(deterministic)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    @property
    def stochastic(self) -> bool:
        """True unless ``deterministic=True``: the output is random in eval() mode too."""
        return not self.deterministic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * b`` with ``b ~ Bernoulli(sigmoid(alpha x))`` (or its expectation)."""
        z = x if self.alpha == 1.0 else self.alpha * x
        if self.deterministic:
            return x * torch.sigmoid(z)
        u = torch.empty_like(x).uniform_(0.0, 1.0, generator=self.generator)
        keep = u < torch.sigmoid(z.detach())
        sample = torch.where(keep, x, 0.0)  # x * b without materializing b as floats
        if self.grad == "straight_through":
            return sample
        if self.grad == "expected":
            surrogate = x * torch.sigmoid(z)
        else:
            u = u.clamp_(_U_EPS, 1.0 - _U_EPS)
            surrogate = x * torch.sigmoid((z - (torch.log(u) - torch.log1p(-u))) / self.temperature)
        # value: exactly the sample; gradient: the surrogate's
        return sample.detach() + (surrogate - surrogate.detach())

    def surrogate(self) -> nn.Module:
        """The BPDA surrogate: a new deterministic unit ``x * sigmoid(alpha x)``.

        The expected value of the random unit (Athalye et al. 2018, BPDA/EOT): differentiable
        everywhere and free of sampling, so an attack can follow its gradient while the real,
        random unit gives the forward value (:mod:`robact_bench.attacks.bpda`).
        """
        return VBReLU(self.alpha, deterministic=True)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"alpha={self.alpha}, deterministic={self.deterministic}, grad={self.grad!r}" + (
            f", temperature={self.temperature}" if self.grad == "relaxed" else ""
        )


@ACTIVATIONS.register("brelu", aliases=("bernoulli_relu",))
class BReLU(VBReLU):
    """Bernoulli ReLU: :class:`VBReLU` with ``alpha = 1`` (use ``vbrelu`` for other alphas).

    Args:
        deterministic: Return the expected value ``x * sigmoid(x)`` instead of a sample.
        grad: Gradient mode, one of ``straight_through``, ``expected``, ``relaxed``.
        temperature: Temperature of the ``relaxed`` gradient; must be > 0.
        generator: Optional ``torch.Generator`` for the samples (default: global RNG).

    """

    def __init__(
        self,
        *,
        deterministic: bool = False,
        grad: str = "straight_through",
        temperature: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            1.0,
            deterministic=deterministic,
            grad=grad,
            temperature=temperature,
            generator=generator,
        )
