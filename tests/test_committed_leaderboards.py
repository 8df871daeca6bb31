"""The committed leaderboards: valid entries, the numbers consistent, the rendered files generated from them."""

import json
from pathlib import Path

import pytest

from robact_bench.leaderboard.render import load_entries, render_html, render_markdown
from robact_bench.leaderboard.schema import validate_paths
from robact_bench.leaderboard.stats import leaderboard_stats, stats_html, stats_markdown

ROOT = Path(__file__).resolve().parents[1] / "leaderboards"
BOARDS = sorted({p.parent for p in ROOT.rglob("*.json")}) if ROOT.is_dir() else []


def test_published_boards_exist():
    assert {b.relative_to(ROOT).as_posix() for b in BOARDS} == {"mnist5k/Linf", "digits/Linf"}


@pytest.mark.parametrize("board", BOARDS, ids=[str(b.relative_to(ROOT)) for b in BOARDS])
def test_committed_entries_and_rendered_files(board):
    report = validate_paths([board])
    assert report.errors == []
    groups: dict[str, set[int]] = {}
    for path in report.files:
        entry = json.loads(path.read_text())
        r = entry["robact"]
        ev = r["evaluation"]
        assert not r["quick"], f"{path.name} is a smoke run"
        assert ev["suite"] == "adaptive"
        groups.setdefault(r["group"], set()).add(r["seed"])
        assert entry["clean_acc"] == f"{100 * ev['clean_acc']:.2f}"
        assert entry["autoattack_acc"] == f"{100 * ev['autoattack_acc']:.2f}"
        heads = {k: a for k, a in ev["per_attack"].items() if a["role"] == "headline"}
        pts = ev["points"]
        if not ev["stochastic"]:
            # the worst case per point can only be lower than AutoAttack alone and every headline attack
            assert ev["robust_acc"] <= ev["autoattack_acc"] + 1e-12
            assert all(ev["robust_acc"] <= a["accuracy"] + 1e-12 for a in heads.values())
        else:
            # per point, the headline is the scoring counts of the image it names (chosen on other passes, so
            # it is unbiased and may read above one attack by scoring noise, never beyond that attack's interval)
            for i, src in enumerate(pts["headline_source"]):
                own = pts["clean"] if src == "clean" else heads[src]["counts"]
                assert pts["headline"][i] == own[i], (path.name, i, src)
            assert sum(pts["headline"]) == ev["scores"]["headline"]["expected"]["successes"]
            for a in heads.values():
                assert ev["robust_acc"] <= a["scores"]["expected"]["ci95"][1]
            # never above AutoAttack: where the worst case read above it by scoring noise, the headline is AutoAttack's
            assert sum(pts["headline"]) <= sum(pts["autoattack"]), path.name
        if ev["robust_acc"] < ev["autoattack_acc"]:
            assert entry["external"] == f"{100 * ev['robust_acc']:.2f}"
        assert entry["unreliable"] is r["masking"]["unreliable"]
        # only a check of kind (b), "our number may be inflated", sets the flag; (a) "the naive number overstates" not
        failed = {c["name"] for c in r["masking"]["checks"] if c["passed"] is False and c["kind"] == "inflated"}
        assert entry["unreliable"] == bool(failed) and set(r["masking"]["failed"]) == failed
        if entry["unreliable"]:
            assert all(name in entry["footnote"] for name in r["masking"]["failed"])
        if r["track"] == "randomized":
            assert ev["passes"] > 1 and ev["eot_iter"] >= 1 and entry["number_forward_passes"] == ev["passes"]
    # every model with 3 seeds, and both baselines present
    assert all(seeds == {0, 1, 2} for seeds in groups.values()), groups
    assert len(groups) == 10
    assert sum(g.endswith(("_ReLU_PGDAT", "_ReLU_TRADES6")) for g in groups) == 2
    entries = load_entries(board)
    stats = leaderboard_stats([e for _, e in entries])
    table = (board / "README.md").read_text()
    page = (board / "index.html").read_text()
    title = table.splitlines()[0].removeprefix("# ")
    assert table == render_markdown(entries, title=title, extra_markdown=stats_markdown(stats),
                                    plots=[p.stem for p in sorted((board / "plots").glob("*.png"))])  # fmt: skip
    assert page == render_html(entries, title=title, extra_html=stats_html(stats),
                               plots=[p.stem for p in sorted((board / "plots").glob("*.png"))])  # fmt: skip
