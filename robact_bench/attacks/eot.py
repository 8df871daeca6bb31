"""Batched Expectation over Transformation (EOT) for models with a random forward pass.

Athalye, Carlini and Wagner, *Obfuscated Gradients Give a False Sense of Security:
Circumventing Defenses to Adversarial Examples*, ICML 2018 (EOT: attack the expectation of the
model over its randomness, not one sample of it).

:class:`EOTModel` wraps a random model so that any library attack (torchattacks, AutoAttack,
ART) runs with EOT unchanged: its forward pass draws ``K`` samples of the randomness for every
image **in one batched forward pass** (``K * N`` images, chunked to ``max_batch`` images) and
returns the mean of the ``K`` logit vectors. The gradient of a loss on those mean logits is the
average of the ``K`` per-sample Jacobians, each applied to the loss gradient at the mean; one
library "gradient step" therefore costs ``K`` forward-backward samples, exactly as a Python loop
of ``K`` passes (AutoAttack's ``eot_iter``, torchattacks' ``EOTPGD``) but in one call, which is
what makes it faster on every device (``benchmarks/performance.py``).

Score-based attacks get EOT the same way: Square's margin loss on the mean logits is the loss
averaged over ``K`` passes, and Square's early stop triggers only when the *averaged* output is
wrong, never on a single lucky pass (AutoAttack issue #56).

Chunking: the ``K * N`` images go through the model in chunks of ``max_batch`` images. On a
CPU a few hundred images per pass is fastest (larger batches fall out of cache: LeNet-5 on
2 threads runs ~2,700 img/s forward-backward at 300 images and ~1,600 at 3,000), on a GPU
thousands. Under autograd every chunk's activations are kept for the backward pass; with
``checkpoint=True`` each chunk is wrapped in ``torch.utils.checkpoint`` instead (recomputed in
the backward pass with the same random draws, ``preserve_rng_state=True``), so the memory held is
that of one chunk whatever ``K`` is, for one extra forward pass.

Example:
    >>> eot = EOTModel(model, k=20)          # model: a BReLU network
    >>> logits = eot(x)                      # (N, C): mean over 20 samples, one forward pass

"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class EOTModel(nn.Module):
    """Mean logits over ``k`` samples of a random model, drawn in batched forward passes.

    Args:
        model: The random model (images in, logits out).
        k: Samples of the randomness per image (EOT's K), >= 1.
        max_batch: Most images in one forward pass of ``model``, >= 1.
        checkpoint: Recompute each chunk in the backward pass (memory of one chunk, not ``K``).

    Shape:
        Input ``(N, *)``; output ``(N, C)``.

    """

    def __init__(self, model: nn.Module, k: int, max_batch: int = 512, checkpoint: bool = False) -> None:
        super().__init__()
        for name, v in (("k", k), ("max_batch", max_batch)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"EOTModel {name} must be an integer >= 1; got {v!r}")
        self.model = model
        self.k = k
        self.max_batch = max_batch
        self.checkpoint = bool(checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the mean of ``k`` sampled logit vectors per image of ``x``."""
        n = x.shape[0]
        if self.k == 1:
            return self.model(x)
        rep = x.unsqueeze(0).expand(self.k, *x.shape).reshape(self.k * n, *x.shape[1:])
        chunks = rep.split(self.max_batch)
        if len(chunks) == 1:
            out = self.model(rep)
        elif self.checkpoint and torch.is_grad_enabled() and rep.requires_grad:
            out = torch.cat([checkpoint(self.model, c, use_reentrant=False) for c in chunks])
        else:
            out = torch.cat([self.model(c) for c in chunks])
        return out.view(self.k, n, -1).mean(0)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"k={self.k}, max_batch={self.max_batch}, checkpoint={self.checkpoint}"
