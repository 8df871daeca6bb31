"""torch.distributed: evaluation sharded over 2 CPU processes (torchrun, gloo) gives the per-point
result of 1 process; chunking makes results independent of the number of processes; a board run
spread over 2 processes writes the files of 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robact_bench import evaluate
from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import save_checkpoint

DIGITS = {"img_size": 8, "hidden": [64, 64]}
# points per chunk: 48 points = 4 chunks, so each of 2 ranks runs 2 chunks
EVAL_ARGS = ["--n-examples", "48", "--batch-size", "12", "--eps", "0.1", "--threads", "1", "--no-progress",
             "--seed", "3"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def _eval(nproc: int, run, out, *args: str) -> dict:
    cmd = [sys.executable, "-m", "robact_bench", "eval", "--checkpoint", str(run), "--out", str(out), *args]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
        cmd = [*launcher, *cmd[1:]]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text())


def _per_point(result: dict) -> dict:
    return {
        "robust_flags": result["robust_flags"],
        "attacks": {
            a["name"]: (a["counts"], a["confirm"], a["chosen"], a["accuracy"], a["accuracy_all_right"],
                        a["library_accuracy"])
            for a in result["attacks"]
        },
        "sweeps": [(s["kind"], s["attack"], s["values"], s["counts"]) for s in result["sweeps"]],
        "clean": (result["clean_counts"], result["clean_confirm"]),
        "headline": (result["robust_counts"], result["robust_confirm"], result["robust_source"]),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_relu, digits_brelu):
    root = tmp_path_factory.mktemp("dist")
    for name, model, act in (("relu", digits_relu, "relu"), ("brelu", digits_brelu, "brelu")):
        save_checkpoint(root / name / "model", model, ModelSpec("mlp2", act, arch_kwargs=DIGITS),
                        {"training": {"dataset": "digits", "name": f"digits_{name}"}})  # fmt: skip
    return root


def test_two_processes_give_the_per_point_flags_of_one_deterministic(runs):
    args = ["--suite", "adaptive", "--attacks", "apgd-ce", "apgd-t", "pgd20", "fgsm", "--sweep-eps", "1", "4",
            "--sweep-steps", "1", "10", *EVAL_ARGS]  # fmt: skip
    one = _eval(1, runs / "relu", runs / "relu1.json", *args)
    two = _eval(2, runs / "relu", runs / "relu2.json", *args)
    assert one["environment"]["world_size"] == 1 and two["environment"]["world_size"] == 2
    assert _per_point(two) == _per_point(one)
    assert one["n_examples"] == 48 and len(one["robust_flags"]) == 48
    # the attacks found something to break and something they could not: the flags carry information
    assert 0 < one["robust_acc"] < one["clean_acc"]
    pgd = next(a for a in two["attacks"] if a["name"] == "pgd20")
    assert pgd["record"]["chunks"]["count"] == 4 and len(set(pgd["record"]["chunks"]["seeds"])) == 4


def test_two_processes_give_the_per_point_flags_of_one_stochastic(runs):
    # a random model: EOT (K samples per gradient) and R scoring passes, each chunk reseeded
    args = ["--suite", "adaptive", "--attacks", "pgd20", "pgd20-noeot", "fgsm", "--no-sweeps", "--eot-iter", "4",
            "--passes", "4", *EVAL_ARGS]  # fmt: skip
    one = _eval(1, runs / "brelu", runs / "brelu1.json", *args)
    two = _eval(2, runs / "brelu", runs / "brelu2.json", *args)
    assert one["stochastic"] and one["passes"] == 4
    assert _per_point(two) == _per_point(one)
    assert 0 < one["robust_acc_all_right"] < one["clean_acc_all_right"] <= 1


def test_chunking_keeps_one_chunk_runs_unchanged_and_is_independent_of_the_split(digits, digits_relu):
    _, _, x, y = digits
    kw = {"attacks": ("pgd20", "fgsm"), "eps": 0.1, "n_examples": 40, "sweeps": False, "progress": False, "seed": 3}
    whole = evaluate(digits_relu, x, y, "brelu_paper", batch_size=40, **kw)
    again = evaluate(digits_relu, x, y, "brelu_paper", batch_size=500, **kw)
    # n <= batch_size: one chunk, seeded with the unit's own seed, whatever the batch size
    assert again.robust_flags == whole.robust_flags
    assert [a.flags for a in again.attacks] == [a.flags for a in whole.attacks]
    chunked = evaluate(digits_relu, x, y, "brelu_paper", batch_size=10, **kw)
    assert chunked.attack("pgd20").record["chunks"]["count"] == 4
    assert "chunks" not in whole.attack("pgd20").record
    # FGSM has no randomness: chunking cannot change a single flag
    assert chunked.attack("fgsm").flags == whole.attack("fgsm").flags


@pytest.mark.parametrize("recipe", ["pgd_at", "trades"])
def test_ddp_training_two_processes_keeps_parameters_equal(tmp_path, recipe):
    from safetensors.torch import load_file

    worker = os.path.join(os.path.dirname(__file__), "workers", "ddp_train.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", worker,
           str(tmp_path), recipe]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    finals = sorted(k for k in r0 if k.startswith("final."))
    assert finals and all(torch.equal(r0[k], r1[k]) for k in finals)  # bit-identical on both ranks
    # the ranks started from different weights: DDP replaced rank 1's by rank 0's, then both trained
    assert any(not torch.equal(r0["init." + k[6:]], r1["init." + k[6:]]) for k in finals)
    assert any(not torch.equal(r0["init." + k[6:]], r0[k]) for k in finals)
    # one history, the loss averaged over both ranks' images, and one state file written (by rank 0)
    assert torch.equal(r0["loss"], r1["loss"]) and r0["loss"].shape == (2,) and bool((r0["loss"] > 0).all())
    assert (tmp_path / "state.safetensors").is_file()


def test_commands_other_than_eval_train_and_run_refuse_torchrun(monkeypatch, capsys):
    from robact_bench.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = (
        "robact-bench: error: only eval, train and run work under torchrun (WORLD_SIZE=2); run list in one process"
    )
    assert err == [expected]


def test_alone_makes_a_process_of_a_group_compute_as_one():
    from robact_bench import distributed

    assert not distributed.is_distributed()
    with distributed.alone():
        with distributed.alone():
            assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
            assert distributed.gather(3) == [3] and distributed.sum_over_ranks([1.0]) == [1.0]
        assert not distributed.is_distributed()
    assert distributed._alone_depth == 0


# 3 entries x 2 seeds = 6 units (3 per rank): a deterministic, a random (BReLU, EOT) and an mReLU one,
# with published weights; each trained 1 epoch on 300 images, evaluated on 8 points
SPREAD_BOARD = """
board: spread
description: a board spread over ranks
dataset: digits
threat_model: Linf
eps: 0.1
suite: adaptive
n_examples: 8
seeds: [0, 1]
evaluation: {attacks: [pgd20, fgsm, pgd20-noeot], sweeps: false, eot_iter: 2, passes: 2, select_passes: 2,
             confirm_passes: 2, seed: 0}
publish_weights: true
weights_budget_mb: 8
entries:
  - name: Tiny_ReLU_Natural
    title: tiny ReLU, natural training
    method: natural training
    baseline: true
    model: {arch: mlp2, act: relu, arch_kwargs: {hidden: [16, 16]}}
    n_train: 300
    train: {recipe: standard, epochs: 1, val_fraction: 0.0}
  - name: Tiny_BReLU_PGDAT
    title: tiny BReLU, PGD adversarial training
    method: BReLU
    model: {arch: mlp2, act: brelu, arch_kwargs: {hidden: [16, 16]}}
    n_train: 300
    train: {recipe: pgd_at, epochs: 1, steps: 2, step_size: 0.05, eps: 0.1, val_fraction: 0.0}
  - name: Tiny_mReLU_Natural
    title: tiny mReLU, natural training
    method: symmetric activations
    model: {arch: mlp2, act: mrelu, arch_kwargs: {hidden: [16, 16]}}
    n_train: 300
    train: {recipe: standard, epochs: 1, val_fraction: 0.0}
"""
# values of the clock and of the process, not of the computation
CLOCK_KEYS = ("seconds", "wall_time")


def _without_clock(obj):
    if isinstance(obj, dict):
        return {k: _without_clock(v) for k, v in obj.items() if not any(c in k for c in CLOCK_KEYS)}
    if isinstance(obj, list):
        return [_without_clock(v) for v in obj]
    return obj


def _run_board(nproc: int, board: Path, out: Path) -> str:
    cmd = [sys.executable, "-m", "robact_bench", "run", str(board), "--out", str(out), "--no-progress"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
        cmd = [*launcher, *cmd[1:]]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_board_spread_over_two_processes_writes_the_files_of_one(tmp_path):
    board = tmp_path / "spread.yaml"
    board.write_text(SPREAD_BOARD)
    one, two = tmp_path / "one", tmp_path / "two"
    out1, out2 = _run_board(1, board, one), _run_board(2, board, two)
    assert _files(one) == _files(two)
    folder = Path("leaderboards") / "digits" / "Linf"
    units = [f"Tiny_{m}_s{s}" for m in ("ReLU_Natural", "BReLU_PGDAT", "mReLU_Natural") for s in (0, 1)]
    names = sorted(p.name for p in (one / folder).glob("*.json"))
    assert names == sorted(f"{u}.json" for u in units)
    for name in names:  # every entry, its numbers and checks, equal but for the clock
        a, b = (json.loads((root / folder / name).read_text()) for root in (one, two))
        assert _without_clock(a) == _without_clock(b), name
        assert a["robact"]["environment"]["world_size"] == b["robact"]["environment"]["world_size"] == 1
    brelu = json.loads((two / folder / "Tiny_BReLU_PGDAT_s1.json").read_text())
    assert brelu["robact"]["track"] == "randomized" and brelu["robact"]["evaluation"]["n_examples"] == 8
    evals = sorted(p.relative_to(one).as_posix() for p in one.rglob("eval.json"))
    assert len(evals) == 12  # beside each checkpoint in runs/ and beside each published one in weights/
    for rel in evals:
        a, b = (json.loads((root / rel).read_text()) for root in (one, two))
        assert _per_point(a) == _per_point(b), rel
        assert _without_clock(a) == _without_clock(b), rel
    weights = sorted(p.relative_to(one).as_posix() for p in (one / "weights").rglob("model.safetensors"))
    assert len(weights) == 6
    for rel in weights:  # the published weights, byte for byte
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    for rel in sorted(_files(one)):
        if rel.endswith("model.json"):  # the checkpoints' metadata: the training record, but for the clock
            a, b = (json.loads((root / rel).read_text()) for root in (one, two))
            assert _without_clock(a) == _without_clock(b), rel
    # rank 0 prints every unit's summary row, in board order, as one process does
    rows1, rows2 = ([json.loads(line) for line in out.splitlines() if line.startswith("{")] for out in (out1, out2))
    assert [r["model"] for r in rows2] == [r["model"] for r in rows1] == units


def test_a_rank_whose_unit_fails_stops_every_rank_with_one_line(tmp_path):
    # unit 0 (rank 0) trains; unit 1 (rank 1), a submitted state dict that is no state dict, fails
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    head, _ = SPREAD_BOARD.split("entries:")
    board = tmp_path / "failing.yaml"
    board.write_text(head.replace("seeds: [0, 1]", "seeds: [0]") + """entries:
  - name: Tiny_ReLU_Natural
    title: tiny ReLU, natural training
    method: natural training
    model: {arch: mlp2, act: relu, arch_kwargs: {hidden: [16, 16]}}
    n_train: 300
    train: {recipe: standard, epochs: 1, val_fraction: 0.0}
  - name: Broken
    title: a broken submission
    method: none
    state_dict: broken.pt
    model: {arch: mlp2, act: relu, arch_kwargs: {hidden: [16, 16]}}
    normalization: none
""")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "robact_bench", "run", str(board), "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("robact-bench: error:")]
    assert len(errors) == 2, res.stderr[-3000:]  # each rank stopped, none left waiting
    assert any("rank 1 of 2 failed" in line for line in errors), errors
    # the unit that ran is written; the folder is not published
    folder = tmp_path / "out" / "leaderboards" / "digits" / "Linf"
    assert (folder / "Tiny_ReLU_Natural_s0.json").is_file() and not (folder / "README.md").exists()
