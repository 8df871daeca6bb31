"""Export an :class:`EvalResult` as a RobustBench ``model_info`` JSON entry, and render tables.

RobustBench's fields keep their exact types (percentage *strings*, ``eps`` as ``"0.1"`` or
``"8/255"``, ``number_forward_passes`` an int); everything else goes in one ``"robact"`` block,
so a RobustBench reader still reads the file. Tables are generated from the JSON files only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from robact_bench.evaluation.result import EvalResult
from robact_bench.fileio import atomic_write_json, atomic_write_text, read_json, to_jsonable


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


def to_robustbench(
    result: EvalResult,
    *,
    link: str = "",
    authors: str = "robact_bench",
    venue: str = "robact_bench",
    architecture: str | None = None,
) -> dict[str, Any]:
    """The RobustBench ``model_info`` entry for ``result``, with our ``robact`` block.

    ``reported`` is the non-adaptive protocol's number (see ``EvalResult.reported_acc``);
    ``autoattack_acc`` is AutoAttack's own; ``external`` is added when our worst case over all
    attacks (each image scored on R passes) is lower than AutoAttack's number, which is what
    RobustBench ranks by.
    """
    if result.robust_acc is None:
        raise ValueError(
            f"{result.model_name}: suite {result.suite} ran no attack; there is no robust accuracy to export"
        )
    headline = result.robust_acc
    entry: dict[str, Any] = {
        "link": link,
        "name": result.title,
        "authors": authors,
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": result.dataset,
        "venue": venue,
        "architecture": architecture or result.model.get("arch", ""),
        "eps": format_eps(result.eps),
        "clean_acc": pct(result.clean_acc),
        "reported": pct(result.reported_acc if result.reported_acc is not None else headline),
    }
    if result.autoattack_acc is not None:
        entry["autoattack_acc"] = pct(result.autoattack_acc)
    notes = []
    if result.autoattack_acc is not None and headline < result.autoattack_acc:
        entry["external"] = pct(result.robust_acc)
        notes.append(
            f"{pct(result.robust_acc)}% is the worst case per point over all our attacks"
            + (f", each image scored on {result.passes} forward passes" if result.passes > 1 else "")
            + f" (AutoAttack {result.autoattack_version} alone: {pct(result.autoattack_acc)}%)."
        )
    if result.stochastic:
        notes.append(
            f"Randomized model: clean accuracy is the mean over {result.passes} forward passes; "
            f"gradients use EOT over {result.eot_iter} passes."
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
    entry["robact"] = {
        "schema": "robact_bench.entry/1",
        "model_name": result.model_name,
        "quick": result.quick,
        "model": result.model,
        "training": result.training,
        "evaluation": {
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
        "diagnostics": list(result.diagnostics),
        "environment": result.environment,
    }
    return to_jsonable(entry)


def write_entry(entry: dict[str, Any], directory: str | os.PathLike[str], name: str) -> Path:
    """Write ``entry`` as ``<directory>/<name>.json`` atomically; return the path."""
    return atomic_write_json(Path(directory) / f"{name}.json", entry)


def _rank_key(e: dict[str, Any]) -> float:
    return float(e.get("external", e.get("autoattack_acc", "0")))


def render_markdown(directory: str | os.PathLike[str]) -> str:
    """A Markdown table of every entry in ``directory``, ranked as RobustBench ranks.

    Ranking uses ``external`` where present, else ``autoattack_acc``.
    """
    entries = []
    for p in sorted(Path(directory).glob("*.json")):
        e = read_json(p)
        entries.append((p.stem, e))
    entries.sort(key=lambda t: -_rank_key(t[1]))
    head = (
        "| # | Model | Clean | Reported (PGD, 1 pass) | AutoAttack | Robust (worst case) | "
        "Forward passes x EOT | n | Notes |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for i, (stem, e) in enumerate(entries, 1):
        ev = e.get("robact", {}).get("evaluation", {})
        passes = ev.get("passes", 1)
        eot = ev.get("eot_iter")
        rows.append(
            f"| {i} | {e['name']} (`{stem}`) | {e['clean_acc']} | {e['reported']} | "
            f"{e.get('autoattack_acc', '-')} ({ev.get('autoattack_version', '?')}) | "
            f"{e.get('external', e.get('autoattack_acc', '-'))} | "
            f"{passes}{f' x {eot}' if eot else ''} | {ev.get('n_examples', '?')} | "
            f"{e.get('footnote', '').replace('|', '/')} |"
        )
    return head + "\n".join(rows) + "\n"


def write_table(directory: str | os.PathLike[str], *, title: str = "") -> Path:
    """Render ``directory``'s entries to ``<directory>/README.md`` (atomically)."""
    body = render_markdown(directory)
    text = (
        (f"# {title}\n\n" if title else "")
        + (
            "Generated by `robact-bench` from the JSON files in this folder; do not edit by hand.\n"
            "Accuracies in %. Ranked by `external` where present, else `autoattack_acc` "
            "(RobustBench's rule).\n\n"
        )
        + body
    )
    return atomic_write_text(Path(directory) / "README.md", text)
