"""Leaderboard pages generated from the JSON entries only: Markdown, one static HTML page, PNG plots.

Every table, page and plot here is a pure function of the entries (RobustBench ``model_info``
JSON plus our ``"robact"`` block), so a third party re-renders the same files from the same
JSON. Rows are *model groups*: the entries of one model trained with different seeds share
``robact.group`` and are aggregated into one row (mean ± sample standard deviation over the
seeds). Deterministic and randomized models are ranked in separate tables, each as RobustBench
ranks: by ``external`` where present, else ``autoattack_acc`` (for a group, the mean over its
seeds of that per-seed number).

Each entry is parsed once into a typed record (its field types are the JSON Schema's,
:func:`robact_bench.leaderboard.schema.type_errors`: there is no second validator here), the
records of a group into one :class:`Row` (a frozen dataclass), and the rows into cells that
the Jinja2 templates ``templates/board.md.j2`` and ``templates/board.html.j2`` render (HTML with
autoescape; the page's CSS and script are the package files ``static/board.css`` and
``static/board.js``, inlined). Old entries may lack any field of the ``robact`` block; a
missing value is shown as "–".

For readability: a row's footnote says once what every seed's footnote says
(:func:`merge_footnotes`); its verdict names the seeds behind each sign; a table whose rows
were evaluated with different n, K or R says so above it (:func:`setting_warnings`); the eps
and steps plots name the attack they sweep and mark the evaluation's eps; the tables fit a
1,400 px window.

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
import re
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robact_bench.fileio import atomic_write_bytes, atomic_write_text, read_json
from robact_bench.leaderboard.templating import Markup, render_template, static_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PLOTS",
    "PLOT_DPI",
    "PLOT_SIZE_IN",
    "TRACKS",
    "Badge",
    "Cell",
    "Row",
    "Stat",
    "Sweep",
    "build_rows",
    "load_entries",
    "merge_footnotes",
    "plot_captions",
    "plot_figures",
    "render_directory",
    "render_html",
    "render_markdown",
    "render_plots",
    "setting_warnings",
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
        out.append((path.stem, entry))
    return out


# --------------------------------------------------------------------------- one entry


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]``, ``{}`` when missing or ``null`` (the schema has checked that it is an object)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _pct(entry: dict[str, Any], key: str) -> float | None:
    """A percentage string as a float; ``None`` for "not recorded" (``""``, ``"null"``, ``null``, missing)."""
    value = entry.get(key)
    return None if value in (None, "", "null") else float(value)


def _validated(stem: str, entry: Any) -> dict[str, Any]:
    """The entry, after the JSON Schema's type rules (:func:`.schema.type_errors`): one line naming the file."""
    from robact_bench.leaderboard.schema import type_errors

    if not isinstance(entry, dict):
        raise ValueError(f"{stem}: not a JSON object (got {type(entry).__name__})")
    problems = type_errors(entry, stem)
    if problems:
        more = f" (and {len(problems) - 1} more; see `robact-bench leaderboard validate`)" if len(problems) > 1 else ""
        raise ValueError(problems[0] + more)
    return entry


@dataclass(frozen=True)
class Sweep:
    """One sweep of an entry (``robact.evaluation.sweeps``): one attack's accuracy over eps or steps.

    Attributes:
        kind: ``"eps"`` or ``"steps"``.
        attack: The attack swept.
        values: The eps or step values.
        accuracy: Robust accuracy (%) at each value.
        counts: Per value, the per-point counts of right passes (``None`` without per-point data).
        passes: The scoring passes the counts are out of.
        eps: The eps of a steps sweep (``None`` for an eps sweep or when not recorded).

    """

    kind: str
    attack: str
    values: tuple[float, ...]
    accuracy: tuple[float, ...]
    counts: tuple[tuple[int, ...], ...] | None = None
    passes: int = 1
    eps: float | None = None


@dataclass(frozen=True)
class _Seed:
    """The fields of one entry that the tables and plots use, parsed once."""

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
    eps: float | None = None
    sweeps: tuple[Sweep, ...] = ()
    history: tuple[tuple[float, float], ...] = ()
    per_attack: tuple[tuple[str, float], ...] = ()


_BLOCKS = ("model", "training")
"""The ``robact`` blocks an entry may lack (:data:`robact_bench.leaderboard.export.BLOCKS`)."""


def _missing(rb: dict[str, Any]) -> tuple[str, ...]:
    """The blocks the entry lacks: declared in ``robact.provenance`` or ``null``."""
    prov = _obj(rb, "provenance")
    absent = set(prov.get("missing") or []) | {b for b in _BLOCKS if b in rb and rb[b] is None}
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


def _parse(stem: str, entry: Any) -> _Seed:
    """One entry's fields, read once; its types are the schema's (:func:`_validated`), missing fields ``None``."""
    entry = _validated(stem, entry)
    rb = _obj(entry, "robact")
    ev = _obj(rb, "evaluation")
    masking = _obj(rb, "masking")
    track = rb.get("track") or ("randomized" if ev.get("stochastic") is True else "deterministic")
    group = rb.get("group") or rb.get("model_name") or stem
    autoattack = _pct(entry, "autoattack_acc")
    external = _pct(entry, "external")
    checks = masking.get("checks") or []
    failed = masking.get("failed")
    if failed is None:
        failed = [c.get("name", "?") for c in checks if c.get("passed") is False and c.get("kind") != "overstated"]
    overstated = masking.get("overstated")
    if overstated is None:
        overstated = [c.get("name", "?") for c in checks if c.get("passed") is False and c.get("kind") == "overstated"]
    passes = ev.get("passes")
    return _Seed(
        stem=stem,
        entry=entry,
        group=group,
        seed=rb.get("seed"),
        track=track,
        baseline=rb.get("baseline") is True,
        name=entry.get("name") or group,
        clean=_pct(entry, "clean_acc"),
        reported=_pct(entry, "reported"),
        autoattack=autoattack,
        robust=external if external is not None else autoattack,
        passes=passes if passes is not None else entry.get("number_forward_passes"),
        eot=ev.get("eot_iter"),
        n_examples=ev.get("n_examples"),
        checked=_checked(masking, checks),
        unreliable=entry.get("unreliable") is True or masking.get("unreliable") is True,
        failed_checks=tuple(failed),
        overstated=tuple(overstated),
        footnote=" ".join((entry.get("footnote") or "").split()),
        evaluation=ev,
        missing=_missing(rb),
        eps=float(ev["eps"]) if _finite(ev.get("eps")) else None,
        sweeps=_sweeps(ev),
        history=_history(rb),
        per_attack=_per_attack(ev),
    )


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _sweeps(ev: dict[str, Any]) -> tuple[Sweep, ...]:
    """The sweeps that ran (a skipped one has no points); fields the schema leaves open are read if numeric."""
    out = []
    for sw in ev.get("sweeps") or []:
        if "skipped" in sw or sw.get("kind") not in ("eps", "steps"):
            continue
        xs, ys = sw.get("values") or [], sw.get("accuracy") or []
        if not xs or len(xs) != len(ys):
            continue
        counts = sw.get("counts")
        full = isinstance(counts, list) and len(counts) == len(xs) and all(isinstance(c, list) for c in counts)
        out.append(Sweep(
            kind=sw["kind"],
            attack=str(sw.get("attack", "?")),
            values=tuple(float(x) for x in xs),
            accuracy=tuple(100.0 * float(y) for y in ys),
            counts=tuple(tuple(row) for row in counts) if full else None,
            passes=sw["passes"] if isinstance(sw.get("passes"), int) else 1,
            eps=float(sw["eps"]) if _finite(sw.get("eps")) else None,
        ))  # fmt: skip
    return tuple(out)


def _history(rb: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    hist = _obj(rb, "training").get("history") or []
    return tuple(
        (float(h["epoch"]), float(h["loss"])) for h in hist if _finite(h.get("epoch")) and _finite(h.get("loss"))
    )


def _per_attack(ev: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(
        (name, 100.0 * float(rec["accuracy"]))
        for name, rec in _obj(ev, "per_attack").items()
        if _finite(rec.get("accuracy")) and rec.get("role", "headline") == "headline"
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

    def parts(self) -> tuple[str, str]:
        """The cell's two parts: the mean (``"84.92"``, or "–") and the rest (``"[80.10, 88.75]"``, or ``""``).

        The rest is the 95% interval, else ``"± 0.31"`` (several seeds: sample std) or nothing
        (one seed); then ``"(k of n seeds)"`` when some seeds have no value.
        """
        mean, std = self.mean, self.std
        if mean is None:
            return DASH, ""
        if self.ci is not None:
            rest = f"[{self.ci[0]:.2f}, {self.ci[1]:.2f}]"
        else:
            rest = "" if std is None else f"± {std:.2f}"
        if len(self.values) < self.n_seeds:
            rest = (rest + " " if rest else "") + f"({len(self.values)} of {self.n_seeds} seeds)"
        return f"{mean:.2f}", rest

    def text(self) -> str:
        """The cell text: ``"84.92 [80.10, 88.75]"`` (with its 95% interval).

        Without an interval ``"84.92"`` (one seed) or ``"84.92 ± 0.31"`` (several seeds: mean ±
        sample std), or "–"; notes seeds without a value.
        """
        main, rest = self.parts()
        return f"{main} {rest}" if rest else main


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
        verdict: ``"unreliable: <check> (<seeds>), ..."`` with the seeds that failed each check
            and, after ``;``, the verdict of the other seeds (our number may be inflated); ``"no
            sign of an inflated number"`` (with ``"(k of n seeds checked: <seeds>)"`` when some
            seeds have no verdict), ``"not judged"`` (the checks ran but none could judge) or "–"
            (no verdict recorded). A single seed's verdict names no seed.
        overstated: The findings that a naive number is above ours (never a verdict against ours),
            each with the seeds that found it when not every seed did.
        footnote: The footnotes of the seeds merged (:func:`merge_footnotes`): a text that every
            seed's footnote repeats appears once.
        entries: The raw entries, in seed order.
        versus: The paired comparisons of this group's headline with each baseline.
        intervals: The group's 95% intervals (:func:`~robact_bench.leaderboard.stats.group_intervals`).
        missing: The ``robact`` blocks (``model``, ``training``) some seed lacks: the model's
            architecture and/or training are not ours (``robact.provenance``); empty for ours.
        members: The parsed seeds, in seed order (what the plots read).

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
    members: tuple[_Seed, ...] = ()


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _passes_text(s: _Seed) -> str:
    if s.passes is None:
        return DASH
    return f"{s.passes} x {s.eot}" if s.eot is not None and s.eot > 1 else str(s.passes)


def _which(seeds: Sequence[_Seed]) -> str:
    """``"seed 0"``, ``"seeds 0, 2"``; file stems for entries without a seed."""
    labels = [str(s.seed) if s.seed is not None else s.stem for s in seeds]
    return ("seed " if len(labels) == 1 else "seeds ") + ", ".join(labels)


_STATE = {True: "no sign of an inflated number", False: "not judged", None: "no verdict"}
"""A reliable seed's verdict, by :attr:`_Seed.checked`."""


def _verdict(seeds: Sequence[_Seed]) -> tuple[bool, str]:
    bad = [s for s in seeds if s.unreliable]
    if bad:
        names = _distinct(n for s in bad for n in s.failed_checks)
        if len(seeds) == 1:
            return True, "unreliable" + (f": {', '.join(names)}" if names else "")
        parts = [f"{n} ({_which([s for s in bad if n in s.failed_checks])})" for n in names]
        text = "unreliable: " + ", ".join(parts) if parts else f"unreliable ({_which(bad)})"
        unnamed = [s for s in bad if not s.failed_checks]
        if parts and unnamed:
            text += f"; also flagged: {_which(unnamed)}"
        rest = [s for s in seeds if not s.unreliable]
        for state in _distinct(_STATE[s.checked] for s in rest):
            text += f"; {_which([s for s in rest if _STATE[s.checked] == state])}: {state}"
        return True, text
    checked = [s for s in seeds if s.checked is True]
    if not checked:
        return False, "not judged" if any(s.checked is False for s in seeds) else DASH
    if len(checked) < len(seeds):
        return False, f"{_STATE[True]} ({len(checked)} of {len(seeds)} seeds checked: {_which(checked)})"
    return False, _STATE[True]


def _overstated(seeds: Sequence[_Seed]) -> tuple[str, ...]:
    names = _distinct(n for s in seeds for n in s.overstated)
    out = []
    for n in names:
        found = [s for s in seeds if n in s.overstated]
        out.append(n if len(found) == len(seeds) else f"{n} ({_which(found)})")
    return tuple(out)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def _skeleton(sentence: str) -> tuple[str, tuple[str, ...]]:
    """The sentence with each number replaced by a NUL character, and the numbers."""
    return _NUMBER.sub("\0", sentence), tuple(_NUMBER.findall(sentence))


def merge_footnotes(labels: Sequence[str], notes: Sequence[str]) -> str:
    """One footnote for the seeds of a row: what they all say once, what differs by seed.

    Each footnote is split into sentences; sentences that differ only in their numbers are
    written once, each number that differs as ``a / b / c`` in seed order (said once, at the
    start); a sentence that only some seeds have is prefixed with those seeds (``[seeds 1, 2]``).

    Args:
        labels: The seeds' numbers (or file stems), in seed order.
        notes: Their footnotes (whitespace normalised), in the same order; empty ones are left out.

    Returns:
        The merged footnote; the one footnote when all are equal; ``""`` when there is none.

    """
    kept = [(lab, n) for lab, n in zip(labels, notes, strict=True) if n]
    if not kept:
        return ""
    if len({n for _, n in kept}) == 1:
        return kept[0][1]
    # (skeleton, occurrence) -> {seed position: numbers}, with the first sentence index it appears at
    found: dict[tuple[str, int], dict[int, tuple[str, ...]]] = {}
    where: dict[tuple[str, int], tuple[int, int]] = {}
    for i, (_, note) in enumerate(kept):
        seen: dict[str, int] = {}
        for j, sentence in enumerate(_SENTENCE_END.split(note)):
            skel, nums = _skeleton(sentence)
            key = (skel, seen.get(skel, 0))
            seen[skel] = key[1] + 1
            found.setdefault(key, {})[i] = nums
            where[key] = min(where.get(key, (j, i)), (j, i))
    varied = False
    parts = []
    for key in sorted(found, key=lambda k: where[k]):
        skel, _ = key
        by_seed = found[key]
        columns = list(zip(*by_seed.values(), strict=True)) if by_seed else []
        values = []
        for col in columns:
            if len(set(col)) == 1:
                values.append(col[0])
            else:
                values.append(" / ".join(col))
                varied = True
        pieces = skel.split("\0")
        text = pieces[0] + "".join(v + p for v, p in zip(values, pieces[1:], strict=True))
        if len(by_seed) < len(kept):
            who = [kept[i][0] for i in sorted(by_seed)]
            text = ("[seed " if len(who) == 1 else "[seeds ") + ", ".join(who) + "] " + text
        parts.append(text)
    out = " ".join(parts)
    if varied:
        out = f"Numbers that differ are given per seed ({' / '.join(lab for lab, _ in kept)}). " + out
    return out


def _footnote(seeds: Sequence[_Seed]) -> str:
    return merge_footnotes([str(s.seed) if s.seed is not None else s.stem for s in seeds], [s.footnote for s in seeds])


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
        overstated=_overstated(seeds),
        footnote=_footnote(seeds),
        entries=tuple(s.entry for s in seeds),
        intervals=iv or None,
        missing=tuple(b for b in _BLOCKS if any(b in s.missing for s in seeds)),
        members=tuple(seeds),
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


def build_rows(entries: Iterable[Entry]) -> dict[str, list[Row]]:
    """The table rows, parsed once from the entries: one per model group and track, ranked within each track.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.

    Returns:
        ``{"deterministic": [...], "randomized": [...]}`` (both keys always present), each list
        ranked by the mean over seeds of ``external`` (else ``autoattack_acc``), highest first;
        groups without either number come last; ties are broken by group name.

    Raises:
        ValueError: One line naming the file, when a field has the wrong type.

    """
    by_key: dict[tuple[str, str], list[_Seed]] = {}
    for stem, entry in entries:
        s = _parse(stem, entry)
        by_key.setdefault((s.track, s.group), []).append(s)
    out: dict[str, list[Row]] = {t: [] for t in TRACKS}
    for (track, group), seeds in by_key.items():
        seeds.sort(key=_seed_order)
        out[track].append(_row(track, group, seeds))
    versus = _versus(out)
    for track, rows in out.items():
        rows.sort(key=lambda r: (r.robust.mean is None, -(r.robust.mean or 0.0), r.group))
        out[track] = [replace(r, rank=i, versus=versus.get((r.track, r.group), ())) for i, r in enumerate(rows, 1)]
    return out


def _versus(grouped: dict[str, list[Row]]) -> dict[tuple[str, str], tuple[dict[str, Any], ...]]:
    """Every group's paired comparisons with the baselines (:func:`.stats.paired_vs_baselines`)."""
    from robact_bench.leaderboard.stats import paired_vs_baselines

    by_group: dict[str, dict[int, dict[str, Any]]] = {}
    tracks: dict[str, str] = {}
    baselines = []
    for track, rows in grouped.items():
        for row in rows:
            evs = _evaluations(row.members)
            if len(evs) != len(row.members) or row.group in by_group:
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


_SETTINGS: tuple[tuple[str, str, Callable[[_Seed], int | None]], ...] = (
    ("n", "examples", lambda s: s.n_examples),
    ("K", "EOT samples", lambda s: max(1, s.eot or 1)),
    ("R", "scoring passes", lambda s: s.passes),
)
"""The evaluation settings that rows must share to be ranked side by side: symbol, meaning, value."""


def setting_warnings(rows: Sequence[Row]) -> list[str]:
    """A warning when the rows of one table were evaluated with different n, K or R.

    Args:
        rows: The rows of one table.

    Returns:
        ``[]`` when every seed of every row has the same n (examples), K (EOT samples; 1 without
        EOT) and R (scoring passes); else one line naming each setting that differs, with the
        groups at each value (a group whose seeds differ is named at each of its values).

    """
    diffs = []
    for symbol, meaning, get in _SETTINGS:
        at: dict[str, list[str]] = {}
        for r in rows:
            for v in _distinct(get(s) for s in r.members):
                at.setdefault(DASH if v is None else str(v), []).append(r.group)
        if len(at) > 1:
            diffs.append(f"{symbol} ({meaning}) " + ", ".join(f"{v} ({', '.join(gs)})" for v, gs in at.items()))
    if not diffs:
        return []
    return ["Not comparable side by side: these rows were evaluated with different " + "; ".join(diffs) + "."]


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Badge:
    """A marker after a model's name: ``baseline``, ``unreliable``, ``external†``.

    Attributes:
        text: The marker.
        css: Its class on the page.
        tooltip: Its ``title`` on the page (what it means).
        markdown: Whether the Markdown table shows it too (``**[text]**``).

    """

    text: str
    css: str
    tooltip: str = ""
    markdown: bool = False


@dataclass(frozen=True)
class Cell:
    """One table cell, as both templates render it.

    Attributes:
        text: The main text (a mean, a verdict, a name).
        sort: The page's sort key (``data-sort``): a number's ``repr`` or lower-case text; ``""``
            for a missing value (sorted last); ``None``: none, the page sorts by the cell's text.
        css: The cell's class on the page.
        detail: A second part (an interval, "± std"): after the text in Markdown, on its own line
            on the page.
        code: A code span after the text (the model's group).
        badges: Markers after the text.
        alarm: Whether the cell is a warning (``⚠`` and bold).
        tooltip: The cell's ``title`` on the page.
        long: A long text: the page caps its width, so that it does not take the other columns' room.

    """

    text: str
    sort: str | None = ""
    css: str = ""
    detail: str = ""
    code: str = ""
    badges: tuple[Badge, ...] = ()
    alarm: bool = False
    tooltip: str = ""
    long: bool = False


def _sort_key(key: float | str | None) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return key.lower()
    return repr(round(float(key), 6))


def _text_cell(text: str, css: str, key: float | str | None = None) -> Cell:
    return Cell(text=text, sort=_sort_key(text if key is None else key), css=css)


def _stat_cell(stat: Stat) -> Cell:
    main, detail = stat.parts()
    return Cell(text=main, detail=detail, sort=_sort_key(stat.mean), css="num")


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


def _versus_cell(r: Row) -> Cell:
    diffs = [c["difference"] for c in r.versus if "difference" in c]
    return Cell(text=_versus_text(r), sort=_sort_key(min(diffs) if diffs else None), css="versus", long=True)


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


def _model_cell(r: Row) -> Cell:
    badges = [Badge("baseline", "baseline", markdown=True)] if r.baseline else []
    if r.unreliable:
        badges.append(Badge("unreliable", "unreliable"))
    mark = _not_ours(r)
    if mark:
        badges.append(Badge(f"{mark[0]}†", "external", tooltip=mark[1], markdown=True))
    return Cell(text=r.name, code=r.group, badges=tuple(badges), sort=_sort_key(r.name), css="model")


def _verdict_cell(r: Row) -> Cell:
    css = "verdict bad" if r.unreliable else ("verdict ok" if r.verdict != DASH else "verdict")
    return Cell(text=r.verdict, sort=_sort_key(r.verdict), css=css, alarm=r.unreliable, long=True)


def _seeds_cell(r: Row) -> Cell:
    return Cell(text=_seeds_text(r), sort=_sort_key(len(r.seeds)), css="num",
                tooltip=", ".join(f"{s}.json" for s in r.stems))  # fmt: skip


@dataclass(frozen=True)
class _Column:
    title: str
    numeric: bool
    cell: Callable[[Row], Cell]
    randomized_only: bool = False


_COLUMNS: tuple[_Column, ...] = (
    _Column("#", True, lambda r: _text_cell(str(r.rank), "num", r.rank)),
    _Column("Model", False, _model_cell),
    _Column("Clean", True, lambda r: _stat_cell(r.clean)),
    _Column("Reported (paper)", True, lambda r: _stat_cell(r.reported)),
    _Column("AutoAttack", True, lambda r: _stat_cell(r.autoattack)),
    _Column("Robust (worst case / external)", True, lambda r: _stat_cell(r.robust)),
    _Column("Robust, all passes right", True, lambda r: _stat_cell(r.robust_all_right), randomized_only=True),
    _Column("Against the baselines", False, _versus_cell),
    _Column("Forward passes x EOT", True, lambda r: Cell(r.passes, _sort_key(r.passes_key), "num")),
    _Column("n", True, lambda r: Cell(r.n_examples, _sort_key(r.n_key), "num")),
    _Column("Seeds", True, _seeds_cell),
    _Column("Our number inflated?", False, _verdict_cell),
    _Column("Naive numbers overstate", False, lambda r: _text_cell(", ".join(r.overstated) or DASH, "overstated")),
    # the page sorts a footnote by its text (no copy of a long text in data-sort)
    _Column("Footnote", False, lambda r: Cell(text=r.footnote, sort=None, css="footnote", long=True)),
)


def _columns(track: str) -> tuple[_Column, ...]:
    """The columns of one track's table: the all-passes-right column only where passes can differ."""
    return tuple(c for c in _COLUMNS if track == "randomized" or not c.randomized_only)


@dataclass(frozen=True)
class _RowView:
    group: str
    css: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class _Table:
    track: str
    title: str
    columns: tuple[_Column, ...]
    rows: tuple[_RowView, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def _tables(rows: dict[str, list[Row]]) -> list[_Table]:
    out = []
    for track in TRACKS:
        cols = _columns(track)
        views = []
        for r in rows[track]:
            flags = (("unreliable", r.unreliable), ("baseline", r.baseline), ("not-ours", bool(r.missing)))
            views.append(_RowView(r.group, " ".join(c for c, on in flags if on), tuple(c.cell(r) for c in cols)))
        out.append(_Table(track, _TRACK_TITLES[track], cols, tuple(views), tuple(setting_warnings(rows[track])),
                          tuple(_not_ours_lines(rows[track]))))  # fmt: skip
    return out


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
        "Our number inflated?: the checks that say our number may be too high (unreliable), with the seeds that "
        "failed each; Naive numbers overstate: the findings that a naive evaluation (no EOT, no BPDA, AutoAttack "
        "alone) reports more than we do. A footnote says once what every seed's footnote says; numbers that "
        f"differ are given per seed. Deterministic and randomized models are ranked separately. {DASH} means not "
        "recorded.",
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


@dataclass(frozen=True)
class _Plot:
    name: str
    caption: str


def _plot_views(rows: dict[str, list[Row]], plots: Sequence[str]) -> list[_Plot]:
    captions = plot_captions(rows)
    return [_Plot(p, captions[p]) for p in PLOTS if p in plots]


# --------------------------------------------------------------------------- Markdown


def render_markdown(
    entries: Sequence[Entry],
    *,
    title: str = "",
    extra_markdown: str = "",
    plots: Sequence[str] = (),
) -> str:
    """The leaderboard as Markdown (``templates/board.md.j2``): a note that it is generated, then one table per track.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.
        title: A level-1 heading (none when empty).
        extra_markdown: Appended after the tables (e.g. a statistics section), as is.
        plots: Names from :data:`PLOTS` to show, as ``plots/<name>.png`` (pass what
            :func:`render_plots` wrote).

    Returns:
        The Markdown text; identical for identical entries. Every text from the entries is escaped.

    """
    rows = build_rows(entries)
    text = render_template(
        "board.md.j2",
        title=title,
        intro=[Markup(html.escape(line, quote=False)) for line in _intro_lines(rows)],
        any_rows=any(rows.values()),
        tables=_tables(rows),
        plots=_plot_views(rows, plots),
        extra=Markup(extra_markdown.rstrip("\n")),
    )
    return text.rstrip("\n") + "\n"


# --------------------------------------------------------------------------- HTML


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _csp(script: str) -> str:
    """The page's Content-Security-Policy: only our own script may run.

    Entry text is escaped, and even if it were not, the policy refuses any other script and any
    network request (images only from the page's own folder).
    """
    return ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
            f"script-src {_csp_hash(script)}; base-uri 'none'; form-action 'none'")  # fmt: skip


def render_html(
    entries: Sequence[Entry],
    *,
    title: str = "",
    extra_html: str = "",
    plots: Sequence[str] = (),
) -> str:
    """The leaderboard as one self-contained static HTML page (``templates/board.html.j2``).

    The package's ``static/board.css`` and ``static/board.js`` are inlined (sortable columns: a
    click on a header sorts by that column, numbers numerically — a "mean ± std" cell by its mean
    — text alphabetically, missing values last; a second click reverses). No external URL, no
    network request: a Content-Security-Policy lets only that script run. Every text from the
    entries is HTML-escaped (Jinja2's autoescape). The tables fit a 1,400 px wide window.

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
    script = static_text("board.js").strip()
    w, h = (round(v * PLOT_DPI) for v in PLOT_SIZE_IN)
    return render_template(
        "board.html.j2",
        title=title or "Leaderboard",
        csp=Markup(_csp(script)),
        css=Markup(static_text("board.css").strip()),
        script=Markup(script),
        intro=[line.replace("`", "") for line in _intro_lines(rows)],
        tables=_tables(rows),
        plots=_plot_views(rows, plots),
        plot_width=w,
        plot_height=h,
        extra=Markup(extra_html.rstrip("\n")),
    )


# --------------------------------------------------------------------------- plots


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else 0.0)


_Series = tuple[Row, str, list[float], list[float], list[float], list[float]]
"""(row, series name, x values, mean, band low, band high) of one line of a plot."""

_Points = list[tuple[str, Sequence[float], Sequence[float]]]


def _curves(rows: Sequence[Row], get: Callable[[_Seed], _Points]) -> list[_Series]:
    """Per (group, series name): x values and the mean over the seeds at each x, band ± one std."""
    out: list[_Series] = []
    for row in rows:
        by_name: dict[str, dict[float, list[float]]] = {}
        for s in row.members:
            for name, xs, ys in get(s):
                pts = by_name.setdefault(name, {})
                for x, y in zip(xs, ys, strict=True):
                    pts.setdefault(x, []).append(y)
        for name, pts in by_name.items():
            xs = sorted(pts)
            ms = [_mean_std(pts[x]) for x in xs]
            out.append((row, name, xs, [m for m, _ in ms], [m - d for m, d in ms], [m + d for m, d in ms]))
    return out


def _of_kind(s: _Seed, kind: str) -> list[Sweep]:
    return [sw for sw in s.sweeps if sw.kind == kind]


def _sweep_curves(rows: Sequence[Row], kind: str) -> list[_Series]:
    """Sweeps with their 95% interval band (over points and seeds) where every seed has per-point counts."""
    from robact_bench.leaderboard.inference import group_interval

    out: list[_Series] = []
    for row in rows:
        per_seed = [sw for s in row.members for sw in _of_kind(s, kind) if sw.counts]
        if len(per_seed) != len(row.members) or len({(sw.attack, sw.values) for sw in per_seed}) != 1:
            out += _curves([row], lambda s: [(sw.attack, sw.values, sw.accuracy) for sw in _of_kind(s, kind)])
            continue
        name, xs = per_seed[0].attack, list(per_seed[0].values)
        mean, lo, hi = [], [], []
        for j in range(len(xs)):
            iv = group_interval([[c / sw.passes for c in sw.counts[j]] for sw in per_seed if sw.counts])
            mean.append(100 * iv["mean"])
            lo.append(100 * iv["ci95"][0])
            hi.append(100 * iv["ci95"][1])
        out.append((row, name, xs, mean, lo, hi))
    return out


def _g(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class _SweepInfo:
    """What the sweeps of one kind on a board are: the attacks, their eps, the evaluation's eps."""

    attacks: tuple[str, ...]
    sweep_eps: tuple[float, ...]
    eval_eps: tuple[float, ...]

    @property
    def attack_text(self) -> str:
        return " and ".join(self.attacks)

    @property
    def eval_text(self) -> str:
        return " / ".join(map(_g, self.eval_eps))


def _sweep_info(rows: Sequence[Row], kind: str) -> _SweepInfo:
    members = [s for r in rows for s in r.members]
    sweeps = [sw for s in members for sw in _of_kind(s, kind)]
    return _SweepInfo(
        attacks=tuple(_distinct(sw.attack for sw in sweeps)),
        sweep_eps=tuple(_distinct(sw.eps for sw in sweeps if sw.eps is not None)),
        eval_eps=tuple(_distinct(s.eps for s in members if s.eps is not None and _of_kind(s, kind))),
    )


_BAND = ("the band is the 95% interval over points and seeds (± one standard deviation for entries without "
         "per-point data)")  # fmt: skip
_ONE_ATTACK = ("One attack alone, so its curve lies at or above the tables' robust number, the worst case per point "
               "over every attack.")  # fmt: skip


def _eps_caption(info: _SweepInfo) -> str:
    mark = f" The dotted line marks the evaluation's eps = {info.eval_text}, where the tables are measured." if (
        info.eval_eps) else ""  # fmt: skip
    return (f"Robust accuracy (expected rule) under {info.attack_text or 'the swept attack'} vs eps (the eps sweep), "
            f"mean over seeds; {_BAND}.{mark} {_ONE_ATTACK}")  # fmt: skip


def _steps_caption(info: _SweepInfo) -> str:
    at = f" at eps = {' / '.join(map(_g, info.sweep_eps))}" if info.sweep_eps else ""
    same = " (the evaluation's eps)" if info.sweep_eps and set(info.sweep_eps) <= set(info.eval_eps) else ""
    return (f"Robust accuracy (expected rule) under {info.attack_text or 'the swept attack'}{at}{same} vs its number "
            f"of steps (the steps sweep), mean over seeds; {_BAND}. {_ONE_ATTACK}")  # fmt: skip


_PER_ATTACK_CAPTION = (
    "Robust accuracy (expected rule) per attack, mean over seeds (error bars: the 95% interval over points and "
    "seeds; ± one standard deviation without per-point data). On deterministic models AutoAttack's attacks are "
    "cumulative (each runs on the points the previous ones left robust); on random models each runs on every point."
)
_TRAINING_CAPTION = "Training loss per epoch, mean over seeds; the band is ± one standard deviation."


def plot_captions(rows: dict[str, list[Row]]) -> dict[str, str]:
    """The caption of each plot of :data:`PLOTS`, from the rows it is drawn from.

    The eps and steps captions name the attack each sweep runs and the eps: the evaluation's eps
    (marked on the eps plot) and the eps of the steps sweep.

    Args:
        rows: What :func:`build_rows` returns.

    Returns:
        ``{plot name: caption}`` for every name of :data:`PLOTS`.

    """
    flat = [r for t in TRACKS for r in rows[t]]
    return {
        "acc_vs_eps": _eps_caption(_sweep_info(flat, "eps")),
        "acc_vs_steps": _steps_caption(_sweep_info(flat, "steps")),
        "per_attack": _PER_ATTACK_CAPTION,
        "training_curves": _TRAINING_CAPTION,
    }


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
    groups: Sequence[Row],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    integer_x: bool = False,
    mark_x: Sequence[float] = (),
    mark_label: str = "",
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
    for x in mark_x:
        ax.axvline(x, color="0.25", linestyle=":", linewidth=1.4, label=mark_label)
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


def _plot_eps(rows: Sequence[Row]) -> Figure | None:
    series = _sweep_curves(rows, "eps")
    if not series:
        return None
    info = _sweep_info(rows, "eps")
    return _line_plot(
        series,
        rows,
        xlabel="eps",
        ylabel="robust accuracy (%)",
        title=f"Robust accuracy vs eps: {info.attack_text} (one attack)",
        mark_x=info.eval_eps,
        mark_label=f"evaluation eps = {info.eval_text}",
    )


def _plot_steps(rows: Sequence[Row]) -> Figure | None:
    series = _sweep_curves(rows, "steps")
    if not series:
        return None
    info = _sweep_info(rows, "steps")
    at = f" at eps = {' / '.join(map(_g, info.sweep_eps))}" if info.sweep_eps else ""
    return _line_plot(
        series,
        rows,
        xlabel="attack steps",
        ylabel="robust accuracy (%)",
        title=f"Robust accuracy vs attack steps: {info.attack_text}{at} (one attack)",
        logx=True,
    )


def _plot_training(rows: Sequence[Row]) -> Figure | None:
    series = _curves(rows, lambda s: [("loss", [e for e, _ in s.history], [v for _, v in s.history])] if s.history
                     else [])  # fmt: skip
    if not series:
        return None
    return _line_plot(series, rows, xlabel="epoch", ylabel="training loss", title="Training loss", integer_x=True)


def _plot_per_attack(rows: Sequence[Row]) -> Figure | None:
    data: list[tuple[Row, dict[str, list[float]]]] = []
    for row in rows:
        acc: dict[str, list[float]] = {}
        for s in row.members:
            for name, v in s.per_attack:
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


_PLOTTERS: dict[str, Callable[[Sequence[Row]], Figure | None]] = {
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


def plot_figures(entries: Sequence[Entry]) -> dict[str, Figure | None]:
    """The matplotlib figure of each plot of :data:`PLOTS` (``None`` for a plot without data).

    Drawn in the fixed style :func:`render_plots` saves; the eps plot's title names the attack
    swept and a dotted vertical line marks the evaluation's eps; the steps plot's title names the
    attack and the eps it runs at.

    Raises:
        ImportError: When matplotlib is not installed.

    """
    try:
        import matplotlib
        import matplotlib.style
    except ImportError as exc:  # pragma: no cover - matplotlib comes with mlxtend
        raise ImportError("render_plots needs matplotlib: pip install matplotlib") from exc

    rows = build_rows(entries)
    flat = [r for t in TRACKS for r in rows[t]]
    with matplotlib.style.context("default"), matplotlib.rc_context(_style()):
        return {name: _PLOTTERS[name](flat) for name in PLOTS}


def render_plots(entries: Sequence[Entry], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the PNG plots of :data:`PLOTS` whose data some entry has, into ``out_dir``.

    ``acc_vs_eps`` / ``acc_vs_steps``: one line per group (and attack, when several), the mean
    over seeds with its band; ``per_attack``: grouped bars, mean over seeds with error bars;
    ``training_curves``: training loss per epoch (:func:`plot_figures`). A plot without data is
    skipped (logged), and an old file of its name is removed, since it would show data that is
    no longer there. Files are written atomically; the style is fixed and no timestamp or version
    is stored, so the same entries give the same bytes with the same matplotlib and fonts.

    Args:
        entries: ``[(stem, entry), ...]`` as :func:`load_entries` returns.
        out_dir: The folder for the PNG files (created when needed).

    Returns:
        The written files, in :data:`PLOTS` order.

    Raises:
        ImportError: When matplotlib is not installed.

    """
    import matplotlib
    import matplotlib.style

    figures = plot_figures(entries)
    out = Path(out_dir)
    written: list[Path] = []
    with matplotlib.style.context("default"), matplotlib.rc_context(_style()):
        for name in PLOTS:
            path = out / f"{name}.png"
            fig = figures[name]
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
