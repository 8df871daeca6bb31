"""Synthetic leaderboard entries for the render tests, in the exported format (RobustBench + robact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def make_entry(
    group: str,
    seed: int | None,
    *,
    clean: str,
    reported: str,
    aa: str | None = None,
    external: str | None = None,
    track: str | None = "deterministic",
    baseline: bool | None = None,
    masking: dict[str, Any] | None = None,
    footnote: str = "",
    passes: int = 1,
    eot: int | None = None,
    n: int = 100,
    sweeps: list[dict[str, Any]] | None = None,
    history: list[dict[str, Any]] | None = None,
    per_attack: dict[str, float] | None = None,
    name: str | None = None,
    missing: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """One entry; ``track=None`` leaves ``robact.track`` out (old files).

    ``missing``: the blocks (``"model"``, ``"training"``) the entry lacks, ``null`` and declared in
    ``robact.provenance`` as an exported entry of a model not ours has them; ``None`` leaves
    ``robact.provenance`` out (old files).
    """
    e: dict[str, Any] = {
        "link": "",
        "name": name or f"{group} model",
        "authors": "tests",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": "mnist5k",
        "venue": "tests",
        "architecture": "LeNet-5",
        "eps": "0.1",
        "clean_acc": clean,
        "reported": reported,
    }
    if aa is not None:
        e["autoattack_acc"] = aa
    if external is not None:
        e["external"] = external
    if footnote:
        e["footnote"] = footnote
    rb: dict[str, Any] = {"schema": "robact_bench.entry/4", "model_name": group, "group": group}
    if seed is not None:
        rb["seed"] = seed
    if track is not None:
        rb["track"] = track
    if baseline is not None:
        rb["baseline"] = baseline
    if masking is not None:
        rb["masking"] = masking
    rb["evaluation"] = {
        "threat_model": "Linf",
        "eps": 0.1,
        "n_examples": n,
        "stochastic": track == "randomized",
        "passes": passes,
        "eot_iter": eot,
        "per_attack": {k: {"accuracy": v, "cumulative": False} for k, v in (per_attack or {}).items()},
        "sweeps": sweeps or [],
    }
    rb["training"] = {"recipe": "pgd_at", "history": history or []}
    if missing is not None:
        rb["provenance"] = {"trained_by": "external" if "training" in missing else "robact_bench",
                            "missing": list(missing)}  # fmt: skip
        for block in missing:
            rb[block] = None
    e["robact"] = rb
    return e


DOC = "docs/gradient-masking.md#checks"


def reliable(*not_judged: str) -> dict[str, Any]:
    """A masking block with no failed check."""
    checks = [{"name": "pgd_converges", "passed": True, "reason": "r", "doc": DOC, "value": 0.0}]
    checks += [{"name": n, "passed": None, "reason": "r", "doc": DOC, "value": None} for n in not_judged]
    return {"unreliable": False, "checks": checks}


def unreliable(*failed: str) -> dict[str, Any]:
    """A masking block whose ``failed`` checks failed."""
    checks = [{"name": n, "passed": False, "reason": "r", "doc": DOC, "value": 1.0} for n in failed]
    checks.append({"name": "pgd_converges", "passed": True, "reason": "r", "doc": DOC, "value": 0.0})
    return {"unreliable": True, "checks": checks}


def _eps_sweep(accs: list[float]) -> dict[str, Any]:
    return {"kind": "eps", "attack": "apgd-ce", "values": [0.05, 0.1, 0.2], "accuracy": accs, "eps": None}


def _steps_sweep(accs: list[float]) -> dict[str, Any]:
    return {"kind": "steps", "attack": "pgd", "values": [1, 5, 20], "accuracy": accs, "eps": 0.1}


SKIPPED_EPS_SWEEP = {"kind": "eps", "attack": "square", "skipped": "square does not run on randomized models"}

SCRIPT_FOOTNOTE = 'Old format <script>alert("x")</script> & a|b'


def synthetic_entries() -> list[tuple[str, dict[str, Any]]]:
    """3 groups x 2-3 seeds in two tracks (one group unreliable) plus one old-format single entry.

    Hand-computed aggregates (sample std, n - 1) are in the tests.
    """
    hist = [{"epoch": 1, "loss": 1.5}, {"epoch": 2, "loss": 0.8}, {"epoch": 3, "loss": 0.5}]
    det_a = [
        make_entry(
            "Det_A", s, clean=c, reported=r, aa=a, baseline=True, masking=reliable("transfer_gap"),
            footnote="Baseline ReLU PGD-AT.", sweeps=[_eps_sweep(sw)], history=hist,
            per_attack={"pgd20": p, "apgd-ce": a_ / 100},
            name="Det A (ReLU, PGD-AT)",
        )
        for s, c, r, a, sw, p, a_ in (
            (0, "98.00", "92.00", "90.00", [0.95, 0.90, 0.60], 0.91, 90.0),
            (1, "97.00", "91.00", "88.00", [0.93, 0.88, 0.50], 0.89, 88.0),
            (2, "99.50", "93.50", "89.50", [0.94, 0.895, 0.55], 0.90, 89.5),
        )
    ]  # fmt: skip
    det_b = [
        make_entry(
            "Det_B", 0, clean="99.50", reported="96.00", aa="95.00", external="80.00",
            masking=unreliable("transfer_beats_whitebox"), footnote="Transfer attacks beat PGD.",
            history=[{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}], per_attack={"pgd20": 0.95},
        ),
        make_entry(
            "Det_B", 1, clean="98.50", reported="95.00", aa="93.00", external="82.50",
            masking=reliable(), footnote="Transfer attacks beat PGD.",
            history=[{"epoch": 1, "loss": 1.8}, {"epoch": 2, "loss": 0.9}], per_attack={"pgd20": 0.93},
        ),
    ]  # fmt: skip
    rand_c = [
        make_entry(
            "Rand_C", s, track="randomized", clean=c, reported=r, aa=a, external=x, masking=reliable(),
            passes=10, eot=20, sweeps=[_steps_sweep(sw), SKIPPED_EPS_SWEEP], footnote=f"Seed {s} note.",
            per_attack={"pgd20": p},
        )
        for s, c, r, a, x, sw, p in (
            (0, "96.00", "85.00", "70.00", "60.00", [0.8, 0.7, 0.62], 0.61),
            (1, "95.00", "86.00", "72.00", "64.00", [0.82, 0.72, 0.66], 0.65),
        )
    ]  # fmt: skip
    old = make_entry(
        "Old_D", None, track=None, clean="97.00", reported="75.00", aa="65.00", footnote=SCRIPT_FOOTNOTE,
        passes=5, eot=8, n=50,
    )  # fmt: skip
    old["robact"]["evaluation"]["stochastic"] = True  # old files: the track comes from this flag
    del old["robact"]["group"]
    stems = ["Det_A_s0", "Det_A_s1", "Det_A_s2", "Det_B_s0", "Det_B_s1", "Rand_C_s0", "Rand_C_s1", "old_d"]
    return list(zip(stems, [*det_a, *det_b, *rand_c, old], strict=True))


def write_entries(directory: Path, entries: list[tuple[str, dict[str, Any]]]) -> None:
    """Write each entry as ``<directory>/<stem>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, e in entries:
        (directory / f"{stem}.json").write_text(json.dumps(e, indent=1), encoding="utf-8")
