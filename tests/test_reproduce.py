"""Golden numbers: the digits board, run again, reproduces the committed digits leaderboard exactly.

Slow (under half an hour on 2 CPU cores): run with ``tox -e slow`` (or ``pytest -m slow``). The board
runs as the committed one was made, under ``torchrun`` with 2 ranks of one thread each. Exact on
a CPU like the one that produced the committed files: another CPU rounds floats differently, and
training drifts (see the README's Determinism section).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards" / "digits" / "Linf"
FIELDS = ("clean_acc", "reported", "autoattack_acc", "external")


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no committed digits leaderboard")
def test_main_job_reproduces_the_committed_numbers(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "robact_bench", "run", "digits", "--out", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    fresh = tmp_path / "leaderboards" / "digits" / "Linf"
    names = sorted(p.name for p in COMMITTED.glob("*.json"))
    assert names == sorted(p.name for p in fresh.glob("*.json"))
    for name in names:
        old, new = json.loads((COMMITTED / name).read_text()), json.loads((fresh / name).read_text())
        for field in FIELDS:
            assert old.get(field) == new.get(field), (name, field)
        old_ev, new_ev = old["robact"]["evaluation"], new["robact"]["evaluation"]
        for attack, rec in old_ev["per_attack"].items():
            assert new_ev["per_attack"][attack]["accuracy"] == rec["accuracy"], (name, attack)
        # the verdicts are the same; code_sha256 names the code that judged them, so it changes with any code change
        verdict = {k: v for k, v in old["robact"]["masking"].items() if k != "code_sha256"}
        assert verdict == {k: v for k, v in new["robact"]["masking"].items() if k != "code_sha256"}, name
