"""The entry JSON Schema and `robact-bench leaderboard validate`: real RobustBench files, ours, and mutations."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from robact_bench.cli import main
from robact_bench.evaluation.config import EvalConfig
from robact_bench.jobs import load_board, run_entry
from robact_bench.leaderboard.schema import load_schema, validate_entry, validate_paths

ROOT = Path(__file__).resolve().parents[1]


def _one_epoch(name: str, cfg: EvalConfig):
    """The shipped digits board with ``cfg`` and no published weights, and its entry ``name`` trained 1 epoch."""
    from dataclasses import replace

    board = replace(load_board("digits"), eval_cfg=cfg, publish_weights=False)
    entry = next(e for e in board.entries if e.name == name)
    return board, replace(entry, run=replace(entry.run, train=replace(entry.run.train, epochs=1)))


@pytest.fixture(scope="module")
def our_entry(tmp_path_factory, digits) -> dict:
    """A real entry: a digits MLP trained for 1 epoch, evaluated with part of the adaptive suite."""
    out = tmp_path_factory.mktemp("entry")
    cfg = EvalConfig(suite="adaptive", eps=0.1, n_examples=20, attacks=("apgd-ce", "pgd20", "fgsm"), sweeps=False)
    board, entry = _one_epoch("MLP2_ReLU_PGDAT", cfg)
    run_entry(board, entry, 1, out=out, progress=False)
    path = out / "leaderboards" / "digits" / "Linf" / "MLP2_ReLU_PGDAT_s1.json"
    return json.loads(path.read_text())


def test_schema_is_a_valid_draft_2020_12_schema():
    import jsonschema

    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_reference_robustbench_file_validates(reference_dir):
    report = validate_paths([reference_dir])
    assert len(report.files) == 143
    assert report.errors == []


def test_every_committed_leaderboard_file_validates():
    report = validate_paths([ROOT / "leaderboards"])
    assert len(report.files) >= 60  # 10 models x 3 seeds per board
    assert report.errors == []


def test_our_export_validates_and_carries_the_block(our_entry):
    assert validate_entry(our_entry) == []
    r = our_entry["robact"]
    assert (r["group"], r["seed"], r["baseline"], r["track"]) == ("MLP2_ReLU_PGDAT", 1, True, "deterministic")
    assert our_entry["number_forward_passes"] == 1
    canonical = json.dumps(r["training"]["config"], sort_keys=True, separators=(",", ":")).encode()
    assert r["training"]["config_hash"] == hashlib.sha256(canonical).hexdigest()[:16]
    assert set(r["evaluation"]["per_attack"]) == {"apgd-ce", "pgd20", "fgsm"}
    assert {c["name"] for c in r["masking"]["checks"]} >= {"zero_input_gradients", "single_step_beats_multi_step"}
    assert our_entry["unreliable"] is r["masking"]["unreliable"]


def _set(path: str, value):
    def mutate(e):
        *parents, last = path.split(".")
        node = e
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value

    return mutate


def _drop(path: str):
    def mutate(e):
        *parents, last = path.split(".")
        node = e
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]

    return mutate


def _delete(key: str):
    def mutate(e):
        del e[key]

    return mutate


MUTATIONS = {
    "percent as number": (_set("clean_acc", 84.92), "clean_acc: got 84.92"),
    "percent with a % sign": (_set("clean_acc", "84.92%"), "clean_acc: got \"84.92%\""),
    "percent above 100": (_set("reported", "101.5"), "reported: got \"101.5\""),
    "missing key": (_delete("name"), "name: missing"),
    "eps as float": (_set("eps", 0.1), "eps: got 0.1"),
    "eps not a number": (_set("eps", "eight"), "eps: got \"eight\""),
    "unknown track": (_set("robact.track", "semi-random"), "robact.track: got \"semi-random\""),
    "bool as string": (_set("additional_data", "false"), "additional_data: got \"false\""),
    "forward passes not an integer": (_set("number_forward_passes", 1.5), "number_forward_passes: got 1.5"),
    "unknown top-level field": (_set("clean_accuracy", "90.00"), "clean_accuracy: unknown field"),
    "unreliable as string": (_set("unreliable", "yes"), "unreliable: got \"yes\""),
    "fraction above 1": (_set("robact.evaluation.per_attack.pgd20.accuracy", 1.5),
                         "robact.evaluation.per_attack.pgd20.accuracy"),
    "deterministic track with 10 passes": (_set("number_forward_passes", 10), "number_forward_passes: got 10"),
    "check verdict as string": (_set("robact.masking.checks.0.passed", "yes"), "robact.masking.checks.0.passed"),
    "empty autoattack accuracy": (_set("autoattack_acc", ""), "autoattack_acc: got \"\""),
    "no scores": (_drop("robact.evaluation.scores"), "robact.evaluation.scores: missing"),
    "headline without the majority rule": (_drop("robact.evaluation.scores.headline.majority"),
                                           "robact.evaluation.scores.headline.majority: missing"),
    "clean without an interval": (_drop("robact.evaluation.scores.clean.expected.ci95"),
                                  "robact.evaluation.scores.clean.expected.ci95: missing"),
    "an attack without its rules": (_drop("robact.evaluation.per_attack.pgd20.scores"),
                                    "robact.evaluation.per_attack.pgd20.scores: missing"),
    "an attack without per-point counts": (_drop("robact.evaluation.per_attack.fgsm.counts"),
                                           "robact.evaluation.per_attack.fgsm.counts: missing"),
    "no per-point data": (_drop("robact.evaluation.points"), "robact.evaluation.points: missing"),
    "a check without its kind": (_drop("robact.masking.checks.0.kind"), "robact.masking.checks.0.kind: missing"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_each_mutation_is_rejected_naming_the_field(our_entry, case):
    mutate, expected = MUTATIONS[case]
    bad = copy.deepcopy(our_entry)
    bad.setdefault("autoattack_acc", "50.00")
    assert validate_entry(bad, "e.json") == [], "the unmutated entry must be valid"
    mutate(bad)
    errors = validate_entry(bad, "e.json")
    assert errors, f"{case}: accepted"
    assert all(line.startswith("e.json: ") and "\n" not in line for line in errors)
    assert any(expected in line for line in errors), errors


@pytest.fixture(scope="module")
def random_entry(tmp_path_factory, digits) -> dict:
    """A real randomized-track entry: a BReLU MLP, EOT over 2 samples, 3 passes."""
    out = tmp_path_factory.mktemp("rentry")
    cfg = EvalConfig(suite="adaptive", eps=0.1, n_examples=20, eot_iter=2, passes=3,
                     attacks=("apgd-ce", "pgd20", "pgd20-noeot"), sweeps=False)  # fmt: skip
    board, entry = _one_epoch("MLP2_BReLU_PGDAT", cfg)
    run_entry(board, entry, 0, out=out, progress=False)
    return json.loads((out / "leaderboards" / "digits" / "Linf" / "MLP2_BReLU_PGDAT_s0.json").read_text())


@pytest.mark.parametrize("what", ["clean", "headline", "autoattack"])
def test_a_random_entry_carries_three_rules_with_intervals_and_each_is_required(random_entry, what):
    assert validate_entry(random_entry) == []
    ev = random_entry["robact"]["evaluation"]
    assert random_entry["robact"]["track"] == "randomized" and ev["passes"] == 3
    for scores in (ev["scores"][what], *(a["scores"] for a in ev["per_attack"].values())):
        assert set(scores) == {"expected", "majority", "all_right"}
        for s in scores.values():
            assert s["ci95"][0] <= s["value"] <= s["ci95"][1]
    for rule in ("expected", "majority", "all_right"):
        bad = copy.deepcopy(random_entry)
        del bad["robact"]["evaluation"]["scores"][what][rule]
        assert any(f"robact.evaluation.scores.{what}.{rule}: missing" in line for line in validate_entry(bad)), rule
    bad = copy.deepcopy(random_entry)
    del bad["robact"]["evaluation"]["per_attack"]["pgd20"]["scores"]["all_right"]
    assert validate_entry(bad), "an attack without the all-passes-right rule must be rejected"


def test_write_entry_refuses_an_invalid_entry(our_entry, tmp_path):
    from robact_bench.leaderboard.export import write_entry

    bad = copy.deepcopy(our_entry)
    bad["clean_acc"] = 0.9
    with pytest.raises(ValueError, match="clean_acc"):
        write_entry(bad, tmp_path, "bad")
    assert list(tmp_path.iterdir()) == []


def test_cli_validate(our_entry, tmp_path, capsys):
    good = tmp_path / "good" / "Model_s0.json"
    good.parent.mkdir()
    good.write_text(json.dumps(our_entry))
    assert main(["leaderboard", "validate", str(good.parent)]) == 0
    assert "1 files checked: 1 valid, 0 invalid" in capsys.readouterr().out

    bad = tmp_path / "bad.json"
    e = copy.deepcopy(our_entry)
    e["eps"] = 0.1
    bad.write_text(json.dumps(e))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["leaderboard", "validate", str(good), str(bad), str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: eps: got 0.1; expected" in out[0] or any(line.startswith(f"{bad}: eps: got 0.1") for line in out)
    assert any(line.startswith(f"{broken}: not valid JSON (line 1, column 2") for line in out)
    assert out[-1] == "3 files checked: 1 valid, 2 invalid"


def test_cli_validate_missing_path_is_a_one_line_error(tmp_path, capsys):
    assert main(["leaderboard", "validate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or directory" in err[0]


def test_cli_validate_a_folder_without_entries_is_an_error(tmp_path, capsys):
    """Checking nothing must not read as "all valid": an empty folder (or one with no .json) exits 2."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# no entries here\n")
    for folder in ("empty", "notes"):
        assert main(["leaderboard", "validate", str(tmp_path / folder)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [
            f"robact-bench: error: {tmp_path / folder}: a folder with no .json files "
            "(give leaderboard JSON files or folders holding them)"
        ]
