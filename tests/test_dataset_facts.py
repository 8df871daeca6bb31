"""Dataset facts live on DatasetInfo: the numbers are those the old name and channel rules gave.

The old rules (globs on dataset names in recipes.py and saf.py, ``in_chans == 1 / 3`` in
models/layers.py) are written out below as the reference; every registered dataset must read
the same normalization, beta grid and recipe defaults from its DatasetInfo, so the committed
leaderboards and the shipped configs resolve to what they recorded.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import torch

from robact_bench.data import DATASETS, DatasetFamily, DatasetInfo, dataset_info
from robact_bench.evaluation.saf import SAF_GRIDS, saf_grid_for
from robact_bench.jobs import load_board
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig, list_configs, load_config_file, resolve_run_config
from robact_bench.training.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- the old rules, verbatim

OLD_MNIST_MEAN, OLD_MNIST_STD = (0.1307,), (0.3081,)
OLD_CIFAR_MEAN, OLD_CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
OLD_GRIDS = {
    "mnist": (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50),
    "cifar10": (0.0, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.045, 0.050, 0.075, 0.100, 0.150),
}
OLD_GRID_PATTERNS = (("mnist*", "mnist"), ("digits", "mnist"), ("cifar*", "cifar10"))
_MNIST_ATTACK = {"eps": 0.1, "step_size": 0.025, "steps": 7}
_DRELU = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "plateau", "plateau_factor": 0.5,
          "plateau_patience": 5, "early_stopping_patience": 10, "drelu_lambda": 0.01}  # fmt: skip


def _per_dataset(everywhere, mnist, cifar):
    return {"*": everywhere, "mnist*": mnist, "digits": mnist, "cifar*": cifar}


OLD_RECIPE_TABLES = {
    "standard": {},
    "pgd_at": _per_dataset({"optimizer": "adamw", "scheduler": "onecycle"}, _MNIST_ATTACK,
                           {"eps": 0.03, "step_size": 0.00784, "steps": 7}),
    "trades": _per_dataset({"trades_beta": 6.0}, _MNIST_ATTACK, {"eps": 0.031, "step_size": 0.007, "steps": 10}),
    "drelu": {"*": _DRELU},
    "saf": _per_dataset({}, {"hybrid_a3": 0.0, "saf_delta": 0.3, "saf_mean_sigma": 0.3},
                        {"hybrid_a3": 1.0 / 9.0, "saf_delta": 0.03, "saf_mean_sigma": 0.1}),
    "fast_at": _per_dataset({}, {"eps": 0.1, "step_size": 0.125}, {"eps": 8 / 255, "step_size": 10 / 255}),
}  # fmt: skip


def old_normalization(in_chans):
    if in_chans == 1:
        return OLD_MNIST_MEAN, OLD_MNIST_STD
    if in_chans == 3:
        return OLD_CIFAR_MEAN, OLD_CIFAR_STD
    return (0.5,) * in_chans, (0.5,) * in_chans


def old_grid(name):
    for pattern, grid in OLD_GRID_PATTERNS:
        if fnmatch.fnmatchcase(name.lower(), pattern):
            return OLD_GRIDS[grid]
    return None


def old_defaults(recipe, dataset):
    out = {}
    for pattern, values in OLD_RECIPE_TABLES[recipe].items():
        if fnmatch.fnmatchcase(dataset, pattern):
            out.update(values)
    return out


# ---------------------------------------------------------------- every registered dataset


def test_the_registered_datasets_and_their_families():
    assert {n: dataset_info(n).family.name for n in DATASETS.list()} == {
        "cifar10": "cifar", "cifar100": "cifar", "cifar10_sample": "cifar",
        "digits": "mnist", "mnist": "mnist", "mnist5k": "mnist",
    }  # fmt: skip


@pytest.mark.parametrize("name", DATASETS.list())
def test_facts_equal_what_the_old_name_and_channel_rules_gave(name):
    info = dataset_info(name)
    assert (info.mean, info.std) == old_normalization(info.shape[0])
    assert info.saf_betas == old_grid(name) and saf_grid_for(name) == old_grid(name)
    assert saf_grid_for(name.upper()) == old_grid(name)  # names are case-insensitive, as before
    assert set(RECIPES.list()) == set(OLD_RECIPE_TABLES)
    for recipe in RECIPES.list():
        assert RECIPES.get(recipe).defaults_for(name) == old_defaults(recipe, name), recipe


@pytest.mark.parametrize("name", DATASETS.list())
def test_a_model_built_for_a_dataset_normalizes_as_before(name):
    info = dataset_info(name)
    spec = ModelSpec("mlp2", "relu", num_classes=info.num_classes,
                     arch_kwargs={"in_chans": info.shape[0], "img_size": info.shape[1], "hidden": [4, 4]})  # fmt: skip
    for model in (spec.build(name), spec.build()):  # for the dataset, and without one (the channel default)
        assert model.normalize.mean.flatten().tolist() == pytest.approx(list(old_normalization(info.shape[0])[0]))
        assert model.normalize.std.flatten().tolist() == pytest.approx(list(old_normalization(info.shape[0])[1]))
    own = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [4, 4], "mean": [0.0], "std": [1.0]})
    assert own.build("digits").normalize.mean.flatten().tolist() == [0.0]  # a spec's own values win


def test_recipe_defaults_name_recipes_and_config_fields():
    fields = set(TrainConfig.__dataclass_fields__)
    for name in DATASETS.list():
        for recipe, values in dataset_info(name).family.recipe_defaults.items():
            assert recipe in RECIPES.list() and set(values) <= fields, (name, recipe)
    assert SAF_GRIDS == OLD_GRIDS


def test_a_family_must_fit_the_images_and_is_read_only():
    fam = DatasetFamily("grey", mean=(0.5,), std=(0.25,), recipe_defaults={"pgd_at": {"eps": 0.2}})
    with pytest.raises(ValueError, match="normalizes 1 channel"):
        DatasetInfo("rgb", 10, (3, 8, 8), ("test",), True, "", lambda s, r: None, fam)
    with pytest.raises(ValueError, match="std values must be > 0"):
        DatasetFamily("bad", mean=(0.5,), std=(0.0,))
    with pytest.raises(TypeError):
        fam.recipe_defaults["pgd_at"]["eps"] = 1.0  # type: ignore[index]
    info = DatasetInfo("grey8", 10, (1, 8, 8), ("test",), True, "", lambda s, r: None, fam)
    assert info.recipe_defaults("pgd_at") == {"eps": 0.2} and info.recipe_defaults("trades") == {}
    assert info.saf_betas is None


def test_unknown_datasets_are_errors_not_guesses():
    with pytest.raises(ValueError, match=r"'imagenet': not a registered dataset \(with a grid: cifar10, "):
        saf_grid_for("imagenet")
    with pytest.raises(KeyError, match="unknown dataset 'imagenet'"):
        RECIPES.get("pgd_at").defaults_for("imagenet")


# ---------------------------------------------------------------- what the committed files recorded


@pytest.mark.parametrize("name", list_configs())
def test_every_shipped_config_resolves_to_the_old_numbers(name):
    data, src = load_config_file(name)
    run = resolve_run_config(data, source=src, require_recipe=True)
    file_train = data["train"]
    old = TrainConfig.from_dict({**old_defaults(file_train["recipe"], run.dataset), **file_train})
    assert run.train == old


@pytest.mark.parametrize("board", ["digits", "mnist5k"])
def test_the_committed_leaderboards_record_what_the_boards_resolve_to_now(board):
    from safetensors.torch import load_file

    b = load_board(board)
    folder = ROOT / "leaderboards" / board / "Linf"
    checked = 0
    for entry in b.entries:
        for seed in b.seeds:
            path = folder / f"{entry.file_name(seed)}.json"
            if not path.is_file():
                continue
            recorded = json.loads(path.read_text())["robact"]["training"]["run"]
            run = entry.run.with_seed(seed)
            assert run.to_dict() == recorded, path.name
            weights = ROOT / "weights" / board / "Linf" / entry.file_name(seed) / "model.safetensors"
            if weights.is_file():
                tensors = load_file(str(weights))
                built = run.model.build(run.dataset).normalize
                assert torch.equal(tensors["normalize.mean"], built.mean)
                assert torch.equal(tensors["normalize.std"], built.std)
            checked += 1
    assert checked == len(b.entries) * len(b.seeds)
