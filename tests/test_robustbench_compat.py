"""RobustBench compatibility: every real model_info file validates; mutations and contradictions are rejected.

The fixture ``tests/data/robustbench_model_info.json`` holds every ``model_info/**/*.json`` file of
github.com/RobustBench/robustbench at one commit (MIT license), parsed and keyed by path.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from robact_bench.leaderboard.schema import contradictions, validate_entry, validate_paths

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "data" / "robustbench_model_info.json"
COMMITTED = sorted((HERE.parent / "leaderboards").rglob("*.json"))
CARMON = "model_info/cifar10/Linf/Carmon2019Unlabeled.json"  # clean 89.69, reported 62.5, autoattack 59.53
ALEXNET = "model_info/imagenet/corruptions/AlexNet.json"  # reported null, footnote null, the 3D-corruption fields
BOARDS = {
    "cifar10/Linf": 99,
    "cifar10/L2": 21,
    "cifar10/corruptions": 23,
    "cifar100/Linf": 38,
    "cifar100/corruptions": 13,
    "imagenet/Linf": 30,
    "imagenet/corruptions": 12,
}


@pytest.fixture(scope="module")
def robustbench() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def files(robustbench) -> dict[str, dict]:
    return robustbench["files"]


def _board(path: str) -> str:
    return "/".join(path.split("/")[1:3])


# --- every real RobustBench file ---------------------------------------------------------------------------------


def test_the_fixture_is_every_model_info_file_of_one_robustbench_commit(robustbench, files):
    assert robustbench["source"] == "github.com/RobustBench/robustbench"
    assert robustbench["commit"] == "78fcc9e48a07a861268f295a777b975f25155964"
    assert robustbench["license"] == "MIT"
    assert len(files) == 236
    assert all(p.startswith("model_info/") and p.endswith(".json") for p in files)
    assert Counter(_board(p) for p in files) == BOARDS
    assert sum(BOARDS.values()) == 236


def test_every_robustbench_model_info_file_validates(files, tmp_path):
    assert [line for path, entry in files.items() for line in validate_entry(entry, path)] == []
    # and as `robact-bench leaderboard validate model_info/` reads them: from files, every board
    for path, entry in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
    report = validate_paths([tmp_path / "model_info"])
    assert len(report.files) == 236
    assert (report.errors, report.invalid) == ([], [])
    assert Counter(_board(f.relative_to(tmp_path).as_posix()) for f in report.files) == BOARDS


def test_the_shapes_robustbench_files_take_are_all_in_the_fixture(files):
    """The values that the CIFAR-10 Linf sample did not show (the validator rejected 18 of these 236 files)."""
    keys = Counter(k for e in files.values() for k in e)
    assert keys == {
        "link": 236, "name": 236, "authors": 236, "additional_data": 236, "number_forward_passes": 236,
        "dataset": 236, "venue": 236, "architecture": 236, "eps": 236, "clean_acc": 236, "reported": 236,
        "autoattack_acc": 188, "unreliable": 147, "footnote": 131, "corruptions_acc": 48, "external": 25,
        "corruptions_acc_3d": 12, "corruptions_mce": 12, "corruptions_mce_3d": 12,
    }  # fmt: skip
    assert Counter(json.dumps(e["reported"]) for e in files.values() if e["reported"] in ("", "null", None)) == {
        '""': 20,
        '"null"': 1,
        "null": 1,
    }
    assert sum(e.get("footnote", "") is None for e in files.values()) == 7
    assert sum(e["eps"] is None for e in files.values()) == 39
    assert Counter(e["number_forward_passes"] for e in files.values()) == {1: 225, 2: 6, 6: 4, 3: 1}
    # five CIFAR-100 files say "cifar10": RobustBench's reader never looks at the field, nor do we
    assert sum(p.split("/")[1] != e["dataset"] for p, e in files.items()) == 5


def test_no_robustbench_file_contradicts_itself(files):
    assert {p: contradictions(e) for p, e in files.items() if contradictions(e)} == {}
    with_external = {p: e for p, e in files.items() if "external" in e}
    assert len(with_external) == 25
    assert all(
        float(e["external"]) <= float(e["autoattack_acc"]) <= float(e["clean_acc"]) for e in with_external.values()
    )
    # external equal to AutoAttack's number is no contradiction
    qin = files["model_info/cifar10/Linf/Qin2019Adversarial.json"]
    assert (qin["external"], qin["autoattack_acc"]) == ("52.84", "52.84")


def test_the_cifar10_reference_sample_is_the_fixtures_cifar10(files, reference_dir):
    sample = {f"model_info/{p.relative_to(reference_dir).as_posix()}": json.loads(p.read_text(encoding="utf-8"))
              for p in reference_dir.rglob("*.json")}  # fmt: skip
    assert len(sample) == 143
    assert sample == {p: e for p, e in files.items() if p.startswith("model_info/cifar10/")}


# --- mutated RobustBench files -----------------------------------------------------------------------------------


def _set(key, value):
    def mutate(e):
        e[key] = value

    return mutate


def _delete(key):
    def mutate(e):
        del e[key]

    return mutate


RB_MUTATIONS = {
    "clean accuracy as a number": (CARMON, _set("clean_acc", 89.69), "clean_acc: got 89.69"),
    "clean accuracy above 100": (CARMON, _set("clean_acc", "100.01"), 'clean_acc: got "100.01"'),
    "negative percentage": (CARMON, _set("autoattack_acc", "-1"), 'autoattack_acc: got "-1"'),
    "percentage with a line break": (CARMON, _set("clean_acc", "89.69\n"), 'clean_acc: got "89.69\\n"'),
    "missing clean accuracy": (CARMON, _delete("clean_acc"), "clean_acc: missing (a required field)"),
    "missing reported": (CARMON, _delete("reported"), "reported: missing (a required field)"),
    "reported as a number": (CARMON, _set("reported", 62.5), "reported: got 62.5"),
    "empty external": (CARMON, _set("external", ""), 'external: got ""'),
    "eps with two slashes": (CARMON, _set("eps", "8/255/2"), 'eps: got "8/255/2"'),
    "eps over zero": (CARMON, _set("eps", "8/0"), 'eps: got "8/0"'),
    "eps as a float": (CARMON, _set("eps", 8 / 255), "eps: got 0.03137"),
    "eps with a line break": (CARMON, _set("eps", "8/255\n"), 'eps: got "8/255\\n"'),
    "upper-case dataset": (CARMON, _set("dataset", "CIFAR10"), 'dataset: got "CIFAR10"'),
    "no forward pass": (CARMON, _set("number_forward_passes", 0), "number_forward_passes: 0 is less than the minimum"),
    "unreliable as a string": (CARMON, _set("unreliable", "false"), 'unreliable: got "false"'),
    "unknown field": (CARMON, _set("corruptions_acc_2d", "1.0"), "corruptions_acc_2d: unknown field"),
    "3D accuracy as a number": (ALEXNET, _set("corruptions_acc_3d", 28.47), "corruptions_acc_3d: got 28.47"),
    "negative mCE": (ALEXNET, _set("corruptions_mce", "-5"), 'corruptions_mce: got "-5"'),
    "mCE with a % sign": (ALEXNET, _set("corruptions_mce_3d", "100.0%"), 'corruptions_mce_3d: got "100.0%"'),
    "footnote as a number": (ALEXNET, _set("footnote", 5), "footnote: got 5"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RB_MUTATIONS))
def test_each_mutated_robustbench_file_is_rejected_naming_the_field(files, case):
    path, mutate, expected = RB_MUTATIONS[case]
    entry = copy.deepcopy(files[path])
    assert validate_entry(entry, path) == []
    mutate(entry)
    errors = validate_entry(entry, "e.json")
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"e.json: {expected}"), errors


def test_a_mean_corruption_error_may_exceed_alexnets_100(files):
    entry = dict(files[ALEXNET], corruptions_mce="131.7")
    assert validate_entry(entry) == []


# --- the contradiction rules on RobustBench's files ----------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [("autoattack_acc", "89.70"), ("reported", "90"), ("external", "91.00")])
def test_a_robust_accuracy_above_the_clean_one_is_rejected(files, key, value):
    entry = dict(files[CARMON], **{key: value})
    lines = [f'e.json: {key}: "{value}" is above clean_acc "89.69" (a robust accuracy cannot exceed the clean one: '
             "the threat model holds the clean input)"]  # fmt: skip
    if key == "external":  # and above autoattack_acc 59.53
        lines.append('e.json: external: "91.00" is above autoattack_acc "59.53" (external is the best known robust '
                     "accuracy, at most AutoAttack's)")  # fmt: skip
    assert validate_entry(entry, "e.json") == lines


def test_external_above_autoattack_is_rejected_and_equal_or_below_accepted(files):
    entry = dict(files[CARMON], external="59.54")
    assert validate_entry(entry, "e.json") == [
        'e.json: external: "59.54" is above autoattack_acc "59.53" (external is the best known robust accuracy, '
        "at most AutoAttack's)"
    ]
    for ok in ("59.53", "59.530", "12.00"):
        assert validate_entry(dict(entry, external=ok)) == [], ok


def test_equal_and_empty_accuracies_are_no_contradiction(files):
    carmon = files[CARMON]
    assert validate_entry(dict(carmon, autoattack_acc="89.69", reported="89.690")) == []
    assert validate_entry(dict(carmon, reported="")) == []
    # a corruption accuracy is no worst case over a set holding the clean image: it is not compared
    assert validate_entry(dict(files[ALEXNET], corruptions_acc="60.00", corruptions_acc_3d="57.00")) == []


# --- our entries (with the robact block) -------------------------------------------------------------------------


def _valid_committed(predicate) -> tuple[Path, dict]:
    for path in COMMITTED:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if validate_entry(entry) == [] and predicate(entry):
            return path, entry
    pytest.fail("no committed entry validates and fits the test")


@pytest.fixture(scope="module")
def deterministic() -> dict:
    """A committed deterministic entry with 0 < robust = AutoAttack < clean < 100 and no external."""

    def fits(e):
        ev = e["robact"]["evaluation"]
        return (e["robact"]["track"] == "deterministic" and "external" not in e
                and 0.3 < ev["autoattack_acc"] < ev["clean_acc"] < 1.0 and "dataset" in ev)  # fmt: skip

    return _valid_committed(fits)[1]


@pytest.fixture(scope="module")
def randomized() -> dict:
    """A committed randomized-track entry: autoattack and external above 55%, clean's interval reaching past them."""

    def fits(e):
        ev = e["robact"]["evaluation"]
        return (e["robact"]["track"] == "randomized" and min(float(e["external"]), float(e["autoattack_acc"])) > 55
                and ev["scores"]["clean"]["expected"]["ci95"][1] > 0.6)  # fmt: skip

    return _valid_committed(fits)[1]


def _why_not(entry: dict) -> list[str]:
    return validate_entry(entry, "e.json")


def test_our_entries_keep_the_stricter_types(deterministic):
    assert _why_not(dict(deterministic, reported="")) == []  # what the export writes when the paper gives none
    assert _why_not(dict(deterministic, reported="61.25")) == []
    assert _why_not(dict(deterministic, reported="null")) == [
        'e.json: reported: got "null"; expected the accuracy the paper reported: a percentage string, or "" when it '
        "gave none"
    ]
    assert _why_not(dict(deterministic, reported=None))[0].startswith("e.json: reported: got null; expected")
    assert _why_not(dict(deterministic, footnote=None)) == [
        "e.json: footnote: got null; expected free text shown under the table (may hold HTML)"
    ]
    assert _why_not(dict(deterministic, eps=None))[0].startswith("e.json: eps: got null")
    for key in ("corruptions_acc", "corruptions_acc_3d", "corruptions_mce", "corruptions_mce_3d"):
        assert _why_not(dict(deterministic, **{key: "50.00"})) == [
            f"e.json: {key}: not allowed (not on a robact entry: our threat models are Linf and L2)"
        ]


def test_top_level_fields_that_disagree_with_the_robact_block_are_rejected(deterministic):
    ev = deterministic["robact"]["evaluation"]
    clean, aa = ev["clean_acc"], ev["autoattack_acc"]
    cases = {
        "dataset": ("cifar10", f'dataset: "cifar10" disagrees with robact.evaluation.dataset "{ev["dataset"]}"'),
        "eps": ("0.2", f'eps: "0.2" disagrees with robact.evaluation.eps {ev["eps"]} (exported as "{ev["eps"]}")'),
        "clean_acc": ("99.99", f'clean_acc: "99.99" disagrees with robact.evaluation.clean_acc {clean} '
                               f'(exported as "{100 * clean:.2f}")'),
        "autoattack_acc": ("0.01", f'autoattack_acc: "0.01" disagrees with robact.evaluation.autoattack_acc {aa} '
                                   f'(exported as "{100 * aa:.2f}")'),
        "external": ("0.01", f'external: "0.01" disagrees with robact.evaluation.robust_acc {ev["robust_acc"]} '
                             f'(exported as "{100 * ev["robust_acc"]:.2f}")'),
        "unreliable": (True, "unreliable: true disagrees with robact.masking.unreliable false"),
    }  # fmt: skip
    assert deterministic["robact"]["masking"]["unreliable"] is False
    for key, (value, line) in cases.items():
        errors = _why_not(dict(deterministic, **{key: value}))
        if key == "unreliable":  # an unreliable entry exports its headline as external, too
            assert errors == ["e.json: external: missing; unreliable is true (the headline of an unreliable entry "
                              "is exported as external)", f"e.json: {line}"]  # fmt: skip
        else:
            assert errors == [f"e.json: {line}"], key
    # the same eps written another way, and a percentage with more zeros, are the same numbers
    eps_fraction = {"0.1": "1/10", "0.3": "3/10"}.get(deterministic["eps"])
    if eps_fraction:
        assert _why_not(dict(deterministic, eps=eps_fraction)) == []
    assert _why_not(dict(deterministic, clean_acc=f"{100 * clean:.2f}0")) == []


def test_autoattack_and_external_present_exactly_when_the_block_says(deterministic, randomized):
    ev = deterministic["robact"]["evaluation"]
    aa = ev["autoattack_acc"]
    bad = copy.deepcopy(deterministic)
    del bad["autoattack_acc"]
    assert _why_not(bad) == [
        f'e.json: autoattack_acc: missing; robact.evaluation.autoattack_acc is {aa} (exported as "{100 * aa:.2f}")'
    ]
    bad = copy.deepcopy(deterministic)
    bad["robact"]["evaluation"]["autoattack_acc"] = None
    assert _why_not(bad) == [
        f'e.json: autoattack_acc: "{deterministic["autoattack_acc"]}" but robact.evaluation.autoattack_acc is null '
        "(no AutoAttack component ran)"
    ]
    bad = copy.deepcopy(deterministic)
    bad["robact"]["evaluation"]["robust_acc"] = 0.25
    assert _why_not(bad) == [
        f"e.json: external: missing; robact.evaluation.robust_acc 0.25 is below robact.evaluation.autoattack_acc {aa} "
        "(a headline below AutoAttack's is exported as external)"
    ]
    bad = copy.deepcopy(randomized)
    del bad["external"]
    assert _why_not(bad) == [
        'e.json: external: missing; robact.track is "randomized" (its headline is always exported as external)'
    ]


def test_the_randomized_track_exports_its_passes_and_its_track_follows_the_evaluation(randomized):
    passes = randomized["robact"]["evaluation"]["passes"]
    assert passes > 1 and randomized["number_forward_passes"] == passes
    assert _why_not(dict(randomized, number_forward_passes=1)) == [
        f"e.json: number_forward_passes: 1 disagrees with robact.evaluation.passes {passes} (the randomized track "
        "exports its scoring passes)"
    ]
    bad = copy.deepcopy(randomized)
    bad["robact"]["evaluation"]["stochastic"] = False
    assert _why_not(bad) == [
        'e.json: robact.track: "randomized" disagrees with robact.evaluation.stochastic false (the track is '
        "randomized exactly when the evaluation is stochastic)"
    ]


def test_on_the_randomized_track_robust_above_clean_is_allowed_within_the_noise_of_the_passes(randomized):
    entry = copy.deepcopy(randomized)
    entry["clean_acc"], entry["robact"]["evaluation"]["clean_acc"] = "55.00", 0.55  # below autoattack and external
    upper = entry["robact"]["evaluation"]["scores"]["clean"]["expected"]["ci95"][1]
    assert upper > 0.6 and _why_not(entry) == []  # within clean_acc's 95% interval: noise, not a contradiction
    entry["robact"]["evaluation"]["scores"]["clean"]["expected"]["ci95"][1] = 0.5512
    above = [k for k in ("autoattack_acc", "external", "reported") if entry[k] not in ("", None)]
    assert _why_not(entry) == [
        f'e.json: {k}: "{entry[k]}" is above clean_acc "55.00" beyond the noise of the passes (the 95% interval of '
        'clean_acc ends at "55.12")'
        for k in above
        if float(entry[k]) > 55.12
    ]
    assert {"autoattack_acc", "external"} <= {k for k in above if float(entry[k]) > 55.12}


def test_the_schemas_mirror_of_the_export_formats_is_the_export(deterministic):
    from robact_bench.leaderboard import schema
    from robact_bench.leaderboard.export import format_eps, pct

    fractions = [i / 500 for i in range(501)] + [0.12345, 0.99995, 0.00005, 2 / 3]
    assert [schema._pct(x) for x in fractions] == [pct(x) for x in fractions]
    epsilons = [k / 255 for k in range(1, 256)] + [0.1, 0.3, 0.031, 0.5, 1.0, 2.0, 1e-7, 0.123456789, 3.0]
    assert [schema._eps_string(x) for x in epsilons] == [format_eps(x) for x in epsilons]
    assert format_eps(deterministic["robact"]["evaluation"]["eps"]) == deterministic["eps"]


def test_an_empty_folder_is_still_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"a folder with no \.json files"):
        validate_paths([tmp_path])
