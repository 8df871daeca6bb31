"""The committed leaderboards are valid RobustBench entries and their tables are generated."""

import json
from pathlib import Path

import pytest
from contract import TYPES as CONTRACT_TYPES

from robact_bench.leaderboard.export import render_markdown

ROOT = Path(__file__).resolve().parents[1] / "leaderboards"
BOARDS = sorted({p.parent for p in ROOT.rglob("*.json")}) if ROOT.is_dir() else []
TYPES = {**CONTRACT_TYPES, "robact": dict}


@pytest.mark.skipif(not BOARDS, reason="no committed leaderboards")
@pytest.mark.parametrize("board", BOARDS, ids=[str(b.relative_to(ROOT)) for b in BOARDS])
def test_committed_entries_and_table(board):
    for path in sorted(board.glob("*.json")):
        entry = json.loads(path.read_text())
        for key, value in entry.items():
            assert isinstance(value, TYPES[key]), (path.name, key)
        ev = entry["robact"]["evaluation"]
        assert not entry["robact"]["quick"], f"{path.name} is a smoke run"
        assert entry["clean_acc"] == f"{100 * ev['clean_acc']:.2f}"
        assert entry["autoattack_acc"] == f"{100 * ev['autoattack_acc']:.2f}"
        # worst case per point can only be lower than AutoAttack alone and every single attack
        assert ev["robust_acc"] <= ev["autoattack_acc"] + 1e-12
        assert all(ev["robust_acc"] <= a["accuracy"] + 1e-12 for a in ev["per_attack"].values())
        if ev["robust_acc"] < ev["autoattack_acc"]:
            assert entry["external"] == f"{100 * ev['robust_acc']:.2f}"
        if ev["stochastic"]:
            assert ev["passes"] > 1 and ev["eot_iter"] >= 1
    table = (board / "README.md").read_text()
    assert render_markdown(board) in table, "the table was not generated from these JSON files"
