"""The evaluation engine: run a named suite through the reference libraries, adaptively.

``evaluate(model, x, y, suite, **options) -> EvalResult`` is the one way our numbers are made.
For every attack of the suite (:mod:`robact_bench.attacks.suites`) the engine

1. picks the model to attack: the model itself, its BPDA/transfer surrogate, on a random model
   the batched :class:`~robact_bench.attacks.eot.EOTModel` (K samples per gradient/query), or the
   random model with its draws fixed (:class:`~robact_bench.attacks.record.FixedDraws`);
2. runs the attack through its backend's adapter (torchattacks, AutoAttack, ART, the
   symmetric-activation paper's sample), behind a :class:`~robact_bench.attacks.record.QueryRecorder`
   that notes, per point, what the attack queried (the indicators of attack failure); every
   returned image is checked to be in [0, 1] and inside the threat model;
3. scores the images on the **real** model. Deterministic model: one pass. Random model: every
   candidate image of the attack (what the library returned, its other strongest images, the
   strongest image it queried) and the clean image are scored on S *selection* passes; per point
   the candidate with the fewest correct passes is kept and scored again on R fresh *scoring*
   passes (the reported numbers) and M fresh *confirmation* passes (used only by the checks to
   settle disputed points), so choosing the minimum adds no bias;
4. stores per-point integer counts (correct passes), and saves the finished unit atomically, so
   ``resume`` skips finished work and gives the same numbers.

The headline is the worst case per point: deterministic, a point is robust only if every image
of every headline attack is classified correctly; random, the per-point strongest image among
the clean image and every headline attack's kept image (fewest correct selection passes), its
scoring passes giving the expected, majority and all-passes-right accuracies
(:mod:`robact_bench.evaluation.stochastic`). A random model's headline never reads above
AutoAttack: each kept image is scored on its own fresh passes, so when the worst case's correct
passes sum above AutoAttack's (scoring noise) the headline takes AutoAttack's per-point counts.

**Chunks, seeds and processes.** The points are cut into chunks of ``batch_size``; every attack,
scoring pass and sweep point runs chunk by chunk, each chunk reseeded from the evaluation seed,
the unit's name and the chunk's index (AutoAttack: the evaluation seed, as the library reseeds
every batch itself). A unit's number therefore depends on the seed and ``batch_size``, never on
which other units ran (or were resumed), nor on how many processes share the work: under
``torchrun`` (:mod:`robact_bench.distributed`) rank ``r`` of ``W`` runs chunks ``r, r + W, ...``
and the per-point results are gathered on every rank, so 1 process and ``W`` processes give the
same per-point result (with the same threads per process). Only rank 0 writes.

Example:
    >>> from robact_bench import evaluate
    >>> result = evaluate(model, x, y, "standard", eps=8 / 255)
    >>> result.robust_acc, result.attack("apgd-ce").accuracy

"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robact_bench import distributed
from robact_bench.activations import is_stochastic
from robact_bench.attacks.backends import BACKENDS, AttackRequest
from robact_bench.attacks.common import AttackOutput, check_inputs, model_device
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.precision import check_precision, with_precision
from robact_bench.attacks.record import FixedDraws, QueryRecorder
from robact_bench.attacks.suites import AttackSpec, Suite, SweepSpec, get_suite
from robact_bench.data import balanced_subset
from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.diagnostics import (
    drelu_saturation,
    input_gradients,
    stochastic_check,
    unstable_predictions,
)
from robact_bench.evaluation.masking import masking_checks, masking_verdict
from robact_bench.evaluation.result import HEADLINE_IS_AUTOATTACK, AttackRecord, EvalResult
from robact_bench.evaluation.state import EvalState, eval_fingerprint, flags_to_str, str_to_flags
from robact_bench.evaluation.stochastic import correct_counts, fraction, rule_accuracies
from robact_bench.fileio import environment

log = logging.getLogger(__name__)

META_KEYS = ("model_name", "title", "dataset", "split", "spec", "training", "progress", "quick", "state_path", "resume")
#: the headline's source for a point no attack broke (deterministic) or whose clean image was the strongest
CLEAN = "clean"


def _unit_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def _chunk_seed(seed: int, name: str, chunk: int) -> int:
    """Seed of one chunk of a unit; chunk 0 keeps the unit's seed (one-chunk runs are unchanged)."""
    return _unit_seed(seed, name if chunk == 0 else f"{name}#chunk{chunk}")


def _cat(parts: list[torch.Tensor], dtype: torch.dtype = torch.long) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.empty(0, dtype=dtype)


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


def _merge_indicators(parts: list[tuple[int, dict[str, Any]]]) -> dict[str, Any] | None:
    """The recorder summaries of every chunk, point positions shifted to the evaluation's order."""
    parts = [(start, s) for start, s in parts if s is not None]
    if not parts:
        return None
    out: dict[str, Any] = {}
    for start, s in parts:
        for key, value in s.items():
            if isinstance(value, list):
                out.setdefault(key, []).extend(start + i for i in value)
            else:
                out[key] = out.get(key, 0) + value
    return out


def _ints(t: torch.Tensor | None) -> tuple[int, ...] | None:
    return None if t is None else tuple(int(v) for v in t.tolist())


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


def unbounded_eps(norm: str, shape: tuple[int, ...]) -> float:
    """The radius that lets an attack reach any image of the input cube: Linf 1, L2 the cube's diagonal."""
    return 1.0 if norm == "Linf" else math.sqrt(math.prod(shape))


class _Engine:
    """The state of one evaluation (the model, points, config, state file)."""

    def __init__(self, model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, cfg: EvalConfig, stochastic: bool,
                 state: EvalState, progress: bool) -> None:  # fmt: skip
        self.model, self.xs, self.ys, self.cfg = model, xs, ys, cfg
        self.stochastic = stochastic
        self.passes = cfg.passes if stochastic else 1
        self.confirm = cfg.confirm_passes if stochastic else 1
        self.select = cfg.select_passes if stochastic else 1
        self.state = state
        self.progress = progress
        # clean counts: scoring, selection and confirmation passes (one and the same on a deterministic model)
        self.clean: dict[str, torch.Tensor] = {}
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
        if spec.needs_surrogate:
            base, count = self.surrogate(spec.via)
            if count == 0:
                return base, None, f"the model has no activation with a surrogate ({spec.via} needs one)"
            random = is_stochastic(base)
        # bf16 (cfg.precision): the base model's layers under autocast, fp32 logits out; EOT, fixed
        # draws and the query recorder wrap it, so their averaging and matching stay fp32
        base = with_precision(base, self.cfg.precision)
        if spec.draws == "fixed":
            if not random:
                return base, None, "the model has no random draws to fix"
            return FixedDraws(base, _unit_seed(self.cfg.seed, "draws:" + spec.name)), None, None
        if not (random and spec.eot):
            return base, None, None
        if self.cfg.eot_mode == "batched":
            eot = {"mode": "batched", "k": self.cfg.eot_iter, "max_batch": self.cfg.eot_batch}
            return EOTModel(base, self.cfg.eot_iter, self.cfg.eot_batch), eot, None
        return base, {"mode": "sequential", "k": self.cfg.eot_iter}, None

    def eps_of(self, spec: AttackSpec, eps: float) -> float:
        return unbounded_eps(self.cfg.norm, tuple(self.xs.shape[1:])) if spec.bound == "unbounded" else eps

    # -- chunks -----------------------------------------------------------------------------
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

    def counts(self, images: torch.Tensor, sl: slice, passes: int, seed_name: str, chunk: int) -> torch.Tensor:
        """Correct passes per point of ``images`` (the points ``sl``), on passes seeded for that chunk."""
        torch.manual_seed(_chunk_seed(self.cfg.seed, seed_name, chunk))
        return correct_counts(self.model, images, self.ys[sl], passes, self.cfg.batch_size)

    # -- running one attack -------------------------------------------------------------------
    def run_attack(self, spec: AttackSpec, target: nn.Module, eot: dict[str, Any] | None, *, eps: float,
                   robust: torch.Tensor | None, overrides: dict[str, Any], chunk: int,
                   sl: slice) -> AttackOutput:  # fmt: skip
        """Run ``spec`` on chunk ``chunk`` (the points ``sl``), seeded for that chunk."""
        cfg = self.cfg
        backend = BACKENDS.get(spec.backend)
        request = AttackRequest(
            model=target, x=self.xs[sl], y=self.ys[sl], attack=spec.library_attack, name=spec.name, eps=eps,
            norm=cfg.norm, params={**spec.params, **overrides}, seed=_chunk_seed(cfg.seed, spec.name, chunk),
            batch_size=cfg.batch_size, eval_seed=cfg.seed, eot=eot, bound=spec.bound, stochastic=self.stochastic,
            robust=robust[sl] if robust is not None else None, options=cfg.to_dict(),
        )
        return backend.run(request)

    def attack_chunk(self, spec: AttackSpec, target: nn.Module, eot: dict[str, Any] | None, *, eps: float,
                     robust: torch.Tensor | None, overrides: dict[str, Any], c: int,
                     sl: slice) -> dict[str, Any]:  # fmt: skip
        """Attack and score one chunk; see :meth:`attack_chunks` for the keys."""
        device = model_device(self.model)
        xs, ys = self.xs[sl], self.ys[sl]
        recorder = None
        if not spec.blackbox:
            recorder = QueryRecorder(target, xs.to(device), ys, eps=eps, norm=self.cfg.norm,
                                     bounded=not spec.unbounded_queries)  # fmt: skip
        out = self.run_attack(spec, recorder if recorder is not None else target, eot, eps=eps, robust=robust,
                              overrides=overrides, chunk=c, sl=sl)  # fmt: skip
        clean = {k: v[sl] for k, v in self.clean.items()}
        name = spec.name
        got: dict[str, Any] = {"record": out.record, "library": out.library_robust,
                               "indicators": recorder.summary() if recorder is not None else None}  # fmt: skip
        if spec.needs_surrogate:  # Pintor et al.'s transfer failure: the surrogate's view of the image
            with torch.no_grad(), torch.random.fork_rng():
                got["surrogate_wrong"] = (target(out.x_adv.to(device)).argmax(1).cpu() != ys).long()
        queried = recorder.best_images().cpu() if recorder is not None else None
        if not self.stochastic:
            flag = self.counts(out.x_adv, sl, 1, "score:" + name, c).bool() & clean["score"].bool()
            for extra in out.candidates:
                flag &= self.counts(extra, sl, 1, "score:" + name, c).bool()
            if out.library_robust is not None:
                flag &= out.library_robust
            got["counts"] = flag.long()
            if queried is not None:
                query = self.counts(queried, sl, 1, "score:" + name, c).bool()
                got["query_counts"] = (query & clean["score"].bool()).long()
            return got
        cands = [out.x_adv, *out.candidates, *([queried] if queried is not None else [])]
        sel = torch.stack([self.counts(im, sl, self.select, f"select:{name}:{j}", c) for j, im in enumerate(cands)])
        sel = torch.cat([sel, clean["select"].unsqueeze(0)])  # the clean image last: ties go to the attack's images
        chosen = sel.argmin(0)
        is_clean = chosen == len(cands)
        stack = torch.stack([*cands, self.xs[sl]])
        image = stack[chosen, torch.arange(len(chosen))]
        score = self.counts(image, sl, self.passes, "score:" + name, c)
        confirm = self.counts(image, sl, self.confirm, "confirm:" + name, c)
        score[is_clean], confirm[is_clean] = clean["score"][is_clean], clean["confirm"][is_clean]
        got.update(counts=score, confirm=confirm, select=sel.gather(0, chosen.unsqueeze(0)).squeeze(0), chosen=chosen)
        if queried is not None:
            got["query_index"] = len(cands) - 1
        return got

    def attack_chunks(self, spec: AttackSpec, target: nn.Module, eot: dict[str, Any] | None, *, eps: float,
                      robust: torch.Tensor | None, overrides: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Attack and score every chunk (this rank's share); return them gathered.

        Keys: ``counts`` (correct scoring passes per point; a deterministic model's 0/1 flag),
        ``select``, ``confirm`` and ``chosen`` (random models: the kept image's selection and
        confirmation counts and which candidate it was, ``len(candidates)`` for the clean image),
        ``query_counts`` (deterministic: the flag of the strongest queried image), ``library``
        (the library's own flags, or ``None``), ``surrogate_wrong`` (transfer attacks), and
        ``record`` and ``indicators`` (merged over chunks).
        """
        chunks = self.chunks()
        parts = self.map_chunks(lambda c, sl: self.attack_chunk(spec, target, eot, eps=eps, robust=robust,
                                                                overrides=overrides, c=c, sl=sl))  # fmt: skip
        out: dict[str, Any] = {
            "record": _merge_records([p["record"] for p in parts]),
            "indicators": _merge_indicators([(sl.start, p["indicators"]) for p, sl in zip(parts, chunks, strict=True)]),
        }
        for key in ("counts", "select", "confirm", "chosen", "query_counts", "surrogate_wrong"):
            if key in parts[0]:
                out[key] = _cat([p[key] for p in parts])
        library = [p["library"] for p in parts]
        out["library"] = None if any(v is None for v in library) else _cat(library, torch.bool)
        if "query_index" in parts[0]:
            out["query_index"] = parts[0]["query_index"]
        return out

    # -- units ------------------------------------------------------------------------------
    def clean_unit(self) -> None:
        done = self.state.get("clean")

        def one(c: int, sl: slice) -> dict[str, torch.Tensor]:
            xs = self.xs[sl]
            score = self.counts(xs, sl, self.passes, "clean", c)
            if not self.stochastic:
                return {"score": score, "select": score, "confirm": score}
            return {"score": score, "select": self.counts(xs, sl, self.select, "select:clean", c),
                    "confirm": self.counts(xs, sl, self.confirm, "confirm:clean", c)}  # fmt: skip

        parts = self.map_chunks(one)
        self.clean = {k: _cat([p[k] for p in parts]) for k in ("score", "select", "confirm")}
        stored = {k: _ints(v) for k, v in self.clean.items()}
        if done is not None and {k: tuple(v) for k, v in done.items()} != stored:
            raise ValueError("clean scoring differs from the stored state: the model is not the same")
        if done is None:
            self.state.put("clean", {k: list(v) for k, v in stored.items()})

    def attack_unit(self, spec: AttackSpec, group_robust: dict[str, torch.Tensor]) -> AttackRecord | dict[str, Any]:
        done = self.state.get(spec.name)
        if done is not None:
            if "skipped" in done:
                return {"name": spec.name, "reason": done["skipped"]}
            rec = AttackRecord.from_dict(done["record"])
            if spec.group is not None and "group_robust" in done:
                group_robust[spec.group] = str_to_flags(done["group_robust"])
            log.info("%s: finished earlier (%.4f), skipped", spec.name, rec.accuracy)
            return rec
        target, eot, reason = self.attacked_model(spec)
        if reason is not None:
            self.state.put(spec.name, {"skipped": reason})
            return {"name": spec.name, "reason": reason}
        cascade = spec.group is not None and not self.stochastic
        start = group_robust.get(spec.group) if cascade else None
        t0 = time.perf_counter()
        eps = self.eps_of(spec, self.cfg.eps)
        got = self.attack_chunks(spec, target, eot, eps=eps, robust=start, overrides={})
        library = got["library"]
        record = {**got["record"], "eot": eot, "via": spec.via, "group": spec.group, "passes": self.passes,
                  "role": spec.role, "draws": spec.draws, "bound": spec.bound, "eps": eps, "reported": spec.reported,
                  "seconds_with_scoring": round(time.perf_counter() - t0, 3)}  # fmt: skip
        rec = _record(spec.name, got, self.passes, record, cumulative=cascade)
        unit: dict[str, Any] = {"record": rec.to_dict()}
        if cascade:
            assert library is not None
            group_robust[spec.group] = library
            unit["group_robust"] = flags_to_str(library)
        self.state.put(spec.name, unit)
        return rec

    def subset(self, positions: torch.Tensor) -> _Engine:
        """The evaluation restricted to the points at ``positions`` (its chunks and their seeds are the subset's)."""
        sub = copy.copy(self)
        sub.xs, sub.ys = self.xs[positions], self.ys[positions]
        sub.clean = {k: v[positions] for k, v in self.clean.items()}
        return sub

    def sweep_positions(self) -> torch.Tensor:
        """The points the sweeps run on: ``cfg.sweep_points`` of them, class-balanced and seeded, in order."""
        n, k = len(self.xs), self.cfg.sweep_points
        if k is None or k >= n:
            return torch.arange(n)
        return balanced_subset(self.ys, k, seed=self.cfg.seed).sort().values

    def sweep_unit(self, sweep: SweepSpec, values: tuple[float, ...],
                   ran: dict[str, tuple[AttackSpec, AttackRecord]]) -> dict[str, Any]:  # fmt: skip
        """One sweep on :meth:`sweep_positions`; a point that is a suite attack that ran (``ran``) reuses its counts.

        A point is that attack when it runs the same library attack with the same parameters,
        EOT, draws, surrogate and bound at the same eps, on every point (not cascaded): then its
        per-point counts are that attack's on the subset's points, and the point says
        ``reused: <attack>``.
        """
        spec = sweep.attack
        target, eot, reason = self.attacked_model(spec)
        if reason is not None:
            return {"kind": sweep.kind, "attack": spec.name, "skipped": reason}
        positions = self.sweep_positions()
        sub = self.subset(positions)
        xs_values, points, reused = [], [], []
        for v in tqdm(values, desc=f"sweep {sweep.kind} {spec.name}", disable=not self.progress, leave=False):
            name = f"sweep:{sweep.kind}:{spec.name}:{v:g}"
            done = self.state.get(name)
            eps = v * self.cfg.eps if sweep.kind == "eps" else self.cfg.eps
            if self.cfg.norm == "Linf":
                eps = min(1.0, eps)  # a Linf ball beyond [0, 1] changes nothing
            xs_values.append(eps if sweep.kind == "eps" else int(v))
            overrides = {str(spec.steps_param): int(v)} if sweep.kind == "steps" else {}
            same = _same_attack(spec, overrides, eps, self.eps_of(spec, self.cfg.eps), ran)
            if same is not None:
                counts = torch.tensor(same.counts, dtype=torch.long)[positions]
                done = {"counts": counts.tolist(), "record": same.record}
                reused.append(same.name)
            else:
                if done is None:
                    unit_spec = replace(spec, name=name, group=None, reported=False)
                    got = sub.attack_chunks(unit_spec, target, eot, eps=eps, robust=None, overrides=overrides)
                    done = {"counts": list(_ints(got["counts"]) or ()), "record": got["record"]}
                    self.state.put(name, done)
                reused.append(None)
            points.append(done)
        counts = [torch.tensor(p["counts"], dtype=torch.long) for p in points]
        rules = [rule_accuracies(c, self.passes) for c in counts]
        return {
            "kind": sweep.kind,
            "attack": spec.name,
            "backend": spec.backend,
            "library_attack": spec.attack,
            "params": dict(spec.params),
            "eot": eot,
            "values": xs_values,
            "accuracy": [r["expected"] for r in rules],
            "accuracy_majority": [r["majority"] for r in rules],
            "accuracy_all_right": [r["all_right"] for r in rules],
            "counts": [list(_ints(c) or ()) for c in counts],
            "passes": self.passes,
            "eps": self.cfg.eps if sweep.kind == "steps" else None,
            "n_points": len(positions),
            "points": positions.tolist(),
            "point_rule": (
                "every evaluated point" if len(positions) == len(self.xs) else
                f"{len(positions)} of the {len(self.xs)} points, class-balanced, drawn with seed {self.cfg.seed} "
                "(balanced_subset); positions into the evaluated points"
            ),
            "reused": reused,
        }


def _same_attack(spec: AttackSpec, overrides: dict[str, Any], eps: float, suite_eps: float,
                 ran: dict[str, tuple[AttackSpec, AttackRecord]]) -> AttackRecord | None:  # fmt: skip
    """The record of a suite attack that ran on every point and is ``spec`` with ``overrides`` at ``eps``."""
    if eps != suite_eps:
        return None
    want = (spec.backend, spec.attack, {**spec.params, **overrides}, spec.eot, spec.via, spec.draws, spec.bound)
    for other, rec in ran.values():
        have = (other.backend, other.attack, dict(other.params), other.eot, other.via, other.draws, other.bound)
        if have == want and other.group is None and not rec.cumulative:
            return rec
    return None


def _record(name: str, got: dict[str, Any], passes: int, record: dict[str, Any], *, cumulative: bool) -> AttackRecord:
    counts = got["counts"]
    rules = rule_accuracies(counts, passes)
    library = got.get("library")
    return AttackRecord(
        name=name,
        accuracy=rules["expected"],
        accuracy_majority=rules["majority"],
        accuracy_all_right=rules["all_right"],
        library_accuracy=None if library is None else fraction(library),
        cumulative=cumulative,
        counts=_ints(counts) or (),
        select=_ints(got.get("select")),
        confirm=_ints(got.get("confirm")),
        chosen=_ints(got.get("chosen")),
        query_counts=_ints(got.get("query_counts")),
        query_index=got.get("query_index"),
        surrogate_wrong=_ints(got.get("surrogate_wrong")),
        library_flags=flags_to_str(library) if library is not None else None,
        indicators=got.get("indicators"),
        record=record,
        flags=flags_to_str(counts == passes),
    )


def headline(records: list[AttackRecord], clean: dict[str, torch.Tensor], passes: int,
             stochastic: bool) -> dict[str, Any]:  # fmt: skip
    """The worst case per point over ``records`` (and the clean image).

    Deterministic: a point is robust only if the clean image and every image of every record
    (the returned images and the strongest queried one) are classified correctly. Random: per
    point the record whose kept image has the fewest correct *selection* passes (ties: the first
    record; the clean image only when it is strictly stronger), with that image's scoring and
    confirmation counts; ``all_right`` is correct on every scoring pass of every record's image.
    (A record's ``select`` counts out of the selection passes S, ``counts`` out of R.)

    Returns:
        ``{"counts", "confirm", "source", "all_right"}``: tensors and the per-point name of the
        record whose image decides the point (``"clean"`` when none does).

    """
    n = len(clean["score"])
    all_right = clean["score"] == passes
    if not stochastic:
        robust = clean["score"].bool().clone()
        source = [CLEAN] * n
        for r in records:
            broken = [torch.tensor(r.counts, dtype=torch.long) == 0]
            if r.query_counts is not None:
                broken.append(torch.tensor(r.query_counts, dtype=torch.long) == 0)
            for which, b in zip(("", "#queried"), broken, strict=False):
                for i in torch.nonzero(b & robust).flatten().tolist():
                    source[i] = r.name + which
                robust &= ~b
        counts = robust.long()
        return {"counts": counts, "confirm": counts.clone(), "source": source, "all_right": counts.bool()}
    sel = torch.stack([*(torch.tensor(r.select, dtype=torch.long) for r in records), clean["select"]])
    score = torch.stack([*(torch.tensor(r.counts, dtype=torch.long) for r in records), clean["score"]])
    confirm = torch.stack([*(torch.tensor(r.confirm, dtype=torch.long) for r in records), clean["confirm"]])
    best = sel.argmin(0)
    idx = torch.arange(n)
    for r in records:
        all_right &= torch.tensor(r.counts, dtype=torch.long) == passes
    names = [r.name for r in records] + [CLEAN]
    return {"counts": score[best, idx], "confirm": confirm[best, idx], "source": [names[int(b)] for b in best],
            "all_right": all_right}  # fmt: skip


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
    """:func:`evaluate` with a ready :class:`EvalConfig` (the CLI and the main job call this).

    The model's parameters do not require grad while it runs (restored after): attacks need the
    gradient with respect to the input only, and a library that calls ``backward()`` (torchattacks'
    CW) would otherwise compute every weight's gradient too. Values and input gradients are unchanged.
    """
    with _input_gradients_only(model):
        return _run_evaluation(model, x, y, cfg, model_name=model_name, title=title, dataset=dataset, split=split,
                               spec=spec, training=training, progress=progress, quick=quick, state_path=state_path,
                               resume=resume)  # fmt: skip


@contextmanager
def _input_gradients_only(model: nn.Module) -> Iterator[None]:
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _run_evaluation(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: EvalConfig,
    *,
    model_name: str,
    title: str,
    dataset: str,
    split: str,
    spec: dict[str, Any] | None,
    training: dict[str, Any] | None,
    progress: bool,
    quick: bool,
    state_path: str | None,
    resume: bool,
) -> EvalResult:
    t0 = time.perf_counter()
    suite_obj = get_suite(cfg.suite)
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError("labels must be an integer tensor")
    y = y.long()
    check_inputs(x, y, cfg.eps, cfg.norm)
    idx = balanced_subset(y, cfg.n_examples) if cfg.n_examples is not None else torch.arange(len(y))
    xs, ys = x[idx].contiguous().cpu(), y[idx].contiguous().cpu()
    check_model_output(model, xs, ys, cfg.batch_size)
    check_precision(cfg.precision, model_device(model))
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
        if d.get("passed") is False:
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
    records: list[AttackRecord] = []
    group_robust: dict[str, torch.Tensor] = {}
    bar = tqdm(specs, desc=f"{model_name} [{cfg.suite}]", disable=not progress, leave=False)
    for atk in bar:
        bar.set_postfix_str(atk.name)
        got = eng.attack_unit(atk, group_robust)
        if isinstance(got, dict):
            skipped.append(got)
            log.warning("%s: %s skipped: %s", model_name, got["name"], got["reason"])
            continue
        records.append(got)
        log.info("%s %s: %.4f (library %s)", model_name, got.name, got.accuracy, got.library_accuracy)
    bar.close()

    sweeps: list[dict[str, Any]] = []
    if cfg.sweeps:
        by_name = {spec.name: spec for spec in specs}
        ran = {r.name: (by_name[r.name], r) for r in records if r.name in by_name}
        for sw in suite_obj.sweeps:
            override = cfg.sweep_eps if sw.kind == "eps" else cfg.sweep_steps
            sweeps.append(eng.sweep_unit(sw, tuple(override) if override is not None else sw.values, ran))
    saf = _saf_unit(eng, dataset) if suite_obj.saf_samples else None

    passes = eng.passes
    clean_rules = rule_accuracies(eng.clean["score"], passes)
    if stochastic:  # AutoAttack's components ran on every point: its "accuracy after each component"
        cascade = [r for r in records if r.record.get("group") == "autoattack" and r.role == "headline"]
        for j, r in enumerate(cascade):
            cum = headline(cascade[: j + 1], eng.clean, passes, stochastic)
            records[records.index(r)] = replace(r, cumulative_counts=_ints(cum["counts"]),
                                                cumulative_all_right=flags_to_str(cum["all_right"]))  # fmt: skip
    head_records = [r for r in records if r.record.get("role", "headline") == "headline"]
    head = headline(head_records, eng.clean, passes, stochastic) if records else None
    aa = [r for r in head_records if r.record.get("group") == "autoattack"]
    aa_head = headline(aa, eng.clean, passes, stochastic) if aa else None
    if (
        stochastic
        and head is not None
        and aa_head is not None
        and int(head["counts"].sum()) > int(aa_head["counts"].sum())
    ):
        # Each kept image is scored on its own fresh passes, so the per-point worst case can read a
        # little above AutoAttack's own result although it holds every AutoAttack image: scoring
        # noise. The headline never claims more than AutoAttack: it takes AutoAttack's per-point
        # counts (the all-passes-right flags stay the conjunction over every attack).
        notes.append(
            f"{model_name}: the per-point worst case ({int(head['counts'].sum())} correct passes) read above "
            f"AutoAttack's ({int(aa_head['counts'].sum())}) by scoring noise; {HEADLINE_IS_AUTOATTACK}"
        )
        head = {**aa_head, "all_right": head["all_right"] & aa_head["all_right"]}
    library_flags = [str_to_flags(r.library_flags) for r in aa if r.library_flags is not None]
    aa_library = None
    if aa and len(library_flags) == len(aa):
        lib = library_flags[-1] if not stochastic else torch.stack(library_flags).all(0)
        aa_library = fraction(lib)
    if head is not None:
        diagnostics.append(_unstable_unit(eng, head))
    reported_names = {s.name for s in specs if s.reported}
    reported = next((r for r in records if r.name in reported_names), None)
    head_rules = rule_accuracies(head["counts"], passes) if head else None
    aa_rules = rule_accuracies(aa_head["counts"], passes) if aa_head else None
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
        passes=passes,
        select_passes=eng.select,
        confirm_passes=eng.confirm,
        eot_iter=cfg.eot_iter if stochastic else None,
        eot_mode=cfg.eot_mode,
        clean_acc=clean_rules["expected"],
        clean_acc_majority=clean_rules["majority"],
        clean_acc_all_right=clean_rules["all_right"],
        clean_counts=_ints(eng.clean["score"]) or (),
        clean_confirm=_ints(eng.clean["confirm"]) or (),
        reported_acc=reported.accuracy if reported is not None else None,
        autoattack_acc=aa_rules["expected"] if aa_rules else None,
        autoattack_acc_majority=aa_rules["majority"] if aa_rules else None,
        autoattack_acc_all_right=fraction(aa_head["all_right"]) if aa_head else None,
        autoattack_counts=_ints(aa_head["counts"]) if aa_head else None,
        autoattack_all_right=flags_to_str(aa_head["all_right"]) if aa_head else None,
        autoattack_library_acc=aa_library,
        autoattack_version=aa[-1].record.get("version") if aa else None,
        robust_acc=head_rules["expected"] if head_rules else None,
        robust_acc_majority=head_rules["majority"] if head_rules else None,
        robust_acc_all_right=fraction(head["all_right"]) if head else None,
        robust_counts=_ints(head["counts"]) if head else None,
        robust_confirm=_ints(head["confirm"]) if head else None,
        robust_source=tuple(head["source"]) if head else None,
        attacks=tuple(records),
        robust_flags=tuple(bool(b) for b in head["all_right"]) if head else (),
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
        log.warning("%s: our headline may be inflated: %s", model_name, ", ".join(verdict["failed"]))
    return replace(result, masking=tuple(checks))


#: the EOT samples of the unstable-predictions probe on a random model, per EOT sample of the attacks
UNSTABLE_EOT_FACTOR = 5


def _unstable_unit(eng: _Engine, head: dict[str, Any]) -> dict[str, Any]:
    """Pintor et al.'s unstable predictions on the points the headline counts as robust.

    A random model is probed on its expected loss: the mean of ``UNSTABLE_EOT_FACTOR * K`` draws,
    fixed (the same for ``x`` and each noisy copy), so that what is measured is the surface the
    EOT attacks climb, not the noise of K samples.
    """
    done = eng.state.get("unstable")
    if done is not None:
        return done
    cfg = eng.cfg
    if eng.stochastic:
        robust = [i for i, c in enumerate(head["confirm"].tolist()) if 2 * c > eng.confirm]
    else:
        robust = [i for i, c in enumerate(head["counts"].tolist()) if c == 1]
    k = UNSTABLE_EOT_FACTOR * cfg.eot_iter
    probe = EOTModel(eng.model, k, max(cfg.eot_batch, 4096)) if eng.stochastic else eng.model
    idx = torch.tensor(robust, dtype=torch.long)
    batch = max(1, min(cfg.batch_size, 4096 // k)) if eng.stochastic else cfg.batch_size
    out = distributed.on_main(
        lambda: unstable_predictions(probe, eng.xs[idx], eng.ys[idx], eps=cfg.eps, norm=cfg.norm, seed=cfg.seed,
                                     batch_size=batch, fixed_draws=eng.stochastic)
    )  # fmt: skip
    out = {**out, "positions": robust, "eot_samples": k if eng.stochastic else None}
    eng.state.put("unstable", out)
    return out


def _saf_unit(eng: _Engine, dataset: str) -> dict[str, Any]:
    from robact_bench.evaluation.saf import saf_error_rates, saf_grid_for

    done = eng.state.get("saf")
    if done is not None:
        return done
    cfg = eng.cfg
    if cfg.saf_betas is None and not dataset:  # the grid is a fact of the dataset: never guessed
        raise ValueError(f"suite {cfg.suite} draws the symmetric-activation paper's samples, whose strength grid "
                         "depends on the dataset: give dataset= (a registered dataset) or saf_betas")  # fmt: skip
    betas = cfg.saf_betas if cfg.saf_betas is not None else saf_grid_for(dataset)
    # SAF's nonsense and noisy samples are drawn for the whole set at once: rank 0 computes it
    out = distributed.on_main(
        lambda: saf_error_rates(eng.model, eng.xs, eng.ys, betas=betas, threshold=cfg.saf_threshold,
                                n_nonsense=cfg.n_nonsense, passes=cfg.passes, eot_iter=cfg.eot_iter, seed=cfg.seed,
                                batch_size=cfg.batch_size, progress=eng.progress)
    )  # fmt: skip
    eng.state.put("saf", out)
    return out
