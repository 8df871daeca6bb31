"""Export an :class:`EvalResult` as a RobustBench ``model_info`` JSON entry.

RobustBench's fields keep their exact types (percentage *strings*, ``eps`` as ``"0.1"`` or
``"8/255"``, ``number_forward_passes`` an int); everything else goes in one ``"robact"`` block,
so a RobustBench reader still reads the file. Tables, pages and plots are rendered from the
JSON files only (:mod:`robact_bench.leaderboard.render`).

Any evaluation can be exported, also of a model that is not in our registry or was not trained
by us (``robact_bench.evaluate`` takes any ``nn.Module``): the blocks it cannot fill,
``robact.model`` (our registry's spec) and ``robact.training`` (our training record), are
``null``, and ``robact.provenance`` declares them (``{"trained_by": "external", "missing":
["model", "training"]}``); the schema rejects an absent block that is not declared and a
declared one that is present. :func:`export_entry` writes such an entry from a saved
``eval.json`` (``robact-bench export``).

Example:
    >>> result = robact_bench.evaluate(my_model, x, y, "standard", model_name="MyNet")  # doctest: +SKIP
    >>> export_entry(result, "leaderboards/mine/Linf", architecture="ResNet-18")  # doctest: +SKIP

"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from robact_bench.evaluation.masking import masking_verdict
from robact_bench.evaluation.result import HEADLINE_IS_AUTOATTACK, EvalResult
from robact_bench.evaluation.stochastic import RULE_DOC
from robact_bench.fileio import atomic_write_json, code_fingerprint, read_json, to_jsonable
from robact_bench.leaderboard.inference import rule_intervals
from robact_bench.parsing import one_line

log = logging.getLogger(__name__)

SCHEMA_ID = "robact_bench.entry/4"
"""The ``robact.schema`` we write. ``/4`` added ``robact.provenance`` (required) and the ``null``
blocks it declares; ``/3`` entries (no provenance, every block present) stay valid."""

BLOCKS: tuple[str, ...] = ("model", "training")
"""The ``robact`` blocks an entry may lack, declared in ``robact.provenance.missing``."""

#: a name for an entry file and ``robact.model_name``/``group``: letters, digits, ``_ . -``, not hidden
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: the footnote of an entry lacking blocks, by the blocks it lacks
PROVENANCE_NOTES = {
    ("model", "training"): "External model: its architecture and its training are not ours and unknown to "
    "robact_bench (no robact.model or robact.training record; the architecture is as the submitter states "
    "it); only the evaluation is ours.",
    ("training",): "Trained outside robact_bench: the architecture is from our registry (robact.model), its "
    "training is unknown to us (no robact.training record); only the evaluation is ours.",
    ("model",): "Not a registry architecture: the architecture is unknown to robact_bench (no robact.model "
    "record; as the submitter states it); trained with robact_bench (robact.training).",
}


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


#: which scoring rule every exported accuracy holds, written into each entry (``robact.evaluation.scoring``)
FIELD_RULES = {
    "clean_acc": "expected: mean over the R scoring passes of the clean image (one pass when deterministic)",
    "autoattack_acc": "expected: AutoAttack's components alone, worst case per point (deterministic: the "
    "library's cascade, as it returns and scores it; random: every component on every point, the strongest "
    "of their images chosen on S selection passes and scored on R fresh passes)",
    "external": "expected: our headline, the worst case per point over every attack, chosen and scored as "
    "autoattack_acc",
    "reported": "expected: the suite's non-adaptive protocol attack, else our headline",
    "robact.evaluation.scores": "every rule (expected, majority, all_right) with its 95% Clopper-Pearson "
    "interval over the points",
}
RANKING_RULE = (
    "expected accuracy of the per-point strongest image (the attack image with the fewest correct passes, "
    "chosen on S selection passes and scored on R fresh ones, so that choosing the minimum adds no bias): "
    "comparable with a deterministic model's single pass and with how Tramer et al. (NeurIPS 2020) and "
    "Dbouk and Shanbhag (ICML 2022) report; all_right beside it is an attacker who may query R times"
)


def _counts_doc(result: EvalResult, rec: Any) -> str:
    if rec.cumulative:
        return ("cumulative: after this AutoAttack component and the previous ones (the library's cascade), "
                "one pass per image")  # fmt: skip
    if not result.stochastic:
        return "this attack's own images, one pass; a point counts only if its clean image is right too"
    own = (f"this attack's own kept image per point (the strongest of its candidates and the clean image on "
           f"{result.select_passes} selection passes), correct passes out of {result.passes} fresh scoring "
           "passes")  # fmt: skip
    if rec.cumulative_counts is not None:
        own += ("; cumulative_counts/cumulative_scores: the strongest image among this and the previous AutoAttack "
                "components (AutoAttack's accuracy after this component)")  # fmt: skip
    return own


def _attack_entry(result: EvalResult, a: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "accuracy": a.accuracy,
        "accuracy_majority": a.accuracy_majority,
        "accuracy_all_right": a.accuracy_all_right,
        "scores": rule_intervals(a.counts, result.passes),
        "library_accuracy": a.library_accuracy,
        "cumulative": a.cumulative,
        "counts_what": _counts_doc(result, a),
        "counts": list(a.counts),
    }
    if a.cumulative_counts is not None and a.cumulative_all_right is not None:
        out["cumulative_counts"] = list(a.cumulative_counts)
        out["cumulative_scores"] = rule_intervals(a.cumulative_counts, result.passes,
                                                  all_right=[c == "1" for c in a.cumulative_all_right])  # fmt: skip
    for key in ("confirm", "chosen", "query_counts", "surrogate_wrong"):
        value = getattr(a, key)
        if value is not None:
            out[key] = list(value)
    if a.query_index is not None:
        out["query_index"] = a.query_index
    if a.indicators is not None:
        out["indicators"] = a.indicators
    return {**out, **a.record}


def training_block(result: EvalResult) -> dict[str, Any] | None:
    """``robact.training`` of ``result``: our training record, or ``None`` when it has none.

    A record is ours when it names a ``recipe`` (``robact-bench train``, ``run`` and the training
    loop write one); then ``config_hash`` is added, ``seconds`` is read from ``train_seconds`` where
    only that is recorded, and ``history`` is ``[]`` where the evaluation left it out
    (``robact-bench eval`` does). Anything else (``{}`` for a user's module, ``{"name", "dataset"}``
    for a converted checkpoint) is no training record: the model was trained elsewhere.

    Raises:
        ValueError: a record names a recipe but has no ``config`` (a partial record is refused,
            never declared absent).

    """
    training = dict(result.training)
    if not training.get("recipe"):
        return None
    if not isinstance(training.get("config"), dict):
        raise ValueError(
            f"{result.model_name}: the training record names recipe {training['recipe']!r} but has no config; "
            "a partial training record cannot be exported"
        )
    training["config_hash"] = config_hash(training["config"])
    if "seconds" not in training and isinstance(training.get("train_seconds"), int | float):
        training["seconds"] = training["train_seconds"]
    if "history" not in training:
        training["history"] = []
        log.info("%s: the result holds no training history (robact.training.history = [])", result.model_name)
    return training


def absent_blocks(result: EvalResult) -> tuple[str, ...]:
    """The blocks of :data:`BLOCKS` that ``result`` cannot fill, in that order.

    ``model`` when the result holds no model spec (a module that is not built from our registry);
    ``training`` when it holds no training record of ours (:func:`training_block`).
    """
    return _blocks(result)[1]


def _blocks(result: EvalResult) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """``robact.training`` (:func:`training_block`) and the absent blocks (:func:`absent_blocks`)."""
    training = training_block(result)
    return training, tuple(b for b, block in zip(BLOCKS, (result.model, training), strict=True) if not block)


def _train_seed(training: dict[str, Any] | None) -> int | None:
    """The training seed: ``config.seed`` (the main job), else ``config.train.seed`` (``robact-bench train``)."""
    config = (training or {}).get("config") or {}
    seed = config.get("seed")
    if seed is None and isinstance(config.get("train"), dict):
        seed = config["train"].get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None


def to_robustbench(
    result: EvalResult,
    *,
    link: str = "",
    authors: str | None = None,
    venue: str | None = None,
    architecture: str | None = None,
    group: str | None = None,
    baseline: bool = False,
    reported: str = "",
    weights: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RobustBench ``model_info`` entry for ``result``, with our ``robact`` block.

    * Every percentage holds the ``expected`` rule (mean over passes; one pass when
      deterministic); the three rules with 95% intervals and the per-point counts are in
      ``robact.evaluation`` (``scores``, ``per_attack.<name>.scores``, ``points``), and
      ``robact.evaluation.scoring`` says which rule each field holds (:data:`FIELD_RULES`).
    * ``reported``: the number the method's paper reported for this model, as RobustBench uses
      the field, or ``""`` (what RobustBench writes when there is none); our numbers never go
      there. ``autoattack_acc``: AutoAttack's components alone.
    * ``number_forward_passes``: 1 on the deterministic track; R (the scoring passes) on the
      randomized track.
    * ``unreliable``: True when a check of kind ``inflated`` failed (our headline may still be
      inflated); then ``footnote`` names the failed checks with their numbers and ``external``
      holds our headline. Checks of kind ``overstated`` (a naive number above ours) are reported
      in the footnote and never set ``unreliable``.
    * ``robact.provenance``: ``trained_by`` (``robact_bench`` or ``external``) and ``missing``,
      the blocks of :data:`BLOCKS` that are ``null`` (:func:`absent_blocks`); the footnote says so.
    * ``external``: our headline (worst case per point over every attack) when it is below
      ``autoattack_acc``, when the entry is unreliable, and always on the randomized track, where
      the headline is the strongest image per point, scored on fresh passes (RobustBench ranks by
      ``external`` where present). It is never above ``autoattack_acc``: where the per-point worst
      case read above AutoAttack by the noise of the passes, the engine made AutoAttack's result
      the headline, and the footnote says so.

    Args:
        result: The evaluation: of one of our models, or of any module (then the blocks it
            cannot fill are ``null`` and declared in ``robact.provenance``; see the module docs).
        link: RobustBench's ``link`` (the method's paper).
        authors: RobustBench's ``authors`` (default: ``"robact_bench"`` for a model we trained,
            else ``""``).
        venue: RobustBench's ``venue`` (default as ``authors``).
        architecture: RobustBench's ``architecture`` (default: the spec's architecture name;
            required when the result has no model spec).
        group: The name shared by the seeds of one model (default: ``result.model_name``).
        baseline: The row is a baseline (ReLU with PGD-AT or TRADES) every table shows.
        reported: The paper's own number for this model (a percentage string such as ``"52.10"``),
            or ``""``.
        weights: The published checkpoint, ``{"path": ..., "sha256": ...}`` (``robact.weights``;
            the path relative to the entry's folder), or ``None`` when the weights are not published.

    """
    if result.robust_acc is None or result.robust_counts is None:
        raise ValueError(
            f"{result.model_name}: suite {result.suite} ran no attack; there is no robust accuracy to export"
        )
    headline = result.robust_acc
    training, missing = _blocks(result)
    architecture = architecture or result.model.get("arch", "")
    if not architecture:
        raise ValueError(
            f"{result.model_name}: the result has no model spec (not a model of our registry): state its "
            "architecture (architecture=..., --architecture), e.g. 'ResNet-18'"
        )
    ours = "training" not in missing
    track = track_of(result)
    entry: dict[str, Any] = {
        "link": link,
        "name": result.title,
        "authors": authors if authors is not None else ("robact_bench" if ours else ""),
        "additional_data": False,
        "number_forward_passes": result.passes if track["track"] == "randomized" else 1,
        "dataset": result.dataset,
        "venue": venue if venue is not None else ("robact_bench" if ours else ""),
        "architecture": architecture,
        "eps": format_eps(result.eps),
        "clean_acc": pct(result.clean_acc),
        "reported": reported,
    }
    if result.autoattack_acc is not None:
        entry["autoattack_acc"] = pct(result.autoattack_acc)
    verdict = masking_verdict(result.masking) if result.masking else None
    if verdict is not None:
        entry["unreliable"] = verdict["unreliable"]
    notes = []
    by_name = {c["name"]: c for c in result.masking}
    if verdict is not None and verdict["unreliable"]:
        notes.append(
            "Our number may still be inflated (robact_bench checks, docs/gradient-masking.md): "
            + "; ".join(f"{n}: {by_name[n]['detail']}" for n in verdict["failed"])
            + "."
        )
    if verdict is not None and verdict["overstated"]:
        notes.append(
            "Non-adaptive numbers overstate ours (expected, no sign against our number): "
            + "; ".join(f"{n}: {by_name[n]['detail']}" for n in verdict["overstated"])
            + "."
        )
    unreliable = verdict is not None and verdict["unreliable"]
    randomized = track["track"] == "randomized"
    if (result.autoattack_acc is not None and headline < result.autoattack_acc) or unreliable or randomized:
        entry["external"] = pct(headline)
        capped = any(HEADLINE_IS_AUTOATTACK in w for w in result.warnings)
        notes.append(
            f"{pct(headline)}% is AutoAttack's result: the worst case per point over all our attacks read above "
            "it by the noise of the scoring passes, and the headline never claims more than AutoAttack."
            if capped
            else f"{pct(headline)}% is the worst case per point over all our attacks"
            + (f" (expected accuracy over {result.passes} passes)" if result.passes > 1 else "")
            + (
                f"; AutoAttack {result.autoattack_version} alone: {pct(result.autoattack_acc)}%."
                if result.autoattack_acc is not None
                else "."
            )
            if not capped
            else ""
        )
    if track["track"] == "randomized":
        notes.append(
            f"Randomized track: every accuracy is the expected accuracy (mean over {result.passes} forward passes; "
            f"gradients use EOT over {result.eot_iter} samples); under the all-{result.passes}-passes-right rule the "
            f"headline is {pct(result.robust_acc_all_right or 0.0)}% and clean {pct(result.clean_acc_all_right)}%."
        )
    if track["mismatch"]:
        notes.append(
            f"Track mismatch: declared {'random' if track['declared_random'] else 'deterministic'}, "
            f"measured {'random' if track['measured_random'] else 'deterministic'}; placed on the randomized track."
        )
    for d in result.diagnostics:
        if d["name"] == "drelu_saturation":
            notes.append(
                "The cap (D-ReLU or S-ReLU) is never reached on the test images: this model computes a plain ReLU "
                "network."
                if not d["passed"]
                else f"Caps m (D-ReLU or S-ReLU) in [{d['m_min']:.3g}, {d['m_max']:.3g}]; "
                f"{100 * d['value']:.2f}% of the capped units' inputs reach the cap on the test images."
            )
    if missing:
        notes.append(PROVENANCE_NOTES[missing])
    if result.quick:
        notes.append("Smoke run (--quick): not a result.")
    if notes:
        entry["footnote"] = " ".join(notes)
    reported = next((a.name for a in result.attacks if a.record.get("reported")), "")
    train_seed = _train_seed(training)
    scores = {
        "clean": rule_intervals(result.clean_counts, result.passes),
        "headline": rule_intervals(result.robust_counts, result.passes, all_right=result.robust_flags),
    }
    if result.autoattack_counts is not None and result.autoattack_all_right is not None:
        scores["autoattack"] = rule_intervals(result.autoattack_counts, result.passes,
                                              all_right=[c == "1" for c in result.autoattack_all_right])  # fmt: skip
    entry["robact"] = {
        "schema": SCHEMA_ID,
        "model_name": result.model_name,
        "group": group or result.model_name,
        "seed": train_seed if train_seed is not None else int(result.eval_config.get("seed", 0)),
        "seeds": {"training": train_seed, "evaluation": result.eval_config.get("seed")},
        "baseline": baseline,
        "quick": result.quick,
        **track,
        "provenance": {"trained_by": "robact_bench" if ours else "external", "missing": list(missing)},
        "model": result.model or None,
        "training": training,
        "evaluation": {
            "dataset": result.dataset,
            "split": result.split,
            "threat_model": result.threat_model,
            "eps": result.eps,
            "n_examples": result.n_examples,
            "stochastic": result.stochastic,
            "passes": result.passes,
            "select_passes": result.select_passes,
            "confirm_passes": result.confirm_passes,
            "eot_iter": result.eot_iter,
            "scoring": {
                "rules": dict(RULE_DOC),
                "ranking_rule": RANKING_RULE,
                "fields": FIELD_RULES,
                "headline": (
                    "worst case per point over every headline attack: robust only if every attack's image is "
                    "classified correctly"
                    if not result.stochastic
                    else "per point the strongest image among the clean image and every headline attack's kept image "
                    f"(fewest correct of {result.select_passes} selection passes), scored on {result.passes} fresh "
                    "passes; "
                    "all_right: every attack's image right on every scoring pass"
                ),
            },
            "clean_acc": result.clean_acc,
            "clean_acc_majority": result.clean_acc_majority,
            "clean_acc_all_right": result.clean_acc_all_right,
            "suite": result.suite,
            "eot_mode": result.eot_mode,
            "precision": result.eval_config.get("precision", "fp32"),
            "reported_protocol": (
                f"{reported}: the suite's non-adaptive protocol attack (expected rule)"
                if reported
                else "none in this suite"
            ),
            "reported_acc": result.reported_acc,
            "autoattack_version": result.autoattack_version,
            "autoattack_acc": result.autoattack_acc,
            "autoattack_acc_majority": result.autoattack_acc_majority,
            "autoattack_acc_all_right": result.autoattack_acc_all_right,
            "autoattack_library_acc": result.autoattack_library_acc,
            "robust_acc": result.robust_acc,
            "robust_acc_majority": result.robust_acc_majority,
            "robust_acc_all_right": result.robust_acc_all_right,
            "scores": scores,
            "points": {
                "indices": list(result.indices),
                "clean": list(result.clean_counts),
                "clean_confirm": list(result.clean_confirm),
                "headline": list(result.robust_counts),
                "headline_confirm": list(result.robust_confirm or result.robust_counts),
                "headline_all_right": "".join("1" if f else "0" for f in result.robust_flags),
                "headline_source": list(result.robust_source or ()),
                "autoattack": list(result.autoattack_counts) if result.autoattack_counts is not None else None,
                "autoattack_all_right": result.autoattack_all_right,
            },
            "per_attack": {a.name: _attack_entry(result, a) for a in result.attacks},
            "skipped": list(result.skipped),
            "sweeps": list(result.sweeps),
            "saf": result.saf,
            "warnings": list(result.warnings),
            "config": result.eval_config,
            "wall_time_s": round(result.wall_time_s, 2),
        },
        "masking": {
            **(verdict or {"unreliable": None, "failed": [], "overstated": [], "not_judged": []}),
            "checks": list(result.masking),
            "code_sha256": code_fingerprint(),
        },
        "diagnostics": list(result.diagnostics),
        "environment": result.environment,
    }
    if weights is not None:
        entry["robact"]["weights"] = dict(weights)
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


def read_result(path: str | os.PathLike[str]) -> EvalResult:
    """Read a saved evaluation (``eval.json``: :meth:`EvalResult.to_dict` as JSON) with the JSON reader.

    Only JSON is parsed; nothing in the file is imported, unpickled or run.

    Raises:
        ValueError: one line naming the file: missing, not JSON, or not an evaluation result
            (a leaderboard entry, say).

    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an evaluation result (a JSON object as `robact-bench eval` writes)")
    if "robact" in data and "clean_acc" in data:
        raise ValueError(f"{path}: a leaderboard entry, not an evaluation result (give the eval.json it came from)")
    try:
        return EvalResult.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path}: not an evaluation result ({one_line(str(exc))})") from None


def export_entry(
    result: EvalResult | str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    title: str | None = None,
    group: str | None = None,
    overwrite: bool = False,
    **fields: Any,
) -> Path:
    """Turn any evaluation into a validated leaderboard entry ``<directory>/<name>.json``, written atomically.

    The model may be anything :func:`robact_bench.evaluate` took: the blocks the result cannot
    fill are ``null`` and declared in ``robact.provenance`` (:func:`to_robustbench`), and
    ``architecture`` must be stated for a model without a registry spec.

    Args:
        result: The evaluation, or the path of its saved ``eval.json`` (:func:`read_result`).
        directory: The leaderboard folder (created when needed), e.g. ``leaderboards/mine/Linf``.
        name: The entry's file stem and ``robact.model_name`` (default: the result's model name).
        title: RobustBench's ``name``, the row's title (default: the result's title).
        group: The name the seeds of one model share (default: ``name``).
        overwrite: Replace an existing entry of that name.
        **fields: :func:`to_robustbench`'s keywords: ``architecture``, ``link``, ``authors``, ``venue``...

    Returns:
        The written file.

    Raises:
        ValueError: one line: a bad name, the file exists (and not ``overwrite``), the result ran no
            attack or lacks the architecture, or the entry is invalid; nothing is written.

    """
    if not isinstance(result, EvalResult):
        result = read_result(result)
    name = result.model_name if name is None else name
    for what, value in (("name", name), ("group", group)):
        if value is not None and not NAME_RE.fullmatch(value):
            raise ValueError(f"{what} {value!r}: use letters, digits, '_', '.' and '-', starting with a letter/digit")
    target = Path(directory) / f"{name}.json"
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists: pass overwrite=True (--overwrite) to replace it")
    result = replace(result, model_name=name, title=title or result.title)
    entry = to_robustbench(result, group=group, **fields)
    path = write_entry(entry, directory, name)
    log.info("%s: wrote %s (provenance %s)", name, path, entry["robact"]["provenance"])
    return path
