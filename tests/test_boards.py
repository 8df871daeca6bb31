"""Boards as data: a board file with a trained and a submitted entry, run, validated and rendered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robact_bench.jobs import list_boards, load_board
from robact_bench.leaderboard.schema import validate_paths
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

ROOT = Path(__file__).resolve().parents[1]
DIGITS = {"in_chans": 1, "img_size": 8, "hidden": [32, 32]}


def _board(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "board.yaml"
    path.write_text(f"""
board: mine
description: a test board
dataset: digits
threat_model: Linf
eps: 0.1
suite: adaptive
n_examples: 20
seeds: [3]
evaluation: {{attacks: [apgd-ce, pgd20, fgsm], sweeps: false}}
entries:
{entries}
""")
    return path


@pytest.fixture(scope="module")
def submitted(tmp_path_factory, digits):
    """A user's MLP, trained here, saved with torch.save as a plain state dict without our buffers."""
    xtr, ytr, _, _ = digits
    folder = tmp_path_factory.mktemp("submitted")
    spec = ModelSpec("mlp2", "relu", arch_kwargs=DIGITS)
    torch.manual_seed(0)
    model = spec.build()
    train_model(model, xtr, ytr, TrainConfig("standard", epochs=10, lr=3e-3, val_fraction=0.0), progress=False)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    torch.save(state, folder / "theirs.pt")
    norm = model.normalize
    return folder / "theirs.pt", model.eval(), (norm.mean.flatten().tolist(), norm.std.flatten().tolist())


def test_a_board_with_a_trained_and_a_submitted_entry_runs_validates_and_renders(tmp_path, submitted, digits):
    pt, model, (mean, std) = submitted
    path = _board(
        tmp_path,
        f"""
  - name: Mine_ReLU_PGDAT
    title: my PGD-AT MLP
    method: Towards Deep Learning Models Resistant to Adversarial Attacks (Madry et al., ICLR 2018)
    baseline: true
    model: {{arch: mlp2, act: relu, arch_kwargs: {{hidden: [32, 32]}}}}
    train: {{recipe: pgd_at, epochs: 1, val_fraction: 0.0}}
  - name: Theirs_ReLU
    title: a submitted state dict
    method: somebody's natural training
    venue: submitted
    state_dict: {pt}
    model: {{arch: mlp2, act: relu, arch_kwargs: {{hidden: [32, 32]}}}}
    normalization: {{mean: {mean}, std: {std}}}
""",
    )
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "robact_bench", "run", str(path), "--out", str(out), "--no-progress"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    board = out / "leaderboards" / "digits" / "Linf"
    assert sorted(p.name for p in board.glob("*.json")) == ["Mine_ReLU_PGDAT_s3.json", "Theirs_ReLU.json"]
    report = validate_paths([board])
    assert report.errors == [] and len(report.files) == 2
    assert (board / "README.md").is_file() and (board / "index.html").is_file()
    table = (board / "README.md").read_text()
    assert "`Mine_ReLU_PGDAT`" in table and "`Theirs_ReLU`" in table
    mine = json.loads((board / "Mine_ReLU_PGDAT_s3.json").read_text())
    assert mine["robact"]["seed"] == 3 and mine["robact"]["training"]["config"]["epochs"] == 1
    assert mine["reported"] == "" and (out / "runs" / "digits" / "Mine_ReLU_PGDAT" / "seed3" / "eval.json").is_file()
    theirs = json.loads((board / "Theirs_ReLU.json").read_text())
    # the submitted model is the user's model: the same clean predictions on the same points
    x, y = [t for t in digits[2:]]
    idx = torch.tensor(theirs["robact"]["evaluation"]["points"]["indices"])
    with torch.no_grad():
        right = (model(x[idx]).argmax(1) == y[idx]).long().tolist()
    assert theirs["robact"]["evaluation"]["points"]["clean"] == right
    meta = json.loads((out / "runs" / "digits" / "Theirs_ReLU" / "model.json").read_text())
    assert meta["metadata"]["converted"]["normalization"]["mean"] == pytest.approx(mean)


def _eval_numbers(path: Path) -> dict:
    result = json.loads(path.read_text())
    return {"clean": result["clean_counts"], "robust": result["robust_counts"],
            "attacks": [(a["name"], a["flags"], a["accuracy"]) for a in result["attacks"]]}  # fmt: skip


def test_a_stopped_unit_goes_on_from_its_finished_attacks_and_ends_with_the_same_numbers(tmp_path, monkeypatch):
    """`run --resume` after a stop inside an evaluation: the attacks that finished are not run again."""
    from robact_bench.evaluation.engine import _Engine
    from robact_bench.jobs import run_board

    board = load_board(_board(tmp_path, """
  - name: Mine_BReLU_PGDAT
    title: a stochastic MLP
    method: Robustness through Random Activation (BReLU)
    model: {arch: mlp2, act: brelu, arch_kwargs: {hidden: [32, 32]}}
    train: {recipe: pgd_at, epochs: 1, val_fraction: 0.0}
"""))  # fmt: skip
    run_board(board, out=tmp_path / "whole", progress=False)
    whole = _eval_numbers(tmp_path / "whole" / "runs" / "digits" / "Mine_BReLU_PGDAT" / "seed3" / "eval.json")
    assert [a[0] for a in whole["attacks"]] == ["apgd-ce", "pgd20", "fgsm"]

    attack_unit, ran = _Engine.attack_unit, []

    def stop_at_pgd20(self, spec, group_robust):
        if spec.name == "pgd20":
            raise RuntimeError("stopped")
        return attack_unit(self, spec, group_robust)

    def counting(self, spec, target, eot, **kw):
        ran.append(spec.name)
        return attack_chunks(self, spec, target, eot, **kw)

    out = tmp_path / "stopped"
    folder = out / "runs" / "digits" / "Mine_BReLU_PGDAT" / "seed3"
    monkeypatch.setattr(_Engine, "attack_unit", stop_at_pgd20)
    with pytest.raises(RuntimeError, match="stopped"):
        run_board(board, out=out, progress=False, resume=True)
    saved = json.loads((folder / "eval.state.json").read_text())["units"]
    assert {"clean", "apgd-ce"} <= set(saved) and "pgd20" not in saved and not (folder / "eval.json").exists()
    monkeypatch.setattr(_Engine, "attack_unit", attack_unit)
    attack_chunks = _Engine.attack_chunks
    monkeypatch.setattr(_Engine, "attack_chunks", counting)
    run_board(board, out=out, progress=False, resume=True)
    assert ran == ["pgd20", "fgsm"]  # apgd-ce came from the state file
    assert _eval_numbers(folder / "eval.json") == whole
    assert not (folder / "eval.state.json").exists()
    assert validate_paths([board.folder(out)]).ok


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ("  - {name: A, title: t, method: m}", "give exactly one of config, train, checkpoint, state_dict; got none"),
        ("  - {name: A, title: t, method: m, config: mnist5k_lenet5_pgd_at}", "the config trains on mnist5k"),
        ("  - {name: A, title: t, method: m, state_dict: x.pt, model: {arch: mlp2}}", "must state its input 'normal"),
        ("  - {name: A, title: t, method: m, checkpoint: nowhere}", "no checkpoint at"),
        ("  - {name: A, title: t, method: m, train: {recipe: standard}, colour: red}", "unknown key(s) colour"),
        ("  - {name: A, title: t, method: m, train: {recipe: standard}}", "entry A: a model spec needs 'arch'"),
        ("  - &a {name: A, title: t, method: m, model: {arch: mlp2}, train: {recipe: standard}}\n  - *a",
         "entry name(s) A used more than once"),
    ],
)  # fmt: skip
def test_a_bad_board_is_a_one_line_error_and_exit_2(tmp_path, capsys, entries, match):
    from robact_bench.cli import main

    path = _board(tmp_path, entries)
    assert main(["run", str(path), "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], lines
    assert not (tmp_path / "leaderboards").exists()


def test_the_shipped_boards_resolve_to_the_published_rows():
    assert list_boards() == ["digits", "mnist5k"]
    for name in list_boards():
        board = load_board(name)
        names = [e.name for e in board.entries]
        arch = "MLP2" if name == "digits" else "LeNet5"
        assert len(names) == 10 and board.seeds == (0, 1, 2) and board.publish_weights
        assert {f"{arch}_ReLU_Natural", f"{arch}_ReLU_SReLUHead", f"{arch}_ReLU_DReLUHead",
                f"{arch}_ReLU_DReLUHeadBinding"} <= set(names)  # fmt: skip
        by = {e.name: e for e in board.entries}
        paper, binding = by[f"{arch}_ReLU_DReLUHead"].run, by[f"{arch}_ReLU_DReLUHeadBinding"].run
        assert paper.model.drelu_head_m_init == 100.0 and binding.model.drelu_head_m_init < 100.0
        assert by[f"{arch}_ReLU_SReLUHead"].run.model.drelu_head_act == "srelu"
        assert by[f"{arch}_ReLU_SReLUHead"].run.train == paper.train
        assert board.eval_cfg.suite == "adaptive" and board.eval_cfg.eps == 0.1
    # digits on its whole test split (364 points), mnist5k on half of its 1,000 (the time it takes: README)
    assert board.eval_cfg.n_examples == {"digits": 364, "mnist5k": 500}[board.name]


def test_run_without_a_board_is_the_main_job_and_full_the_published_boards(capsys):
    """The resolution only: which boards `robact-bench run` runs, with which seeds and points, and where."""
    from dataclasses import replace

    from robact_bench.cli import build_parser, main, resolve_run
    from robact_bench.jobs import MAIN_JOB, PUBLISHED_BOARDS

    parse = build_parser().parse_args
    published = load_board("digits")
    [board], out = resolve_run(parse(["run"]))
    assert (MAIN_JOB.board, MAIN_JOB.seeds, MAIN_JOB.n_examples) == ("digits", (0,), 100)
    assert board.name == "digits" and board.seeds == (0,) and board.eval_cfg.n_examples == 100
    assert board.entries == published.entries and board.publish_weights  # every row, as published
    assert board.eval_cfg == replace(published.eval_cfg, n_examples=100) and board.eval_cfg.suite == "adaptive"
    assert out == Path("runs/main")  # not the published leaderboards/ and weights/
    assert board.folder(out) == Path("runs/main/leaderboards/digits/Linf")
    boards, out = resolve_run(parse(["run", "--full"]))
    assert [b.name for b in boards] == list(PUBLISHED_BOARDS) == ["digits", "mnist5k"] and out == Path(".")
    assert [(b.seeds, b.eval_cfg.n_examples) for b in boards] == [((0, 1, 2), 364), ((0, 1, 2), 500)]
    # the flags keep their meaning with the main job
    [quick], out = resolve_run(parse(["run", "--quick"]))
    assert quick.seeds == (0,) and quick.eval_cfg.n_examples == 8 and out == Path("runs/quick")
    [some], out = resolve_run(parse(["run", "--models", "MLP2_ReLU_PGDAT", "--out", "elsewhere"]))
    assert [e.name for e in some.entries] == ["MLP2_ReLU_PGDAT"] and some.eval_cfg.n_examples == 100
    assert out == Path("elsewhere")
    [digits], out = resolve_run(parse(["run", "digits"]))
    assert digits.seeds == (0, 1, 2) and digits.eval_cfg.n_examples == 364 and out == Path(".")
    assert main(["run", "--full", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["robact-bench: error: --full runs the published boards (digits mnist5k); give --full or board "
                   "names (digits), not both"]  # fmt: skip
