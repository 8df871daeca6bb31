"""Choose the capped heads' hyper-parameters of the published boards on validation data.

The paper-default D-ReLU row (initial cap 100) never binds on mnist5k: every cap ends at the same
value and about 1% of the head's inputs reach it, so the row tests a plain ReLU network. This
script chooses, for each board, a D-ReLU head whose caps bind (initial cap ``m_init`` and the caps'
own learning rate ``drelu_lr``) and an S-ReLU head's fixed cap ``m``, on a validation split
carved from the *training* images (``validation_split``, 20%, the same images for every
candidate); the test images are never used.

Every candidate is the board's D-ReLU entry with only those values changed, trained with seed 0
on the remaining 80%. On 200 class-balanced validation points it is scored by

* clean accuracy,
* robust accuracy at the board's eps: the worst case per point of PGD-20 and of APGD-CE
  transferred from the BPDA surrogate (the cap removed, so the flat part of the clamp cannot hide
  the gradient), through :func:`robact_bench.evaluate`,
* saturation: the share of the head's inputs that reach their cap on those points.

Rule: among candidates with saturation >= 5% (the caps act) and clean accuracy no more than 5
points below the paper-default candidate's, the highest robust accuracy wins; ties go to the
higher clean accuracy, then to the larger cap (the milder change). Output: one JSON file per run
(``docs/cap_tuning.json``) with every candidate's numbers and the choice; the board files quote it.

Usage: ``python scripts/tune_caps.py [--datasets digits mnist5k] [--out docs/cap_tuning.json]``
(about 5 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from robact_bench import evaluate
from robact_bench.data import balanced_subset, load_dataset, validation_split
from robact_bench.evaluation.diagnostics import drelu_saturation
from robact_bench.jobs import load_board
from robact_bench.training.config import RunConfig
from robact_bench.training.loop import train_model

M_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)
LR_GRID = (0.01, 0.1, 0.5)
MIN_SATURATION = 0.05
MAX_CLEAN_DROP = 0.05
N_VAL_POINTS = 200


def _score(run: RunConfig, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
           eps: float) -> dict:  # fmt: skip
    torch.manual_seed(run.train.seed)
    model = run.model.build(run.dataset)
    train_model(model, *train, run.train, progress=False)
    model.eval()
    xv, yv = val
    res = evaluate(model, xv, yv, "adaptive", eps=eps, n_examples=N_VAL_POINTS, attacks=("pgd20", "apgd-ce-transfer"),
                   sweeps=False, progress=False)  # fmt: skip
    sat = drelu_saturation(model, xv[torch.tensor(res.indices)])
    return {"clean": res.clean_acc, "robust": res.robust_acc, "saturation": sat["value"] if sat else 0.0,
            "m_min": sat["m_min"] if sat else None, "m_max": sat["m_max"] if sat else None}  # fmt: skip


def _choose(cands: list[dict], default_clean: float) -> dict:
    ok = [c for c in cands if c["saturation"] >= MIN_SATURATION and c["clean"] >= default_clean - MAX_CLEAN_DROP]
    if not ok:
        raise SystemExit("no candidate binds within the clean-accuracy tolerance")
    return max(ok, key=lambda c: (c["robust"], c["clean"], c["m"]))


def tune(dataset: str, m_grid: tuple[float, ...] = M_GRID, lr_grid: tuple[float, ...] = LR_GRID) -> dict:
    """Every candidate's validation numbers for ``dataset``'s board, and the two choices."""
    board = load_board(dataset)
    base = next(e for e in board.entries if e.name.endswith("_ReLU_DReLUHead")).run.with_seed(0)
    x, y = load_dataset(dataset, "train")
    tr, va = validation_split(y, 0.2)
    train, val = (x[tr], y[tr]), (x[va], y[va])
    keep = balanced_subset(val[1], N_VAL_POINTS)
    logging.info("%s: %d train / %d validation images, %d scored", dataset, len(tr), len(va), len(keep))
    eps = board.eval_cfg.eps
    default = {"m": 100.0, "drelu_lr": base.train.drelu_lr, **_score(base, train, val, eps)}
    drelu = []
    for m in m_grid:
        for lr in lr_grid:
            run = replace(base, model=replace(base.model, drelu_head_m_init=m), train=replace(base.train, drelu_lr=lr))
            drelu.append({"m": m, "drelu_lr": lr, **_score(run, train, val, eps)})
            logging.info("%s D-ReLU %s", dataset, drelu[-1])
    srelu = []
    for m in m_grid:
        run = replace(base, model=replace(base.model, drelu_head_m_init=m, drelu_head_act="srelu"))
        srelu.append({"m": m, **_score(run, train, val, eps)})
        logging.info("%s S-ReLU %s", dataset, srelu[-1])
    return {
        "dataset": dataset,
        "split": f"validation_split(train, 0.2): {len(tr)} train / {len(va)} validation images; "
        f"{len(keep)} class-balanced validation points scored",
        "eps": eps,
        "attacks": "worst case per point of PGD-20 and APGD-CE transferred from the BPDA surrogate",
        "grid": {"m": list(m_grid), "drelu_lr": list(lr_grid)},
        "rule": f"saturation >= {MIN_SATURATION:.0%} and clean >= paper default - {MAX_CLEAN_DROP:.0%}; "
        "max robust, then clean, then the larger cap",
        "paper_default": default,
        "drelu": drelu,
        "drelu_choice": _choose(drelu, default["clean"]),
        "srelu": srelu,
        "srelu_choice": _choose(srelu, default["clean"]),
    }


def main() -> None:
    """Tune every dataset given and write the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    p.add_argument("--out", default="docs/cap_tuning.json")
    p.add_argument("--m-grid", type=float, nargs="+", default=list(M_GRID), help="initial / fixed caps tried")
    p.add_argument("--lr-grid", type=float, nargs="+", default=list(LR_GRID), help="the caps' learning rates tried")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    report = {ds: tune(ds, tuple(args.m_grid), tuple(args.lr_grid)) for ds in args.datasets}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    for ds, r in report.items():
        logging.info("%s: D-ReLU %s; S-ReLU %s", ds, r["drelu_choice"], r["srelu_choice"])


if __name__ == "__main__":
    main()
