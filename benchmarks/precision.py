"""bf16 attacks against fp32 ones on the boards' models: per-point agreement and speed (issue 16).

A benchmark, not a test. For every entry of the published boards (the committed seed-0 weights in
``weights/<board>/Linf/<entry>_s0/``), on the first ``--n`` class-balanced test points, the
board's evaluation (its eps, EOT K, passes, seed) runs the attacks ``--attacks`` (default PGD-20
and APGD-CE) twice through :func:`~robact_bench.evaluation.engine.run_evaluation`: with
``precision="fp32"`` and with ``precision="bf16"`` (the model's layers under bf16 autocast
inside the attacks; scoring fp32 in both). No sweeps.

**Agreement.** Per attack, the points whose robust flag differs: a deterministic model's 0/1 flag;
a random model's majority flag (``2 * count > R`` of its R scoring passes). A random model's
counts are noisy even between two fp32 runs with different draws, so its noise floor is
measured too: the same fp32 evaluation with another seed (``seed + 1``), compared with the first.

**Speed.** Per attack, the attack's own wall time (``record.seconds``, scoring excluded) in fp32
and in bf16, and their ratio; the total over attacks and models gives the overall ratio.

**The rule** (stated before measuring): bf16 becomes the default only if, on every model and for
each of the attacks, at most 1% of the points change flag (2 of 200), and the attacks run at least
1.2 times faster overall. Otherwise fp32 stays the default and bf16 stays an option.

Usage (from the repository root; run it alone, e.g. ``flock /tmp/heavy.lock ...``)::

    python benchmarks/precision.py [--n 200] [--boards digits mnist5k] [--entries NAME ...]
        [--attacks pgd20 apgd-ce] [--out benchmarks/results-precision-cpu-2core.json]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from robact_bench import load_checkpoint
from robact_bench.attacks.precision import bf16_supported
from robact_bench.data import balanced_subset, load_dataset
from robact_bench.evaluation.engine import run_evaluation
from robact_bench.fileio import atomic_write_json, environment
from robact_bench.jobs import load_board

ROOT = Path(__file__).resolve().parents[1]
MAX_CHANGED = 0.01  # of the points, per model and attack
MIN_SPEEDUP = 1.2


def _flags(counts: list[int], passes: int, stochastic: bool) -> list[bool]:
    return [2 * c > passes for c in counts] if stochastic else [c == 1 for c in counts]


def _evaluate(model: Any, x: torch.Tensor, y: torch.Tensor, cfg: Any) -> Any:
    return run_evaluation(model, x, y, cfg, progress=False)


def main() -> None:
    """Run the comparison and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--boards", nargs="+", default=["digits", "mnist5k"])
    ap.add_argument("--entries", nargs="+", default=None, help="only these entries (default: all)")
    ap.add_argument("--attacks", nargs="+", default=["pgd20", "apgd-ce"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results-precision-cpu-2core.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not bf16_supported("cpu"):
        raise SystemExit("this CPU has no native bf16 (avx512_bf16 or amx_bf16): nothing to measure")
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for board_name in args.boards:
        board = load_board(board_name)
        x_all, y_all = load_dataset(board.dataset, "test")
        idx = balanced_subset(y_all, min(args.n, len(y_all)))
        x, y = x_all[idx].contiguous(), y_all[idx].contiguous()
        base = replace(board.eval_cfg, n_examples=None, attacks=tuple(args.attacks), sweeps=False)
        for entry in board.entries:
            if args.entries and entry.name not in args.entries:
                continue
            folder = ROOT / "weights" / board.dataset / "Linf" / f"{entry.file_name(0)}" / "model"
            model = load_checkpoint(folder)[0]
            runs = {p: _evaluate(model, x, y, replace(base, precision=p)) for p in ("fp32", "bf16")}
            fp32, bf16 = runs["fp32"], runs["bf16"]
            noise = None
            if fp32.stochastic:
                noise = _evaluate(model, x, y, replace(base, seed=base.seed + 1))
            row: dict[str, Any] = {"board": board_name, "entry": entry.file_name(0), "stochastic": fp32.stochastic,
                                   "n": len(y), "passes": fp32.passes, "attacks": {}}  # fmt: skip
            for name in args.attacks:
                a, b = fp32.attack(name), bf16.attack(name)
                fa, fb = _flags(list(a.counts), fp32.passes, fp32.stochastic), _flags(list(b.counts), fp32.passes,
                                                                                      fp32.stochastic)  # fmt: skip
                changed = sum(u != v for u, v in zip(fa, fb, strict=True))
                cell: dict[str, Any] = {
                    "fp32_acc": a.accuracy, "bf16_acc": b.accuracy, "changed_points": changed,
                    "fp32_seconds": a.record["seconds"], "bf16_seconds": b.record["seconds"],
                    "speedup": a.record["seconds"] / b.record["seconds"],
                }  # fmt: skip
                if noise is not None:
                    fn = _flags(list(noise.attack(name).counts), fp32.passes, True)
                    cell["fp32_reseeded_changed_points"] = sum(u != v for u, v in zip(fa, fn, strict=True))
                row["attacks"][name] = cell
                floor = "" if noise is None else f" (fp32 reseeded: {cell['fp32_reseeded_changed_points']})"
                print(f"{board_name} {entry.name} {name}: changed {changed}/{len(y)}{floor}, "
                      f"speedup {cell['speedup']:.2f}", flush=True)  # fmt: skip
            rows.append(row)
    cells = [c for r in rows for c in r["attacks"].values()]
    speedup = sum(c["fp32_seconds"] for c in cells) / sum(c["bf16_seconds"] for c in cells)
    worst = max(c["changed_points"] / r["n"] for r in rows for c in r["attacks"].values())
    decision = worst <= MAX_CHANGED and speedup >= MIN_SPEEDUP
    out = {
        "command": "python benchmarks/precision.py " + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
            if k != "out" and v is not None
        ),
        "rule": f"bf16 the default only if every model and attack changes at most {MAX_CHANGED:.0%} of the points' "
        f"flags and the attacks run >= {MIN_SPEEDUP}x faster overall",
        "overall_speedup": speedup,
        "worst_changed_fraction": worst,
        "bf16_default": decision,
        "rows": rows,
        "environment": environment(),
        "wall_s": time.perf_counter() - t_start,
    }
    atomic_write_json(Path(args.out), out)
    print(f"overall speedup {speedup:.3f}, worst changed {worst:.3%}: bf16 default = {decision}")


if __name__ == "__main__":
    main()
