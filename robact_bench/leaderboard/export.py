"""Export an :class:`EvalResult` as a RobustBench ``model_info`` JSON entry.

RobustBench's fields keep their exact types (percentage *strings*, ``eps`` as ``"0.1"`` or
``"8/255"``, ``number_forward_passes`` an int); everything else goes in one ``"robact"`` block,
so a RobustBench reader still reads the file. Tables, pages and plots are rendered from the
JSON files only (:mod:`robact_bench.leaderboard.render`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from robact_bench.evaluation.masking import masking_verdict
from robact_bench.evaluation.result import EvalResult
from robact_bench.fileio import atomic_write_json, to_jsonable

SCHEMA_ID = "robact_bench.entry/2"


def pct(x: float) -> str:
    """A fraction as RobustBench's percentage string with two decimals: 0.8492 -> ``"84.92"``."""
    if not math.isfinite(x):
        raise ValueError(f"cannot export a non-finite accuracy ({x})")
    return f"{100.0 * x:.2f}"


def format_eps(eps: float) -> str:
    """RobustBench's ``eps`` string.

    A short decimal (``"0.1"``, ``"0.031"``) when one is exact, else ``"k/255"`` when eps is
    k/255 (``8/255`` -> ``"8/255"``), else 6 significant digits.
    """
    dec = f"{eps:.6g}"
    if float(dec) == eps:
        return dec
    k = round(eps * 255)
    if abs(eps - k / 255) < 1e-12:
        return f"{k}/255"
    return dec


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a config's canonical JSON: equal hashes, equal configs."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def track_of(result: EvalResult) -> dict[str, Any]:
    """The leaderboard track and how it was decided: by declaration and by measurement.

    ``randomized`` when either an activation declares the forward pass random or repeated
    forward passes differ (the engine's ``stochastic_declaration`` diagnostic); a mismatch
    between the two is reported, never silently resolved.
    """
    d = next((d for d in result.diagnostics if d.get("name") == "stochastic_declaration"), None)
    declared = bool(d["value"]["declared"]) if d else result.stochastic
    measured = bool(d["value"]["measured"]) if d else result.stochastic
    return {
        "track": "randomized" if result.stochastic else "deterministic",
        "declared_random": declared,
        "measured_random": measured,
        "mismatch": declared != measured,
    }


def to_robustbench(
    result: EvalResult,
    *,
    link: str = "",
    authors: str = "robact_bench",
    venue: str = "robact_bench",
    architecture: str | None = None,
    group: str | None = None,
    baseline: bool = False,
) -> dict[str, Any]:
    """The RobustBench ``model_info`` entry for ``result``, with our ``robact`` block.

    * ``reported``: the non-adaptive protocol's number (see ``EvalResult.reported_acc``), else
      our worst case; ``autoattack_acc``: AutoAttack's own number.
    * ``number_forward_passes``: 1 on the deterministic track; R (the passes each adversarial
      image is scored on) on the randomized track.
    * ``unreliable``: True when a gradient-masking check failed (``result.masking``); then
      ``footnote`` names the failed checks with their numbers.
    * ``external``: our worst case over every attack when it is lower than ``autoattack_acc``
      (RobustBench ranks by ``external`` where present).

    Args:
        result: The evaluation.
        link: RobustBench's ``link`` (the method's paper).
        authors: RobustBench's ``authors``.
        venue: RobustBench's ``venue``.
        architecture: RobustBench's ``architecture`` (default: the spec's architecture name).
        group: The name shared by the seeds of one model (default: ``result.model_name``).
        baseline: The row is a baseline (ReLU with PGD-AT or TRADES) every table shows.

    """
    if result.robust_acc is None:
        raise ValueError(
            f"{result.model_name}: suite {result.suite} ran no attack; there is no robust accuracy to export"
        )
    headline = result.robust_acc
    track = track_of(result)
    entry: dict[str, Any] = {
        "link": link,
        "name": result.title,
        "authors": authors,
        "additional_data": False,
        "number_forward_passes": result.passes if track["track"] == "randomized" else 1,
        "dataset": result.dataset,
        "venue": venue,
        "architecture": architecture or result.model.get("arch", ""),
        "eps": format_eps(result.eps),
        "clean_acc": pct(result.clean_acc),
        "reported": pct(result.reported_acc if result.reported_acc is not None else headline),
    }
    if result.autoattack_acc is not None:
        entry["autoattack_acc"] = pct(result.autoattack_acc)
    verdict = masking_verdict(result.masking) if result.masking else None
    if verdict is not None:
        entry["unreliable"] = verdict["unreliable"]
    notes = []
    if verdict is not None and verdict["unreliable"]:
        failed = [c for c in result.masking if c["passed"] is False]
        notes.append(
            "Signs of gradient masking (robact_bench checks, docs/gradient-masking.md): "
            + "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
            + "."
        )
    if result.autoattack_acc is not None and headline < result.autoattack_acc:
        entry["external"] = pct(result.robust_acc)
        notes.append(
            f"{pct(result.robust_acc)}% is the worst case per point over all our attacks"
            + (f", each image scored on {result.passes} forward passes" if result.passes > 1 else "")
            + f" (AutoAttack {result.autoattack_version} alone: {pct(result.autoattack_acc)}%)."
        )
    if track["track"] == "randomized":
        notes.append(
            f"Randomized track: clean accuracy is the mean over {result.passes} forward passes; "
            f"gradients use EOT over {result.eot_iter} passes; an adversarial image counts as robust only "
            f"if all {result.passes} passes are right."
        )
    if track["mismatch"]:
        notes.append(
            f"Track mismatch: declared {'random' if track['declared_random'] else 'deterministic'}, "
            f"measured {'random' if track['measured_random'] else 'deterministic'}; placed on the randomized track."
        )
    for d in result.diagnostics:
        if d["name"] == "drelu_saturation":
            notes.append(
                "The D-ReLU cap is never reached on the test images: this model computes a plain ReLU network."
                if not d["passed"]
                else f"D-ReLU caps m in [{d['m_min']:.3g}, {d['m_max']:.3g}]; "
                f"{100 * d['value']:.2f}% of D-ReLU inputs reach the cap on the test images."
            )
    if result.quick:
        notes.append("Smoke run (--quick): not a result.")
    if notes:
        entry["footnote"] = " ".join(notes)
    reported = next((a.name for a in result.attacks if a.name.endswith("_reported")), "")
    training = dict(result.training)
    if "config" in training:
        training["config_hash"] = config_hash(training["config"])
    train_seed = training.get("config", {}).get("seed")
    entry["robact"] = {
        "schema": SCHEMA_ID,
        "model_name": result.model_name,
        "group": group or result.model_name,
        "seed": int(train_seed) if train_seed is not None else int(result.eval_config.get("seed", 0)),
        "seeds": {"training": train_seed, "evaluation": result.eval_config.get("seed")},
        "baseline": baseline,
        "quick": result.quick,
        **track,
        "model": result.model,
        "training": training,
        "evaluation": {
            "dataset": result.dataset,
            "split": result.split,
            "threat_model": result.threat_model,
            "eps": result.eps,
            "n_examples": result.n_examples,
            "stochastic": result.stochastic,
            "passes": result.passes,
            "eot_iter": result.eot_iter,
            "scoring": (
                "robust only if every attack failed and the adversarial image is classified "
                f"correctly on all {result.passes} forward passes"
                if result.passes > 1
                else "robust only if every attack failed"
            ),
            "clean_acc": result.clean_acc,
            "clean_acc_majority": result.clean_acc_majority,
            "clean_acc_worst": result.clean_acc_worst,
            "suite": result.suite,
            "eot_mode": result.eot_mode,
            "reported_protocol": (
                f"{reported}: PGD with the training attack's settings, scored on one forward pass, no EOT "
                "(the seed papers' robust accuracy)"
                if reported
                else "none in this suite: reported = our worst case"
            ),
            "reported_acc": result.reported_acc,
            "autoattack_version": result.autoattack_version,
            "autoattack_acc": result.autoattack_acc,
            "robust_acc": result.robust_acc,
            "per_attack": {
                a.name: {
                    "accuracy": a.accuracy,
                    "single_pass_accuracy": a.single_pass_accuracy,
                    "library_accuracy": a.library_accuracy,
                    "cumulative": a.cumulative,
                    **a.record,
                }
                for a in result.attacks
            },
            "skipped": list(result.skipped),
            "sweeps": list(result.sweeps),
            "saf": result.saf,
            "warnings": list(result.warnings),
            "config": result.eval_config,
            "wall_time_s": round(result.wall_time_s, 2),
        },
        "masking": {
            **(verdict or {"unreliable": None, "failed": [], "not_judged": []}),
            "checks": list(result.masking),
        },
        "diagnostics": list(result.diagnostics),
        "environment": result.environment,
    }
    return to_jsonable(entry)


def write_entry(entry: dict[str, Any], directory: str | os.PathLike[str], name: str) -> Path:
    """Validate ``entry`` against the schema and write it as ``<directory>/<name>.json`` atomically.

    Raises:
        ValueError: the entry is invalid (nothing is written).

    """
    from robact_bench.leaderboard.schema import validate_entry

    errors = validate_entry(entry, f"{name}.json")
    if errors:
        raise ValueError(f"refusing to write an invalid entry: {errors[0]} ({len(errors)} problems in all)")
    return atomic_write_json(Path(directory) / f"{name}.json", entry)
