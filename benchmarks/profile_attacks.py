"""Where the attack time goes: every attack family of the adaptive suite against its compute bound.

A benchmark, not a test (issue 16). For the committed mnist5k checkpoints ``LeNet5_ReLU_PGDAT_s0``
(deterministic) and ``LeNet5_BReLU_PGDAT_s0`` (random), on the first ``n`` class-balanced test
points (the engine's :func:`~robact_bench.data.balanced_subset`) at the board's Linf eps, each
attack family runs through **our adapter, as the adaptive suite configures it**: the spec is taken
from the suite, the attacked model from the engine's own ``_Engine.attacked_model`` (the EOT model
with the board's K and ``eot_batch`` on the random model, the transfer surrogate of
:mod:`robact_bench.attacks.bpda`, the :class:`~robact_bench.attacks.record.QueryRecorder` around
it for white-box attacks, as ``attack_chunk`` does), and the request from ``_Engine.run_attack``,
chunk by chunk (the board's ``batch_size``). Only that call is timed; the engine's scoring of the
images afterwards is not run. Cascaded AutoAttack components (APGD-T, FAB-T on the deterministic
model) run on every point here, not only on the points the previous components left robust.

**Work.** A :class:`CountingModule` wraps the *base* model (``_Engine`` is built on it), so it
sits inside the EOT model, the recorder and the surrogate copy: it counts real image passes of the
network, whatever K. Every call adds its batch size ``B`` to a per-``B`` bucket; if the output
requires grad, a tensor hook on the output adds ``B`` to the call's *backpropagated* bucket when
autograd computes the gradient with respect to that output (i.e. exactly when a backward pass
went through the call). Forward-only = all images - backpropagated images (a grad-enabled forward
that was never backpropagated counts as forward-only: a lower bound on its cost).

**Bound.** Right before every attack, in the same process and threads, the bare network (the
same module the counter wraps) is timed at a grid of batch sizes (1, 2, 4, ..., 512, plus the
attack's main chunk sizes): forward under ``no_grad``, and forward + cross-entropy +
``autograd.grad`` with respect to the input. The time of one call of ``B`` images is interpolated
linearly in ``B`` between grid points (beyond the grid, at the largest point's time per image).
``efficiency = (sum over forward-only calls of t_fwd(B) + sum over backpropagated calls of
t_fb(B)) / wall``: 1 means the attack ran as fast as its passes of the network can run.

**EOT step** (random model): one gradient of the EOT model on ``--eot-points`` points (K images
each, in chunks of ``eot_batch``) is split into forward and backward, and the sampling of the
random units is measured twice without reading their code: (a) every random unit is replaced by a
fixed precomputed mask of the same shape (``x * mask``, what a unit with its draws taken away
computes) and the step is timed again; (b) forward hooks capture each unit's real inputs and
``unit(x)`` is timed against ``torch.relu(x)`` on the same tensors.

Usage (from the repository root)::

    python benchmarks/profile_attacks.py [--n 50 200 1000] [--attacks pgd20 fgsm] [--models relu brelu]
        [--repeats 1] [--threads 2] [--out benchmarks/results-profile-cpu-2core.json]
    python benchmarks/profile_attacks.py --markdown [--out FILE]    # README tables from the JSON

Run it alone (``flock /tmp/heavy.lock ...`` on the shared 2-core machine): with another process on
the cores, 2-thread torch ops stall for whole scheduler slices (~55 ms a call) and neither the walls
nor the bound mean anything. Work (the counts) does not depend on the load. Cost on 2 quiet cores,
estimated from the counted work per point (n = 4) and LeNet-5's raw rates: ~1 s a point on the
ReLU model, ~5-6 s a point on the BReLU model (APGD-T's 3 targets and Square's 1,000 x K queries
dominate), so n = 50 ~6 min, n = 200 ~20-25 min, n = 1000 ~1.8 h; the default run ~2.3 h.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robact_bench import load_checkpoint
from robact_bench.activations import is_stochastic
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.record import QueryRecorder
from robact_bench.attacks.suites import AttackSpec, get_suite
from robact_bench.data import balanced_subset, load_dataset
from robact_bench.evaluation.engine import _Engine, _input_gradients_only
from robact_bench.evaluation.state import EvalState
from robact_bench.fileio import atomic_write_json, environment
from robact_bench.jobs import load_board

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
DEFAULT_OUT = HERE.parent / "results-profile-cpu-2core.json"
BOARD = "mnist5k"
SUITE = "adaptive"

#: short model name -> the board entry (seed 0) whose committed checkpoint is loaded
MODELS = {"relu": "LeNet5_ReLU_PGDAT", "brelu": "LeNet5_BReLU_PGDAT"}
#: attack family -> the adaptive suite's spec name on a deterministic / random model (None: not in the suite)
FAMILIES: dict[str, tuple[str | None, str | None]] = {
    "apgd-ce": ("apgd-ce", "apgd-ce"),
    "apgd-dlr": ("apgd-dlr", "apgd-dlr"),
    "apgd-t": ("apgd-t", "apgd-t"),
    "fab-t": ("fab-t", None),
    "square": ("square-alone", "square"),
    "pgd20": ("pgd20", "pgd20"),
    "fgsm": ("fgsm", "fgsm"),
    "cw": ("cw", "cw"),
    "transfer": ("apgd-ce-transfer", "apgd-ce-transfer"),
}
GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


# -- counting ---------------------------------------------------------------------------------
class CountingModule(nn.Module):
    """Pass-through wrapper counting the images of every call, and which calls were backpropagated.

    ``images[B]``: images of all calls of batch size ``B``; ``backward[B]``: images of those calls
    whose output a backward pass went through (a hook on the output fires when autograd computes
    the gradient with respect to it). ``forward_only(B) = images[B] - backward[B]``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images: dict[int, int] = {}
        self.backward: dict[int, int] = {}
        self.calls = 0

    def reset(self) -> None:
        """Forget every count."""
        self.images, self.backward, self.calls = {}, {}, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)``, counted."""
        out = self.model(x)
        b = int(x.shape[0])
        self.calls += 1
        self.images[b] = self.images.get(b, 0) + b
        if out.requires_grad:
            out.register_hook(self._hook(b))
        return out

    def _hook(self, b: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self.backward[b] = self.backward.get(b, 0) + b

        return hook

    def work(self) -> dict[str, Any]:
        """``{"calls", "forward_only": {B: images}, "forward_backward": {B: images}}``."""
        fb = {b: v for b, v in sorted(self.backward.items()) if v}
        fo = {b: v - self.backward.get(b, 0) for b, v in sorted(self.images.items()) if v - self.backward.get(b, 0)}
        return {"calls": self.calls, "forward_only": fo, "forward_backward": fb}


def _counters(module: nn.Module) -> list[CountingModule]:
    return [m for m in module.modules() if isinstance(m, CountingModule)]


def _merge_work(works: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": 0, "forward_only": {}, "forward_backward": {}}
    for w in works:
        out["calls"] += w["calls"]
        for key in ("forward_only", "forward_backward"):
            for b, v in w[key].items():
                out[key][b] = out[key].get(b, 0) + v
    for key in ("forward_only", "forward_backward"):
        out[key] = dict(sorted(out[key].items()))
    return out


# -- the bound ------------------------------------------------------------------------------
def _batch(x: torch.Tensor, b: int) -> torch.Tensor:
    reps = -(-b // len(x))
    return x.repeat(reps, 1, 1, 1)[:b].contiguous()


def _time_call(fn: Callable[[], Any], min_s: float) -> float:
    """Seconds per call of ``fn``: the median of calls timed one by one for ``min_s`` (at least 5), after 2 warm-ups.

    The median, not the mean: a call that lost its core to another process does not move it.
    """
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def call_times(model: nn.Module, x: torch.Tensor, sizes: Sequence[int], min_s: float) -> dict[str, dict[int, float]]:
    """Seconds per call of the bare ``model`` at each batch size: forward (no_grad) and forward+input-gradient."""
    fwd, fb = {}, {}
    for b in sorted(set(sizes)):
        xb = _batch(x, b)
        yb = torch.zeros(b, dtype=torch.long)

        def f(xb: torch.Tensor = xb) -> None:
            with torch.no_grad():
                model(xb)

        def g(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> None:
            xi = xb.clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xi), yb, reduction="sum")
            torch.autograd.grad(loss, xi)

        fwd[b] = _time_call(f, min_s)
        fb[b] = _time_call(g, min_s)
    return {"forward": fwd, "forward_backward": fb}


def interp(table: dict[int, float], b: int) -> float:
    """Seconds of one call of ``b`` images, linear in ``b`` between the grid points of ``table``."""
    keys = sorted(table)
    if b in table:
        return table[b]
    if b < keys[0]:
        return table[keys[0]]
    if b > keys[-1]:
        return table[keys[-1]] * b / keys[-1]
    hi = next(k for k in keys if k > b)
    lo = max(k for k in keys if k < b)
    w = (b - lo) / (hi - lo)
    return table[lo] * (1 - w) + table[hi] * w


def bound_seconds(work: dict[str, Any], times: dict[str, dict[int, float]]) -> dict[str, float]:
    """The bare network's time for the counted work: forward-only and forward-backward calls."""
    fo = sum(v / b * interp(times["forward"], b) for b, v in work["forward_only"].items())
    fb = sum(v / b * interp(times["forward_backward"], b) for b, v in work["forward_backward"].items())
    return {"forward_s": fo, "forward_backward_s": fb}


# -- set-up ---------------------------------------------------------------------------------
@cache
def _model(entry: str) -> nn.Module:
    """The committed seed-0 checkpoint of ``entry``, loaded once (attacks never change its weights)."""
    return load_checkpoint(ROOT / "weights" / BOARD / "Linf" / f"{entry}_s0" / "model")[0]


@cache
def _points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` class-balanced test points, as the engine chooses them (loaded once per ``n``)."""
    x, y = load_dataset(BOARD, "test")
    idx = balanced_subset(y, n)
    return x[idx].contiguous(), y[idx].contiguous()


@cache
def _eval_cfg() -> Any:
    """The board's evaluation config (read once)."""
    return load_board(BOARD).eval_cfg


def _spec(name: str, stochastic: bool) -> AttackSpec:
    for spec in get_suite(SUITE).attacks:
        if spec.name == name and spec.when in ("always", "stochastic" if stochastic else "deterministic"):
            return spec
    raise KeyError(f"suite {SUITE} has no attack {name} for a {'random' if stochastic else 'deterministic'} model")


def _main_sizes(cfg: Any, n: int, stochastic: bool) -> set[int]:
    """The batch sizes the attack's main calls use: the chunks, and under EOT the inner chunks."""
    chunks = [min(cfg.batch_size, n - i) for i in range(0, n, cfg.batch_size)]
    if not stochastic:
        return set(chunks)
    out = set()
    for c in chunks:
        k_imgs = c * cfg.eot_iter
        out.add(min(cfg.eot_batch, k_imgs))
        if k_imgs % cfg.eot_batch and k_imgs > cfg.eot_batch:
            out.add(k_imgs % cfg.eot_batch)
    return out


def run_one(model_key: str, family: str, n: int, *, recorder: bool, min_s: float) -> dict[str, Any]:
    """Profile one (model, attack family, n): wall, counted work and the bound, measured side by side.

    The weights do not require grad, as in :func:`~robact_bench.evaluation.engine.run_evaluation`.
    """
    with _input_gradients_only(_model(MODELS[model_key])):
        return _run_one(model_key, family, n, recorder=recorder, min_s=min_s)


def _run_one(model_key: str, family: str, n: int, *, recorder: bool, min_s: float) -> dict[str, Any]:
    entry = MODELS[model_key]
    cfg = replace(_eval_cfg(), n_examples=n)
    base = _model(entry)
    stochastic = is_stochastic(base)
    spec_name = FAMILIES[family][1 if stochastic else 0]
    row: dict[str, Any] = {"model": f"{entry}_s0", "stochastic": stochastic, "attack": family, "n": n}
    if spec_name is None:
        return {**row, "skipped": "not in the adaptive suite for this model"}
    spec = _spec(spec_name, stochastic)
    xs, ys = _points(n)
    counted = CountingModule(base).eval()
    eng = _Engine(counted, xs, ys, cfg, stochastic, EvalState(None, "profile", resume=False), progress=False)
    target, eot, reason = eng.attacked_model(spec)
    row.update(spec=spec.name, backend=spec.backend, library_attack=spec.attack, params=dict(spec.params),
               via=spec.via, eot=eot)  # fmt: skip
    if reason is not None:
        return {**row, "skipped": reason}
    counters = _counters(target)
    bare = counters[0].model  # the network the counter wraps (the surrogate copy for a transfer attack)
    sizes = sorted(set(GRID) | _main_sizes(cfg, n, stochastic and spec.eot))
    with torch.random.fork_rng():
        times = call_times(bare, xs, sizes, min_s)
    for c in counters:
        c.reset()
    eps = eng.eps_of(spec, cfg.eps)
    wall = lib = 0.0
    for ci, sl in enumerate(eng.chunks()):
        attacked = target
        if recorder and not spec.blackbox:  # as _Engine.attack_chunk does
            attacked = QueryRecorder(target, xs[sl], ys[sl], eps=eps, norm=cfg.norm,
                                     bounded=not spec.unbounded_queries)  # fmt: skip
        t0 = time.perf_counter()
        out = eng.run_attack(spec, attacked, eot, eps=eps, robust=None, overrides={}, chunk=ci, sl=sl)
        wall += time.perf_counter() - t0
        lib += float(out.record.get("seconds", 0.0))
    work = _merge_work([c.work() for c in counters])
    bound = bound_seconds(work, times)
    fo_imgs = sum(work["forward_only"].values())
    fb_imgs = sum(work["forward_backward"].values())
    return {
        **row,
        "chunks": len(eng.chunks()),
        "recorder": recorder and not spec.blackbox,
        "wall_s": round(wall, 4),
        "library_timer_s": round(lib, 4),
        "points_per_s": round(n / wall, 3),
        "work": {**work, "forward_only_images": fo_imgs, "forward_backward_images": fb_imgs},
        "images_per_point": round((fo_imgs + fb_imgs) / n, 1),
        "bound_s": {k: round(v, 4) for k, v in bound.items()},
        "efficiency": round(sum(bound.values()) / wall, 4),
        "call_times_s": {k: {b: round(v, 7) for b, v in t.items()} for k, t in times.items()},
    }


# -- the EOT step -----------------------------------------------------------------------------
class _FixedMask(nn.Module):
    """A random unit with its draws taken away: ``x * mask`` with a mask precomputed per input shape."""

    def __init__(self, masks: dict[tuple[int, ...], torch.Tensor]) -> None:
        super().__init__()
        self.masks = masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * mask`` (the mask of ``x``'s shape)."""
        return x * self.masks[tuple(x.shape)]


def _random_units(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """``(parent, child name, unit)`` for every leaf module that declares a random output."""
    out = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if bool(getattr(child, "stochastic", False)) and not any(True for _ in child.children()):
                out.append((parent, name, child))
    return out


def eot_step(points: int, min_s: float) -> dict[str, Any]:
    """One EOT gradient on the random model: forward, backward, and the sampling of its random units."""
    cfg = _eval_cfg()
    base = _model(MODELS["brelu"])
    xs, ys = _points(points)
    units = _random_units(base)
    captured: list[list[torch.Tensor]] = [[] for _ in units]
    hooks = [u.register_forward_hook(lambda m, i, o, j=j: captured[j].append(i[0].detach().clone()))
             for j, (_, _, u) in enumerate(units)]  # fmt: skip
    eot = EOTModel(base, cfg.eot_iter, cfg.eot_batch)
    with torch.no_grad():
        eot(xs)
    for h in hooks:
        h.remove()

    def step(model: nn.Module) -> Callable[[], None]:
        def fn() -> None:
            xi = xs.clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xi), ys, reduction="sum")
            torch.autograd.grad(loss, xi)

        return fn

    def fwd(model: nn.Module, grad: bool) -> Callable[[], None]:
        def fn() -> None:
            with torch.set_grad_enabled(grad):
                model(xs.clone().requires_grad_(grad))

        return fn

    def timed(model: nn.Module) -> dict[str, float]:
        s = _time_call(step(model), min_s)
        f = _time_call(fwd(model, True), min_s)
        f0 = _time_call(fwd(model, False), min_s)
        return {"step_s": s, "forward_s": f, "backward_s": s - f, "forward_no_grad_s": f0}

    real = timed(eot)
    gen = torch.Generator().manual_seed(0)
    for (parent, name, _unit), xs_unit in zip(units, captured, strict=True):
        masks = {tuple(t.shape): torch.rand(t.shape, generator=gen) < 0.5 for t in xs_unit}
        setattr(parent, name, _FixedMask({k: v.float() for k, v in masks.items()}))
    fixed = timed(eot)
    for parent, name, unit in units:
        setattr(parent, name, unit)
    per_unit = []
    for (_, name, unit), xs_unit in zip(units, captured, strict=True):
        ins = [t.clone().requires_grad_(True) for t in xs_unit]
        t_unit = _time_call(lambda ins=ins, unit=unit: [unit(t) for t in ins], min_s)
        t_relu = _time_call(lambda ins=ins: [torch.relu(t) for t in ins], min_s)
        per_unit.append({"unit": f"{type(unit).__name__} ({name})", "shapes": sorted({tuple(t.shape) for t in xs_unit}),
                         "unit_s": t_unit, "relu_s": t_relu, "draw_s": t_unit - t_relu})  # fmt: skip
    draws = sum(u["draw_s"] for u in per_unit)
    k_imgs = points * cfg.eot_iter
    rnd = {k: round(v, 5) for k, v in real.items()}
    return {
        "model": f"{MODELS['brelu']}_s0",
        "points": points,
        "k": cfg.eot_iter,
        "eot_batch": cfg.eot_batch,
        "images": k_imgs,
        "chunks": -(-k_imgs // cfg.eot_batch),
        "random": rnd,
        "fixed_masks": {k: round(v, 5) for k, v in fixed.items()},
        "sampling_s_masks": round(real["forward_s"] - fixed["forward_s"], 5),
        "sampling_s_unit_ops": round(draws, 5),
        "sampling_share_of_step": round(draws / real["step_s"], 4),
        "forward_share_of_step": round(real["forward_s"] / real["step_s"], 4),
        "backward_share_of_step": round(real["backward_s"] / real["step_s"], 4),
        "images_per_s_step": round(k_imgs / real["step_s"], 1),
        "per_unit": [{**u, "unit_s": round(u["unit_s"], 6), "relu_s": round(u["relu_s"], 6),
                      "draw_s": round(u["draw_s"], 6)} for u in per_unit],
    }


# -- report ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time, with every run's wall and efficiency."""
    if len(runs) == 1 or "skipped" in runs[0]:
        return runs[0]
    order = sorted(runs, key=lambda r: r["wall_s"])
    out = dict(order[len(order) // 2])
    out["runs_wall_s"] = [r["wall_s"] for r in runs]
    out["runs_efficiency"] = [r["efficiency"] for r in runs]
    return out


def markdown(report: dict[str, Any]) -> str:
    """The README tables: points/s and efficiency per (model, attack, n), and the EOT step breakdown."""
    env = report["environment"]
    lines = [f"Attacks on mnist5k LeNet-5 ({env['cpu_model']}, {env['torch_threads']} threads, "
             f"torch {env['versions']['torch']}); "
             f"eps {report['parameters']['eps']} Linf, random model on the EOT model (K = "
             f"{report['parameters']['eot_iter']}, {report['parameters']['eot_batch']} images a pass).", "",
             "| model | attack | n | wall s | points/s | fwd imgs/pt | fwd+bwd imgs/pt | bound s | efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["rows"]:
        model = "ReLU" if not r["stochastic"] else "BReLU (EOT)"
        if "skipped" in r:
            lines.append(f"| {model} | {r['attack']} | {r['n']} | - | - | - | - | - | skipped: {r['skipped']} |")
            continue
        w = r["work"]
        lines.append(
            f"| {model} | {r['attack']} | {r['n']} | {r['wall_s']:.2f} | {r['points_per_s']:.1f} | "
            f"{w['forward_only_images'] / r['n']:.0f} | {w['forward_backward_images'] / r['n']:.0f} | "
            f"{sum(r['bound_s'].values()):.2f} | {r['efficiency']:.2f} |"
        )
    e = report.get("eot_step")
    if e:
        lines += ["", f"One EOT gradient of {e['model']}: {e['points']} points x K = {e['k']} = {e['images']} images "
                  f"in {e['chunks']} passes of at most {e['eot_batch']}.", "",
                  "| | step s | forward s | backward s | forward (no grad) s |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for key, label in (("random", "random units (real)"), ("fixed_masks", "draws replaced by fixed masks")):
            t = e[key]
            lines.append(f"| {label} | {t['step_s']:.4f} | {t['forward_s']:.4f} | {t['backward_s']:.4f} | "
                         f"{t['forward_no_grad_s']:.4f} |")  # fmt: skip
        lines += ["", f"Sampling: {e['sampling_s_masks']:.4f} s (real - fixed masks, forward), "
                  f"{e['sampling_s_unit_ops']:.4f} s (unit(x) - relu(x) on the captured inputs) = "
                  f"{100 * e['sampling_share_of_step']:.0f}% of the step; forward "
                  f"{100 * e['forward_share_of_step']:.0f}%, backward {100 * e['backward_share_of_step']:.0f}%."]
    return "\n".join(lines)


def main() -> None:
    """Profile the attacks (writes the JSON), or print the README tables from it (``--markdown``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[50, 200, 1000], help="points per run (default 50 200 1000)")
    p.add_argument("--attacks", nargs="+", choices=tuple(FAMILIES), default=list(FAMILIES))
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    p.add_argument("--repeats", type=int, default=1, help="runs per row; the median wall is kept (default 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    p.add_argument("--recorder", action=argparse.BooleanOptionalAction, default=True,
                   help="the engine's QueryRecorder around white-box attacks (default on, as the engine)")
    p.add_argument("--eot-points", type=int, default=200, help="points of the EOT step breakdown (0: skip it)")
    p.add_argument("--min-time", type=float, default=0.1, help="seconds per raw-rate measurement (default 0.1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--markdown", action="store_true", help="print the README tables from --out and exit")
    args = p.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return
    torch.set_num_threads(args.threads)
    cfg = _eval_cfg()
    report: dict[str, Any] = {
        "environment": {**environment(), "cpu_model": _cpu_model(), "loadavg_before": _loadavg()},
        "parameters": {"board": BOARD, "suite": SUITE, "eps": cfg.eps, "norm": cfg.norm, "eot_iter": cfg.eot_iter,
                       "eot_batch": cfg.eot_batch, "batch_size": cfg.batch_size, "seed": cfg.seed,
                       "n": args.n, "attacks": args.attacks, "models": {k: MODELS[k] for k in args.models},
                       "repeats": args.repeats, "recorder": args.recorder, "grid": list(GRID),
                       "min_time_s": args.min_time, "eot_points": args.eot_points},
        "rows": [],
    }
    for lib in ("pyautoattack", "torchattacks"):  # the first attack of a library must not pay its import
        importlib.import_module(lib)
    t0 = time.perf_counter()
    for n in args.n:
        for model_key in args.models:
            for family in args.attacks:
                runs = [run_one(model_key, family, n, recorder=args.recorder, min_s=args.min_time)
                        for _ in range(args.repeats)]  # fmt: skip
                row = _median_row(runs)
                report["rows"].append(row)
                msg = row.get("skipped") or f"{row['wall_s']:.2f} s, efficiency {row['efficiency']:.2f}"
                print(f"{row['model']} {family} n={n}: {msg}", flush=True)
    if args.eot_points and "brelu" in args.models:
        report["eot_step"] = eot_step(args.eot_points, args.min_time)
    report["environment"]["loadavg_after"] = _loadavg()
    report["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(args.out, report)
    print(markdown(report))


if __name__ == "__main__":
    main()
