"""The attack registry: one registration adds an attack, and the engine, checks, schema and CLI read it."""

from __future__ import annotations

import pytest
import torch
from synthetic import attack as synthetic_attack

from robact_bench import evaluate
from robact_bench.attacks.backends import (
    BACKENDS,
    AttackRequest,
    LibraryAttack,
    backend_of_record,
    eps_fraction,
    get_attack,
    record_attack,
    recorded_backends,
    register_attack,
    register_backend,
    resolve_params,
)
from robact_bench.attacks.common import AttackOutput, perturbation_norm
from robact_bench.attacks.suites import SUITES, AttackSpec, Suite, SweepSpec
from robact_bench.attacks.torchattacks import TorchattacksAttack, torchattacks_attack
from robact_bench.cli import main
from robact_bench.evaluation import masking
from robact_bench.leaderboard.export import export_entry, to_robustbench
from robact_bench.leaderboard.schema import load_schema, validate_entry, validate_paths


def _points(digits, n):
    _, _, xte, yte = digits
    return xte[:n], yte[:n]


@torch.no_grad()
def _right(model, x, y) -> torch.Tensor:
    return model(x).argmax(1) == y


# -- the toy backend: one registration --------------------------------------------------------------
TOY_IMAGES: list[tuple[torch.Tensor, torch.Tensor]] = []


def _toy_run(req: AttackRequest) -> AttackOutput:
    """Moves every pixel ``eps`` towards mid-grey (a contrast cut): deterministic, no gradient."""
    x = req.x
    x_adv = (x - req.eps * torch.sign(x - 0.5)).clamp(0.0, 1.0)
    TOY_IMAGES.append((x.clone(), x_adv.clone()))
    record = {"backend": "toy-lib", "backend_version": "0.0", "attack": req.attack.name,
              "norm": req.norm, "params": {"eps": req.eps, **req.params}, "seed": req.seed}  # fmt: skip
    return AttackOutput(req.name, x_adv, None, record)


@pytest.fixture
def toy_backend():
    """Backend ``toy`` with its attack ``grey`` (one registration) and suite ``toy_suite``; removed afterwards."""
    TOY_IMAGES.clear()
    grey = LibraryAttack("grey", paper="a toy", norms=("Linf",), blackbox=True)
    register_backend("toy", recorded=("toy-lib",), library="robact_bench", attacks=[grey])(_toy_run)
    SUITES.add("toy_suite", Suite("toy_suite", "the toy attack", "a test", (AttackSpec("grey", "toy", "grey"),)))
    yield
    SUITES.remove("toy_suite")
    BACKENDS.remove("toy")


def test_a_toy_backend_registered_once_runs_in_a_suite_and_exports(toy_backend, digits_relu, digits, tmp_path):
    x, y = _points(digits, 40)
    eps = 0.2
    r = evaluate(digits_relu, x, y, "toy_suite", eps=eps, progress=False, dataset="digits")
    assert [a.name for a in r.attacks] == ["grey"]
    # every chunk's images: inside the eps-ball and [0, 1], and the per-point counts are what they score
    assert len(TOY_IMAGES) == 1
    x_seen, x_adv = TOY_IMAGES[0]
    assert torch.equal(x_seen, x)
    assert float(perturbation_norm(x, x_adv, "Linf").max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    expected = (_right(digits_relu, x, y) & _right(digits_relu, x_adv, y)).long()
    rec = r.attack("grey")
    assert rec.counts == tuple(expected.tolist())
    assert r.robust_counts == rec.counts
    assert r.clean_counts == tuple(_right(digits_relu, x, y).long().tolist())
    assert r.robust_acc == sum(rec.counts) / 40 <= r.clean_acc
    assert sum(rec.counts) < sum(r.clean_counts)  # eps 0.2 of contrast cut breaks some points of this MLP
    assert rec.indicators is None  # black-box: the query recorder is not put in front of it
    assert rec.record["backend"] == "toy-lib" and rec.record["via"] == "model"
    # the check reads its traits: a black-box attack without a white-box one is not judged
    by_name = {c["name"]: c for c in r.masking}
    assert by_name["blackbox_beats_whitebox"]["passed"] is None
    # the schema reads the registry: the toy backend's records validate, and stop validating without it
    path = export_entry(r, tmp_path, name="toy_relu", architecture="MLP")
    assert validate_paths([path]).errors == []
    assert "toy-lib" in load_schema()["$defs"]["attack"]["properties"]["backend"]["enum"]
    entry = to_robustbench(r, architecture="MLP")
    BACKENDS.remove("toy")
    try:
        errors = validate_entry(entry)
        assert errors == ['<entry>: robact.evaluation.per_attack.grey.backend: got "toy-lib"; expected one of '
                          '"adversarial-robustness-toolbox", "art", "pyautoattack", "autoattack", "robact_bench", '
                          '"torchattacks"']
    finally:
        register_backend("toy", recorded=("toy-lib",), library="robact_bench")(_toy_run)  # the fixture removes it


def test_an_attack_of_an_existing_library_is_one_registration(digits_relu, digits):
    bim = TorchattacksAttack("BIM", paper="Kurakin et al., Adversarial Examples in the Physical World, 2017",
                             norms=("Linf",), defaults={"alpha": eps_fraction(0.25), "steps": 10},
                             steps_param="steps")  # fmt: skip
    register_attack("torchattacks", bim)
    suite = Suite("bim_suite", "BIM", "a test", (AttackSpec("bim5", "torchattacks", "BIM", {"steps": 5}),),
                  sweeps=(SweepSpec("steps", AttackSpec("bim", "torchattacks", "BIM"), (1, 5)),))  # fmt: skip
    SUITES.add("bim_suite", suite)
    try:
        x, y = _points(digits, 30)
        direct = torchattacks_attack(digits_relu, x, y, attack="BIM", eps=0.1, steps=5, seed=0)
        assert direct.record["params"] == {"eps": 0.1, "alpha": 0.025, "steps": 5}
        assert float(perturbation_norm(x, direct.x_adv, "Linf").max()) <= 0.1 + 1e-6
        r = evaluate(digits_relu, x, y, "bim_suite", eps=0.1, progress=False)
        rec = r.attack("bim5")
        assert rec.record["attack"] == "BIM" and rec.record["params"] == {"eps": 0.1, "alpha": 0.025, "steps": 5}
        # BIM has no random start: the engine's per-point flags are the direct run's
        expected = _right(digits_relu, x, y) & _right(digits_relu, direct.x_adv, y)
        assert rec.counts == tuple(expected.long().tolist())
        assert r.robust_acc <= rec.accuracy < r.clean_acc
        # a steps sweep sets the registered steps parameter
        (sw,) = r.sweeps
        assert sw["values"] == [1, 5] and sw["accuracy"][1] == rec.accuracy
    finally:
        SUITES.remove("bim_suite")
        BACKENDS.get("torchattacks").remove_attack("BIM")
    with pytest.raises(ValueError, match="unknown torchattacks attack 'BIM'"):
        AttackSpec("bim5", "torchattacks", "BIM")


# -- the existing suites: the traits give what the string matches gave ---------------------------------
# the shipped suites (other tests register suites of their own in the same process)
SHIPPED_SUITES = ("adaptive", "art", "basic", "brelu_paper", "drelu_paper", "rand", "saf_paper", "standard")


def _specs():
    assert set(SHIPPED_SUITES) <= set(SUITES.list())
    for name in SHIPPED_SUITES:
        suite = SUITES.get(name)
        yield from suite.attacks
        yield from (sw.attack for sw in suite.sweeps)


def test_traits_of_every_shipped_spec_equal_the_old_name_rules():
    specs = list(_specs())
    assert len(specs) == 50
    for s in specs:
        assert s.blackbox == (s.attack.lower() == "square"), s
        assert s.unbounded_queries == (s.attack == "CW"), s
        assert s.single_step == (s.attack in ("FGSM", "FGS")), s
        assert s.needs_surrogate == (s.via in ("transfer", "bpda")), s
        assert s.library_attack.loss_maximizing == (s.attack not in ("CW", "fab", "fab-t")), s
    steps = {(s.backend, s.attack, s.steps) for s in specs}
    assert ("torchattacks", "PGD", 20) in steps and ("torchattacks", "PGD", 7) in steps
    assert ("torchattacks", "CW", 50) in steps and ("torchattacks", "FGSM", 1) in steps
    assert ("art", "PGD", 20) in steps and ("art", "Square", 1000) in steps
    assert ("autoattack", "apgd-ce", None) in steps  # the version's n_iter decides


@pytest.mark.parametrize(("backend", "attack", "what"), [
    ("torchattacks", "FGSM", ("FGSM", True, False, None)),
    ("torchattacks", "PGDL2", ("PGD", False, False, "steps")),
    ("pyautoattack", "square", ("square", False, True, "n_queries")),
    ("autoattack", "apgd-t", ("apgd-t", False, False, "n_iter")),
    ("adversarial-robustness-toolbox", "Square", ("Square", False, True, "max_iter")),
    ("art", "PGD", ("PGD", False, False, "max_iter")),
    ("robact_bench", "FGS", ("FGS", True, False, None)),
])  # fmt: skip
def test_a_record_finds_its_registered_attack(backend, attack, what):
    a = record_attack({"backend": backend, "attack": attack})
    assert a is not None and (a.name, a.single_step, a.blackbox, a.steps_param) == what


def test_an_unregistered_record_has_no_traits_and_generic_steps():
    assert record_attack({"backend": "foolbox", "attack": "PGD"}) is None
    assert record_attack({"backend": "torchattacks", "attack": "DeepFool"}) is None
    assert backend_of_record("pyautoattack") == "autoattack" and backend_of_record("foolbox") is None
    rec = synthetic_attack("x", [1, 0], attack_name="DeepFool", steps=30)
    assert masking._steps(rec) == 30 and not masking._is_single_step(rec) and not masking._is_blackbox(rec)
    cw = synthetic_attack("cw", [1, 0], attack_name="CW", steps=50)
    assert masking._steps(cw) == 50 and not masking._maximizes_loss(cw)
    sq = synthetic_attack("sq", [1, 0], attack_name="square", steps=None, backend="pyautoattack")
    assert masking._is_blackbox(sq) and masking._steps(sq) is None


def test_registration_errors_are_one_line():
    with pytest.raises(ValueError, match="records named 'torchattacks' already belong to backend 'torchattacks'"):
        register_backend("ta2", recorded=("torchattacks",), library="x")
    with pytest.raises(ValueError, match="attack backend 'torchattacks' is already registered"):
        register_backend("torchattacks", recorded=("ta3",), library="x")(lambda req: None)
    with pytest.raises(ValueError, match="torchattacks attack 'PGD' is already registered"):
        register_attack("torchattacks", TorchattacksAttack("PGD"))
    with pytest.raises(ValueError, match="norms must be among Linf, L2"):
        LibraryAttack("x", norms=("L1",))
    with pytest.raises(ValueError, match="AttackSpec backend must be one of art, autoattack, saf, torchattacks"):
        AttackSpec("x", "foolbox", "PGD")
    with pytest.raises(ValueError, match="a steps sweep needs an attack with a steps parameter; FGSM has none"):
        SweepSpec("steps", AttackSpec("fgsm", "torchattacks", "FGSM"), (1, 2))
    with pytest.raises(TypeError, match=r"torchattacks PGD does not take \['stepz'\]"):
        resolve_params(get_attack("torchattacks", "PGD"), 0.1, {"stepz": 3}, "torchattacks PGD")
    assert resolve_params(get_attack("art", "PGD"), 0.2, {"max_iter": 5.0}, "ART PGD") == {
        "eps_step": 0.05, "max_iter": 5, "num_random_init": 1, "targeted": False, "verbose": False}


def test_schema_backends_are_the_registry_s():
    enum = load_schema()["$defs"]["attack"]["properties"]["backend"]["enum"]
    assert enum == recorded_backends()
    assert sorted(enum) == ["adversarial-robustness-toolbox", "art", "autoattack", "pyautoattack", "robact_bench",
                            "torchattacks"]  # fmt: skip


def test_list_attacks_and_checks(capsys):
    assert main(["list", "attacks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 14
    assert [line.split()[:2] for line in lines[:3]] == [["art", "PGD"], ["art", "Square"], ["art", "AutoAttack"]]
    assert [line.split()[1] for line in lines if line.startswith("torchattacks ")] == ["FGSM", "PGD", "EOTPGD", "CW"]
    fgsm = next(line for line in lines if line.startswith("torchattacks FGSM "))
    assert fgsm.split()[2] == "single-step,Linf" and fgsm.endswith("Goodfellow et al., Explaining and Harnessing "
                                                                   "Adversarial Examples, ICLR 2015")  # fmt: skip
    square = next(line for line in lines if line.startswith("autoattack   square "))
    assert square.split()[2] == "black-box,steps=n_queries,Linf/L2"
    assert main(["list", "checks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(masking.CHECKS) == 18
    first = lines[0].split()
    assert first[:3] == ["accuracy_not_falling_with_steps", "inflated",
                         "docs/gradient-masking.md#accuracy-not-falling-with-steps"]  # fmt: skip
    naive = next(line for line in lines if line.startswith("naive_overstates "))
    assert naive.split()[1] == "overstated" and naive.endswith(masking.CHECKS.get("naive_overstates").reason)


def test_art_suite_result_exports_and_validates(digits_relu, digits, tmp_path):
    x, y = _points(digits, 20)
    r = evaluate(digits_relu, x, y, "art", eps=0.1, progress=False, dataset="digits")
    path = export_entry(r, tmp_path, name="art_relu", architecture="MLP")
    assert validate_paths([path]).errors == []
    entry = to_robustbench(r, architecture="MLP")
    per = entry["robact"]["evaluation"]["per_attack"]
    assert list(per) == ["art-pgd20", "art-square"]
    for name in per:
        assert per[name]["backend"] == "adversarial-robustness-toolbox" and per[name]["backend_version"] == "1.20.1"
    assert per["art-pgd20"]["params"]["max_iter"] == 20 and per["art-square"]["params"]["max_iter"] == 1000
    assert "autoattack_acc" not in entry and entry["robact"]["evaluation"]["suite"] == "art"
    # the short name "art" (the schema accepted it before) still validates
    per["art-pgd20"]["backend"] = "art"
    assert validate_entry(entry) == []


def test_extending_doc_names_files_tests_and_functions_that_exist():
    import importlib
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "extending.md").read_text()
    paths = set(re.findall(r"`((?:robact_bench|tests|docs|requirements)/[\w/.-]+\.(?:py|md|txt))`", doc))
    assert len(paths) >= 20
    missing = sorted(p for p in paths if not (root / p).is_file())
    assert missing == []
    tests_text = "".join(p.read_text() for p in (root / "tests").glob("test_*.py"))
    named = set(re.findall(r"`(test_\w+)`", doc))
    assert len(named) >= 10
    assert sorted(t for t in named if f"def {t}(" not in tests_text) == []
    symbols = {
        "robact_bench.attacks.backends": ["register_attack", "register_backend", "LibraryAttack", "AttackRequest",
                                          "eps_fraction", "recorded_backends", "BACKENDS"],
        "robact_bench.attacks.torchattacks": ["TorchattacksAttack"],
        "robact_bench.attacks.art": ["ArtAttack"],
        "robact_bench.attacks.autoattack": ["AutoAttackComponent"],
        "robact_bench.attacks.common": ["check_inputs", "check_threat_model", "project", "library_version", "Timer"],
        "robact_bench.attacks.bpda": ["bpda_model"],
        "robact_bench.attacks.suites": ["SUITES", "Suite", "AttackSpec", "SweepSpec"],
        "robact_bench.evaluation.masking": ["_check", "_judge_points", "min_points", "_is_single_step", "_is_blackbox",
                                            "_steps", "_maximizes_loss", "_via_surrogate", "masking_checks", "CHECKS"],
        "robact_bench.activations": ["ACTIVATIONS", "get_activation", "is_stochastic", "swap_activations"],
        "robact_bench.models.registry": ["MODELS"],
        "robact_bench.models.layers": ["make_act", "normalizer"],
        "robact_bench.models": ["create_model", "list_models", "ModelSpec"],
        "robact_bench.data": ["DATASETS", "DatasetInfo", "DatasetFamily", "DatasetNotFoundError", "data_root",
                              "load_dataset", "dataset_info", "list_datasets"],
        "robact_bench.data.families": ["MNIST", "CIFAR"],
        "robact_bench.registry": ["Registry", "UnknownNameError", "check_kwargs"],
        "robact_bench.leaderboard.schema": ["load_schema"],
    }  # fmt: skip
    for module, names in symbols.items():
        mod = importlib.import_module(module)
        for name in names:
            assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", doc), name
            assert hasattr(mod, name), f"{module}.{name}"
    from robact_bench.registry import Registry

    assert callable(Registry.remove) and callable(Registry.register) and callable(Registry.add)
