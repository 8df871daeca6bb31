"""SIGKILL at random moments: every file on disk stays complete, and ``--resume`` ends bit-identical.

Real ``robact-bench`` processes are killed with SIGKILL (no handler, no clean-up runs) after
seeded random delays spread over the run's duration, measured from an uninterrupted run. After
every kill, each file the package wrote must be complete: the old version or the new one, never
half of one. Only temporary files of :func:`robact_bench.fileio.atomic_write_bytes`
(``.<name>.<token>.tmp``, never read) may be left behind, and resuming removes them.

A kill that lands after the process finished is fine (the test then starts over with shorter
delays); each test tries until 4 kills (3 for the evaluation and the render) landed mid-run,
at most 3 times as often, and needs at least 2.
Writes take milliseconds, so a random kill would almost never land inside one: the processes
run with a ``sitecustomize`` that makes ``os.fsync`` of a file sleep first (after the temporary
file is written, before it is renamed), and the delays are spread from just before the first
write to the expected end, so that many kills land mid-write (``--log-cli-level=INFO`` shows
how many did).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from robact_bench.fileio import is_temp_file
from robact_bench.training.state import state_header

ENV = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SLOW_FSYNC = '''"""Test fault injection (tests/test_kill.py): os.fsync sleeps first, widening each write."""
import os
import stat
import time

_DELAY = float(os.environ.get("ROBACT_TEST_FSYNC_DELAY", "0"))
_fsync = os.fsync


def _slow_fsync(fd):
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        time.sleep(_DELAY)
    _fsync(fd)


if _DELAY > 0:
    os.fsync = _slow_fsync
'''
TIMEOUT = 600  # seconds, for any one process
KILLS = 4  # kills that should land mid-run, per test (3 for the evaluation and the render)
MIN_LANDED = 2
LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "digits" / "Linf"

log = logging.getLogger(__name__)

EPOCHS = 8
TRAIN_FSYNC_DELAY = 0.1  # 2 files per epoch of about 0.15 s
RUN_NAME = "mlp2_brelu_pgd_at"  # a stochastic activation: its Bernoulli draws must continue exactly
TRAIN = ["train", "--arch", "mlp2", "--act", "brelu", "--dataset", "digits", "--recipe", "pgd_at", "--eps", "0.1",
         "--n-train", "600", "--epochs", str(EPOCHS), "--no-progress"]  # fmt: skip
RUN_FILES = {"config.yaml", "history.csv", "train_state.safetensors", "model.safetensors", "model.json"}


def _cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "robact_bench", *args]


def _file_mode() -> int:
    """The mode a new file gets in this process (and its children): 0o666 less the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@dataclass(frozen=True)
class Timing:
    """An uninterrupted run: its duration and when it first wrote (seconds after the start)."""

    seconds: float
    first_write: float

    def expected(self, left: float) -> float:
        """The expected duration of a resumed run with the fraction ``left`` of the work still to do."""
        return self.first_write + (self.seconds - self.first_write) * left

    def delay(self, rng: random.Random, left: float = 1.0) -> float:
        """A random kill moment: from just before the first write to the expected end."""
        return rng.uniform(0.8 * self.first_write, self.expected(left))


@pytest.fixture(scope="module")
def slow_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[float], dict[str, str]]:
    """``slow_env(seconds)``: the subprocess environment with every ``os.fsync`` delayed that long."""
    site = tmp_path_factory.mktemp("slow_fsync")
    (site / "sitecustomize.py").write_text(SLOW_FSYNC)
    path = os.pathsep.join(filter(None, [str(site), ENV.get("PYTHONPATH")]))
    return lambda seconds: {**ENV, "PYTHONPATH": path, "ROBACT_TEST_FSYNC_DELAY": str(seconds)}


def _run_timed(args: list[str], env: dict[str, str], logfile: Path, wrote: Callable[[], bool]) -> Timing:
    """Run to completion, timing it and the moment ``wrote()`` first holds."""
    t0 = time.monotonic()
    first = None
    with logfile.open("w") as fh:
        proc = subprocess.Popen(_cmd(args), env=env, stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None and time.monotonic() - t0 < TIMEOUT:
            if first is None and wrote():
                first = time.monotonic() - t0
            time.sleep(0.005)
        proc.kill()  # no-op unless it ran past TIMEOUT
        proc.wait()
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, logfile.read_text()
    return Timing(seconds, seconds if first is None else first)


def _run(args: list[str], env: dict[str, str], logfile: Path) -> None:
    with logfile.open("w") as fh:
        code = subprocess.run(_cmd(args), env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=TIMEOUT).returncode
    assert code == 0, logfile.read_text()


def _kill_after(args: list[str], env: dict[str, str], delay: float, logfile: Path) -> bool:
    """Start ``args``, SIGKILL it after ``delay`` seconds; True if it was killed (False: it had finished)."""
    with logfile.open("w") as fh:
        proc = subprocess.Popen(_cmd(args), env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    if proc.returncode == -signal.SIGKILL:
        return True
    assert proc.returncode == 0, logfile.read_text()
    return False


def _temps(paths: Iterable[Path]) -> bool:
    return any(is_temp_file(p) for p in paths)


def _kill_repeatedly(
    args: Callable[[], list[str]],
    env: dict[str, str],
    delay: Callable[[random.Random], float],
    check: Callable[[int], tuple[bool, bool]],
    start_over: Callable[[], None],
    logs: Path,
    kills: int = KILLS,
) -> tuple[int, int, int]:
    """SIGKILL runs of ``args()`` after seeded random ``delay(rng)`` until ``kills`` landed mid-run.

    After every try ``check(i)`` checks the files on disk and says whether a temporary file was
    left (a kill mid-write) and whether the work was finished. A try that finished before its
    kill, or was killed after its last write (this machine is faster now than when the run was
    timed), does not count: ``start_over()`` and shorter delays follow. At most ``3 * kills``
    tries; returns the kills that landed mid-run, those mid-write, and the tries.
    """
    rng = random.Random(0)
    landed, mid_write, scale, tries = 0, 0, 1.0, 0
    while landed < kills and tries < 3 * kills:
        killed = _kill_after(args(), env, scale * delay(rng), logs / f"kill{tries}.log")
        temps, finished = check(tries)
        tries += 1
        mid_write += temps
        if killed and not finished:
            landed += 1
        if finished:
            scale *= 0.75
            start_over()
    return landed, mid_write, tries


def _timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


# --- (a) training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The uninterrupted training run."""

    run: Path
    timing: Timing
    weights: dict[str, torch.Tensor]
    state_keys: frozenset[str]
    config: dict
    csv_header: str
    csv_rows: list[dict]
    history: list[dict]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, slow_env: Callable[[float], dict[str, str]]) -> Reference:
    out = tmp_path_factory.mktemp("A")
    run = out / RUN_NAME / "seed0"
    timing = _run_timed([*TRAIN, "--out", str(out)], slow_env(TRAIN_FSYNC_DELAY), out.parent / "A.log",
                        lambda: run.is_dir() and _temps(run.iterdir()))  # fmt: skip
    text = (run / "history.csv").read_text()
    return Reference(
        run=run,
        timing=timing,
        weights=load_file(run / "model.safetensors"),
        state_keys=frozenset(load_file(run / "train_state.safetensors")),
        config=yaml.safe_load((run / "config.yaml").read_text()),
        csv_header=text.split("\n", 1)[0],
        csv_rows=list(csv.DictReader(io.StringIO(text))),
        history=json.loads((run / "model.json").read_text())["metadata"]["training"]["history"],
    )


def _epochs_done(run: Path) -> int:
    if (run / "model.json").exists():
        return EPOCHS
    state = run / "train_state.safetensors"
    return int(state_header(state)["epoch"]) if state.exists() else 0


def _check_run_folder(out: Path, ref: Reference) -> list[Path]:
    """Every file under ``out`` complete (and equal to the reference as far as it got); return the temps."""
    run = out / RUN_NAME / "seed0"
    temps, mode = [], _file_mode()
    for p in sorted(out.rglob("*")):
        if p.is_dir():
            assert p in (out / RUN_NAME, run), p
            continue
        if is_temp_file(p):
            assert p.parent == run, p
            temps.append(p)
            continue
        assert p.parent == run and p.name in RUN_FILES, f"unexpected file {p}"
        assert stat.S_IMODE(p.stat().st_mode) == mode, p
        if p.name == "config.yaml":
            assert yaml.safe_load(p.read_text()) == ref.config
        elif p.name == "history.csv":
            text = p.read_text()
            assert text.endswith("\n") and text.split("\n", 1)[0] == ref.csv_header, text
            rows = list(csv.DictReader(io.StringIO(text)))
            assert all(None not in r and None not in r.values() for r in rows), text  # complete rows
            assert 1 <= len(rows) <= EPOCHS and _timeless(rows) == _timeless(ref.csv_rows[: len(rows)])
        elif p.name == "train_state.safetensors":
            assert frozenset(load_file(p)) == ref.state_keys
            header = state_header(p)
            assert 1 <= header["epoch"] <= EPOCHS
            assert _timeless(header["history"]) == _timeless(ref.history[: header["epoch"]])
        elif p.name == "model.safetensors":  # written only at the end: the final weights
            weights = load_file(p)
            assert weights.keys() == ref.weights.keys()
            assert all(torch.equal(weights[k], ref.weights[k]) for k in weights)
        else:
            meta = json.loads(p.read_text())
            assert meta["weights"] == "model.safetensors" and (run / "model.safetensors").is_file()
            assert _timeless(meta["metadata"]["training"]["history"]) == _timeless(ref.history)
    return temps


def test_training_killed_at_random_moments_resumes_bit_identical(
    reference: Reference, slow_env: Callable[[float], dict[str, str]], tmp_path: Path
) -> None:
    env = slow_env(TRAIN_FSYNC_DELAY)
    out = tmp_path / "B"
    run = out / RUN_NAME / "seed0"
    landed, mid_write, tries = _kill_repeatedly(
        lambda: [*TRAIN, "--out", str(out), *(["--resume"] if out.exists() else [])],  # started, then resumed
        env,
        lambda rng: reference.timing.delay(rng, 1 - _epochs_done(run) / EPOCHS),
        lambda i: (bool(_check_run_folder(out, reference)), (run / "model.json").exists()),
        lambda: shutil.rmtree(out),
        tmp_path,
    )
    log.info("training: %d of %d kills landed mid-run, %d mid-write", landed, tries, mid_write)
    assert landed >= MIN_LANDED, f"only {landed} of {tries} kills landed mid-run"
    # the litter of a write killed half-way, made by hand in case no kill above left one
    stale = run / ".train_state.safetensors.0123456789ab.tmp"
    run.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x00" * 100)
    _run([*TRAIN, "--out", str(out), "--resume"], env, tmp_path / "final.log")
    assert _check_run_folder(out, reference) == []  # --resume removed the stale temporary file
    assert {p.name for p in run.iterdir()} == RUN_FILES
    weights = load_file(run / "model.safetensors")
    assert weights.keys() == reference.weights.keys()
    for k, v in weights.items():
        assert torch.equal(v, reference.weights[k]), k
    history = json.loads((run / "model.json").read_text())["metadata"]["training"]["history"]
    assert len(history) == EPOCHS and _timeless(history) == _timeless(reference.history)
    assert _timeless(list(csv.DictReader((run / "history.csv").open()))) == _timeless(reference.csv_rows)


# --- (b) evaluation ----------------------------------------------------------------------------


N_EVAL = 40


def _eval_args(ref: Reference, out: Path) -> list[str]:
    return ["eval", "--checkpoint", str(ref.run), "--suite", "brelu_paper", "--eps", "0.1", "--n-examples", str(N_EVAL),
            "--attacks", "fgsm", "pgd20", "--sweep-steps", "1", "5", "20", "--threads", "1", "--no-progress",
            "--resume", "--out", str(out)]  # fmt: skip


def _state_units(state: Path) -> int:
    return len(json.loads(state.read_text())["units"]) if state.exists() else 0


def _check_eval_folder(folder: Path, result: Path, state: Path, full: dict) -> list[Path]:
    """The state and result files complete (the result equal to the uninterrupted one); return the temps."""
    temps, mode = [], _file_mode()
    for p in sorted(folder.iterdir()):
        if is_temp_file(p):
            temps.append(p)
            continue
        assert p in (result, state), f"unexpected file {p}"
        assert stat.S_IMODE(p.stat().st_mode) == mode, p
        data = json.loads(p.read_text())  # complete JSON, never half of it
        if p == state:
            assert data["format"] == "robact_bench.eval_state/1" and isinstance(data["units"], dict)
            assert all(len(u["score"]) == N_EVAL for name, u in data["units"].items() if name == "clean")
        else:
            assert _numbers(data) == _numbers(full)
    return temps


def _numbers(result: dict) -> dict:
    return {
        "robust_flags": result["robust_flags"],
        "attacks": [(a["name"], a["flags"], a["accuracy"]) for a in result["attacks"]],
        "sweeps": [(s["kind"], s["values"], s["accuracy"]) for s in result["sweeps"]],
        "accuracy": (result["clean_acc"], result["clean_acc_all_right"], result["robust_acc"], result["reported_acc"]),
    }


EVAL_FSYNC_DELAY = 0.25  # 6 units, one state write each


def test_evaluation_killed_at_random_moments_resumes_to_the_same_flags(
    reference: Reference, slow_env: Callable[[float], dict[str, str]], tmp_path: Path
) -> None:
    env = slow_env(EVAL_FSYNC_DELAY)
    full_out = tmp_path / "full" / "result.json"
    full_out.parent.mkdir()
    timing = _run_timed(_eval_args(reference, full_out), env, tmp_path / "full.log",
                        lambda: _temps(full_out.parent.iterdir()))  # fmt: skip
    full = json.loads(full_out.read_text())
    units = 1 + len(full["attacks"]) + sum(len(s["values"]) for s in full["sweeps"])
    assert len(full["robust_flags"]) == N_EVAL and [a["name"] for a in full["attacks"]] == ["fgsm", "pgd20"]

    folder = tmp_path / "killed"
    folder.mkdir()
    result, state = folder / "result.json", folder / "result.state.json"

    def start_over() -> None:
        for p in folder.iterdir():
            p.unlink()

    landed, mid_write, tries = _kill_repeatedly(
        lambda: _eval_args(reference, result),
        env,
        lambda rng: timing.delay(rng, 1 - _state_units(state) / units),
        lambda i: (bool(_check_eval_folder(folder, result, state, full)), result.exists() and not state.exists()),
        start_over,
        tmp_path,
        kills=3,
    )
    log.info("evaluation: %d of %d kills landed mid-run, %d mid-write", landed, tries, mid_write)
    assert landed >= MIN_LANDED, f"only {landed} of {tries} kills landed mid-run"
    _run(_eval_args(reference, result), env, tmp_path / "final.log")
    assert [p.name for p in folder.iterdir()] == ["result.json"]  # no state, no temporary file left
    assert _numbers(json.loads(result.read_text())) == _numbers(full)


# --- (c) leaderboard rendering -----------------------------------------------------------------

RENDERED = ("README.md", "index.html", "plots/acc_vs_eps.png", "plots/acc_vs_steps.png", "plots/per_attack.png",
            "plots/training_curves.png")  # fmt: skip
DROPPED = "MLP2_ReLU_PGDAT_s2.json"  # one seed less: every table, page and plot changes


def _board_copy(dst: Path) -> Path:
    shutil.copytree(LEADERBOARD, dst)
    return dst


def _rendered(board: Path) -> dict[str, bytes]:
    return {name: (board / name).read_bytes() for name in RENDERED}


RENDER_FSYNC_DELAY = 0.15  # 6 files


@pytest.mark.long
def test_leaderboard_render_killed_at_random_moments_leaves_old_or_new_files(
    slow_env: Callable[[float], dict[str, str]], tmp_path: Path
) -> None:
    env = slow_env(RENDER_FSYNC_DELAY)
    board = _board_copy(tmp_path / "killed")
    old = _rendered(board)
    (board / DROPPED).unlink()
    new_board = _board_copy(tmp_path / "new")
    (new_board / DROPPED).unlink()
    timing = _run_timed(["leaderboard", "render", str(new_board)], env, tmp_path / "new.log",
                        lambda: _temps((new_board / "plots").iterdir()))  # fmt: skip
    new = _rendered(new_board)
    assert all(old[n] != new[n] for n in RENDERED), "the new render must differ from the old one in every file"
    entries = {p.name: p.read_bytes() for p in board.glob("*.json")}

    def check(i: int) -> tuple[bool, bool]:
        files = {str(p.relative_to(board)) for p in board.rglob("*") if p.is_file() and not is_temp_file(p)}
        assert files == {*RENDERED, *entries}
        assert {p.name: p.read_bytes() for p in board.glob("*.json")} == entries
        now = _rendered(board)
        for name in RENDERED:
            assert now[name] in (old[name], new[name]), f"kill {i}: {name} is neither the old nor the new file"
        return _temps(board.rglob("*")), now == new

    def start_over() -> None:  # the old pages and plots again
        for name, data in old.items():
            (board / name).write_bytes(data)

    landed, mid_write, tries = _kill_repeatedly(
        lambda: ["leaderboard", "render", str(board)], env, timing.delay, check, start_over, tmp_path, kills=3
    )
    log.info("render: %d of %d kills landed mid-run, %d mid-write", landed, tries, mid_write)
    assert landed >= MIN_LANDED, f"only {landed} of {tries} kills landed mid-run"
    stale = board / "plots" / ".per_attack.png.0123456789ab.tmp"  # in case no kill above left one
    stale.write_bytes(b"\x89PNG")
    _run(["leaderboard", "render", str(board)], env, tmp_path / "final.log")
    assert _rendered(board) == new
    assert not [p for p in board.rglob("*") if is_temp_file(p)]  # a new render removes a killed one's litter
