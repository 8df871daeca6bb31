"""Evaluation performance report (a benchmark, not a test): four measurements in one run.

Prints, on the machine it runs on (``--device cuda`` for a GPU), one JSON object with:

1. **Attack throughput vs the raw forward-backward bound.** The engine's PGD-20
   (``evaluate(..., "brelu_paper", attacks=("pgd20",))``) on a ReLU LeNet-5: image-steps per
   second of the attack (as timed by the adapter) divided by the images per second of a bare
   ``forward + input-gradient`` loop of the same model at the same batch size.
2. **Batched vs sequential EOT, same number of gradient evaluations.** pyautoattack's APGD-CE
   (``n_iter`` iterations) on a BReLU LeNet-5: *sequential* is the library's own loop
   (``eot_iter = K`` forward-backward passes per iteration); *batched* is ``eot_iter = 1`` on
   :class:`~robact_bench.attacks.eot.EOTModel` (the K samples in one forward pass). Both
   evaluate ``n_iter * K`` sampled gradients per point.
3. **Scaling with the number of points** (250, 500, 1000 by default): the engine's PGD-20 +
   FGSM on a ReLU LeNet-5 in chunks of ``--chunk`` points, each size in a fresh process (after a
   4-point warm-up run that pays the libraries' imports); time per point (the engine's own wall
   time, diagnostics included) and the evaluation's peak memory above the process's memory
   before it started (``ru_maxrss``; on CUDA the allocator's peak).
4. **Processes**: ``robact-bench eval`` of the same checkpoint (an untrained LeNet-5 saved as a
   run on mnist5k; timing does not depend on the weights) on ``--dist-points`` test points, PGD-20
   + FGSM alone and with the adaptive suite's eps and steps sweeps, ``--chunk`` points per chunk,
   as (a) 1 process with 1 thread, (b) ``torchrun
   --nproc_per_node 2`` with 1 thread each, (c) 1 process with 2 threads. Both the evaluation's
   own wall time (``wall_time_s`` of the result: start of the evaluation to its end, gathers
   included) and the whole command's (process start-up and imports included) are reported, and
   whether (a) and (b) gave the same per-point flags.

Every figure is the median of ``--repeats`` runs; the two sides of each ratio are measured in
the same run, interleaved. Models are untrained (the attack's work does not depend on the
weights; labels are the model's own predictions where it matters, so every point is attacked).
The 1-minute load average before and after is printed: compare figures only from a quiet
machine. Usage (from the repository root, package installed)::

    python benchmarks/performance.py [--threads 2] [--repeats 3] [--sizes 250 500 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from robact_bench import create_model, evaluate
from robact_bench.attacks.eot import EOTModel

HERE = Path(__file__).resolve()


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- 1. throughput ---------------------------------------------------------------------------
def _fwd_bwd_rate(model: torch.nn.Module, x: torch.Tensor, reps: int) -> float:
    device = x.device
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        xi = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xi), torch.zeros(len(x), dtype=torch.long, device=device),
                                                 reduction="sum")  # fmt: skip
        torch.autograd.grad(loss, xi)
    _sync(device)
    return reps * len(x) / (time.perf_counter() - t0)


def throughput(points: int, repeats: int, device: torch.device) -> dict:
    """Engine PGD-20 image-steps/s over bare forward+input-gradient images/s (same model, batch)."""
    torch.manual_seed(0)
    x = torch.rand(points, 1, 28, 28)
    relu = create_model("lenet5", act_layer="relu").eval().to(device)
    with torch.no_grad():  # labels the model gets right, so PGD works on every point at every step
        y_ok = relu(x.to(device)).argmax(1).cpu()
    attack_rate, raw_rate = [], []
    for _ in range(repeats):
        r = evaluate(relu, x, y_ok, "brelu_paper", eps=0.1, attacks=("pgd20",), sweeps=False, progress=False,
                     batch_size=points)  # fmt: skip
        attack_rate.append(points * 20 / r.attack("pgd20").record["seconds"])
        raw_rate.append(_fwd_bwd_rate(relu, x.to(device), 20))
    a_med, r_med = statistics.median(attack_rate), statistics.median(raw_rate)
    return {
        "model": "LeNet-5 ReLU (28x28), untrained",
        "attack": "engine pgd20 (torchattacks PGD, 20 steps)",
        "points": points,
        "attack_img_steps_per_s": round(a_med),
        "raw_fwd_bwd_img_per_s": round(r_med),
        "ratio": round(a_med / r_med, 3),
        "runs_ratio": [round(a / r, 3) for a, r in zip(attack_rate, raw_rate, strict=True)],
    }


# -- 2. EOT ----------------------------------------------------------------------------------
def _apgd_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eot_iter: int, n_iter: int) -> float:
    from pyautoattack.autopgd_base import APGDAttack

    atk = APGDAttack(model, n_restarts=1, n_iter=n_iter, eps=0.1, norm="Linf", eot_iter=eot_iter, seed=0,
                     loss="ce", device=x.device)  # fmt: skip
    _sync(x.device)
    t0 = time.perf_counter()
    atk.perturb(x, y)
    _sync(x.device)
    return time.perf_counter() - t0


def eot(points: int, k: int, n_iter: int, repeats: int, device: torch.device) -> dict:
    """APGD-CE (pyautoattack) with the library's EOT loop vs one batched pass of K samples."""
    torch.manual_seed(0)
    x = torch.rand(points, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (points,), device=device)
    brelu = create_model("lenet5", act_layer="brelu").eval().to(device)
    seq, bat = [], []
    for _ in range(repeats):
        seq.append(_apgd_seconds(brelu, x, y, eot_iter=k, n_iter=n_iter))
        bat.append(_apgd_seconds(EOTModel(brelu, k), x, y, eot_iter=1, n_iter=n_iter))
    return {
        "model": "LeNet-5 BReLU (28x28), untrained",
        "attack": f"pyautoattack APGD-CE, {n_iter} iterations, K = {k}",
        "points": points,
        "gradient_evaluations_per_point": n_iter * k,
        "sequential_s": [round(v, 3) for v in seq],
        "batched_s": [round(v, 3) for v in bat],
        "sequential_over_batched": round(statistics.median(seq) / statistics.median(bat), 3),
    }


# -- 3. scaling (one fresh process per size) ---------------------------------------------------
def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _rss_mb() -> float | None:
    """Resident memory now (Linux ``/proc/self/statm``), or None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class _PeakRSS:
    """Sample the resident memory every 2 ms in a thread; ``peak`` is the largest sample (MiB).

    ``ru_maxrss`` is a high-water mark of the whole process (imports included), so it can hide
    the evaluation's own peak; sampling measures it. Where ``/proc`` is missing, falls back to
    ``ru_maxrss``.
    """

    def __enter__(self) -> _PeakRSS:
        self.start = _rss_mb()
        self.peak = self.start or 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            now = _rss_mb()
            if now is not None:
                self.peak = max(self.peak, now)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scaling_child(n: int, chunk: int, threads: int, device: torch.device) -> dict:
    """(in a fresh process) evaluate n points; time per point and peak memory above the start."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(n, 1, 28, 28)
    model = create_model("lenet5", act_layer="relu").eval().to(device)
    with torch.no_grad():
        y = torch.cat([model(x[i : i + chunk].to(device)).argmax(1).cpu() for i in range(0, n, chunk)])
    # warm-up on 4 points: the attack libraries' imports and first-call set-up are paid once
    evaluate(model, x[:4], y[:4], "brelu_paper", eps=0.1, attacks=("pgd20", "fgsm"), sweeps=False, progress=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    base_max = _maxrss_mb()
    with _PeakRSS() as mem:
        r = evaluate(model, x, y, "brelu_paper", eps=0.1, attacks=("pgd20", "fgsm"), sweeps=False, progress=False,
                     batch_size=chunk)  # fmt: skip
    if mem.start is not None:
        before, above = mem.start, mem.peak - mem.start
    else:
        before, above = base_max, _maxrss_mb() - base_max
    out = {"n": n, "seconds": r.wall_time_s, "s_per_point": r.wall_time_s / n,
           "rss_before_mb": round(before, 1), "rss_peak_above_mb": round(above, 1)}  # fmt: skip
    if device.type == "cuda":
        out["cuda_peak_above_mb"] = round((torch.cuda.max_memory_allocated(device) - base_cuda) / 2**20, 1)
    return out


def scaling(sizes: list[int], chunk: int, threads: int, repeats: int, device: torch.device) -> dict:
    """Time per point and peak memory per size, each size in a fresh process, interleaved."""
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            cmd = [sys.executable, str(HERE), "--child-scaling", str(n), "--chunk", str(chunk),
                   "--threads", str(threads), "--device", str(device)]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[n].append(json.loads(res.stdout.strip().splitlines()[-1]))
    rows = []
    for n in sizes:
        per = statistics.median(r["s_per_point"] for r in runs[n])
        row = {"n": n, "median_s": round(statistics.median(r["seconds"] for r in runs[n]), 3),
               "ms_per_point": round(1000 * per, 3),
               "rss_peak_above_mb": statistics.median(r["rss_peak_above_mb"] for r in runs[n])}  # fmt: skip
        if device.type == "cuda":
            row["cuda_peak_above_mb"] = statistics.median(r["cuda_peak_above_mb"] for r in runs[n])
        rows.append(row)
    per_point = [r["ms_per_point"] for r in rows]
    mean = statistics.mean(per_point)
    mem = [r["rss_peak_above_mb"] for r in rows]
    return {
        "model": "LeNet-5 ReLU (28x28), untrained; engine pgd20 + fgsm",
        "chunk": chunk,
        "threads": threads,
        "sizes": rows,
        "max_deviation_of_time_per_point_from_mean": round(max(abs(p / mean - 1) for p in per_point), 3),
        "memory_peak_above_mb_range": [min(mem), max(mem)],
    }


# -- 4. processes ----------------------------------------------------------------------------
WORKLOADS = {
    # PGD-20 + FGSM: 22 forward-backward passes a point; fixed costs weigh
    "pgd20+fgsm": ["--suite", "adaptive", "--attacks", "pgd20", "fgsm", "--no-sweeps"],
    # + the adaptive suite's sweeps (PGD-20 at 5 eps, PGD at 1/5/20/50 steps): ~200 passes a point
    "pgd20+fgsm+sweeps": ["--suite", "adaptive", "--attacks", "pgd20", "fgsm", "--sweeps"],
}


def _eval_cmd(ckpt: Path, out: Path, workload: str, points: int, chunk: int, threads: int,
              device: torch.device) -> list[str]:  # fmt: skip
    return ["-m", "robact_bench", "eval", "--checkpoint", str(ckpt), *WORKLOADS[workload], "--eps", "0.1",
            "--n-examples", str(points), "--batch-size", str(chunk), "--threads", str(threads), "--no-progress",
            "--overwrite", "--out", str(out), "--device", str(device)]


def processes(points: int, chunk: int, repeats: int, device: torch.device) -> dict:
    """robact-bench eval: 1 process x 1 thread, torchrun 2 processes x 1 thread, 1 process x 2 threads.

    Two workloads: the light one shows the fixed costs every rank pays (imports of the attack
    library, the diagnostics, which each rank computes on all points), the heavier one a real
    evaluation's proportions.
    """
    return {w: _processes(w, points, chunk, repeats, device) for w in WORKLOADS}


def _processes(workload: str, points: int, chunk: int, repeats: int, device: torch.device) -> dict:
    from robact_bench.models import ModelSpec
    from robact_bench.models.checkpoint import save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="robact-bench-perf-"))
    torch.manual_seed(0)
    spec = ModelSpec("lenet5", "relu")
    save_checkpoint(tmp / "run" / "model", spec.build(), spec, {"training": {"dataset": "mnist5k", "name": "perf"}})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    configs = {
        "1 process x 1 thread": ([sys.executable], 1),
        "2 processes x 1 thread (torchrun, gloo)": (torchrun, 1),
        "1 process x 2 threads": ([sys.executable], 2),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    flags: dict[str, list] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for _ in range(repeats):
        for name, (launcher, threads) in configs.items():
            out = tmp / f"{len(flags)}.json"
            t0 = time.perf_counter()
            subprocess.run([*launcher, *_eval_cmd(tmp / "run", out, workload, points, chunk, threads, device)],
                           capture_output=True, text=True, check=True, env=env)  # fmt: skip
            wall = time.perf_counter() - t0
            result = json.loads(out.read_text())
            times[name].append((result["wall_time_s"], wall))
            flags[name] = [result["robust_flags"], [a["flags"] for a in result["attacks"]],
                           [s["accuracy"] for s in result["sweeps"]]]
    rows = {k: {"eval_s": round(statistics.median(t[0] for t in v), 3),
                "command_s": round(statistics.median(t[1] for t in v), 3)} for k, v in times.items()}  # fmt: skip
    one, two, threads2 = (rows[k] for k in configs)
    return {
        "model": f"LeNet-5 ReLU (28x28), untrained checkpoint on mnist5k's test split; {workload}",
        "points": points,
        "chunk": chunk,
        "runs": rows,
        "speedup_2proc_vs_1proc_eval": round(one["eval_s"] / two["eval_s"], 3),
        "speedup_2proc_vs_1proc_command": round(one["command_s"] / two["command_s"], 3),
        "speedup_2threads_vs_1thread_eval": round(one["eval_s"] / threads2["eval_s"], 3),
        "same_per_point_flags_1proc_2proc": flags["1 process x 1 thread"]
        == flags["2 processes x 1 thread (torchrun, gloo)"],
    }


def main() -> None:
    """Run the four measurements and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads for measurements 1-3 (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--points", type=int, default=100, help="points of measurements 1 and 2 (default 100)")
    p.add_argument("--k", type=int, default=10, help="EOT samples (default 10)")
    p.add_argument("--n-iter", type=int, default=20, help="APGD iterations (default 20)")
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000], help="points of measurement 3")
    p.add_argument("--chunk", type=int, default=250, help="points per chunk in measurements 3 and 4 (default 250)")
    p.add_argument("--dist-points", type=int, default=1000, help="points of measurement 4 (default 1000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=("throughput", "eot", "scaling", "processes"), default=None)
    p.add_argument("--child-scaling", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    device = torch.device(args.device)
    if args.child_scaling is not None:
        print(json.dumps(scaling_child(args.child_scaling, args.chunk, args.threads, device)))
        return
    torch.set_num_threads(args.threads)
    only = set(args.only or ("throughput", "eot", "scaling", "processes"))
    cuda = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    report: dict = {"device": str(device), "cuda": cuda, "cpu_count": os.cpu_count(), "threads": args.threads,
                    "repeats": args.repeats, "torch": torch.__version__, "loadavg_before": _loadavg()}  # fmt: skip
    t0 = time.perf_counter()
    if "throughput" in only:
        report["throughput"] = throughput(args.points, args.repeats, device)
    if "eot" in only:
        report["eot"] = eot(args.points, args.k, args.n_iter, args.repeats, device)
    if "scaling" in only:
        report["scaling"] = scaling(args.sizes, args.chunk, args.threads, args.repeats, device)
    if "processes" in only and device.type == "cuda" and torch.cuda.device_count() < 2:
        report["processes"] = {"skipped": "2 processes on CUDA need 2 GPUs (one per rank, nccl)"}
    elif "processes" in only:
        report["processes"] = processes(args.dist_points, args.chunk, args.repeats, device)
    report["loadavg_after"] = _loadavg()
    report["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
