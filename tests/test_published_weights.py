"""Published weights: every committed row names its checkpoint and hash, and evaluating it again gives the row."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from robact_bench.jobs import load_board

ROOT = Path(__file__).resolve().parents[1]


def _entries(board):
    folder = board.folder(ROOT)
    return [(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_every_published_row_names_its_weights_and_their_sha256(name):
    board = load_board(name)
    entries = _entries(board)
    expected = {e.file_name(s) for e in board.entries for s in (board.seeds if e.trained else (None,))}
    assert len(expected) == 30 and {p.stem for p, _ in entries} == expected
    total = 0
    for path, entry in entries:
        w = entry["robact"]["weights"]
        weights = ROOT / w["path"]
        data = weights.read_bytes()
        total += len(data) + (weights.parent / "model.json").stat().st_size + (ROOT / w["eval"]).stat().st_size
        assert hashlib.sha256(data).hexdigest() == w["sha256"], path.name
        meta = json.loads((weights.parent / "model.json").read_text())
        assert meta["weights_sha256"] == w["sha256"] and meta["spec"] == entry["robact"]["model"], path.name
        saved = json.loads((ROOT / w["eval"]).read_text())
        assert saved["robust_counts"] == entry["robact"]["evaluation"]["points"]["headline"], path.name
    assert total <= board.weights_budget_mb * 1e6


def test_a_tampered_weights_file_is_refused(tmp_path):
    from robact_bench.models.checkpoint import load_checkpoint

    src = load_board("digits").weights_folder(ROOT) / "MLP2_ReLU_PGDAT_s0"
    for f in ("model.safetensors", "model.json"):
        (tmp_path / f).write_bytes((src / f).read_bytes())
    load_checkpoint(tmp_path / "model")  # intact: loads
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"SHA-256 .* is not the .* that model\.json records"):
        load_checkpoint(tmp_path / "model")


@pytest.mark.parametrize("row", ["MLP2_ReLU_PGDAT_s0", "MLP2_ReLU_DReLUHeadBinding_s1"])
def test_eval_on_a_published_checkpoint_gives_its_row_again(tmp_path, row):
    """`robact-bench eval` on the committed checkpoint, with the board's settings: the same point-by-point result.

    On the machine that made the board the attacks retrace the same steps, so every count is equal;
    on another CPU the float arithmetic of an attack may differ in the last bits, so at most one of
    the board's points (364 on digits) may differ under an attack (the clean predictions must all
    agree).
    """
    board = load_board("digits")
    entry = json.loads((board.folder(ROOT) / f"{row}.json").read_text())
    ev = entry["robact"]["evaluation"]
    cfg = board.eval_cfg
    out = tmp_path / "eval.json"
    folder = ROOT / Path(entry["robact"]["weights"]["path"]).parent
    cmd = [sys.executable, "-m", "robact_bench", "eval", "--checkpoint", str(folder), "--suite", cfg.suite,
           "--eps", str(cfg.eps), "--n-examples", str(cfg.n_examples), "--seed", str(cfg.seed),
           "--eot-iter", str(cfg.eot_iter), "--passes", str(cfg.passes), "--out", str(out), "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())
    assert got["indices"] == ev["points"]["indices"]
    assert got["clean_counts"] == ev["points"]["clean"]
    for mine, theirs in (
        (got["robust_counts"], ev["points"]["headline"]),
        (got["autoattack_counts"], ev["points"]["autoattack"]),
    ):
        assert sum(a != b for a, b in zip(mine, theirs, strict=True)) <= 1
    assert {a["name"] for a in got["attacks"]} == set(ev["per_attack"])
    for a in got["attacks"]:  # each attack's robust points: the same, or one point of the board's differs
        theirs = ev["per_attack"][a["name"]]["counts"]
        assert sum(x != y for x, y in zip(a["counts"], theirs, strict=True)) <= 1, a["name"]
