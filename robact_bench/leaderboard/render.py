"""Leaderboard pages generated from the JSON entries only: Markdown, one static HTML page, PNG plots.

Every table, page and plot here is a pure function of the entries (RobustBench ``model_info``
JSON plus our ``"robact"`` block), so a third party re-renders the same files from the same
JSON. Rows are *model groups*: the entries of one model trained with different seeds share
``robact.group`` and are aggregated into one row (mean ± sample standard deviation over the
seeds). Deterministic and randomized models are ranked in separate tables, each as RobustBench
ranks: by ``external`` where present, else ``autoattack_acc`` (for a group, the mean over its
seeds of that per-seed number).

Old entries may lack any field of the ``robact`` block; a missing value is shown as "–".

A row whose entries lack ``robact.model`` or ``robact.training`` (declared in
``robact.provenance.missing``: a model not of our registry, or not trained by robact_bench) is
marked in the Model column (``external†``) and explained in a note under its table: its
architecture and/or training are not ours and unknown to us; only the evaluation is.

Example:
    >>> from robact_bench.leaderboard.render import render_directory
    >>> render_directory("leaderboards/mnist5k/Linf", title="mnist5k, Linf")  # doctest: +SKIP

"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import logging
import math
import os
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robact_bench.fileio import atomic_write_bytes, atomic_write_text, read_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PLOTS",
    "PLOT_DPI",
    "PLOT_SIZE_IN",
    "TRACKS",
    "Row",
    "Stat",
    "build_rows",
    "load_entries",
    "render_directory",
    "render_html",
    "render_markdown",
    "render_plots",
]

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, Any]]

TRACKS: tuple[str, ...] = ("deterministic", "randomized")
"""The tables, in page order."""

PLOTS: tuple[str, ...] = ("acc_vs_eps", "acc_vs_steps", "per_attack", "training_curves")
"""The plot files ``plots/<name>.png`` that :func:`render_plots` may write."""

PLOT_SIZE_IN: tuple[float, float] = (9.0, 5.0)
PLOT_DPI: int = 100
"""Every plot is ``PLOT_SIZE_IN * PLOT_DPI`` pixels (900 x 500)."""

DASH = "–"

_TRACK_TITLES = {"deterministic": "Deterministic models", "randomized": "Randomized models"}
_PLOT_CAPTIONS = {
    "acc_vs_eps": "Robust accuracy (expected rule) vs eps (eps sweeps), mean over seeds; the band is the 95% interval "
    "over points and seeds (± one standard deviation for entries without per-point data).",
    "acc_vs_steps": "Robust accuracy (expected rule) vs attack steps (steps sweeps), mean over seeds; the band is the "
    "95% interval over points and seeds (± one standard deviation for entries without per-point data).",
    "per_attack": "Robust accuracy (expected rule) per attack, mean over seeds (error bars: the 95% interval over "
    "points and seeds; ± one standard deviation without per-point data). On deterministic models AutoAttack's "
    "attacks are cumulative (each runs on the points the previous ones left robust); on random models each runs "
    "on every point.",
    "training_curves": "Training loss per epoch, mean over seeds; the band is ± one standard deviation.",
}


# --------------------------------------------------------------------------- loading


def load_entries(directory: str | os.PathLike[str]) -> list[Entry]:
    """Read every ``*.json`` file of ``directory`` (not its subfolders), sorted by file stem.

    Only JSON is read; nothing in the directory is imported or executed.

    Args:
        directory: A leaderboard folder, e.g. ``leaderboards/mnist5k/Linf``.

    Returns:
        ``[(stem, entry), ...]`` sorted by stem.

    Raises:
        ValueError: One line naming the file, when a file is not valid JSON or not a JSON object.

    """
    out: list[Entry] = []
    for path in sorted(Path(directory).glob("*.json"), key=lambda p: p.stem):
        if not path.is_file():
            continue
        entry = read_json(path)
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: not a JSON object (got a JSON {type(entry).__name__})")
        robact = entry.get("robact")
        if robact is not None and not isinstance(robact, dict):
            raise ValueError(f"{path}: 'robact' is not a JSON object (got a JSON {type(robact).__name__})")
        out.append((path.stem, entry))
    return out


# --------------------------------------------------------------------------- one entry


def _obj(stem: str, parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{stem}: '{where}{key}' is not a JSON object (got {type(value).__name__})")
    return value


_NO_VALUE = frozenset({"", "null", "none", "-", DASH})
"""Percentage strings that mean "not recorded" (real RobustBench files use ``""`` and ``"null"``)."""


def _pct(stem: str, entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NO_VALUE):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{stem}: '{key}' is not a percentage string like \"84.92\" (got {value!r})") from None
    if not math.isfinite(x):
        raise ValueError(f"{stem}: '{key}' is not a finite percentage (got {value!r})")
    return x


def _int(stem: str, parent: dict[str, Any], key: str, where: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{stem}: '{where}{key}' is not an integer (got {value!r})")
    return value


def _str(stem: str, parent: dict[str, Any], key: str, where: str) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{stem}: '{where}{key}' is not a string (got {value!r})")
    return value


@dataclass(frozen=True)
class _Seed:
    """The fields of one entry that the tables and plots use."""

    stem: str
    entry: dict[str, Any]
    group: str
    seed: int | None
    track: str
    baseline: bool
    name: str
    clean: float | None
    reported: float | None
    autoattack: float | None
    robust: float | None
    passes: int | None
    eot: int | None
    n_examples: int | None
    checked: bool | None
    unreliable: bool
    failed_checks: tuple[str, ...]
    overstated: tuple[str, ...]
    footnote: str
    evaluation: dict[str, Any]
    missing: tuple[str, ...] = ()


_BLOCKS = ("model", "training")
"""The ``robact`` blocks an entry may lack (:data:`robact_bench.leaderboard.export.BLOCKS`)."""


def _missing(stem: str, rb: dict[str, Any]) -> tuple[str, ...]:
    """The blocks the entry lacks: declared in ``robact.provenance`` or ``null`` (an invalid entry still renders)."""
    prov = _obj(stem, rb, "provenance", "robact.")
    declared = prov.get("missing") or []
    if not isinstance(declared, list):
        raise ValueError(f"{stem}: 'robact.provenance.missing' is not a list (got {declared!r})")
    absent = {b for b in declared if isinstance(b, str)} | {b for b in _BLOCKS if b in rb and rb[b] is None}
    if prov.get("trained_by") == "external":
        absent.add("training")
    return tuple(b for b in _BLOCKS if b in absent)


def _checked(masking: dict[str, Any], checks: list[dict[str, Any]]) -> bool | None:
    """True: the masking checks ran and gave a verdict; False: every check was "not judged"; None: no verdict."""
    if masking.get("unreliable") is None:
        return None
    if checks and not any(c.get("passed") is not None for c in checks):
        return False
    return True


def _parse(stem: str, entry: dict[str, Any]) -> _Seed:
    if not isinstance(entry, dict):
        raise ValueError(f"{stem}: not a JSON object (got {type(entry).__name__})")
    rb = _obj(stem, entry, "robact", "")
    ev = _obj(stem, rb, "evaluation", "robact.")
    masking = _obj(stem, rb, "masking", "robact.")
    track = _str(stem, rb, "track", "robact.")
    if track is None:
        track = "randomized" if ev.get("stochastic") is True else "deterministic"
    elif track not in TRACKS:
        raise ValueError(f"{stem}: 'robact.track' must be one of {', '.join(TRACKS)} (got {track!r})")
    group = _str(stem, rb, "group", "robact.") or _str(stem, rb, "model_name", "robact.") or stem
    autoattack = _pct(stem, entry, "autoattack_acc")
    external = _pct(stem, entry, "external")
    top_unreliable = entry.get("unreliable") is True
    masking_unreliable = masking.get("unreliable") is True
    checks = masking.get("checks") or []
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        raise ValueError(f"{stem}: 'robact.masking.checks' is not a list of JSON objects")
    failed = masking.get("failed")
    if not isinstance(failed, list):
        failed = [c.get("name", "?") for c in checks if c.get("passed") is False and c.get("kind") != "overstated"]
    overstated = masking.get("overstated")
    if not isinstance(overstated, list):
        overstated = [c.get("name", "?") for c in checks if c.get("passed") is False and c.get("kind") == "overstated"]
    passes = _int(stem, ev, "passes", "robact.evaluation.")
    if passes is None:
        passes = _int(stem, entry, "number_forward_passes", "")
    footnote = entry.get("footnote") or ""
    if not isinstance(footnote, str):
        raise ValueError(f"{stem}: 'footnote' is not a string (got {footnote!r})")
    return _Seed(
        stem=stem,
        entry=entry,
        group=group,
        seed=_int(stem, rb, "seed", "robact."),
        track=track,
        baseline=rb.get("baseline") is True,
        name=_str(stem, entry, "name", "") or group,
        clean=_pct(stem, entry, "clean_acc"),
        reported=_pct(stem, entry, "reported"),
        autoattack=autoattack,
        robust=external if external is not None else autoattack,
        passes=passes,
        eot=_int(stem, ev, "eot_iter", "robact.evaluation."),
        n_examples=_int(stem, ev, "n_examples", "robact.evaluation."),
        checked=_checked(masking, checks),
        unreliable=top_unreliable or masking_unreliable,
        failed_checks=tuple(str(n) for n in failed),
        overstated=tuple(str(n) for n in overstated),
        footnote=" ".join(footnote.split()),
        evaluation=ev,
        missing=_missing(stem, rb),
    )


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Stat:
    """A percentage aggregated over the seeds of a group.

    Attributes:
        values: The per-seed values that were recorded (in %).
        n_seeds: The number of seeds in the group (``len(values)`` when every seed has one).

    """

    values: tuple[float, ...]
    n_seeds: int
    ci: tuple[float, float] | None = None

    @property
    def mean(self) -> float | None:
        """Mean over the recorded seeds, ``None`` when none recorded the value."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1) over the recorded seeds; ``None`` below 2 values."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    def text(self) -> str:
        """The cell text: ``"84.92 [80.10, 88.75]"`` (with its 95% interval).

        Without an interval ``"84.92"`` (one seed) or ``"84.92 ± 0.31"`` (several seeds: mean ±
        sample std), or "–"; notes seeds without a value.
        """
        mean, std = self.mean, self.std
        if mean is None:
            return DASH
        if self.ci is not None:
            out = f"{mean:.2f} [{self.ci[0]:.2f}, {self.ci[1]:.2f}]"
        else:
            out = f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"
        if len(self.values) < self.n_seeds:
            out += f" ({len(self.values)} of {self.n_seeds} seeds)"
        return out


def _stat(seeds: Sequence[_Seed], get: Callable[[_Seed], float | None], interval: dict[str, Any] | None = None) -> Stat:
    values = tuple(v for v in map(get, seeds) if v is not None)
    ci = None
    if interval and len(values) == len(seeds):
        lo, hi = interval["ci95"]
        ci = (100 * lo, 100 * hi)
    return Stat(values, len(seeds), ci)


@dataclass(frozen=True)
class Row:
    """One table row: the entries (seeds) of one model group in one track, aggregated.

    Attributes:
        track: ``"deterministic"`` or ``"randomized"``.
        group: The model group (``robact.group``, else ``robact.model_name``, else the file stem).
        rank: 1-based rank within the track.
        name: Display name (the first seed's ``name``).
        baseline: Whether the group is a ReLU PGD-AT / TRADES baseline.
        stems: File stems of the seeds, in seed order.
        seeds: ``robact.seed`` of each file (``None`` where missing), in the same order.
        clean: Clean accuracy (%).
        reported: The paper's own number (RobustBench's ``reported``, %), ``None`` when it gives none.
        autoattack: AutoAttack's accuracy (%).
        robust: RobustBench's ranking number (%): ``external`` where present, else ``autoattack_acc``.
        robust_all_right: Our headline under the all-passes-right rule (%), from the per-point data.
        passes: Cell text of forward passes x EOT (distinct values over seeds joined by " / ").
        passes_key: Sort key of ``passes``: the largest passes x EOT over the seeds.
        n_examples: Cell text of the number of evaluated points.
        n_key: Sort key of ``n_examples``: the smallest over the seeds.
        unreliable: Whether any seed's masking verdict (or RobustBench ``unreliable`` flag) is set.
        verdict: ``"unreliable: <failed checks>"`` (our number may be inflated), ``"no sign of an
            inflated number"`` (with ``"(k of n seeds checked)"`` when some seeds have no verdict),
            ``"not judged"`` (the checks ran but none could judge) or "–" (no verdict recorded).
        overstated: The findings that a naive number is above ours (never a verdict against ours).
        versus: The paired comparisons of this group's headline with each baseline.
        intervals: The group's 95% intervals (:func:`~robact_bench.leaderboard.stats.group_intervals`).
        footnote: The footnotes of the seeds (a distinct footnote per seed is prefixed with its seed).
        entries: The raw entries, in seed order.
        missing: The ``robact`` blocks (``model``, ``training``) some seed lacks: the model's
            architecture and/or training are not ours (``robact.provenance``); empty for ours.

    """

    track: str
    group: str
    rank: int
    name: str
    baseline: bool
    stems: tuple[str, ...]
    seeds: tuple[int | None, ...]
    clean: Stat
    reported: Stat
    autoattack: Stat
    robust: Stat
    robust_all_right: Stat
    passes: str
    passes_key: float | None
    n_examples: str
    n_key: float | None
    unreliable: bool
    verdict: str
    overstated: tuple[str, ...]
    footnote: str
    entries: tuple[dict[str, Any], ...]
    versus: tuple[dict[str, Any], ...] = ()
    intervals: dict[str, Any] | None = None
    missing: tuple[str, ...] = ()


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _passes_text(s: _Seed) -> str:
    if s.passes is None:
        return DASH
    return f"{s.passes} x {s.eot}" if s.eot is not None and s.eot > 1 else str(s.passes)


def _seed_label(s: _Seed) -> str:
    return f"seed {s.seed}" if s.seed is not None else s.stem


def _verdict(seeds: Sequence[_Seed]) -> tuple[bool, str]:
    if any(s.unreliable for s in seeds):
        failed = _distinct(n for s in seeds for n in s.failed_checks)
        return True, "unreliable" + (f": {', '.join(failed)}" if failed else "")
    checked = sum(s.checked is True for s in seeds)
    if checked == 0:
        return False, "not judged" if any(s.checked is False for s in seeds) else DASH
    if checked < len(seeds):
        return False, f"no sign of an inflated number ({checked} of {len(seeds)} seeds checked)"
    return False, "no sign of an inflated number"


def _footnote(seeds: Sequence[_Seed]) -> str:
    notes = _distinct(s.footnote for s in seeds if s.footnote)
    if len(notes) <= 1:
        return notes[0] if notes else ""
    return " ".join(f"[{_seed_label(s)}] {s.footnote}" for s in seeds if s.footnote)


def _seed_order(s: _Seed) -> tuple[bool, int, str]:
    return (s.seed is None, s.seed if s.seed is not None else 0, s.stem)


def _evaluations(seeds: Sequence[_Seed]) -> dict[int, dict[str, Any]]:
    """``{seed (or position): robact.evaluation}`` of the seeds that carry per-point data."""
    return {(s.seed if s.seed is not None else -1 - i): s.evaluation for i, s in enumerate(seeds)
            if isinstance(s.evaluation.get("points"), dict)}  # fmt: skip


def _row(track: str, group: str, seeds: list[_Seed]) -> Row:
    """``seeds`` in seed order (:func:`_seed_order`)."""
    from robact_bench.leaderboard.stats import group_intervals

    known = [s.seed for s in seeds if s.seed is not None]
    dup = sorted({k for k in known if known.count(k) > 1})
    if dup:
        warnings.warn(
            f"leaderboard group {group!r} ({track}): seed(s) {', '.join(map(str, dup))} appear in more than one "
            f"file ({', '.join(s.stem for s in seeds)})",
            stacklevel=3,
        )
    unreliable, verdict = _verdict(seeds)
    evs = _evaluations(seeds)
    iv = group_intervals(evs) if len(evs) == len(seeds) and evs else {}

    def ci(what: str, rule: str = "expected") -> dict[str, Any] | None:
        return (iv.get(what) or {}).get(rule)

    pkeys = [s.passes * max(1, s.eot or 1) for s in seeds if s.passes is not None]
    nkeys = [s.n_examples for s in seeds if s.n_examples is not None]
    return Row(
        track=track,
        group=group,
        rank=0,
        name=seeds[0].name,
        baseline=any(s.baseline for s in seeds),
        stems=tuple(s.stem for s in seeds),
        seeds=tuple(s.seed for s in seeds),
        clean=_stat(seeds, lambda s: s.clean, ci("clean")),
        reported=_stat(seeds, lambda s: s.reported),
        autoattack=_stat(seeds, lambda s: s.autoattack, ci("autoattack")),
        robust=_stat(seeds, lambda s: s.robust, ci("headline")),
        robust_all_right=Stat(
            tuple(100 * v for v in _all_right(seeds)), len(seeds), _pct_ci(ci("headline", "all_right"))
        ),
        passes=" / ".join(_distinct(map(_passes_text, seeds))),
        passes_key=float(max(pkeys)) if pkeys else None,
        n_examples=" / ".join(_distinct(str(s.n_examples) if s.n_examples is not None else DASH for s in seeds)),
        n_key=float(min(nkeys)) if nkeys else None,
        unreliable=unreliable,
        verdict=verdict,
        overstated=tuple(_distinct(n for s in seeds for n in s.overstated)),
        footnote=_footnote(seeds),
        entries=tuple(s.entry for s in seeds),
        intervals=iv or None,
        missing=tuple(b for b in _BLOCKS if any(b in s.missing for s in seeds)),
    )


def _all_right(seeds: Sequence[_Seed]) -> list[float]:
    out = []
    for s in seeds:
        v = s.evaluation.get("robust_acc_all_right")
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append(float(v))
    return out


def _pct_ci(interval: dict[str, Any] | None) -> tuple[float, float] | None:
    if not interval:
        return None
    return (100 * interval["ci95"][0], 100 * interval["ci95"][1])


def _grouped(entries: Iterable[Entry]) -> dict[str, list[tuple[Row, list[_Seed]]]]:
    by_key: dict[tuple[str, str], list[_Seed]] = {}
    for stem, entry in entries:
        s = _parse(stem, entry)
        by_key.setdefault((s.track, s.group), []).append(s)
    out: dict[str, list[tuple[Row, list[_Seed]]]] = {t: [] for t in TRACKS}
    for (track, group), seeds in by_key.items():
        seeds.sort(key=_seed_order)
        out[track].append((_row(track, group, seeds), seeds))
    versus = _versus(out)
    for track, rows in out.items():
        rows.sort(key=lambda rs: (rs[0].robust.mean is None, -(rs[0].robust.mean or 0.0), rs[0].group))
        out[track] = [(replace(r, rank=i, versus=versus.get((r.track, r.group), ())), s)
                      for i, (r, s) in enumerate(rows, 1)]  # fmt: skip
    return out


def _versus(grouped: dict[str, list[tuple[Row, list[_Seed]]]]) -> dict[tuple[str, str], tuple[dict[str, Any], ...]]:
    """Every group's paired comparisons with the baselines (:func:`.stats.paired_vs_baselines`)."""
    from robact_bench.leaderboard.stats import paired_vs_baselines

    by_group: dict[str, dict[int, dict[str, Any]]] = {}
    tracks: dict[str, str] = {}
    baselines = []
    for track, rows in grouped.items():
        for row, seeds in rows:
            evs = _evaluations(seeds)
            if len(evs) != len(seeds) or row.group in by_group:
                continue
            by_group[row.group], tracks[row.group] = evs, track
            if row.baseline:
                baselines.append(row.group)
    if not baselines:
        return {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cmp in paired_vs_baselines(by_group, sorted(baselines)):
        out.setdefault((tracks[cmp["group"]], cmp["group"]), []).append(cmp)
    return {k: tuple(v) for k, v in out.items()}


def build_rows(entries: Iterable[Entry]) -> dict[str, list[Row]]:
    """The table rows: one per model group and track, ranked within each track.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.

    Returns:
        ``{"deterministic": [...], "randomized": [...]}`` (both keys always present), each list
        ranked by the mean over seeds of ``external`` (else ``autoattack_acc``), highest first;
        groups without either number come last; ties are broken by group name.

    Raises:
        ValueError: One line naming the file, when a field has the wrong type.

    """
    return {t: [r for r, _ in rows] for t, rows in _grouped(entries).items()}


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class _Column:
    title: str
    numeric: bool
    text: Callable[[Row], str]
    key: Callable[[Row], float | str | None]
    css: str = ""


def _seeds_text(r: Row) -> str:
    n = len(r.seeds)
    if all(s is None for s in r.seeds):
        return str(n)
    return f"{n} ({', '.join(DASH if s is None else str(s) for s in r.seeds)})"


def _short(group: str) -> str:
    """A baseline's name without the architecture prefix (``LeNet5_ReLU_PGDAT`` -> ``ReLU_PGDAT``)."""
    head, _, tail = group.partition("_")
    return tail or head


def _versus_text(r: Row) -> str:
    parts = []
    for c in r.versus:
        if "skipped" in c:
            parts.append(f"{_short(c['baseline'])}: not compared ({c['skipped']})")
            continue
        lo, hi = c["ci95"]
        parts.append(f"{_short(c['baseline'])}: {c['verdict']} ({100 * c['difference']:+.1f} "
                     f"[{100 * lo:+.1f}, {100 * hi:+.1f}], p {c['p_holm']:.2g})")  # fmt: skip
    return "; ".join(parts) or DASH


def _versus_key(r: Row) -> float | None:
    diffs = [c["difference"] for c in r.versus if "difference" in c]
    return min(diffs) if diffs else None


def _overstated_text(r: Row) -> str:
    return ", ".join(r.overstated) or DASH


_NOT_OURS = {
    ("model", "training"): ("external", "architecture and training not ours (unknown to robact_bench)"),
    ("training",): ("external training", "architecture from our registry; training not ours (unknown to robact_bench)"),
    ("model",): ("external architecture", "architecture not ours (unknown to robact_bench); trained by robact_bench"),
}
"""Per set of missing blocks: the row's marker and what it means."""

_NOT_OURS_NOTE = (
    "† Not ours: the entry has no robact.model and/or robact.training record (robact.provenance.missing): a model "
    "that is not of our registry or was not trained by robact_bench. Its architecture is as the submitter states "
    "it and its training is unknown to us; only the evaluation is ours."
)


def _not_ours(r: Row) -> tuple[str, str] | None:
    """The row's marker and meaning, or None for a model of ours."""
    return _NOT_OURS[r.missing] if r.missing else None


def _not_ours_lines(rows: Sequence[Row]) -> list[str]:
    """The note under a table with marked rows: what the marker means, then each marked row."""
    marked = [(r, m) for r in rows if (m := _not_ours(r)) is not None]
    if not marked:
        return []
    return [_NOT_OURS_NOTE, *(f"† {r.name} ({r.group}): {meaning}." for r, (_, meaning) in marked)]


_VERDICT = "Our number inflated?"
_ALL_RIGHT = "Robust, all passes right"
_COLUMNS: tuple[_Column, ...] = (
    _Column("#", True, lambda r: str(r.rank), lambda r: r.rank, "num"),
    _Column("Model", False, lambda r: r.name, lambda r: r.name.lower(), "model"),
    _Column("Clean", True, lambda r: r.clean.text(), lambda r: r.clean.mean, "num"),
    _Column("Reported (paper)", True, lambda r: r.reported.text(), lambda r: r.reported.mean, "num"),
    _Column("AutoAttack", True, lambda r: r.autoattack.text(), lambda r: r.autoattack.mean, "num"),
    _Column("Robust (worst case / external)", True, lambda r: r.robust.text(), lambda r: r.robust.mean, "num"),
    _Column(_ALL_RIGHT, True, lambda r: r.robust_all_right.text(), lambda r: r.robust_all_right.mean, "num"),
    _Column("Against the baselines", False, _versus_text, _versus_key, "versus"),
    _Column("Forward passes x EOT", True, lambda r: r.passes, lambda r: r.passes_key, "num"),
    _Column("n", True, lambda r: r.n_examples, lambda r: r.n_key, "num"),
    _Column("Seeds", True, _seeds_text, lambda r: len(r.seeds), "num"),
    _Column(_VERDICT, False, lambda r: r.verdict, lambda r: r.verdict.lower(), "verdict"),
    _Column("Naive numbers overstate", False, _overstated_text, lambda r: _overstated_text(r).lower(), "overstated"),
    _Column("Footnote", False, lambda r: r.footnote, lambda r: r.footnote.lower(), "footnote"),
)


def _columns(track: str) -> tuple[_Column, ...]:
    """The columns of one track's table: the all-passes-right column only where passes can differ."""
    return tuple(c for c in _COLUMNS if track == "randomized" or c.title != _ALL_RIGHT)


def _intro_lines(rows: dict[str, list[Row]]) -> list[str]:
    lines = [
        "Generated by `robact-bench` from the JSON files in this folder; do not edit by hand.",
        "Accuracies in %, expected accuracy (the mean over the R forward passes; one pass for a deterministic "
        "model), mean over the seeds with its 95% interval [low, high] over points and seeds (docs/statistics.md; "
        "mean ± sample standard deviation where an entry has no per-point data). Ranked within each table by "
        "`external` where present, else `autoattack_acc` (RobustBench's rule; for several seeds, the mean of that "
        "number). Robust is the worst case per point over every attack; on a random model the strongest image per "
        "point, chosen on R selection passes and scored on R fresh ones, with the all-passes-right rule beside it. "
        "Against the baselines: the paired test of the robust number (see Against the baselines below). "
        "Our number inflated?: the checks that say our number may be too high (unreliable); Naive numbers overstate: "
        "the findings that a naive evaluation (no EOT, no BPDA, AutoAttack alone) reports more than we do. "
        f"Deterministic and randomized models are ranked separately. {DASH} means not recorded.",
    ]
    threat = _distinct(
        f"{((e.get('robact') or {}).get('evaluation') or {}).get('threat_model')}, eps = {e.get('eps')}"
        for rs in rows.values()
        for r in rs
        for e in r.entries
    )
    if len(threat) == 1 and "None" not in threat[0]:
        lines.append(f"Threat model: {threat[0]}.")
    code = _distinct(
        f"robact_bench {env.get('versions', {}).get('robact_bench', '?')}, code {env['code_sha256']}"
        for rs in rows.values()
        for r in rs
        for e in r.entries
        if isinstance(env := (e.get("robact") or {}).get("environment"), dict) and env.get("code_sha256")
    )
    if code:
        lines.append(
            "Produced by " + "; ".join(code) + " (the SHA-256 of the package's source files that ran, "
            "`robact_bench.fileio.code_fingerprint`)."
        )
    return lines


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    """A table cell: HTML-escaped, no line breaks, Markdown's active characters escaped."""
    out = html.escape(" ".join(text.split()), quote=False)
    for ch in ("\\", "`", "*", "|"):
        out = out.replace(ch, "\\" + ch)
    return out


def _md_code(text: str) -> str:
    return "`" + html.escape(text.replace("`", "'").replace("|", "/"), quote=False) + "`"


def _md_cell(col: _Column, r: Row) -> str:
    if col.title == "Model":
        mark = _not_ours(r)
        return (f"{_md(r.name)} ({_md_code(r.group)})" + (" **[baseline]**" if r.baseline else "")
                + (f" **[{_md(mark[0])}†]**" if mark else ""))  # fmt: skip
    if col.title == _VERDICT and r.unreliable:
        return f"⚠ **{_md(r.verdict)}**"
    return _md(col.text(r))


def render_markdown(
    entries: Sequence[Entry],
    *,
    title: str = "",
    extra_markdown: str = "",
    plots: Sequence[str] = (),
) -> str:
    """The leaderboard as Markdown: a note that it is generated, then one table per track.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.
        title: A level-1 heading (none when empty).
        extra_markdown: Appended after the tables (e.g. a statistics section).
        plots: Names from :data:`PLOTS` to show, as ``plots/<name>.png`` (pass what
            :func:`render_plots` wrote).

    Returns:
        The Markdown text; identical for identical entries.

    """
    rows = build_rows(entries)
    out: list[str] = []
    if title:
        out += [f"# {_md(title)}", ""]
    for line in _intro_lines(rows):
        out += [line, ""]
    if not any(rows.values()):
        out += ["No entries.", ""]
    for track in TRACKS:
        out += [f"## {_TRACK_TITLES[track]}", ""]
        if not rows[track]:
            out += [f"No {track} models.", ""]
            continue
        cols = _columns(track)
        out.append("| " + " | ".join(c.title for c in cols) + " |")
        out.append("|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|")
        out += ["| " + " | ".join(_md_cell(c, r) for c in cols) + " |" for r in rows[track]]
        out.append("")
        for line in _not_ours_lines(rows[track]):
            out += [_md(line), ""]
    shown = [p for p in PLOTS if p in plots]
    if shown:
        out += ["## Plots", ""]
        for p in shown:
            out += [f"![{p}](plots/{p}.png)", "", _PLOT_CAPTIONS[p], ""]
    if extra_markdown:
        out += [extra_markdown.rstrip("\n"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { color-scheme: light; --bad: #b00020; --bad-bg: #fdecee; --line: #d0d4da; --head: #f2f4f7; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 1.5rem;
  color: #1b1f24; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
p.note { max-width: 70rem; color: #444; margin: .3rem 0; }
table.board { border-collapse: collapse; width: 100%; }
table.board th, table.board td { border: 1px solid var(--line); padding: .3rem .45rem; vertical-align: top; }
table.board th { background: var(--head); text-align: left; vertical-align: bottom; }
table.board td.model { min-width: 14rem; }
table.board th button { all: unset; cursor: pointer; font-weight: 600; }
table.board th button:focus-visible { outline: 2px solid #0a58ca; }
table.board th[aria-sort="ascending"] button::after { content: " \\25B2"; font-size: .75em; }
table.board th[aria-sort="descending"] button::after { content: " \\25BC"; font-size: .75em; }
table.board td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.board td.footnote { font-size: .9em; color: #333; min-width: 18rem; }
table.board tr.unreliable td { background: var(--bad-bg); }
table.board tr.unreliable td:first-child { box-shadow: inset 4px 0 0 var(--bad); }
td.verdict.bad { color: var(--bad); font-weight: 700; }
td.verdict.ok { color: #1a7f37; }
code { font-size: .9em; color: #555; }
.badge { display: inline-block; font-size: .75em; font-weight: 600; padding: 0 .35em; border-radius: .3em;
  border: 1px solid; vertical-align: middle; }
.badge.baseline { color: #0550ae; border-color: #0550ae; }
.badge.unreliable { color: var(--bad); border-color: var(--bad); }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: #444; font-size: .9em; }
""".strip()

_JS = """
(function () {
  "use strict";
  function sortKey(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    if (numeric) { var x = parseFloat(raw); return isNaN(x) ? null : x; }
    return raw.toLowerCase();
  }
  function sortBy(table, th, col) {
    var numeric = th.getAttribute("data-type") === "num";
    var descending = th.getAttribute("aria-sort") === "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row) {
      return { row: row, key: sortKey(row.cells[col], numeric), index: Number(row.getAttribute("data-index")) };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) { return a.index - b.index; }
        return a.key === null ? 1 : -1;
      }
      var c = a.key < b.key ? -1 : (a.key > b.key ? 1 : 0);
      if (descending) { c = -c; }
      return c !== 0 ? c : a.index - b.index;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.querySelector("button").addEventListener("click", function () { sortBy(table, th, col); });
    });
  });
}());
""".strip()


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# Only our own script may run: entry text is escaped, and even if it were not, the page's policy
# refuses any other script and any network request (images only from the page's own folder).
_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    f"script-src {_csp_hash(_JS)}; base-uri 'none'; form-action 'none'"
)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _sort_attr(key: float | str | None) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return _e(key)
    return repr(round(float(key), 6))


def _html_cell(col: _Column, r: Row) -> str:
    key = f' data-sort="{_sort_attr(col.key(r))}"'
    if col.title == "Model":
        badges = ' <span class="badge baseline">baseline</span>' if r.baseline else ""
        if r.unreliable:
            badges += ' <span class="badge unreliable">unreliable</span>'
        mark = _not_ours(r)
        if mark:
            badges += f' <span class="badge external" title="{_e(mark[1])}">{_e(mark[0])}†</span>'
        return f'<td class="model"{key}>{_e(r.name)} <code>{_e(r.group)}</code>{badges}</td>'
    if col.title == _VERDICT:
        cls = "verdict bad" if r.unreliable else ("verdict ok" if r.verdict != DASH else "verdict")
        mark = "⚠ " if r.unreliable else ""
        return f'<td class="{cls}"{key}>{mark}{_e(r.verdict)}</td>'
    if col.title == "Seeds":
        files = ", ".join(f"{s}.json" for s in r.stems)
        return f'<td class="num"{key} title="{_e(files)}">{_e(col.text(r))}</td>'
    return f'<td class="{col.css}"{key}>{_e(col.text(r))}</td>'


def _html_table(track: str, rows: list[Row]) -> list[str]:
    out = [f'<section class="track" id="track-{track}">', f"<h2>{_TRACK_TITLES[track]} ({len(rows)})</h2>"]
    if not rows:
        return [*out, f"<p>No {track} models.</p>", "</section>"]
    out.append(f'<table class="board" data-track="{track}">')
    head = "".join(
        f'<th scope="col" data-type="{"num" if c.numeric else "text"}" '
        f'aria-sort="{"ascending" if i == 0 else "none"}"><button type="button">{_e(c.title)}</button></th>'
        for i, c in enumerate(_columns(track))
    )
    out += ["<thead>", f"<tr>{head}</tr>", "</thead>", "<tbody>"]
    for i, r in enumerate(rows):
        flags = (("unreliable", r.unreliable), ("baseline", r.baseline), ("not-ours", bool(r.missing)))
        cls = " ".join(c for c, on in flags if on)
        cls_attr = f' class="{cls}"' if cls else ""
        cells = "".join(_html_cell(c, r) for c in _columns(track))
        out.append(f'<tr data-model="{_e(r.group)}" data-index="{i}"{cls_attr}>{cells}</tr>')
    notes = [f'<p class="note not-ours">{_e(line)}</p>' for line in _not_ours_lines(rows)]
    return [*out, "</tbody>", "</table>", *notes, "</section>"]


def render_html(
    entries: Sequence[Entry],
    *,
    title: str = "",
    extra_html: str = "",
    plots: Sequence[str] = (),
) -> str:
    """The leaderboard as one self-contained static HTML page.

    Inline CSS and one inline script (sortable columns: a click on a header sorts by that column,
    numbers numerically — a "mean ± std" cell by its mean — text alphabetically, missing values
    last; a second click reverses). No external URL, no network request: a Content-Security-Policy
    lets only that script run. Every text from the entries is HTML-escaped.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.
        title: Page title and heading (``"Leaderboard"`` when empty).
        extra_html: HTML appended after the tables and plots (e.g. a statistics section); it is
            inserted as is, so it must be escaped by its producer; inline scripts in it will not run.
        plots: Names from :data:`PLOTS` to embed, as ``<img src="plots/<name>.png">`` (pass what
            :func:`render_plots` wrote).

    Returns:
        The page; identical for identical entries.

    """
    rows = build_rows(entries)
    heading = title or "Leaderboard"
    w, h = (round(v * PLOT_DPI) for v in PLOT_SIZE_IN)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="robact_bench">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{_e(heading)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(heading)}</h1>",
    ]
    out += [f'<p class="note">{_e(line).replace("`", "")}</p>' for line in _intro_lines(rows)]
    out.append(
        '<p class="note">Click a column header to sort by it; click again to reverse. Rows marked '
        '<span class="badge unreliable">unreliable</span> show signs that our own robust accuracy may still be '
        'inflated (an attack failed). <span class="badge baseline">baseline</span> marks the ReLU PGD-AT / TRADES '
        "baselines.</p>"
    )
    for track in TRACKS:
        out += _html_table(track, rows[track])
    shown = [p for p in PLOTS if p in plots]
    if shown:
        out += ['<section class="plots">', "<h2>Plots</h2>"]
        for p in shown:
            out.append(
                f'<figure><img src="plots/{p}.png" alt="{_e(p)}" width="{w}" height="{h}">'
                f"<figcaption>{_e(_PLOT_CAPTIONS[p])}</figcaption></figure>"
            )
        out.append("</section>")
    if extra_html:
        out.append(extra_html.rstrip("\n"))
    out += [f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plots


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _sweeps(s: _Seed, kind: str) -> list[tuple[str, list[float], list[float]]]:
    ev = _obj(s.stem, _obj(s.stem, s.entry, "robact", ""), "evaluation", "robact.")
    sweeps = ev.get("sweeps") or []
    if not isinstance(sweeps, list):
        raise ValueError(f"{s.stem}: 'robact.evaluation.sweeps' is not a list")
    out = []
    for sw in sweeps:
        if not isinstance(sw, dict) or sw.get("kind") != kind or "skipped" in sw:
            continue
        xs, ys = sw.get("values") or [], sw.get("accuracy") or []
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError(f"{s.stem}: a {kind} sweep's 'values' and 'accuracy' are not lists of the same length")
        pts = [(float(x), 100.0 * float(y)) for x, y in zip(xs, ys, strict=True) if _finite(x) and _finite(y)]
        if pts:
            out.append((str(sw.get("attack", "?")), [p[0] for p in pts], [p[1] for p in pts]))
    return out


def _history(s: _Seed) -> list[tuple[str, list[float], list[float]]]:
    tr = _obj(s.stem, _obj(s.stem, s.entry, "robact", ""), "training", "robact.")
    hist = tr.get("history") or []
    if not isinstance(hist, list):
        raise ValueError(f"{s.stem}: 'robact.training.history' is not a list")
    pts = [
        (float(h["epoch"]), float(h["loss"]))
        for h in hist
        if isinstance(h, dict) and _finite(h.get("epoch")) and _finite(h.get("loss"))
    ]
    return [("loss", [p[0] for p in pts], [p[1] for p in pts])] if pts else []


def _per_attack(s: _Seed) -> dict[str, float]:
    ev = _obj(s.stem, _obj(s.stem, s.entry, "robact", ""), "evaluation", "robact.")
    per = _obj(s.stem, ev, "per_attack", "robact.evaluation.")
    return {
        str(name): 100.0 * float(rec["accuracy"])
        for name, rec in per.items()
        if isinstance(rec, dict) and _finite(rec.get("accuracy")) and rec.get("role", "headline") == "headline"
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else 0.0)


_Series = tuple[Row, str, list[float], list[float], list[float], list[float]]
"""(row, series name, x values, mean, band low, band high) of one line of a plot."""


def _curves(
    groups: list[tuple[Row, list[_Seed]]], get: Callable[[_Seed], list[tuple[str, list[float], list[float]]]]
) -> list[_Series]:
    """Per (group, series name): x values and the mean over the seeds at each x, band ± one std."""
    out: list[_Series] = []
    for row, seeds in groups:
        by_name: dict[str, dict[float, list[float]]] = {}
        for s in seeds:
            for name, xs, ys in get(s):
                pts = by_name.setdefault(name, {})
                for x, y in zip(xs, ys, strict=True):
                    pts.setdefault(x, []).append(y)
        for name, pts in by_name.items():
            xs = sorted(pts)
            ms = [_mean_std(pts[x]) for x in xs]
            out.append((row, name, xs, [m for m, _ in ms], [m - d for m, d in ms], [m + d for m, d in ms]))
    return out


def _sweep_curves(groups: list[tuple[Row, list[_Seed]]], kind: str) -> list[_Series]:
    """Sweeps with their 95% interval band (over points and seeds) where every seed has per-point counts."""
    from robact_bench.leaderboard.inference import group_interval

    out: list[_Series] = []
    for row, seeds in groups:
        per_seed = []
        for s in seeds:
            ev = s.evaluation
            for sw in ev.get("sweeps") or []:
                if isinstance(sw, dict) and sw.get("kind") == kind and "skipped" not in sw and sw.get("counts"):
                    per_seed.append((str(sw.get("attack", "?")), sw["values"], sw["counts"], int(sw.get("passes", 1))))
        if len(per_seed) != len(seeds) or len({(a, tuple(v)) for a, v, _, _ in per_seed}) != 1:
            out += _curves([(row, seeds)], lambda s: _sweeps(s, kind))
            continue
        name, xs = per_seed[0][0], [float(v) for v in per_seed[0][1]]
        mean, lo, hi = [], [], []
        for j in range(len(xs)):
            iv = group_interval([[c / p for c in counts[j]] for _, _, counts, p in per_seed])
            mean.append(100 * iv["mean"])
            lo.append(100 * iv["ci95"][0])
            hi.append(100 * iv["ci95"][1])
        out.append((row, name, xs, mean, lo, hi))
    return out


def _style() -> dict[str, Any]:
    return {
        "font.family": "DejaVu Sans",
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "savefig.dpi": PLOT_DPI,
        "svg.hashsalt": "robact_bench",
    }


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _new_figure() -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")


def _line_plot(
    series: list[_Series],
    groups: list[Row],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    integer_x: bool = False,
) -> Figure:
    fig = _new_figure()
    ax = fig.add_subplot()
    colors = dict(zip([r.group + "\0" + r.track for r in groups], _colors(len(groups)), strict=True))
    several = len({name for _, name, *_ in series}) > 1
    for row, name, xs, mean, lo, hi in series:
        color = colors[row.group + "\0" + row.track]
        label = row.group + (f" · {name}" if several else "") + (" (randomized)" if row.track == "randomized" else "")
        ax.plot(
            xs,
            mean,
            color=color,
            linestyle="--" if row.track == "randomized" else "-",
            marker="s" if row.baseline else "o",
            markersize=4,
            linewidth=1.6,
            label=label,
        )
        if any(h > low for low, h in zip(lo, hi, strict=True)):
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
    if logx and all(x > 0 for _, _, xs, *_ in series for x in xs):
        ax.set_xscale("log")
        ticks = sorted({x for _, _, xs, *_ in series for x in xs})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    elif integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.legend(loc="outside right upper")
    return fig


def _plot_eps(groups: list[tuple[Row, list[_Seed]]]) -> Figure | None:
    series = _sweep_curves(groups, "eps")
    if not series:
        return None
    return _line_plot(
        series, [r for r, _ in groups], xlabel="eps", ylabel="robust accuracy (%)", title="Robust accuracy vs eps"
    )


def _plot_steps(groups: list[tuple[Row, list[_Seed]]]) -> Figure | None:
    series = _sweep_curves(groups, "steps")
    if not series:
        return None
    return _line_plot(
        series,
        [r for r, _ in groups],
        xlabel="attack steps",
        ylabel="robust accuracy (%)",
        title="Robust accuracy vs attack steps",
        logx=True,
    )


def _plot_training(groups: list[tuple[Row, list[_Seed]]]) -> Figure | None:
    series = _curves(groups, _history)
    if not series:
        return None
    return _line_plot(
        series, [r for r, _ in groups], xlabel="epoch", ylabel="training loss", title="Training loss", integer_x=True
    )


def _plot_per_attack(groups: list[tuple[Row, list[_Seed]]]) -> Figure | None:
    data: list[tuple[Row, dict[str, list[float]]]] = []
    for row, seeds in groups:
        acc: dict[str, list[float]] = {}
        for s in seeds:
            for name, v in _per_attack(s).items():
                acc.setdefault(name, []).append(v)
        if acc:
            data.append((row, acc))
    if not data:
        return None
    attacks = _distinct(name for _, acc in data for name in acc)
    fig = _new_figure()
    ax = fig.add_subplot()
    width = 0.8 / len(attacks)
    for j, (attack, color) in enumerate(zip(attacks, _colors(len(attacks)), strict=True)):
        xs, hs, lo, hi = [], [], [], []
        for i, (row, acc) in enumerate(data):
            if attack in acc:
                iv = ((row.intervals or {}).get(attack) or {}).get("expected")
                m, d = _mean_std(acc[attack])
                if iv is not None and len(acc[attack]) == len(row.seeds):
                    m, low, high = 100 * iv["mean"], 100 * iv["ci95"][0], 100 * iv["ci95"][1]
                else:
                    low, high = m - d, m + d
                xs.append(i - 0.4 + (j + 0.5) * width)
                hs.append(m)
                lo.append(max(0.0, m - low))
                hi.append(max(0.0, high - m))
        err = [lo, hi] if any(lo) or any(hi) else None
        ax.bar(xs, hs, width=width, color=color, label=attack, yerr=err, capsize=2)
    ax.set_xticks(range(len(data)), [r.group for r, _ in data], rotation=20, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title("Robust accuracy per attack")
    fig.legend(loc="outside right upper")
    return fig


_PLOTTERS: dict[str, Callable[[list[tuple[Row, list[_Seed]]]], Figure | None]] = {
    "acc_vs_eps": _plot_eps,
    "acc_vs_steps": _plot_steps,
    "per_attack": _plot_per_attack,
    "training_curves": _plot_training,
}
_MISSING = {
    "acc_vs_eps": "no entry has an eps sweep",
    "acc_vs_steps": "no entry has a steps sweep",
    "per_attack": "no entry has per-attack accuracies",
    "training_curves": "no entry has a training history",
}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buf.getvalue()


def render_plots(entries: Sequence[Entry], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the PNG plots of :data:`PLOTS` whose data some entry has, into ``out_dir``.

    ``acc_vs_eps`` / ``acc_vs_steps``: one line per group (and attack, when several), the mean
    over seeds with a ± std band; ``per_attack``: grouped bars, mean over seeds with ± std error
    bars; ``training_curves``: training loss per epoch. A plot without data is skipped (logged),
    and an old file of its name is removed, since it would show data that is no longer there.
    Files are written atomically; the style is fixed and no timestamp or version is stored, so
    the same entries give the same bytes with the same matplotlib and fonts.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.
        out_dir: The folder for the PNG files (created when needed).

    Returns:
        The written files, in :data:`PLOTS` order.

    Raises:
        ImportError: When matplotlib is not installed.

    """
    try:
        import matplotlib
        import matplotlib.style
    except ImportError as exc:  # pragma: no cover - matplotlib comes with mlxtend
        raise ImportError("render_plots needs matplotlib: pip install matplotlib") from exc

    grouped = _grouped(entries)
    groups = [rs for track in TRACKS for rs in grouped[track]]
    out = Path(out_dir)
    written: list[Path] = []
    with matplotlib.style.context("default"), matplotlib.rc_context(_style()):
        for name in PLOTS:
            path = out / f"{name}.png"
            fig = _PLOTTERS[name](groups)
            if fig is None:
                log.info("skipping %s.png: %s", name, _MISSING[name])
                if path.is_file():
                    path.unlink()
                    log.info("removed the old %s", path)
                continue
            written.append(atomic_write_bytes(path, _png(fig)))
            log.info("wrote %s", path)
    return written


# --------------------------------------------------------------------------- directory


def render_directory(
    directory: str | os.PathLike[str],
    *,
    title: str = "",
    extra_markdown: str = "",
    extra_html: str = "",
) -> list[Path]:
    """Render a leaderboard folder from its JSON files: ``README.md``, ``index.html``, ``plots/*.png``.

    Args:
        directory: The folder holding the entries (``<dataset>/<threat_model>/``).
        title: Heading of the Markdown and the page.
        extra_markdown: Appended to ``README.md`` after the tables (statistics hook).
        extra_html: Appended to ``index.html`` after the tables and plots (statistics hook).

    Returns:
        The written paths: ``README.md``, ``index.html``, then the plots.

    Raises:
        ValueError: One line naming the file, for a file that is not a JSON object or has a
            field of the wrong type.

    """
    d = Path(directory)
    entries = load_entries(d)
    plots = render_plots(entries, d / "plots")
    names = [p.stem for p in plots]
    md = atomic_write_text(
        d / "README.md", render_markdown(entries, title=title, extra_markdown=extra_markdown, plots=names)
    )
    page = atomic_write_text(d / "index.html", render_html(entries, title=title, extra_html=extra_html, plots=names))
    log.info("rendered %d entries in %s", len(entries), d)
    return [md, page, *plots]
