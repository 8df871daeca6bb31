import json
import subprocess
import sys

import pytest

from robact_bench.cli import main, parse_eps


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "robact_bench", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    ("text", "value"), [("0.1", 0.1), ("8/255", 8 / 255), (" 0.031 ", 0.031), ("0", 0.0), ("1", 1.0)]
)
def test_parse_eps_accepts_decimals_and_fractions(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("8", r"\[0, 1\].*write 8/255"),
        ("-0.1", ">= 0"),
        ("abc", "number or a fraction"),
        ("1/0", "number or a fraction"),
        ("nan", "finite"),
        ("inf", "finite"),
    ],
)
def test_parse_eps_rejects_bad_values(text, match):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse_eps(text)


def test_list_commands(capsys):
    assert main(["list", "activations"]) == 0
    acts = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]  # under the header
    assert "brelu" in acts and "drelu" in acts and "mrelu" in acts and len(acts) == 13
    assert main(["list", "models"]) == 0
    assert "lenet5" in capsys.readouterr().out.split()
    assert main(["list", "datasets"]) == 0
    assert "mnist5k" in capsys.readouterr().out
    assert main(["list", "configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 17
    assert any(line.startswith("brelu_paper_resnet18_cifar10_pgd7_adamw_onecycle ") for line in lines)
    assert main(["list", "boards"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["digits", "mnist5k"]
    assert all("10 entries x 3 seeds" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["run", "--seeds", "two"], "expected an integer >= 0"),
        (["run", "--seeds", "-1"], "expected an integer >= 0"),
        (["run", "chess"], "no board file 'chess' and no shipped board of that name"),
        (["run", "digits", "--models", "MLP2_Nope"], "no model MLP2_Nope on board digits"),
        (["list", "weights"], "invalid choice"),
        (["export", "eval.json", "--out", "d", "--reported", "120"], r"a percentage must be in \[0, 100\]; got '120'"),
        (["fly"], "invalid choice"),
        (["report", "/nonexistent", "--eps", "0.1"], "no finished runs"),
        (["report", ".", "--eps", "8"], "write 8/255"),
        (["train", "--arch", "mlp2", "--seeds", "-1"], "expected an integer >= 0"),
        (["train", "--device", "cuda:99", "--arch", "mlp2"], "cuda:99: not available on this machine"),
        (["train", "--device", "tpu", "--arch", "mlp2"], "--device must be cpu, cuda or cuda:N"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, match):
    res = _cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "error:" in lines[0] and __import__("re").search(match, lines[0]), lines[0]
    assert "Traceback" not in res.stderr


def test_help_on_every_command():
    for args in (["--help"], ["run", "--help"], ["list", "--help"], ["train", "--help"], ["report", "--help"]):
        res = _cli(*args)
        assert res.returncode == 0 and "usage: robact-bench" in res.stdout


def test_run_quick_end_to_end(tmp_path):
    """The published boards' smoke run: one valid entry per model and seed on both boards, then the rendered folder."""
    from robact_bench.jobs import load_board
    from robact_bench.leaderboard.schema import validate_paths

    res = _cli("run", "--full", "--quick", "--out", str(tmp_path), "--no-progress")
    assert res.returncode == 0, res.stderr
    for dataset in ("digits", "mnist5k"):
        board = tmp_path / "leaderboards" / dataset / "Linf"
        names = sorted(p.stem for p in board.glob("*.json"))
        assert names == sorted(f"{e.name}_s0" for e in load_board(dataset).entries) and len(names) == 10
        assert validate_paths([board]).errors == []
        for name in names:
            e = json.loads((board / f"{name}.json").read_text())
            assert e["robact"]["quick"] is True and "Smoke run" in e["footnote"]
            assert e["robact"]["evaluation"]["n_examples"] == 8 and e["robact"]["seed"] == 0
            run = tmp_path / "runs" / dataset / name.removesuffix("_s0") / "seed0"
            assert (run / "model.safetensors").is_file() and (run / "eval.json").is_file()
            assert e["reported"] == "" and "weights" not in e["robact"]  # --quick publishes no weights
        brelu = json.loads(next(board.glob("*_BReLU_PGDAT_s0.json")).read_text())
        ev = brelu["robact"]["evaluation"]
        assert brelu["robact"]["track"] == "randomized" and brelu["number_forward_passes"] == ev["passes"] == 10
        assert ev["eot_iter"] == 10
        table = (board / "README.md").read_text()
        assert "SMOKE RUN" in table and all(f"`{n.removesuffix('_s0')}`" in table for n in names)
        assert (board / "index.html").is_file()
    summary = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(summary) == 20
    assert not (tmp_path / "weights").exists()
    # --recheck: the checks recomputed from the saved results, the numbers untouched
    board = tmp_path / "leaderboards" / "digits" / "Linf"
    before = {p.name: json.loads(p.read_text()) for p in board.glob("*.json")}
    res = _cli("run", "digits", "--quick", "--recheck", "--out", str(tmp_path), "--no-progress")
    assert res.returncode == 0, res.stderr
    for name, old in before.items():
        new = json.loads((board / name).read_text())
        assert new["robact"]["evaluation"]["points"] == old["robact"]["evaluation"]["points"]
        assert new["robact"]["masking"]["checks"] == old["robact"]["masking"]["checks"]
    (tmp_path / "runs" / "digits" / "MLP2_ReLU_PGDAT" / "seed0" / "eval.json").unlink()
    res = _cli("run", "digits", "--quick", "--recheck", "--out", str(tmp_path), "--no-progress")
    assert res.returncode == 2 and "no saved result to recheck" in res.stderr and len(res.stderr.splitlines()) == 1
