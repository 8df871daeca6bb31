"""Bad input to the CLI: one line on stderr, exit code 2, checked before any work, nothing written.

And what a user looks for: ``--version``, ``list recipes``, ``list activations`` with its
columns, ``eval --n-examples all``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from robact_bench import __version__
from robact_bench.cli import main
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import save_checkpoint
from robact_bench.training.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
DIGITS_MLP = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [16, 16]})


def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _main(argv: list[str]) -> int:
    """``main(argv)``, with argparse's own exit (a bad flag value) returned as the exit code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _one_line_error(capsys, rc: int, match: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("robact-bench") and "error: " in lines[0] and match in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def digits_ckpt(tmp_path):
    """An (untrained) digits MLP checkpoint, as `robact-bench train` leaves one."""
    import torch

    torch.manual_seed(0)
    run = tmp_path / "runs" / "digits_mlp" / "seed0"
    save_checkpoint(run / "model", DIGITS_MLP.build("digits"), DIGITS_MLP,
                    {"training": {"dataset": "digits", "name": "digits_mlp"}})  # fmt: skip
    return run


# ---------------------------------------------------------------- eval


def test_eval_of_a_digits_model_on_mnist5k_is_one_line(digits_ckpt, tmp_path, capsys):
    before = _files(tmp_path)
    rc = main(["eval", "--checkpoint", str(digits_ckpt), "--dataset", "mnist5k", "--no-progress"])
    _one_line_error(capsys, rc, "--dataset mnist5k: its images are 1x28x28, the model takes 1x8x8 "
                               "(it was trained on digits)")  # fmt: skip
    assert _files(tmp_path) == before


def test_eval_of_a_model_with_other_classes_is_one_line(tmp_path, capsys):
    spec = ModelSpec("mlp2", "relu", num_classes=5, arch_kwargs={"img_size": 8, "hidden": [16, 16]})
    save_checkpoint(tmp_path / "m" / "model", spec.build(), spec, {"training": {"dataset": "digits"}})
    before = _files(tmp_path)
    rc = main(["eval", "--checkpoint", str(tmp_path / "m"), "--no-progress"])
    _one_line_error(capsys, rc, "--dataset digits: it has 10 classes, the model 5 outputs")
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("n", "match"),
    [("365", "--n-examples 365: the test split of digits has 364 points (give at most 364, or all)"),
     ("some", "expected an integer >= 1 or all; got 'some'"), ("0", "expected an integer >= 1 or all")],
)  # fmt: skip
def test_eval_n_examples_beyond_the_split_is_one_line(digits_ckpt, tmp_path, capsys, n, match):
    before = _files(tmp_path)
    rc = _main(["eval", "--checkpoint", str(digits_ckpt), "--n-examples", n, "--no-progress"])
    _one_line_error(capsys, rc, match)
    assert _files(tmp_path) == before


def test_eval_l2_with_a_linf_only_attack_fails_before_attacking(digits_ckpt, tmp_path, capsys):
    before = _files(tmp_path)
    rc = main(["eval", "--checkpoint", str(digits_ckpt), "--suite", "brelu_paper", "--norm", "L2", "--eps", "0.5",
               "--no-progress"])  # fmt: skip
    _one_line_error(capsys, rc, "suite brelu_paper: fgsm (Linf only) cannot run at the L2 threat model; select "
                                "other attacks or another suite")  # fmt: skip
    assert _files(tmp_path) == before


def test_eval_to_an_unwritable_out_fails_before_attacking(digits_ckpt, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    before = _files(tmp_path)
    rc = main(["eval", "--checkpoint", str(digits_ckpt), "--out", str(blocker / "r.json"), "--no-progress"])
    _one_line_error(capsys, rc, f"--out {blocker}: {blocker} is a file, not a folder")
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("given", "expected"),
    [(["--n-examples", "all"], 364), ([], 364), (["--n-examples", "ALL"], 364), (["--n-examples", "30"], 30)],
)
def test_eval_n_examples_all_and_the_default_on_a_small_split(digits_ckpt, tmp_path, capsys, given, expected):
    out = tmp_path / "r.json"
    rc = main(["eval", "--checkpoint", str(digits_ckpt), "--suite", "brelu_paper", "--attacks", "fgsm",
               "--no-sweeps", "--eps", "0.1", "--no-progress", "--out", str(out), *given])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["n_examples"] == expected and len(data["indices"]) == expected
    assert data["eval_config"]["n_examples"] == expected  # recorded as the number, never as "all"
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["n"] == expected


# ---------------------------------------------------------------- leaderboard render


def test_render_of_a_folder_of_boards_is_one_line(tmp_path, capsys):
    board = tmp_path / "boards" / "digits" / "Linf"
    board.mkdir(parents=True)
    shutil.copy(ROOT / "leaderboards" / "digits" / "Linf" / "MLP2_ReLU_Natural_s0.json", board)
    before = _files(tmp_path)
    rc = main(["leaderboard", "render", str(tmp_path / "boards")])
    _one_line_error(capsys, rc, f"{tmp_path / 'boards'}: no JSON entries in this folder; it holds leaderboard "
                               "folders: render one of digits/Linf")  # fmt: skip
    assert _files(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["leaderboard", "render", str(empty)])
    assert _one_line_error(capsys, rc, "no JSON entries in this folder").endswith("in this folder")


# ---------------------------------------------------------------- train


def test_a_config_file_without_its_train_block_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("name: mine\ndataset: digits\nmodel: {arch: mlp2, act: relu}\n")
    out = tmp_path / "out"
    rc = main(["train", "-c", str(cfg), "--out", str(out), "--no-progress"])
    _one_line_error(capsys, rc, "mine.yaml: it has no 'train' block: add train: {recipe: NAME} (standard for "
                               "natural training; see `robact-bench list recipes`)")  # fmt: skip
    assert not out.exists()
    cfg.write_text("name: mine\ndataset: digits\nmodel: {arch: mlp2}\ntrain: {epochs: 1}\n")
    rc = main(["train", "-c", str(cfg), "--out", str(out), "--no-progress"])
    _one_line_error(capsys, rc, "mine.yaml: its 'train' block names no recipe")
    assert not out.exists()


def test_train_to_an_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["train", "--arch", "mlp2", "--dataset", "digits", "--epochs", "1", "--out", str(blocker / "runs"),
               "--no-progress"])  # fmt: skip
    _one_line_error(capsys, rc, f"--out {blocker / 'runs'}: {blocker} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# ---------------------------------------------------------------- run BOARD


def _board(tmp_path: Path, suite: str, *, norm: str = "Linf", evaluation: str = "{}", act: str = "relu",
           n: int = 8) -> Path:  # fmt: skip
    path = tmp_path / "board.yaml"
    path.write_text(f"""
board: mine
dataset: digits
threat_model: {norm}
eps: 0.1
suite: {suite}
n_examples: {n}
seeds: [0]
evaluation: {evaluation}
entries:
  - name: A
    title: t
    method: m
    model: {{arch: mlp2, act: {act}, arch_kwargs: {{hidden: [8, 8]}}}}
    train: {{recipe: standard, epochs: 1, val_fraction: 0.0}}
""")
    return path


@pytest.mark.parametrize(
    ("suite", "quick", "kw", "match"),
    [
        ("standard", True, {}, "suite standard has none of the attacks --quick runs (pgd20, fgsm, pgd20-noeot): "
                               "run this board without --quick"),
        ("art", True, {}, "suite art has none of the attacks --quick runs"),
        ("saf_paper", True, {}, "suite saf_paper has none of the attacks --quick runs"),
        ("rand", True, {}, "suite rand runs no attack of those selected on a deterministic model itself, so it "
                           "gives no robust accuracy to report; choose a suite (robact-bench list suites) or "
                           "attacks that do (--quick runs only pgd20-noeot of it)"),
        ("saf_paper", False, {}, "suite saf_paper runs no attack on a deterministic model itself"),
        ("rand", False, {"evaluation": "{attacks: [pgd20-noeot]}"},
         "suite rand runs no attack of those selected on a deterministic model itself"),
        ("adaptive", False, {"evaluation": "{attacks: [pgd7]}"}, "suite adaptive has no attack pgd7; it has apgd-ce"),
        ("adaptive", False, {"norm": "L2"}, "suite adaptive: fgsm, saf-fgs (Linf only) cannot run at the L2 "
                                            "threat model"),
        ("brelu_paper", False, {"norm": "L2", "act": "brelu", "evaluation": "{attacks: [pgd20], eot_mode: sequential}"},
         "suite brelu_paper: pgd20 (Linf only) cannot run at the L2 threat model"),
    ],
)  # fmt: skip
def test_a_board_whose_suite_cannot_run_fails_before_any_training(tmp_path, capsys, suite, quick, kw, match):
    path = _board(tmp_path, suite, **kw)
    out = tmp_path / "out"
    rc = main(["run", str(path), "--out", str(out), "--no-progress", *(["--quick"] if quick else [])])
    line = _one_line_error(capsys, rc, match)
    assert line.startswith("robact-bench: error: board.yaml: ")
    assert not out.exists()


def test_a_board_with_more_points_than_its_test_split_fails_before_any_training(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", str(_board(tmp_path, "adaptive", n=365)), "--out", str(out), "--no-progress"])
    _one_line_error(capsys, rc, "board.yaml: n_examples 365: the test split of digits has 364 points")
    assert not out.exists()


def test_a_board_whose_suite_runs_under_quick_resolves(tmp_path):
    from robact_bench.jobs import load_board

    assert load_board(_board(tmp_path, "adaptive"), quick=True).eval_cfg.attacks == ("pgd20", "fgsm", "pgd20-noeot")
    assert load_board(_board(tmp_path, "brelu_paper"), quick=True).eval_cfg.attacks == ("pgd20", "fgsm")
    assert load_board(_board(tmp_path, "basic"), quick=True).eval_cfg.attacks == ("pgd20",)
    assert load_board(_board(tmp_path, "rand", act="brelu"), quick=True).eval_cfg.attacks == ("pgd20-noeot",)


def test_a_board_config_entry_without_a_recipe_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "plain.yaml"
    cfg.write_text("name: plain\ndataset: digits\nmodel: {arch: mlp2}\n")
    path = _board(tmp_path, "adaptive")
    path.write_text(path.read_text().split("entries:")[0] + "entries:\n  - {name: A, title: t, method: m, "
                                                            "config: plain.yaml}\n")  # fmt: skip
    rc = main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    _one_line_error(capsys, rc, "plain.yaml: it has no 'train' block")
    assert not (tmp_path / "out").exists()


def test_run_to_an_unwritable_out_fails_before_any_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    path = _board(tmp_path, "adaptive")
    before = _files(tmp_path)
    rc = main(["run", str(path), "--quick", "--out", str(blocker / "out"), "--no-progress"])
    _one_line_error(capsys, rc, f"--out {blocker / 'out'}: {blocker} is a file, not a folder")
    assert _files(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_run_to_a_read_only_out_fails_before_any_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc = main(["run", str(_board(tmp_path, "adaptive")), "--quick", "--out", str(locked / "out"), "--no-progress"])
        _one_line_error(capsys, rc, f"--out {locked / 'out'}: cannot write in {locked} (Permission denied)")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------- what a user looks for


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"robact-bench {__version__}\n"


def test_list_recipes(capsys):
    assert main(["list", "recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["drelu", "fast_at", "pgd_at", "saf", "standard", "trades"]
    for line in lines:
        name = line.split()[0]
        assert line == f"{name:10s} {RECIPES.get(name).description}"


def test_list_activations_says_which_are_random_and_what_they_take(capsys):
    assert main(["list", "activations"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "RANDOM", "ARGUMENTS", "(defaults)"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert len(rows) == 13
    assert {n for n, (random, *_) in rows.items() if random == "yes"} == {"brelu", "vbrelu"}
    assert rows["vbrelu"][1] == "alpha=1.0, deterministic=False, grad='straight_through', temperature=0.5"
    assert rows["srelu"] == ["no", "m=1.0"] and rows["mrelu"] == ["no", "-"]
    assert rows["drelu"] == ["no", "num_features=None, m_init=100.0, dim=1"]
    assert rows["relu_dropout"] == ["no", "p=0.1, inplace=False"]  # random while training only
