"""Publish a leaderboard folder: validate its JSON entries, then render tables, page, plots and statistics.

Everything rendered comes from the JSON files in the folder, never from memory, so anyone can
re-render a folder they downloaded: ``robact-bench leaderboard render DIR``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from robact_bench.fileio import remove_stale_temps
from robact_bench.leaderboard.schema import validate_paths

log = logging.getLogger(__name__)


def default_title(entries: list[dict[str, Any]]) -> str:
    """``"<dataset>, <threat model>, eps = <eps>"`` of the first entry; marked when any entry is a smoke run."""
    first = entries[0]
    threat = first.get("robact", {}).get("evaluation", {}).get("threat_model", "")
    title = ", ".join(x for x in (first.get("dataset", ""), threat, f"eps = {first.get('eps')}") if x)
    if any(e.get("robact", {}).get("quick") for e in entries):
        title += " (SMOKE RUN: not a result)"
    return title


def publish(directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Validate every entry of ``directory``, then write its README.md, index.html, plots and statistics.

    Every file is replaced atomically (a kill leaves each one old or new, never partial), and the
    temporary files an earlier, killed render left in the folder and ``plots/`` are removed first.

    Returns:
        The written paths, the Markdown table first.

    Raises:
        ValueError: an entry is invalid (the first problem, with its file and field), or the
            folder holds no entry.

    """
    from robact_bench.leaderboard.render import load_entries, render_directory
    from robact_bench.leaderboard.stats import leaderboard_stats, stats_html, stats_markdown

    directory = Path(directory)
    report = validate_paths([directory])  # raises on a folder without entries
    if not report.ok:
        n = len(report.errors)
        raise ValueError(f"{report.errors[0]} ({n} problems in all; see `robact-bench leaderboard validate`)")
    for folder in (directory, directory / "plots"):  # a killed render's temporary files must not be published
        for tmp in remove_stale_temps(folder):
            log.info("removed %s, left by an interrupted write", tmp)
    entries = [e for _, e in load_entries(directory)]
    title = title or default_title(entries)
    with_block = [e for e in entries if "robact" in e]
    stats = leaderboard_stats(with_block) if with_block else None
    paths = render_directory(
        directory,
        title=title,
        extra_markdown=stats_markdown(stats) if stats else "",
        extra_html=stats_html(stats) if stats else "",
    )
    log.info("rendered %s: %s", directory, ", ".join(p.name for p in paths))
    return paths
