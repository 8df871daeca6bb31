"""Evaluation results built by hand: the checks' arithmetic tested on exact per-point numbers."""

from __future__ import annotations

from typing import Any

import torch

from robact_bench.evaluation.engine import headline
from robact_bench.evaluation.masking import masking_checks
from robact_bench.evaluation.result import AttackRecord, EvalResult
from robact_bench.evaluation.state import flags_to_str
from robact_bench.evaluation.stochastic import rule_accuracies


def attack(name: str, counts: list[int], passes: int = 1, *, confirm: list[int] | None = None,
           attack_name: str = "PGD", steps: int | None = 20, eot: bool = True, stochastic: bool = False,
           role: str = "headline", via: str = "model", draws: str = "random", bound: str = "eps",
           backend: str = "torchattacks", indicators: dict[str, Any] | None = None,
           query_counts: list[int] | None = None, surrogate_wrong: list[int] | None = None,
           reported: bool = False) -> AttackRecord:  # fmt: skip
    """One attack record from per-point counts (``confirm`` defaults to ``counts`` scaled to 50 passes)."""
    c = torch.tensor(counts)
    rules = rule_accuracies(c, passes)
    params = {"steps": steps} if steps is not None else {}
    eot_record = {"mode": "batched", "k": 4} if eot and stochastic else None
    record = {"backend": backend, "attack": attack_name, "params": params, "role": role, "via": via,
              "draws": draws, "bound": bound, "eot": eot_record, "reported": reported}  # fmt: skip
    if stochastic and confirm is None:
        confirm = [round(50 * v / passes) for v in counts]
    return AttackRecord(
        name=name, accuracy=rules["expected"], accuracy_majority=rules["majority"],
        accuracy_all_right=rules["all_right"], library_accuracy=None, cumulative=False, counts=tuple(counts),
        select=tuple(counts) if stochastic else None, confirm=tuple(confirm) if confirm is not None else None,
        query_counts=tuple(query_counts) if query_counts is not None else None,
        surrogate_wrong=tuple(surrogate_wrong) if surrogate_wrong is not None else None,
        indicators=indicators, record=record, flags=flags_to_str(c == passes),
    )  # fmt: skip


def result(attacks: list[AttackRecord], *, n: int, passes: int = 1, stochastic: bool = False,
           clean: list[int] | None = None, diagnostics: list[dict[str, Any]] | None = None,
           sweeps: list[dict[str, Any]] | None = None, autoattack: list[str] | None = None) -> EvalResult:  # fmt: skip
    """An :class:`EvalResult` around ``attacks``, its headline computed as the engine computes it, checks run."""
    clean = clean if clean is not None else [passes] * n
    m = 50 if stochastic else 1
    clean_t = torch.tensor(clean)
    clean_confirm = torch.tensor([round(m * v / passes) for v in clean])
    cl = {"score": clean_t, "select": clean_t, "confirm": clean_confirm}
    head = headline([a for a in attacks if a.role == "headline"], cl, passes, stochastic)
    aa = headline([a for a in attacks if a.name in (autoattack or [])], cl, passes, stochastic) if autoattack else None
    rules = rule_accuracies(head["counts"], passes)
    cr = rule_accuracies(clean_t, passes)
    r = EvalResult(
        model_name="synthetic", title="synthetic", dataset="digits", split="test", suite="adaptive",
        threat_model="Linf", eps=0.1, n_examples=n, indices=tuple(range(n)), stochastic=stochastic, passes=passes,
        select_passes=passes, confirm_passes=m, eot_iter=4 if stochastic else None, eot_mode="batched",
        clean_acc=cr["expected"],
        clean_acc_majority=cr["majority"], clean_acc_all_right=cr["all_right"], clean_counts=tuple(clean),
        clean_confirm=tuple(int(v) for v in clean_confirm), reported_acc=None, autoattack_acc=None,
        autoattack_acc_majority=None, autoattack_acc_all_right=None,
        autoattack_counts=tuple(int(v) for v in aa["counts"]) if aa else None,
        autoattack_all_right=None, autoattack_library_acc=None, autoattack_version="standard" if aa else None,
        robust_acc=rules["expected"], robust_acc_majority=rules["majority"],
        robust_acc_all_right=float(head["all_right"].double().mean()),
        robust_counts=tuple(int(v) for v in head["counts"]), robust_confirm=tuple(int(v) for v in head["confirm"]),
        robust_source=tuple(head["source"]), attacks=tuple(attacks),
        robust_flags=tuple(bool(b) for b in head["all_right"]), skipped=(), sweeps=tuple(sweeps or ()), saf=None,
        diagnostics=tuple(diagnostics or ()), warnings=(), model={}, training={}, eval_config={}, environment={},
        wall_time_s=0.0,
    )  # fmt: skip
    from dataclasses import replace

    if aa is not None:
        r = replace(r, autoattack_acc=rule_accuracies(aa["counts"], passes)["expected"])
    return replace(r, masking=tuple(masking_checks(r)))


def checks(r: EvalResult) -> dict[str, dict[str, Any]]:
    """The result's checks by name."""
    return {c["name"]: c for c in r.masking}
