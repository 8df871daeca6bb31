"""Atomic writes: file mode, temporary files, their clean-up on resume."""

import os
import stat
from pathlib import Path

import pytest

from robact_bench import fileio
from robact_bench.evaluation.state import EvalState
from robact_bench.fileio import atomic_write_bytes, atomic_write_json, is_temp_file, read_json, remove_stale_temps


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """``os.umask`` for the test to call; the process umask is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_new_and_replaced_files_get_the_normal_mode(tmp_path, umask):
    umask(0o022)
    new = atomic_write_bytes(tmp_path / "a.bin", b"1")
    assert _mode(new) == 0o644  # not mkstemp's 0o600
    old = tmp_path / "b.json"
    old.write_text("{}")
    old.chmod(0o600)  # written by an earlier version
    atomic_write_json(old, {"x": 1})
    assert _mode(old) == 0o644 and read_json(old) == {"x": 1}
    umask(0o077)  # the umask is the kernel's, read at each write: a stricter one is obeyed
    assert _mode(atomic_write_bytes(tmp_path / "c.bin", b"2")) == 0o600
    umask(0o002)
    assert _mode(atomic_write_bytes(tmp_path / "a.bin", b"3")) == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = atomic_write_bytes(tmp_path / "x.json", b"old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_write_whose_temporary_file_is_removed_meanwhile_is_done_again(tmp_path, monkeypatch):
    """Another process resuming in the same folder may remove our temporary file before the rename."""
    real = os.replace
    calls = []

    def cleaner_first(src, dst):
        calls.append(src)
        if len(calls) == 1:
            assert remove_stale_temps(tmp_path) == [src]
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", cleaner_first)
    atomic_write_bytes(tmp_path / "state.json", b"units")
    assert len(calls) == 2 and calls[0] != calls[1]
    assert (tmp_path / "state.json").read_bytes() == b"units" and len(list(tmp_path.iterdir())) == 1


def test_remove_stale_temps_removes_only_our_temporary_files(tmp_path):
    ours = [
        tmp_path / ".model.safetensors.0123456789ab.tmp",
        tmp_path / ".history.csv.ffffffffffff.tmp",
        tmp_path / ".eval.state.json.k2_x9q0a.tmp",  # tempfile.mkstemp's names (earlier versions)
    ]
    kept = [
        tmp_path / "notes.tmp",
        tmp_path / ".notes.tmp",
        tmp_path / ".x.json.0123456789ab.tmp.bak",
        tmp_path / ".x.json.0123456789AB.tmp",
        tmp_path / "x.json.0123456789ab.tmp",
        tmp_path / "model.json",
    ]
    for p in ours + kept:
        p.write_bytes(b"partial")
    sub = tmp_path / "plots"
    sub.mkdir()
    (sub / ".a.png.0123456789ab.tmp").write_bytes(b"")  # subfolders are not searched
    (tmp_path / ".dir.0123456789ab.tmp").mkdir()  # only files
    (tmp_path / ".link.0123456789ab.tmp").symlink_to(tmp_path / "model.json")  # links are left alone
    assert all(is_temp_file(p) for p in ours) and not any(is_temp_file(p) for p in kept)
    assert remove_stale_temps(tmp_path) == sorted(ours)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in kept)
    assert (sub / ".a.png.0123456789ab.tmp").exists() and (tmp_path / ".dir.0123456789ab.tmp").is_dir()
    assert (tmp_path / ".link.0123456789ab.tmp").is_symlink()
    assert remove_stale_temps(tmp_path) == [] and remove_stale_temps(tmp_path / "missing") == []


def test_the_temporary_file_name_is_recognised(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(src)
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", spy)
    atomic_write_bytes(tmp_path / "x.safetensors", b"")
    assert is_temp_file(seen[0]) and seen[0].parent == tmp_path and seen[0].name.startswith(".x.safetensors.")


def test_resuming_an_evaluation_removes_the_temporary_files_of_its_folder(tmp_path):
    folder = tmp_path / "eval"
    folder.mkdir()
    stale, other = folder / ".r.state.json.0123456789ab.tmp", folder / "r.json"
    nested = folder / "sub" / ".r.json.0123456789ab.tmp"
    nested.parent.mkdir()
    for p in (stale, other, nested):
        p.write_text("{")
    EvalState(folder / "r.state.json", "f", resume=False)  # a fresh evaluation cleans nothing
    assert stale.exists()
    state = EvalState(folder / "r.state.json", "f", resume=True)
    assert not stale.exists() and other.exists() and nested.exists()
    state.put("clean", {"worst": "10"})
    assert read_json(folder / "r.state.json")["units"] == {"clean": {"worst": "10"}}


def test_resuming_the_main_job_removes_temporary_files_before_publishing(tmp_path, monkeypatch):
    from dataclasses import replace

    from robact_bench.jobs import load_board, run_board
    from robact_bench.leaderboard import publish

    board = tmp_path / "leaderboards" / "digits" / "Linf"
    stale = [
        board / ".MLP2_ReLU_PGDAT_s0.json.0123456789ab.tmp",
        board / "plots" / ".per_attack.png.0123456789ab.tmp",
        tmp_path / "runs" / "digits" / "MLP2_ReLU_PGDAT" / "seed0" / ".model.safetensors.0123456789ab.tmp",
    ]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    seen = []
    monkeypatch.setattr(publish, "publish", lambda d: seen.append(sorted(Path(d).rglob("*.tmp"))) or [Path(d)])
    run_board(replace(load_board("digits"), entries=()), out=tmp_path, resume=True)
    assert seen == [[]] and not any(p.exists() for p in stale)


def test_json_files_keep_lists_of_scalars_on_one_line_and_the_same_content(tmp_path):
    import json

    obj = {
        "counts": list(range(364)),
        "flags": "0110",
        "empty": {},
        "none": [],
        "nested": [{"a": [1.5, None, True, "é"]}, [1, 2], [], {"b": {}}],
        "nan": float("nan"),
        "tuple": (1, (2, 3)),
        7: "key made a string",
    }
    path = atomic_write_json(tmp_path / "x.json", obj)
    text = path.read_text(encoding="utf-8")
    expected = json.loads(json.dumps(fileio.to_jsonable(obj)))
    assert json.loads(text) == expected and expected["nan"] is None and expected["7"] == "key made a string"
    lines = text.splitlines()
    assert f'  "counts": {json.dumps(list(range(364)))},' in lines  # 364 numbers, one line
    assert '      "a": [1.5, null, true, "é"]' in lines and "    [1, 2]," in lines
    assert '  "tuple": [' in lines and "    [2, 3]" in lines  # a list holding a list is indented
    assert len(lines) == 22
    # a fully indented file of the same object has a line per number
    assert len(json.dumps(expected, indent=2).splitlines()) > 364
