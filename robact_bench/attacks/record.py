"""Model wrappers that watch or steer an attack without touching the library that runs it.

:class:`QueryRecorder` sits between a library attack and the model it attacks. It passes every
call through unchanged and, for each queried image, works out which evaluation point it belongs
to and notes what the attack saw: the loss, whether the image was misclassified, the gradient
the library computed (through a tensor hook), and the strongest image queried so far. This is
how the indicators of attack failure (Pintor et al., *Indicators of Attack Failure: Debugging
and Improving Optimization of Adversarial Examples*, NeurIPS 2022) are read from torchattacks,
AutoAttack and ART alike: the libraries are never patched, and their numbers are unchanged.

:class:`FixedDraws` freezes a random model's draws: every forward pass starts from the same
seed, so the model is a fixed deterministic function (Carlini et al., *On Evaluating Adversarial
Robustness*, 2019: "verify that attacks succeed if randomness is fixed").

**Which point a query belongs to.** Libraries call the model with the whole batch, with the
points still robust, or with smaller subsets (Square, FAB). A row belongs to point ``i`` when
``i`` is the only clean image within the threat model's distance (plus :data:`TOLERANCE`) of it;
a row that is within that distance of no point, or of two, is left unmapped and only counted.
A query of ``B`` rows equal to the chunk's size is matched row by row. Otherwise one matrix
product gives every row's squared L2 distance to every clean image: it bounds which points can
be within the radius (for Linf, ``||v||_2 <= sqrt(d) ||v||_inf``), and the nearest one is the
row's candidate. A candidate within the radius that is *isolated* (no other clean image within
twice the radius, so by the triangle inequality no other point can claim the row) is taken at
once; the other rows get the exact distance to every point the bound leaves.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: slack on the threat-model distance when matching a query to its clean image
TOLERANCE = 1e-5
#: rows of the exact fallback's distance computation are taken in blocks of this many elements
_BLOCK = 1 << 22


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``logit_y - max_{k != y} logit_k`` per row (negative: misclassified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y.view(-1, 1), float("-inf"))
    return true - other.amax(1)


class QueryRecorder(nn.Module):
    """Pass-through wrapper recording, per evaluation point, what an attack queried.

    Args:
        model: The module the attack sees (the model, its EOT wrapper or its surrogate).
        x: The chunk's clean images, ``(n, C, H, W)``, in evaluation order.
        y: Their labels.
        eps: The threat model's radius; ``norm`` its norm (``Linf`` or ``L2``).
        bounded: The attack keeps every query inside the threat model (all but CW). For an
            unbounded attack only full-batch queries are matched, and only the queries inside
            the threat model count as candidates.

    After the attack, :meth:`summary` gives the per-point observations and :meth:`best_images`
    the strongest (lowest-margin) queried image inside the threat model for every point.

    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
                 bounded: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        device = x.device
        self._x = x.detach()
        self._flat = self._x.flatten(1)
        self._y = y.detach().to(device)
        self.eps, self.norm, self.bounded = float(eps), norm, bounded
        n = self._flat.shape[0]
        self._radius = self.eps + TOLERANCE
        self._sq = (self._flat * self._flat).sum(1)
        # isolated[i]: no other clean image within twice the radius (a small margin guards rounding)
        others = self._all_distances(self._flat)
        others.fill_diagonal_(math.inf)
        nearest = others.amin(1) if n else others.new_empty(0)
        self._isolated = nearest > 2 * self._radius * (1 + 1e-4) + 1e-6
        self.calls = 0
        self.mapped_calls = 0
        self.unmapped_rows = 0
        self.best_margin = torch.full((n,), math.inf, device=device)
        self.best = self._x.clone()
        self.ever_wrong = torch.zeros(n, dtype=torch.bool, device=device)
        self.seen = torch.zeros(n, dtype=torch.bool, device=device)
        self.grad_seen = torch.zeros(n, dtype=torch.bool, device=device)
        self.grad_usable = torch.zeros(n, dtype=torch.bool, device=device)
        self.grad_nonfinite = torch.zeros(n, dtype=torch.bool, device=device)
        self._trace: list[tuple[torch.Tensor, torch.Tensor]] = []

    # -- matching ----------------------------------------------------------------------------
    def _distance(self, flat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        d = flat - self._flat[idx]
        return d.abs().amax(1) if self.norm == "Linf" else d.norm(dim=1)

    def _all_distances(self, flat: torch.Tensor) -> torch.Tensor:
        """Exact distances of every row of ``flat`` to every clean image, ``(b, n)``."""
        n, d = self._flat.shape
        out = torch.empty(flat.shape[0], n, dtype=self._flat.dtype, device=flat.device)
        step = max(1, _BLOCK // max(1, n * d))
        for s in range(0, flat.shape[0], step):
            diff = flat[s : s + step].unsqueeze(1) - self._flat.unsqueeze(0)
            out[s : s + step] = diff.abs().amax(2) if self.norm == "Linf" else diff.norm(dim=2)
        return out

    def _map(self, inp: torch.Tensor) -> torch.Tensor:
        """The point of every row of ``inp``, or -1."""
        flat = inp.detach().flatten(1).to(self._flat.dtype)
        b = flat.shape[0]
        rows = torch.full((b,), -1, dtype=torch.long, device=flat.device)
        if flat.shape[1] != self._flat.shape[1] or b == 0:
            return rows
        if b == self._flat.shape[0]:
            ident = torch.arange(b, device=flat.device)
            if not self.bounded:
                return ident
            ok = self._distance(flat, ident) <= self._radius
            if bool(ok.all()):
                return ident
        if not self.bounded:
            return rows
        # squared L2 distances to every clean image (one matrix product): a necessary condition for
        # being within the radius (Linf: ||v||_2 <= sqrt(d) ||v||_inf), loosened for rounding
        sq = (flat * flat).sum(1, keepdim=True)
        d2 = sq + self._sq.unsqueeze(0) - 2 * flat @ self._flat.T
        reach = self._radius**2 * (flat.shape[1] if self.norm == "Linf" else 1)
        close = d2 <= reach * (1 + 1e-3) + 1e-4 * (sq + self._sq.unsqueeze(0)) + 1e-6
        cand = d2.argmin(1)
        fast = close.any(1) & self._isolated[cand]
        fast &= self._distance(flat, cand) <= self._radius
        rows[fast] = cand[fast]
        pairs = torch.nonzero(close & ~fast.unsqueeze(1))  # (row, point) pairs left to check exactly
        if len(pairs):  # a row maps only to a unique point within the radius
            step = max(1, _BLOCK // flat.shape[1])
            within = torch.cat([self._distance(flat[pairs[s : s + step, 0]], pairs[s : s + step, 1]) <= self._radius
                                for s in range(0, len(pairs), step)])  # fmt: skip
            hits = pairs[within]
            per_row = torch.bincount(hits[:, 0], minlength=b)
            unique = per_row[hits[:, 0]] == 1
            rows[hits[unique, 0]] = hits[unique, 1]
        return rows

    # -- the wrapped call ----------------------------------------------------------------------
    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """Call the wrapped model on ``inp`` and record what it returned for every matched row."""
        rows = self._map(inp)
        self.calls += 1
        mapped = rows >= 0
        self.unmapped_rows += int((~mapped).sum())
        z = inp.view_as(inp) if inp.requires_grad else inp
        out = self.model(z)
        if bool(mapped.any()):
            self.mapped_calls += 1
            with torch.no_grad():
                self._observe(inp.detach(), out.detach(), rows, mapped)
            if z.requires_grad:
                z.register_hook(self._grad_hook(rows, mapped))
        return out

    def _observe(self, inp: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, mapped: torch.Tensor) -> None:
        idx = rows[mapped]
        logits = out[mapped].float()
        y = self._y[idx]
        loss = F.cross_entropy(logits, y, reduction="none")
        m = margins(logits, y)
        flat = inp[mapped].flatten(1).to(self._flat.dtype)
        inside = self._distance(flat, idx) <= self.eps + TOLERANCE
        self.seen[idx] = True
        self.ever_wrong[idx] |= (m < 0) & inside
        better = inside & (m < self.best_margin[idx])
        if bool(better.any()):
            b_idx = idx[better]
            self.best_margin[b_idx] = m[better]
            self.best[b_idx] = inp[mapped][better].to(self.best.dtype).view(-1, *self.best.shape[1:])
        self._trace.append((idx.cpu(), loss.cpu()))

    def _grad_hook(self, rows: torch.Tensor, mapped: torch.Tensor) -> Any:
        def hook(grad: torch.Tensor) -> None:
            g = grad.detach()[mapped].flatten(1)
            idx = rows[mapped]
            finite = torch.isfinite(g).all(1)
            self.grad_seen[idx] = True
            self.grad_usable[idx] |= finite & (g.abs().sum(1) > 0)
            self.grad_nonfinite[idx] |= ~finite

        return hook

    # -- results -------------------------------------------------------------------------------
    def best_images(self) -> torch.Tensor:
        """Per point, the lowest-margin queried image inside the threat model (the clean image if none)."""
        return self.best.detach()

    def traces(self) -> list[list[float]]:
        """Per point, the cross-entropy of every recorded query, in call order."""
        out: list[list[float]] = [[] for _ in range(self._flat.shape[0])]
        for idx, loss in self._trace:
            for i, v in zip(idx.tolist(), loss.tolist(), strict=True):
                out[i].append(v)
        return out

    def summary(self, window: int = 10, min_steps: int = 50, threshold: float = 0.05) -> dict[str, Any]:
        """Per-point observations of the attack, as lists of point positions (in chunk order).

        Keys: ``calls``, ``mapped_calls``, ``unmapped_rows``; ``seen`` (points with a recorded
        query); ``misclassified`` (a query inside the threat model was misclassified by the
        attacked model's output); ``incomplete`` (Pintor et al.'s incomplete optimization: the
        loss, rescaled to [0, 1] over the point's trace, still rose by more than ``threshold``
        over the last ``window`` queries; judged for traces of at least ``min_steps`` queries);
        ``judged_incomplete`` (the points that had such a trace); ``no_gradient`` (every
        gradient the library computed for the point was exactly zero or not finite);
        ``gradient_seen`` (a gradient was recorded); ``nonfinite_gradient``.
        """
        incomplete, judged = [], []
        for i, t in enumerate(self.traces()):
            if len(t) < min_steps:
                continue
            judged.append(i)
            if incomplete_optimization(t, window=window, threshold=threshold):
                incomplete.append(i)

        def where(mask: torch.Tensor) -> list[int]:
            return torch.nonzero(mask).flatten().cpu().tolist()

        return {
            "calls": self.calls,
            "mapped_calls": self.mapped_calls,
            "unmapped_rows": self.unmapped_rows,
            "seen": where(self.seen),
            "misclassified": where(self.ever_wrong),
            "incomplete": incomplete,
            "judged_incomplete": judged,
            "gradient_seen": where(self.grad_seen),
            "no_gradient": where(self.grad_seen & ~self.grad_usable),
            "nonfinite_gradient": where(self.grad_nonfinite),
        }


def incomplete_optimization(trace: list[float], *, window: int = 10, threshold: float = 0.05) -> bool:
    """Pintor et al.'s *incomplete optimization* on one loss trace that the attack maximizes.

    The trace is rescaled to [0, 1] (a constant trace never counts), replaced by its running
    maximum, and judged still improving when that maximum rose by more than ``threshold`` over
    the last ``window`` values.
    """
    if len(trace) < 2:
        return False
    t = torch.tensor(trace, dtype=torch.float64)
    lo, hi = float(t.min()), float(t.max())
    if not math.isfinite(lo) or not math.isfinite(hi) or hi - lo <= 0:
        return False
    best = torch.cummax((t - lo) / (hi - lo), 0).values
    w = min(window, len(trace))
    return float(best[-1] - best[-w]) > threshold


class FixedDraws(nn.Module):
    """A random model with its random draws fixed: every forward pass starts from ``seed``.

    The global random state is saved and restored around each call, so the attack's own draws
    (random starts, Square's proposals) are unaffected. Draws of a module with its own
    ``torch.Generator`` are not fixed by this wrapper. The same input batch (same shape) gets the
    same draws, so the wrapped model is a deterministic function of each batch.
    """

    def __init__(self, model: nn.Module, seed: int) -> None:
        super().__init__()
        self.model = model
        self.seed = int(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output on ``x`` with the draws of seed ``seed``."""
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self.model(x)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"seed={self.seed}"
