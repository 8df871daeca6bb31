"""Bernoulli ReLU (BReLU) and Variable BReLU (VBReLU).

From *Robustness through Random Activation: Adversarial Training with Bernoulli Rectified
Linear Units* (anonymous submission under double-blind review): ``y = x * b`` with
``b ~ Bernoulli(sigmoid(alpha * x))``. BReLU is ``alpha = 1``; VBReLU takes any ``alpha > 0``
(paper Section 4.4.2: ``alpha < 1`` is more random, ``alpha > 1`` less).

The unit is random in training **and** in evaluation (the paper's point), so a model that uses
it is a randomized defense: evaluate it with EOT and never with a single forward pass.

The forward pass always draws a Bernoulli sample ``b = 1[u < sigmoid(alpha x)]``
(equivalently ``b = 1[alpha x > logit(u)]``) with ``u`` on a 16-bit grid,
``u = (j + 1/2) / 2**16``, ``j`` uniform on ``{0, ..., 65535}`` (:func:`uniform16`): 16 random
bits per draw instead of a float's 24, so a draw costs a quarter of a generator word. The keep
probability of a unit whose ``sigmoid(alpha x)`` is ``p`` is then exactly
``ceil(2**16 p - 1/2) / 2**16``, within ``2**-17`` (7.6e-6) of ``p`` (the tolerance the tests check
by enumerating all 65,536 words). The three gradient modes change the backward pass only, so the
model that is attacked and the model that is scored are the same random function:

* ``straight_through`` (default): ``b`` is held constant, ``dy/dx = b``.
* ``expected``: the gradient of the expected value ``x * sigmoid(alpha x)``.
* ``relaxed``: the reparameterized Concrete (Gumbel-sigmoid) relaxation
  ``s = sigmoid((alpha x - logit(u)) / temperature)`` (Maddison et al. 2017; Jang et al. 2017),
  whose hard value is ``b``; the gradient is that of ``x * s``.

``deterministic=True`` replaces the sample by its expectation, ``x * sigmoid(alpha x)``
(the ablation, and the BPDA surrogate of the random unit).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robact_bench.activations import ACTIVATIONS
from robact_bench.activations._validate import positive

GRAD_MODES = ("straight_through", "expected", "relaxed")

#: random bits per Bernoulli draw; the keep probability is within 2**-(U_BITS + 1) of sigmoid(alpha x)
U_BITS = 16


def uniform_from_words(k: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The uniform of :func:`uniform16` for given int16 words ``k``: ``(k + 32768.5) / 2**16``.

    Exact in float32 and wider (17 significant bits), so ``u < p`` holds for exactly
    ``ceil(2**16 p - 1/2)`` of the 65,536 words.
    """
    if k.dtype != torch.int16:
        raise TypeError(f"k must be an int16 tensor, got {k.dtype}")
    return k.to(dtype).add_(32768.5).mul_(2.0**-U_BITS)


def uniform16(
    shape: torch.Size | tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniforms on the grid ``(j + 1/2) / 2**16``, ``j`` uniform on ``{0, ..., 65535}``.

    One 64-bit generator word gives four draws: ``random_`` over the whole int64 range makes
    every bit uniform, and its int16 view is four independent uniform words. (Not ``int32``'s
    ``random_()`` without a range: it leaves the sign bit 0.) ``dtype`` is float32 or wider, in
    which the grid is exact.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)
    return uniform_from_words(words.view(torch.int16)[:n].view(shape), dtype)


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
        # the grid is exact in float32, so a bf16 or fp16 input (autocast) draws it in float32
        u = uniform16(x.shape, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device,
                      generator=self.generator)  # fmt: skip
        keep = u < torch.sigmoid(z.detach())
        sample = x * keep  # x * b: four times faster than torch.where(keep, x, 0.) on the CPU
        if self.grad == "straight_through":
            return sample
        if self.grad == "expected":
            surrogate = x * torch.sigmoid(z)
        else:
            # u is in [2**-17, 1 - 2**-17]: its logit is finite
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
