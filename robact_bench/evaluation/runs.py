"""The training report: clean and PGD accuracy on the test split of every trained run, by seed.

``robact-bench report RUNS`` finds every finished run under ``RUNS`` (``<name>/seed<k>/model.json``),
rebuilds each model from our registry (safetensors weights; nothing is unpickled), evaluates it
on its dataset's **test** split and writes ``RUNS/report.md`` (mean ± std over seeds, one row per
run name) and ``RUNS/report.json`` (every per-seed number, the attack's backend, version and
parameters).

The attack is torchattacks' PGD (Linf, ``steps`` steps of ``eps/4`` from a random start). A
stochastic model is attacked with EOT-PGD (``eot_iter`` gradient samples) and every image is
scored on ``passes`` forward passes: clean accuracy is the mean over passes, robust accuracy the
worst case (a point counts only if all passes are right). This is the quick number of a
training comparison; the full adaptive evaluation (AutoAttack, diagnostics) is ``robact-bench run``'s.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robact_bench.activations import is_stochastic
from robact_bench.attacks.torchattacks import torchattacks_attack
from robact_bench.data import balanced_subset, load_dataset
from robact_bench.evaluation.stochastic import fraction, score
from robact_bench.fileio import atomic_write_json, atomic_write_text
from robact_bench.models.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

__all__ = ["RunScore", "evaluate_run", "find_runs", "format_mean_std", "report_table", "write_report"]


@dataclass(frozen=True)
class RunScore:
    """Test-split numbers of one trained run (one seed).

    Attributes:
        name: Run name.
        seed: Training seed.
        recipe: Training recipe.
        model: ``ModelSpec.describe()`` of the model.
        clean_acc: Clean accuracy (mean over passes for a stochastic model).
        robust_acc: Accuracy under the attack (worst case over passes for a stochastic model).
        train_seconds: Training time recorded by the run (validation excluded).
        epochs: Epochs trained.
        stochastic: Whether the model is random at inference time.
        attack: Backend, version and every parameter of the attack.

    """

    name: str
    seed: int
    recipe: str
    model: str
    clean_acc: float
    robust_acc: float
    train_seconds: float
    epochs: int
    stochastic: bool
    attack: dict[str, Any]


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Finished runs under ``root``: the ``model.json`` of every ``<name>/seed<k>/`` folder."""
    found = sorted(Path(root).glob("*/seed*/model.json"))
    if not found:
        raise ValueError(f"{root}: no finished runs (<name>/seed<k>/model.json) found")
    return found


def evaluate_run(
    meta_path: Path,
    *,
    eps: float,
    steps: int = 20,
    n_examples: int | None = None,
    seed: int = 0,
    eot_iter: int = 20,
    passes: int = 10,
    device: str | torch.device = "cpu",
    data_root: str | os.PathLike[str] | None = None,
    test_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> RunScore:
    """Evaluate one finished run on its dataset's test split (see the module docstring)."""
    model, spec, meta = load_checkpoint(meta_path, device=device)
    training = meta.get("training", {})
    dataset = training.get("dataset")
    if not dataset:
        raise ValueError(f"{meta_path}: no training record (was it written by robact-bench train?)")
    cache = test_cache if test_cache is not None else {}
    if dataset not in cache:
        cache[dataset] = load_dataset(dataset, "test", root=data_root)
    x, y = cache[dataset]
    if n_examples is not None:
        keep = balanced_subset(y, n_examples)
        x, y = x[keep], y[keep]
    stochastic = is_stochastic(model)
    r = passes if stochastic else 1
    torch.manual_seed(seed)
    clean = score(model, x, y, r)
    extra = {"eot_iter": eot_iter} if stochastic else {}
    out = torchattacks_attack(
        model, x, y, attack="EOTPGD" if stochastic else "PGD", eps=eps, alpha=eps / 4, steps=steps, seed=seed, **extra
    )
    adv = score(model, out.x_adv, y, r)
    config = training.get("config", {})
    return RunScore(
        name=str(training.get("name", meta_path.parent.parent.name)),
        seed=int(config.get("train", {}).get("seed", -1)),
        recipe=str(training.get("recipe", "?")),
        model=spec.describe(),
        clean_acc=float(clean.mean.mean()),
        robust_acc=fraction(adv.worst),
        train_seconds=float(training.get("train_seconds", math.nan)),
        epochs=len(training.get("history", [])),
        stochastic=stochastic,
        attack={**out.record, "passes": r, "n_examples": len(y), "split": "test", "dataset": dataset},
    )


def format_mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (sample std; only the mean for one value)."""
    vals = [scale * v for v in values]
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def report_table(scores: Sequence[RunScore], *, eps: float, steps: int) -> str:
    """Markdown table, one row per run name (in the order first seen), mean ± std over seeds."""
    names: list[str] = []
    for s in scores:
        if s.name not in names:
            names.append(s.name)
    lines = [
        f"| run | recipe | model | seeds | clean (%) | PGD-{steps} (%) | training time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        rows = [s for s in scores if s.name == name]
        first = rows[0]
        pgd = format_mean_std([s.robust_acc for s in rows])
        lines.append(
            f"| `{name}` | {first.recipe} | {first.model} | {len(rows)} | "
            f"{format_mean_std([s.clean_acc for s in rows])} | {pgd} | "
            f"{format_mean_std([s.train_seconds for s in rows], scale=1.0, digits=0)} |"
        )
    n = scores[0].attack["n_examples"] if scores else 0
    lines.append("")
    lines.append(
        f"Test split, n = {n} per run; Linf eps = {eps:g}, torchattacks PGD-{steps} (step eps/4, random start); "
        "mean ± sample std over seeds. Generated by `robact-bench report`."
    )
    return "\n".join(lines) + "\n"


def write_report(
    root: str | os.PathLike[str],
    *,
    eps: float,
    steps: int = 20,
    n_examples: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_root: str | os.PathLike[str] | None = None,
) -> tuple[list[RunScore], Path]:
    """Evaluate every finished run under ``root``; write ``report.md`` and ``report.json`` there."""
    root = Path(root)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    scores = []
    for meta_path in find_runs(root):
        s = evaluate_run(
            meta_path, eps=eps, steps=steps, n_examples=n_examples, seed=seed, device=device,
            data_root=data_root, test_cache=cache,
        )  # fmt: skip
        log.info("%s seed %d: clean %.4f, PGD-%d %.4f", s.name, s.seed, s.clean_acc, steps, s.robust_acc)
        scores.append(s)
    table = report_table(scores, eps=eps, steps=steps)
    atomic_write_text(root / "report.md", table)
    atomic_write_json(
        root / "report.json",
        {"eps": eps, "steps": steps, "seed": seed, "runs": [s.__dict__ for s in scores]},
    )
    return scores, root / "report.md"

