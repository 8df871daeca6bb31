"""Training throughput of adversarial training versus raw forward-backward, side by side in one run.

The requirement being measured: *PGD-AT with k steps runs at no less than
0.8 x (raw forward-backward throughput of the same model) / (k + 1) images per second.*

What is timed (one *training step* each, on one fixed batch: the first ``--batch-size`` images
of ``mnist5k``'s training split, already on ``--device``; the model in ``train()`` mode, AdamW
with lr 1e-3 from :func:`robact_bench.training.loop.build_optimizer`):

* ``natural (R)``: ``zero_grad`` + forward + cross-entropy + backward + ``optimizer.step``.
  Its throughput ``R`` (images/s) is the raw forward-backward throughput.
* ``pgd_at k=K``: the same step with :func:`~robact_bench.training.losses.pgd_at_loss`
  (eps 0.1, step 0.025, K steps, ``clean_weight=0``: Madry et al.'s PGD-AT), i.e. K attack
  passes + 1 training forward-backward = K + 1 passes; bound ``R / (K + 1)``. K = 3, 7, 10.
* ``pgd_at k=7 cw=0.5``: the BReLU paper's mixed loss (``clean_weight=0.5``), which adds one
  clean forward+backward (one ``backward()`` call runs through both the adversarial and the
  clean graph): bound ``R / (K + 2)``.
* ``fast_at``: :func:`~robact_bench.training.losses.fast_at_loss` (eps 0.1, step 0.125):
  one FGSM pass + 1 training pass, bound ``R / 2``.

For each configuration ``ratio = throughput / bound``; the requirement is ``ratio >= 0.8`` for
``pgd_at k=7``. Every configuration has its own model (same seed) and optimizer. After
``--warmup`` steps each, ``--steps`` steps are timed with :func:`time.perf_counter` (with
``torch.cuda.synchronize()`` around the clock on CUDA); this is repeated ``--repeats`` times and
the median throughput is reported. Configurations are interleaved round-robin inside each repeat
(the starting configuration rotates from repeat to repeat), so drift in machine load affects all
of them alike and the ratios are measured side by side.

The ratios are also given paired (the ratio inside each repeat, median over repeats) and the
header shows the 1-minute load average before and after; a warning is printed when one
configuration's fastest repeat is more than 1.5x its slowest. On a small machine shared with other
jobs, torch's default thread count (one per core) is very sensitive to competing load (steps get
many times slower while another process runs); ``--threads 1`` or ``--interleave step`` (one step
of each configuration in turn) gives steadier ratios there.

Run from the repository root, with the package installed::

    python benchmarks/train_throughput.py                # torch's default thread count, CPU
    python benchmarks/train_throughput.py --threads 1
    python benchmarks/train_throughput.py --steps 30 --interleave step
    python benchmarks/train_throughput.py --device cuda --steps 50

Defaults: ``--steps 10 --repeats 5 --warmup 5 --batch-size 128 --arch lenet5 --device cpu``
(about 45 s of timing with 2 threads, 80 s with 1, on an idle 2-core CPU). It prints a header
line, a Markdown table, the verdict and, last, one line of JSON with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robact_bench.data import dataset_info, load_dataset
from robact_bench.models import create_model
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import build_optimizer
from robact_bench.training.losses import fast_at_loss, natural_loss, pgd_at_loss

DATASET = "mnist5k"
EPS, PGD_STEP, FAST_STEP = 0.1, 0.025, 0.125
THRESHOLD = 0.8
REQUIRED = "pgd_at k=7"  # the configuration the requirement is about
NOISY_SPREAD = 1.5  # warn when a config's fastest repeat is this many times its slowest
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Case:
    """One training configuration: its loss and how many forward-backward passes it costs."""

    name: str
    passes: int
    note: str
    loss: LossFn


def _pgd(steps: int, clean_weight: float = 0.0) -> LossFn:
    """A ``pgd_at_loss`` closure with the benchmark's attack settings."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd_at_loss(model, x, y, eps=EPS, step_size=PGD_STEP, steps=steps, clean_weight=clean_weight)

    return loss


def _fast(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``fast_at_loss`` with the benchmark's settings."""
    return fast_at_loss(model, x, y, eps=EPS, step_size=FAST_STEP)


CASES = (
    Case("natural (R)", 1, "forward + CE + backward + AdamW step", natural_loss),
    Case("pgd_at k=3", 4, "3 attack passes + 1 training pass", _pgd(3)),
    Case("pgd_at k=7", 8, "7 attack passes + 1 training pass (the requirement)", _pgd(7)),
    Case("pgd_at k=10", 11, "10 attack passes + 1 training pass", _pgd(10)),
    Case("pgd_at k=7 cw=0.5", 9, "BReLU mixed loss: k + 2 (one extra clean forward+backward)", _pgd(7, 0.5)),
    Case("fast_at", 2, "1 FGSM pass + 1 training pass", _fast),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--arch", default="lenet5", help="registered architecture taking 1x28x28 inputs")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per config and repeat")
    p.add_argument("--repeats", type=int, default=5, help="repeats; the median throughput is reported")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per config before timing")
    p.add_argument(
        "--interleave",
        choices=("config", "step"),
        default="config",
        help="round-robin granularity inside a repeat: 'config' times --steps steps of one config, then the "
        "next; 'step' runs one step of each config in turn (finer, more robust to bursts of competing load)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and attacks")
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or (args.threads is not None and args.threads < 1):
        p.error("--warmup must be >= 0 and --threads >= 1")
    return args


def _loadavg() -> float:
    """The 1-minute load average (``nan`` where the OS has none), to judge competing load."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _sync(device: torch.device) -> None:
    """Wait for queued kernels so that the clock measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(case: Case, arch: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> Callable[[], None]:
    """A closure doing one full training step of ``case`` on the fixed batch ``(x, y)``."""
    c, h, _ = dataset_info(DATASET).shape
    torch.manual_seed(seed)
    model = create_model(arch, act_layer="relu", num_classes=10, in_chans=c, img_size=h).to(x.device)
    model.train()
    opt = build_optimizer(model, TrainConfig(optimizer="adamw", lr=1e-3))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        case.loss(model, x, y).backward()
        opt.step()

    return step


def timed(step: Callable[[], None], n: int, device: torch.device) -> float:
    """Seconds taken by ``n`` calls of ``step``."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the report and return its numbers."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x_all, y_all = load_dataset(DATASET, "train")
    if args.batch_size > len(x_all):
        sys.exit(f"--batch-size {args.batch_size} exceeds the {len(x_all)} training images of {DATASET}")
    x, y = x_all[: args.batch_size].to(device), y_all[: args.batch_size].to(device)
    steps = [make_step(case, args.arch, x, y, args.seed) for case in CASES]

    load_before = _loadavg()
    t_start = time.perf_counter()
    for step in steps:  # warm-up: allocator, kernels selection, AdamW state
        for _ in range(args.warmup):
            step()
    _sync(device)
    per_case: list[list[float]] = [[] for _ in CASES]
    for r in range(args.repeats):
        order = [(r + j) % len(CASES) for j in range(len(CASES))]  # round-robin, start rotates per repeat
        seconds = [0.0] * len(CASES)
        if args.interleave == "config":  # --steps steps of one config, then the next config
            for i in order:
                seconds[i] = timed(steps[i], args.steps, device)
        else:  # one step of each config in turn, --steps times; each step timed on its own
            for _ in range(args.steps):
                for i in order:
                    seconds[i] += timed(steps[i], 1, device)
        for i in order:
            per_case[i].append(args.steps * args.batch_size / seconds[i])
    elapsed = time.perf_counter() - t_start
    load_after = _loadavg()

    medians = [statistics.median(v) for v in per_case]
    raw = medians[0]
    rows = []
    for case, med, reps in zip(CASES, medians, per_case, strict=True):
        bound = raw / case.passes
        rows.append({
            "config": case.name, "passes": case.passes, "note": case.note, "images_per_s": med,
            "bound_images_per_s": bound, "ratio": med / bound, "repeats_images_per_s": reps,
            "paired_ratios": [p * case.passes / r for p, r in zip(reps, per_case[0], strict=True)],
            "spread": max(reps) / min(reps),
        })  # fmt: skip
        rows[-1]["paired_ratio_median"] = statistics.median(rows[-1]["paired_ratios"])

    threads = torch.get_num_threads()
    print(
        f"torch {torch.__version__} | python {platform.python_version()} | threads {threads}"
        f"{' (torch default)' if args.threads is None else ''} | device {device} | arch {args.arch} | "
        f"batch {args.batch_size} | steps {args.steps} (+{args.warmup} warm-up) | repeats {args.repeats} (median) "
        f"| interleave {args.interleave} | eps {EPS}, PGD step {PGD_STEP}, fast_at step {FAST_STEP} | "
        f"load avg (1 min) {load_before:.2f} before, {load_after:.2f} after"
    )
    print()
    print("| config | passes bound | images/s (median) | bound images/s | ratio |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        bound_txt = "R" if row["passes"] == 1 else f"R/{row['passes']}"
        print(
            f"| {row['config']} | {bound_txt} ({row['note']}) | {row['images_per_s']:.1f} | "
            f"{row['bound_images_per_s']:.1f} | {row['ratio']:.3f} |"
        )
    req = next(row for row in rows if row["config"] == REQUIRED)
    met = req["ratio"] >= THRESHOLD
    print()
    print(
        f"Requirement ({REQUIRED} >= {THRESHOLD} x R/(k+1)): ratio {req['ratio']:.3f} -> "
        f"{'MET' if met else 'NOT MET'}. The cw=0.5 row's bound is R/(k+2): the mixed loss adds one clean "
        f"forward+backward. Ratio = images/s / bound images/s. Timed section: {elapsed:.1f} s."
    )
    print("Paired ratios (ratio within each repeat, median over repeats): "
          + ", ".join(f"{row['config']} {row['paired_ratio_median']:.3f}" for row in rows[1:]))  # fmt: skip
    worst = max(rows, key=lambda row: row["spread"])
    if worst["spread"] > NOISY_SPREAD:
        print(
            f"WARNING: noisy run: the fastest repeat of {worst['config']} was {worst['spread']:.1f}x its slowest; "
            "other processes were probably competing for the CPU (compare the load averages). Rerun on a quiet "
            "machine, or with --threads 1 or --interleave step, before trusting these ratios."
        )
    result = {
        "torch": torch.__version__, "threads": threads, "device": str(device), "arch": args.arch,
        "batch_size": args.batch_size, "interleave": args.interleave, "steps": args.steps, "warmup": args.warmup,
        "repeats": args.repeats,
        "raw_images_per_s": raw, "threshold": THRESHOLD, "required_config": REQUIRED,
        "required_ratio": req["ratio"], "requirement_met": met, "seconds": elapsed,
        "loadavg_before": load_before, "loadavg_after": load_after, "configs": rows,
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
