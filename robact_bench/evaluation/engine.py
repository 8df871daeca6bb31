"""The evaluation engine: run a named suite through the reference libraries, adaptively.

``evaluate(model, x, y, suite, **options) -> EvalResult`` is the one way our numbers are made.
For every attack of the suite (:mod:`robact_bench.attacks.suites`) the engine

1. picks the model to attack: the model itself, its BPDA/transfer surrogate, and on a random
   model the batched :class:`~robact_bench.attacks.eot.EOTModel` (K samples per gradient/query);
2. runs the attack through its backend's adapter (torchattacks, AutoAttack, ART), which checks
   that every returned image is in [0, 1] and inside the threat model;
3. scores the adversarial images on the **real** model: one pass for a deterministic model,
   ``R`` fresh passes for a random one, a point counting as robust only if every pass is right;
4. stores the per-point flags (a point must also be correct clean), and saves the finished unit
   atomically, so ``resume`` skips finished work and gives the same numbers.

The final robust accuracy is the worst case per point over all attacks.

**Chunks, seeds and processes.** The points are cut into chunks of ``batch_size``; every attack,
scoring pass and sweep point runs chunk by chunk, each chunk reseeded from the evaluation seed,
the unit's name and the chunk's index (AutoAttack: the evaluation seed, as the library reseeds
every batch itself). A unit's number therefore depends on the seed and ``batch_size``, never on
which other units ran (or were resumed), nor on how many processes share the work: under
``torchrun`` (:mod:`robact_bench.distributed`) rank ``r`` of ``W`` runs chunks ``r, r + W, ...``
and the per-point flags are gathered on every rank, so 1 process and ``W`` processes give the
same per-point result (with the same threads per process). Only rank 0 writes.

Example:
    >>> from robact_bench import evaluate
    >>> result = evaluate(model, x, y, "standard", eps=8 / 255)
    >>> result.robust_acc, result.attack("apgd-ce").accuracy

"""

from __future__ import annotations

import logging
import time
import warnings
import zlib
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robact_bench import distributed
from robact_bench.activations import is_stochastic
from robact_bench.attacks.common import AttackOutput, check_inputs, model_device
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.suites import AttackSpec, Suite, SweepSpec, get_suite
from robact_bench.data import balanced_subset
from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.diagnostics import drelu_saturation, input_gradients, stochastic_check
from robact_bench.evaluation.masking import masking_checks, masking_verdict
from robact_bench.evaluation.result import AttackRecord, EvalResult
from robact_bench.evaluation.state import EvalState, eval_fingerprint, flags_to_str, str_to_flags
from robact_bench.evaluation.stochastic import Score, fraction, score
from robact_bench.fileio import environment

log = logging.getLogger(__name__)

META_KEYS = ("model_name", "title", "dataset", "split", "spec", "training", "progress", "quick", "state_path", "resume")
_APGD = ("apgd-ce", "apgd-dlr", "apgd-t")


def _unit_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def _chunk_seed(seed: int, name: str, chunk: int) -> int:
    """Seed of one chunk of a unit; chunk 0 keeps the unit's seed (one-chunk runs are unchanged)."""
    return _unit_seed(seed, name if chunk == 0 else f"{name}#chunk{chunk}")


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.bool)


def _cat_scores(parts: list[Score]) -> Score:
    return Score(worst=_cat([p.worst for p in parts]), mean=_cat([p.mean for p in parts]),
                 majority=_cat([p.majority for p in parts]), first=_cat([p.first for p in parts]),
                 passes=parts[0].passes)  # fmt: skip


def _merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for a unit run chunk by chunk: the first chunk's, with totals and every seed."""
    out = dict(records[0])
    if len(records) == 1:
        return out
    for key in ("points_attacked", "projected_to_threat_model"):
        if key in out:
            out[key] = sum(r[key] for r in records)
    out["seconds"] = round(sum(r["seconds"] for r in records), 3)
    if "projection" in out:
        out["projection"] = max(r["projection"] for r in records)
    if "library_checks" in out:
        out["library_checks"] = list(dict.fromkeys(m for r in records for m in r["library_checks"]))
    out["chunks"] = {"count": len(records), "seeds": [r.get("seed") for r in records]}
    return out


@torch.no_grad()
def check_model_output(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """Validate a model's outputs on ``x``: logits, finite, one column per label.

    Raises ``ValueError`` (one line) for NaN/inf outputs, outputs that are not ``(N, classes)``,
    labels outside ``[0, classes)``, and outputs that are probabilities (every row in [0, 1]
    summing to 1, AutoAttack's ``check_range_output``): attacks need logits.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    out = torch.cat(outs) if outs else torch.empty(0, 0)
    if out.dim() != 2 or out.shape[0] != len(x):
        raise ValueError(f"the model must return logits of shape (N, classes); got {tuple(out.shape)} for N = {len(x)}")
    if not torch.isfinite(out).all():
        raise ValueError(f"the model returned NaN or inf outputs on {int((~torch.isfinite(out)).any(1).sum())} points")
    n_cls = out.shape[1]
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_cls):
        raise ValueError(
            f"labels must be in [0, {n_cls - 1}] for a model with {n_cls} outputs; got [{int(y.min())}, {int(y.max())}]"
        )
    if (
        n_cls > 1
        and float(out.min()) >= 0
        and float(out.max()) <= 1
        and torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4)
    ):
        raise ValueError(
            "the model returns probabilities (rows in [0, 1] summing to 1), not logits: remove the softmax"
        )
    return []


def _filter(suite: Suite, cfg: EvalConfig, stochastic: bool) -> tuple[list[AttackSpec], list[dict[str, Any]]]:
    chosen, skipped = [], []
    names = [a.name for a in suite.attacks]
    if cfg.attacks is not None:
        unknown = sorted(set(cfg.attacks) - set(names))
        if unknown:
            raise ValueError(
                f"suite {suite.name} has no attack {', '.join(unknown)}; it has {', '.join(dict.fromkeys(names))}"
            )
    for spec in suite.attacks:
        if spec.when == "stochastic" and not stochastic:
            continue
        if spec.when == "deterministic" and stochastic:
            continue
        if cfg.attacks is not None and spec.name not in cfg.attacks:
            skipped.append({"name": spec.name, "reason": "not selected (attacks option)"})
            continue
        chosen.append(spec)
    return chosen, skipped


class _Engine:
    """The state of one evaluation (the model, points, config, state file)."""

    def __init__(self, model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, cfg: EvalConfig, stochastic: bool,
                 state: EvalState, progress: bool) -> None:  # fmt: skip
        self.model, self.xs, self.ys, self.cfg = model, xs, ys, cfg
        self.stochastic = stochastic
        self.passes = cfg.passes if stochastic else 1
        self.state = state
        self.progress = progress
        self.clean: Score | None = None
        self._surrogates: dict[str, tuple[nn.Module, int]] = {}

    # -- models -----------------------------------------------------------------------------
    def surrogate(self, via: str) -> tuple[nn.Module, int]:
        if via not in self._surrogates:
            from robact_bench.attacks.bpda import bpda_model

            self._surrogates[via] = bpda_model(self.model, via)
        return self._surrogates[via]

    def attacked_model(self, spec: AttackSpec) -> tuple[nn.Module, dict[str, Any] | None, str | None]:
        """The module the attack sees, its EOT record, or a reason to skip it."""
        base = self.model
        random = self.stochastic
        if spec.via != "model":
            base, count = self.surrogate(spec.via)
            if count == 0:
                return base, None, f"the model has no activation with a surrogate ({spec.via} needs one)"
            random = is_stochastic(base)
        if not (random and spec.eot):
            return base, None, None
        if self.cfg.eot_mode == "batched":
            eot = {"mode": "batched", "k": self.cfg.eot_iter, "max_batch": self.cfg.eot_batch}
            return EOTModel(base, self.cfg.eot_iter, self.cfg.eot_batch), eot, None
        return base, {"mode": "sequential", "k": self.cfg.eot_iter}, None

    # -- running one attack -------------------------------------------------------------------
    def chunks(self) -> list[slice]:
        """The chunks of points, ``batch_size`` each (the last one shorter)."""
        n, bs = len(self.xs), self.cfg.batch_size
        return [slice(i, min(i + bs, n)) for i in range(0, n, bs)]

    def map_chunks(self, fn: Any) -> list[Any]:
        """``[fn(c, chunk) for every chunk]``: this rank runs its share, every rank gets them all."""
        chunks = self.chunks()
        world, me = distributed.world_size(), distributed.rank()
        mine = {c: fn(c, sl) for c, sl in enumerate(chunks) if c % world == me}
        merged: dict[int, Any] = {}
        for part in distributed.gather(mine):
            merged.update(part)
        return [merged[c] for c in range(len(chunks))]

    def run_attack(self, spec: AttackSpec, target: nn.Module, eot: dict[str, Any] | None, *, eps: float,
                   robust: torch.Tensor | None, overrides: dict[str, Any], chunk: int,
                   sl: slice) -> AttackOutput:  # fmt: skip
        """Run ``spec`` on chunk ``chunk`` (the points ``sl``), seeded for that chunk."""
        cfg = self.cfg
        xs, ys = self.xs[sl], self.ys[sl]
        params = {**spec.params, **overrides}
        sequential_k = eot["k"] if eot is not None and eot["mode"] == "sequential" else None
        seed = _chunk_seed(cfg.seed, spec.name, chunk)
        if spec.backend == "torchattacks":
            from robact_bench.attacks.torchattacks import torchattacks_attack

            attack = spec.attack
            if sequential_k is not None and attack == "PGD":
                attack, params = "EOTPGD", {**params, "eot_iter": sequential_k}
            return torchattacks_attack(target, xs, ys, attack=attack, eps=eps, norm=cfg.norm,
                                       name=spec.name, batch_size=cfg.batch_size, seed=seed, **params)  # fmt: skip
        if spec.backend == "art":
            from robact_bench.attacks.art import art_attack

            return art_attack(target, xs, ys, attack=spec.attack, eps=eps, norm=cfg.norm,
                              name=spec.name, batch_size=cfg.batch_size, seed=seed, **params)  # fmt: skip
        from robact_bench.attacks.autoattack import autoattack_attack

        version = params.pop("version", "standard")
        if eot is not None and spec.attack in _APGD:
            params["eot_iter"] = 1 if eot["mode"] == "batched" else eot["k"]
        if "steps" in params:  # sweeps speak of steps; AutoAttack of n_iter
            params["n_iter"] = params.pop("steps")
        # AutoAttack seeds itself with one seed for every component, as the library does
        torch.manual_seed(cfg.seed)
        (out,) = autoattack_attack(target, xs, ys, eps=eps, norm=cfg.norm, version=version,
                                   seed=cfg.seed, batch_size=cfg.batch_size, backend=cfg.autoattack_backend,
                                   attacks=[spec.attack], params=params,
                                   robust=robust[sl] if robust is not None else None)  # fmt: skip
        return AttackOutput(spec.name, out.x_adv, out.library_robust, out.record)

    def attack_chunks(self, spec: AttackSpec, target: nn.Module, eot: dict[str, Any] | None, *, eps: float,
                      robust: torch.Tensor | None, overrides: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Attack and score every chunk (this rank's share); return them gathered.

        Keys: ``flags`` (robust per point), ``first`` (first-pass flags), ``library`` (the
        library's own flags, or ``None``) and ``record`` (merged over chunks).
        """
        assert self.clean is not None
        clean = self.clean

        def one(c: int, sl: slice) -> dict[str, Any]:
            out = self.run_attack(spec, target, eot, eps=eps, robust=robust, overrides=overrides, chunk=c, sl=sl)
            torch.manual_seed(_chunk_seed(self.cfg.seed, "score:" + spec.name, c))
            s = score(self.model, out.x_adv, self.ys[sl], self.passes, self.cfg.batch_size)
            flags = s.worst & clean.worst[sl]
            if out.library_robust is not None:
                flags &= out.library_robust
            return {"flags": flags, "first": s.first & clean.first[sl], "library": out.library_robust,
                    "record": out.record}  # fmt: skip

        parts = self.map_chunks(one)
        library = [p["library"] for p in parts]
        return {
            "flags": _cat([p["flags"] for p in parts]),
            "first": _cat([p["first"] for p in parts]),
            "library": None if any(v is None for v in library) else _cat(library),
            "record": _merge_records([p["record"] for p in parts]),
        }

    # -- units ------------------------------------------------------------------------------
    def clean_unit(self) -> None:
        done = self.state.get("clean")

        def one(c: int, sl: slice) -> Score:
            torch.manual_seed(_chunk_seed(self.cfg.seed, "clean", c))
            return score(self.model, self.xs[sl], self.ys[sl], self.passes, self.cfg.batch_size)

        self.clean = _cat_scores(self.map_chunks(one))
        if done is not None and done["worst"] != flags_to_str(self.clean.worst):
            raise ValueError("clean scoring differs from the stored state: the model is not the same")
        if done is None:
            self.state.put("clean", {"worst": flags_to_str(self.clean.worst)})

    def attack_unit(self, spec: AttackSpec, group_robust: dict[str, torch.Tensor]) -> AttackRecord | dict[str, Any]:
        done = self.state.get(spec.name)
        if done is not None:
            if "skipped" in done:
                return {"name": spec.name, "reason": done["skipped"]}
            rec = AttackRecord(**done["record"])
            if spec.group is not None:
                group_robust[spec.group] = str_to_flags(done["group_robust"])
            log.info("%s: finished earlier (%.4f), skipped", spec.name, rec.accuracy)
            return rec
        assert self.clean is not None
        target, eot, reason = self.attacked_model(spec)
        if reason is not None:
            self.state.put(spec.name, {"skipped": reason})
            return {"name": spec.name, "reason": reason}
        start = group_robust.get(spec.group) if spec.group is not None else None
        t0 = time.perf_counter()
        got = self.attack_chunks(spec, target, eot, eps=self.cfg.eps, robust=start, overrides={})
        flags, library = got["flags"], got["library"]
        record = {**got["record"], "eot": eot, "via": spec.via, "group": spec.group, "passes": self.passes,
                  "seconds_with_scoring": round(time.perf_counter() - t0, 3)}  # fmt: skip
        rec = AttackRecord(
            name=spec.name,
            accuracy=fraction(flags),
            single_pass_accuracy=fraction(got["first"]),
            library_accuracy=None if library is None else fraction(library),
            cumulative=spec.group is not None,
            record=record,
            flags=flags_to_str(flags),
        )
        unit: dict[str, Any] = {"record": rec.__dict__}
        if spec.group is not None:
            assert library is not None
            group_robust[spec.group] = library
            unit["group_robust"] = flags_to_str(library)
        self.state.put(spec.name, unit)
        return rec

    def sweep_unit(self, sweep: SweepSpec, values: tuple[float, ...]) -> dict[str, Any]:
        spec = sweep.attack
        accs, single = [], []
        target, eot, reason = self.attacked_model(spec)
        if reason is not None:
            return {"kind": sweep.kind, "attack": spec.name, "skipped": reason}
        xs_values = []
        for v in tqdm(values, desc=f"sweep {sweep.kind} {spec.name}", disable=not self.progress, leave=False):
            name = f"sweep:{sweep.kind}:{spec.name}:{v:g}"
            done = self.state.get(name)
            eps = v * self.cfg.eps if sweep.kind == "eps" else self.cfg.eps
            if self.cfg.norm == "Linf":
                eps = min(1.0, eps)  # a Linf ball beyond [0, 1] changes nothing
            xs_values.append(eps if sweep.kind == "eps" else int(v))
            if done is None:
                overrides = {"steps": int(v)} if sweep.kind == "steps" else {}
                unit_spec = AttackSpec(name, spec.backend, spec.attack, spec.params, eot=spec.eot, via=spec.via)
                got = self.attack_chunks(unit_spec, target, eot, eps=eps, robust=None, overrides=overrides)
                done = {"accuracy": fraction(got["flags"]), "single_pass_accuracy": fraction(got["first"]),
                        "record": got["record"]}  # fmt: skip
                self.state.put(name, done)
            accs.append(done["accuracy"])
            single.append(done["single_pass_accuracy"])
        return {
            "kind": sweep.kind,
            "attack": spec.name,
            "backend": spec.backend,
            "library_attack": spec.attack,
            "params": dict(spec.params),
            "eot": eot,
            "values": xs_values,
            "accuracy": accs,
            "single_pass_accuracy": single,
            "eps": self.cfg.eps if sweep.kind == "steps" else None,
        }


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, suite: str = "standard", **options: Any) -> EvalResult:
    """Evaluate ``model`` on ``(x, y)`` with the attack suite ``suite``.

    Args:
        model: Any ``nn.Module`` taking images in [0, 1] (normalization inside) and returning
            logits; ours or a user's. It is evaluated in ``eval()`` mode.
        x: Images ``(N, C, H, W)`` in [0, 1].
        y: Labels ``(N,)``.
        suite: A registered suite (``standard``, ``rand``, ``brelu_paper``, ``drelu_paper``,
            ``saf_paper``, ``adaptive``, ``basic``; see ``robact-bench list suites``).
        **options: Any :class:`~robact_bench.evaluation.config.EvalConfig` field (``eps``,
            ``norm``, ``n_examples``, ``seed``, ``eot_iter``, ``passes``, ``eot_mode``,
            ``attacks``, ``sweep_eps``...), plus ``model_name``, ``title``, ``dataset``,
            ``split``, ``spec`` and ``training`` (stored in the result), ``progress`` (tqdm
            bars, default True), ``quick`` (mark a smoke run), ``state_path`` (save finished
            units there as they finish) and ``resume`` (continue from ``state_path``).

    Returns:
        The :class:`~robact_bench.evaluation.result.EvalResult`.

    Raises:
        ValueError: bad options (eps in the wrong units, unknown suite or attack, ...), images
            outside [0, 1], labels out of range, a model returning probabilities or NaN.

    """
    meta = {k: options.pop(k) for k in META_KEYS if k in options}
    unknown = sorted(set(options) - set(EvalConfig.field_names()))
    if unknown:
        allowed = ", ".join(EvalConfig.field_names() + META_KEYS)
        raise ValueError(f"unknown evaluation option(s) {', '.join(unknown)}; allowed: {allowed}")
    cfg = EvalConfig(suite=suite, **options)
    return run_evaluation(model, x, y, cfg, **meta)


def run_evaluation(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: EvalConfig,
    *,
    model_name: str = "model",
    title: str = "",
    dataset: str = "",
    split: str = "test",
    spec: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    progress: bool = True,
    quick: bool = False,
    state_path: str | None = None,
    resume: bool = False,
) -> EvalResult:
    """:func:`evaluate` with a ready :class:`EvalConfig` (the CLI and the main job call this)."""
    t0 = time.perf_counter()
    suite_obj = get_suite(cfg.suite)
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError("labels must be an integer tensor")
    y = y.long()
    check_inputs(x, y, cfg.eps, cfg.norm)
    idx = balanced_subset(y, cfg.n_examples) if cfg.n_examples is not None else torch.arange(len(y))
    xs, ys = x[idx].contiguous().cpu(), y[idx].contiguous().cpu()
    check_model_output(model, xs, ys, cfg.batch_size)
    notes: list[str] = []
    model.eval()
    torch.manual_seed(cfg.seed)
    diagnostics = [stochastic_check(model, xs[: min(len(xs), 64)])]
    declared, measured = diagnostics[0]["value"]["declared"], diagnostics[0]["value"]["measured"]
    stochastic = declared or measured
    sat = drelu_saturation(model, xs, cfg.batch_size)
    if sat is not None:
        diagnostics.append(sat)
    diagnostics.append(input_gradients(model, xs, ys, cfg.batch_size))
    for d in diagnostics:
        if not d["passed"]:
            notes.append(f"{model_name}: check {d['name']} failed ({d['value']}): {d['reason']}")
    for n in notes:
        warnings.warn(n, stacklevel=2)

    specs, skipped = _filter(suite_obj, cfg, stochastic)  # unknown attack names fail before any file is written
    indices = [int(i) for i in idx]
    fingerprint = eval_fingerprint(model, cfg.to_dict(), indices)
    if distributed.is_distributed():  # rank 0 reads and writes the state file; the others get its units
        opened: list[EvalState] = []

        def open_state() -> dict[str, dict[str, Any]]:
            opened.append(EvalState(state_path, fingerprint, resume=resume))
            return opened[0].units

        units = distributed.on_main(open_state)
        state = opened[0] if opened else EvalState(None, fingerprint, resume=False)
        state.units = dict(units)
        progress = progress and distributed.is_main()
    else:
        state = EvalState(state_path, fingerprint, resume=resume)
    eng = _Engine(model, xs, ys, cfg, stochastic, state, progress)
    eng.clean_unit()
    assert eng.clean is not None
    records: list[AttackRecord] = []
    robust = eng.clean.worst.clone()
    group_robust: dict[str, torch.Tensor] = {}
    bar = tqdm(specs, desc=f"{model_name} [{cfg.suite}]", disable=not progress, leave=False)
    for atk in bar:
        bar.set_postfix_str(f"{atk.name}; robust {int(robust.sum())}/{len(robust)}")
        got = eng.attack_unit(atk, group_robust)
        if isinstance(got, dict):
            skipped.append(got)
            log.warning("%s: %s skipped: %s", model_name, got["name"], got["reason"])
            continue
        records.append(got)
        robust &= str_to_flags(got.flags)
        log.info("%s %s: %.4f (library %s)", model_name, got.name, got.accuracy, got.library_accuracy)
    bar.close()

    sweeps: list[dict[str, Any]] = []
    if cfg.sweeps:
        for sw in suite_obj.sweeps:
            override = cfg.sweep_eps if sw.kind == "eps" else cfg.sweep_steps
            sweeps.append(eng.sweep_unit(sw, tuple(override) if override is not None else sw.values))
    saf = _saf_unit(eng, dataset) if suite_obj.saf_samples else None

    reported_names = {s.name for s in specs if s.reported}
    reported = next((r for r in records if r.name in reported_names), None)
    aa = [r for r in records if r.cumulative and r.record.get("group") == "autoattack"]
    result = EvalResult(
        model_name=model_name,
        title=title or model_name,
        dataset=dataset,
        split=split,
        suite=cfg.suite,
        threat_model=cfg.norm,
        eps=float(cfg.eps),
        n_examples=len(idx),
        indices=tuple(indices),
        stochastic=stochastic,
        passes=eng.passes,
        eot_iter=cfg.eot_iter if stochastic else None,
        eot_mode=cfg.eot_mode,
        clean_acc=float(eng.clean.mean.double().mean()),
        clean_acc_majority=fraction(eng.clean.majority),
        clean_acc_worst=fraction(eng.clean.worst),
        reported_acc=reported.single_pass_accuracy if reported is not None else None,
        autoattack_acc=aa[-1].library_accuracy if aa else None,
        autoattack_version=aa[-1].record.get("version") if aa else None,
        robust_acc=fraction(robust) if records else None,
        attacks=tuple(records),
        robust_flags=tuple(bool(b) for b in robust),
        skipped=tuple(skipped),
        sweeps=tuple(sweeps),
        saf=saf,
        diagnostics=tuple(diagnostics),
        warnings=tuple(notes),
        model=dict(spec or {}),
        training=dict(training or {}),
        eval_config=cfg.to_dict(),
        environment={**environment(), "world_size": distributed.world_size()},
        wall_time_s=time.perf_counter() - t0,
        quick=quick,
    )
    checks = masking_checks(result)
    verdict = masking_verdict(checks)
    if verdict["unreliable"]:
        log.warning("%s: signs of gradient masking: %s", model_name, ", ".join(verdict["failed"]))
    return replace(result, masking=tuple(checks))


def _saf_unit(eng: _Engine, dataset: str) -> dict[str, Any]:
    from robact_bench.evaluation.saf import saf_error_rates, saf_grid_for

    done = eng.state.get("saf")
    if done is not None:
        return done
    cfg = eng.cfg
    betas = cfg.saf_betas if cfg.saf_betas is not None else saf_grid_for(dataset or "mnist")
    # SAF's nonsense and noisy samples are drawn for the whole set at once: rank 0 computes it
    out = distributed.on_main(
        lambda: saf_error_rates(eng.model, eng.xs, eng.ys, betas=betas, threshold=cfg.saf_threshold,
                                n_nonsense=cfg.n_nonsense, passes=cfg.passes, eot_iter=cfg.eot_iter, seed=cfg.seed,
                                batch_size=cfg.batch_size, progress=eng.progress)
    )  # fmt: skip
    eng.state.put("saf", out)
    return out

