"""FAB-T called through the library alone: whether its gap to the network bound is the library's arithmetic.

A benchmark, not a test (issue 16). ``profile_attacks.py`` puts AutoAttack's FAB-T at about 0.6
of its bound on the deterministic LeNet-5, through our adapter and the query recorder. This script
separates what is ours from what is the library's, on the same committed checkpoint
(``LeNet5_ReLU_PGDAT_s0``), the same class-balanced mnist5k test points and the same settings
(AutoAttack ``standard``, FAB-T, Linf eps 0.1, seed 0, batch 500), measured side by side in one
process:

* **bare**: ``pyautoattack.AutoAttack(network).run_standard_evaluation`` with
  ``attacks_to_run = ["fab-t"]``, the library alone on the bare network (a pass-through counter
  around it, ``profile_attacks.CountingModule``, counts its image passes);
* **recorder**: the same call on the network wrapped in our
  :class:`~robact_bench.attacks.record.QueryRecorder`, as the engine attacks it;
* the **bound** of the counted passes, timed on the bare network at the same batch sizes right
  before (``profile_attacks.call_times``), and ``efficiency = bound / wall``;
* a **breakdown** of one more bare run under ``cProfile``: the cumulative time of the library's
  network calls (``get_diff_logits_grads_batch_targeted``: a forward and a backward;
  ``_get_predicted_label`` and ``_predict_fn``: forwards), of its projection onto the box and the
  linearized boundary (``projection_linf``) and the rest of ``attack_single_run`` (its own
  bookkeeping). The profiler slows Python calls a little; its shares, not its seconds, are the
  figure.

Both runs must return the same robust points (the recorder only observes); the script stops if
they do not. Run it alone (``flock /tmp/heavy.lock ...``): about 8 x FAB-T's wall at ``--n``.

Usage (from the repository root)::

    python benchmarks/fab_breakdown.py [--n 200] [--repeats 3] [--threads 2]
        [--out benchmarks/results-fab-breakdown-cpu-2core.json]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_attacks as pa  # the profile's counter, bound and set-up, shared

from robact_bench.attacks.autoattack import library_version
from robact_bench.attacks.record import QueryRecorder
from robact_bench.evaluation.engine import _input_gradients_only
from robact_bench.fileio import atomic_write_json, environment

DEFAULT_OUT = pa.HERE.parent / "results-fab-breakdown-cpu-2core.json"
ENTRY = pa.MODELS["relu"]
#: the library's functions whose cumulative time the breakdown reports
PARTS = {
    "forward_backward": "get_diff_logits_grads_batch_targeted",
    "forward_label": "_get_predicted_label",
    "forward_target": "_predict_fn",
    "projection": "projection_linf",
    "attack_single_run": "attack_single_run",
}


def fab_t(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int,
          seed: int) -> tuple[float, torch.Tensor]:  # fmt: skip
    """One FAB-T run through ``run_standard_evaluation``: (wall seconds, robust points)."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device=x.device)
    aa.attacks_to_run = ["fab-t"]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    return time.perf_counter() - t0, (y_adv == y)


def breakdown(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int,
              seed: int) -> dict[str, Any]:  # fmt: skip
    """One bare run under cProfile: the cumulative seconds and shares of :data:`PARTS`."""
    prof = cProfile.Profile()
    prof.enable()
    wall, _ = fab_t(model, x, y, eps, batch_size, seed)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    cum: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    for (filename, _, func), (_, _, _, ct, callers) in stats.items():
        for part, name in PARTS.items():
            if func != name or "pyautoattack" not in filename:
                continue
            if part == "forward_target":  # _get_predicted_label calls _predict_fn: count only the other callers
                ct = sum(c[3] for (_, _, caller), c in callers.items() if caller != PARTS["forward_label"])
            cum[part] += ct
    network = cum["forward_backward"] + cum["forward_label"] + cum["forward_target"]
    single = cum["attack_single_run"]
    return {
        "wall_s": round(wall, 3),
        "cumulative_s": {k: round(v, 3) for k, v in cum.items()},
        "network_calls_s": round(network, 3),
        "outside_network_in_attack_single_run_s": round(single - network, 3),
        "projection_share_of_attack_single_run": round(cum["projection"] / single, 4) if single else None,
        "network_share_of_attack_single_run": round(network / single, 4) if single else None,
    }


def main() -> None:
    """Time FAB-T bare and under the recorder, side by side, with the bound and a profile."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="class-balanced test points (default 200)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each variant; the median wall (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--min-time", type=float, default=0.1, help="seconds per raw-rate measurement (default 0.1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    if args.n < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--n, --repeats and --threads must be positive integers")
    torch.set_num_threads(args.threads)
    cfg = pa._eval_cfg()
    eps, bs, seed = float(cfg.eps), int(cfg.batch_size), int(cfg.seed)
    model = pa._model(ENTRY)
    x, y = pa._points(args.n)
    rows: dict[str, list[dict[str, Any]]] = {"bare": [], "recorder": []}
    t_start = time.perf_counter()
    with _input_gradients_only(model):
        robust_ref: torch.Tensor | None = None
        for r in range(args.repeats):
            for variant in ("bare", "recorder"):  # alternated, so that a slow spell hits both
                counted = pa.CountingModule(model).eval()
                target = counted if variant == "bare" else QueryRecorder(counted, x, y, eps=eps, norm=cfg.norm)
                wall, robust = fab_t(target, x, y, eps, bs, seed)
                if robust_ref is None:
                    robust_ref = robust
                elif not torch.equal(robust, robust_ref):
                    raise SystemExit(f"FAB-T {variant} run {r}: robust points differ from the first run's")
                work = counted.work()
                sizes = sorted(set(pa.GRID) | set(work["forward_only"]) | set(work["forward_backward"]))
                with torch.random.fork_rng():
                    times = pa.call_times(model, x, sizes, args.min_time)
                bound = sum(pa.bound_seconds(work, times).values())
                rows[variant].append({"wall_s": round(wall, 3), "bound_s": round(bound, 3),
                                      "efficiency": round(bound / wall, 4), "work": work})  # fmt: skip
                msg = f"{variant} run {r}: {wall:.2f} s, bound {bound:.2f} s, efficiency {bound / wall:.2f}"
                print(msg, flush=True)
        prof = breakdown(pa.CountingModule(model).eval(), x, y, eps, bs, seed)
    assert robust_ref is not None
    summary = {v: {"median_wall_s": statistics.median(r["wall_s"] for r in rs),
                   "median_efficiency": statistics.median(r["efficiency"] for r in rs)}
               for v, rs in rows.items()}  # fmt: skip
    ratio = summary["recorder"]["median_wall_s"] / summary["bare"]["median_wall_s"]
    summary["recorder_over_bare_wall"] = round(ratio, 4)
    params = {"board": pa.BOARD, "model": f"{ENTRY}_s0", "n": args.n, "attack": "fab-t", "version": "standard",
              "eps": eps, "norm": cfg.norm, "seed": seed, "batch_size": bs, "repeats": args.repeats,
              "threads": args.threads, "min_time_s": args.min_time, "backend": "pyautoattack",
              "backend_version": library_version("pyautoattack")}  # fmt: skip
    report = {
        "environment": {**environment(), "cpu_model": pa._cpu_model()},
        "parameters": params,
        "robust_points": int(robust_ref.sum()),
        "runs": rows,
        "summary": summary,
        "profile": prof,
        "benchmark_seconds": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_json(args.out, report)
    print(f"median wall: bare {summary['bare']['median_wall_s']:.2f} s, recorder "
          f"{summary['recorder']['median_wall_s']:.2f} s (x{summary['recorder_over_bare_wall']:.3f}); "
          f"efficiency bare {summary['bare']['median_efficiency']:.2f}, "
          f"recorder {summary['recorder']['median_efficiency']:.2f}")  # fmt: skip
    print(f"profile: network calls {prof['network_calls_s']:.1f} s, projection "
          f"{prof['cumulative_s']['projection']:.1f} s, attack_single_run "
          f"{prof['cumulative_s']['attack_single_run']:.1f} s "
          f"(network {prof['network_share_of_attack_single_run']:.0%}, projection "
          f"{prof['projection_share_of_attack_single_run']:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
