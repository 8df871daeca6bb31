"""Run configuration: frozen dataclasses are the single source of truth.

:class:`TrainConfig` says how a model is trained; :class:`RunConfig` says what is trained on
what (dataset, model spec, training config, name). A YAML file gives a run's values, the chosen
recipe's per-dataset defaults fill what the file leaves out, and command-line flags override
both (as timm's ``train.py`` does)::

    TrainConfig defaults  <  recipe defaults for the dataset  <  config file  <  flags

The resolved config is saved beside every checkpoint (``config.yaml``), and its fingerprint
guards ``--resume`` against continuing a run with different settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from robact_bench.data import DATASETS, dataset_info
from robact_bench.fileio import to_jsonable
from robact_bench.models import ModelSpec
from robact_bench.parsing import one_line, parse_float
from robact_bench.registry import check_kwargs

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "RunConfig",
    "TrainConfig",
    "config_path",
    "list_configs",
    "load_config_file",
    "resolve_run_config",
]

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "plateau", "none")

# Allowed ranges, checked in TrainConfig.__post_init__: (low, high, low inclusive, high inclusive).
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0.0, math.inf, False, True),
    "weight_decay": (0.0, math.inf, True, True),
    "momentum": (0.0, 1.0, True, False),
    "plateau_factor": (0.0, 1.0, False, False),
    "val_fraction": (0.0, 1.0, True, False),
    "eps": (0.0, 1.0, True, True),
    "step_size": (0.0, 1.0, True, True),
    "clean_weight": (0.0, 1.0, True, True),
    "trades_beta": (0.0, math.inf, True, True),
    "drelu_lambda": (0.0, math.inf, True, True),
    "drelu_lr": (0.0, math.inf, False, True),
    "saf_delta": (0.0, 1.0, True, True),
    "saf_fraction": (0.0, 1.0, True, True),
    "saf_mean_sigma": (0.0, math.inf, True, True),
    "saf_nonsense_weight": (0.0, math.inf, True, True),
    "hybrid_a1": (0.0, math.inf, True, True),
    "hybrid_a2": (0.0, math.inf, True, True),
    "hybrid_a3": (0.0, math.inf, True, True),
    "hybrid_p": (1.0, math.inf, False, True),
}
_MIN_INT = {"epochs": 1, "batch_size": 1, "early_stopping_patience": 1}  # other ints: >= 0


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Attributes:
        recipe: Registered recipe (``standard``, ``pgd_at``, ``trades``, ``drelu``, ``saf``, ``fast_at``).
        epochs: Maximum passes over the training data.
        batch_size: Images per step.
        optimizer: ``adamw`` (betas 0.9, 0.999), ``adam`` or ``sgd`` (with ``momentum``).
        lr: Learning rate (the peak for ``onecycle``).
        weight_decay: Weight decay (never applied to biases, norm scales or D-ReLU caps).
        momentum: SGD momentum.
        scheduler: ``onecycle`` (per step; the BReLU paper), ``plateau`` (ReduceLROnPlateau on
            the validation loss, per epoch; the D-ReLU paper) or ``none``.
        plateau_factor: ReduceLROnPlateau's factor.
        plateau_patience: ReduceLROnPlateau's patience (epochs).
        early_stopping_patience: Stop after this many epochs without a lower validation loss
            (``None``: never).
        val_fraction: Share of the training data held out for validation (class-stratified,
            always the same images; never taken from the test set). 0: no validation.
        val_robust: Also report accuracy under PGD (``eps``, ``step_size``, ``steps``) on the
            validation split each epoch.
        eps: L-inf radius of training attacks (and of the validation attack), in [0, 1] units.
        step_size: Attack step size.
        steps: Attack steps (PGD-k, TRADES' inner maximization).
        clean_weight: ``alpha`` of the BReLU paper's eq. 1 (weight of the clean loss in ``pgd_at``).
        trades_beta: TRADES' beta.
        drelu_lambda: Weight of the D-ReLU penalty ``sum m_i^2`` (0 = none; any recipe).
        drelu_lr: Learning rate of the D-ReLU caps (``None`` = ``lr``); a separate rate lets the
            cap move from its initial value in short training.
        saf_delta: Random training: uniform noise in ``[-delta, delta]``.
        saf_fraction: Random training: share of each batch that gets the noise.
        saf_mean_copies: Mean training: noisy copies of the training mean added to each batch.
        saf_mean_sigma: Mean training: standard deviation of their Gaussian noise.
        saf_nonsense_weight: Weight of the low-confidence loss on the mean copies.
        hybrid_a1: Hybrid loss weight of ``-ln(y_l / sum y)``.
        hybrid_a2: Hybrid loss weight of ``(1 - y_l)^p``.
        hybrid_a3: Hybrid loss weight of ``sum_{i != l} y_i^p``.
        hybrid_p: Hybrid loss order ``p`` (the paper: 2).
        seed: Seed of weights, batch order, attacks and stochastic activations.

    """

    recipe: str = "standard"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    scheduler: str = "onecycle"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    early_stopping_patience: int | None = None
    val_fraction: float = 0.1
    val_robust: bool = True
    eps: float = 0.1
    step_size: float = 0.025
    steps: int = 7
    clean_weight: float = 0.5
    trades_beta: float = 6.0
    drelu_lambda: float = 0.0
    drelu_lr: float | None = None
    saf_delta: float = 0.3
    saf_fraction: float = 0.5
    saf_mean_copies: int = 16
    saf_mean_sigma: float = 0.3
    saf_nonsense_weight: float = 1.0
    hybrid_a1: float = 1.0
    hybrid_a2: float = 1.0
    hybrid_a3: float = 0.0
    hybrid_p: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        from robact_bench.training.recipes import RECIPES

        object.__setattr__(self, "recipe", _resolve_name(RECIPES, self.recipe, "recipe"))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}")
        for f in fields(self):
            kind, value = _KINDS[f.name], getattr(self, f.name)
            if value is None and kind.optional:
                continue
            if kind.base is int:
                low = _MIN_INT.get(f.name, 0)
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ValueError(f"{f.name} must be an integer >= {low}; got {value!r}")
            elif kind.base is float:
                _check_range(f.name, value)
            elif kind.base is bool and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false; got {value!r}")
        needs_val = [n for n, on in (("scheduler plateau", self.scheduler == "plateau"),
                                     ("early stopping", self.early_stopping_patience is not None)) if on]  # fmt: skip
        if needs_val and self.val_fraction == 0:
            verb = "needs" if len(needs_val) == 1 else "need"
            raise ValueError(f"{' and '.join(needs_val)} {verb} a validation split: set val_fraction > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "training config") -> TrainConfig:
        """Build from a mapping; unknown keys are an error that lists the allowed ones.

        Float fields may be given as strings such as ``"8/255"``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: 'train' must be a mapping of settings; got {type(data).__name__}")
        check_kwargs(source, "train", cls, data, error=ValueError)
        values = dict(data)
        for name, value in values.items():
            if _KINDS[name].base is float and isinstance(value, str):
                values[name] = parse_float(value, name)
        return cls(**values)


def _check_range(name: str, value: object) -> None:
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))  # ints of any size
    if isinstance(value, bool) or not finite:
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    low, high, low_in, high_in = _RANGES[name]
    ok = (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if ok:
        return
    if name in ("eps", "step_size") and value > 1:
        shown = str(value) if isinstance(value, int) else f"{value:g}"  # {:g} of a huge int overflows
        raise ValueError(
            f"{name} must be in [0, 1] (pixel values are in [0, 1]); got {shown}. For 0..255 units write {shown}/255"
        )
    lo = ("[" if low_in else "(") + f"{low:g}"
    hi = (f"{high:g}" + ("]" if high_in else ")")) if math.isfinite(high) else "inf)"
    raise ValueError(f"{name} must be in {lo}, {hi}; got {value!r}")


@dataclass(frozen=True)
class _Kind:
    base: type
    optional: bool


def _field_kinds() -> dict[str, _Kind]:
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in fields(TrainConfig):
        args = typing.get_args(hints[f.name])
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if args else hints[f.name]
        out[f.name] = _Kind(base, optional)
    return out


_KINDS = _field_kinds()


def train_field_kinds() -> dict[str, tuple[type, bool]]:
    """``{field: (type, optional)}`` of :class:`TrainConfig` (the CLI builds its flags from it)."""
    return {k: (v.base, v.optional) for k, v in _KINDS.items()}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RunConfig:
    """One training run: what is trained, on what, and how.

    Attributes:
        name: File-safe run name (the output folder ``<out>/<name>/seed<k>/``).
        model: The model spec; ``num_classes``, ``in_chans`` and ``img_size`` are filled from
            the dataset.
        train: The training config (its ``seed`` is the run's seed).
        dataset: Registered dataset; training uses its ``train`` split.
        n_train: Use only this many class-balanced training images (``None``: all).
        description: One line: what the run reproduces.

    """

    name: str
    model: ModelSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: str = "mnist5k"
    n_train: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"run name must be letters, digits, '_', '-' or '.'; got {self.name!r}")
        object.__setattr__(self, "dataset", _resolve_name(DATASETS, self.dataset, "dataset"))
        info = dataset_info(self.dataset)
        if self.n_train is not None and (
            not isinstance(self.n_train, int) or isinstance(self.n_train, bool) or self.n_train < 2
        ):
            raise ValueError(f"n_train must be an integer >= 2 or null; got {self.n_train!r}")
        c, h, _ = info.shape
        model = replace(
            self.model,
            num_classes=info.num_classes,
            arch_kwargs={"in_chans": c, "img_size": h, **self.model.arch_kwargs},
        )
        object.__setattr__(self, "model", model)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dictionary (what ``config.yaml`` holds)."""
        return {
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset,
            "n_train": self.n_train,
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
        }

    def fingerprint(self) -> str:
        """SHA-256 of the resolved config (canonical JSON); equal configs, equal fingerprints."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def with_seed(self, seed: int) -> RunConfig:
        """A copy with ``train.seed = seed``."""
        return replace(self, train=replace(self.train, seed=seed))


_TOP_KEYS = ("name", "description", "dataset", "n_train", "model", "train")


def _resolve_name(registry: Any, value: object, what: str) -> str:
    """``registry.resolve(value)``, with a ``ValueError`` (not ``TypeError``) when ``value`` is not a string."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a name (a string); got {one_line(repr(value))}")
    return registry.resolve(value)


def _keys(keys: Any) -> str:
    """Keys of a user's file, of any type, for a one-line message."""
    return ", ".join(sorted(one_line(str(k)) for k in keys))


def resolve_run_config(
    data: Mapping[str, Any],
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "config",
    require_recipe: bool = False,
) -> RunConfig:
    """Resolve a run config: recipe defaults for the dataset < ``data`` < ``overrides``.

    Args:
        data: The file's content: ``name``, ``description``, ``dataset``, ``n_train``, ``model``
            (a :class:`~robact_bench.models.ModelSpec` mapping) and ``train`` (TrainConfig fields).
        overrides: ``{"run": {...}, "model": {...}, "train": {...}}`` from the command line.
        source: Where ``data`` came from, for error messages (the file name).
        require_recipe: ``data``'s ``train`` block or ``overrides`` must name the recipe (a
            config file: a file without its ``train`` block would otherwise train ``standard``
            without a word).

    Raises:
        ValueError: one line naming the source, the key and what is allowed.

    """
    try:
        return _resolve(data, overrides, source, require_recipe)
    except ValueError as exc:  # UnknownNameError included
        msg = one_line(str(exc).strip())
        raise ValueError(msg if msg.startswith(f"{source}:") else f"{source}: {msg}") from None


def _resolve(data: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]] | None, source: str,
             require_recipe: bool = False) -> RunConfig:  # fmt: skip
    from robact_bench.training.recipes import RECIPES

    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a config must be a mapping of keys {', '.join(_TOP_KEYS)}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {_keys(unknown)}; allowed: {', '.join(_TOP_KEYS)}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"overrides must be a mapping of sections run, model, train; got {type(overrides).__name__}")
    bad_sections = [k for k in (overrides or {}) if k not in ("run", "model", "train")]
    if bad_sections:
        raise ValueError(f"override sections must be run, model or train; got {_keys(bad_sections)}")
    for key, value in (overrides or {}).items():
        if not isinstance(value, Mapping):
            raise ValueError(f"overrides[{key!r}] must be a mapping; got {type(value).__name__}")
    over = {k: dict(v) for k, v in (overrides or {}).items()}
    run = {k: v for k, v in data.items() if k not in ("model", "train")}
    run.update(over.get("run", {}))
    model = data.get("model")
    file_train = data.get("train")
    model = {} if model is None else model  # an empty section (`model:`) reads as null
    file_train = {} if file_train is None else file_train
    for key, value in (("model", model), ("train", file_train)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: '{key}' must be a mapping; got {type(value).__name__}")
    model = {**model, **over.get("model", {})}
    dataset = _resolve_name(DATASETS, run.get("dataset", "mnist5k"), "dataset")
    train_over = over.get("train", {})
    if require_recipe and "recipe" not in file_train and "recipe" not in train_over:
        what = "its 'train' block names no recipe" if "train" in data else "it has no 'train' block"
        raise ValueError(
            f"{source}: {what}: add train: {{recipe: NAME}} (standard for natural training; see "
            "`robact-bench list recipes`)"
        )
    recipe = _resolve_name(RECIPES, train_over.get("recipe", file_train.get("recipe", "standard")), "recipe")
    train = TrainConfig.from_dict(
        {**RECIPES.get(recipe).defaults_for(dataset), **file_train, **train_over, "recipe": recipe},
        source=f"{source}: train",
    )
    if "name" not in run:
        raise ValueError(f"{source}: a run needs a 'name' (the output folder)")
    try:
        spec = ModelSpec.from_dict(model)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{source}: model: {exc}") from None
    return RunConfig(
        name=run["name"],
        model=spec,
        train=train,
        dataset=dataset,
        n_train=run.get("n_train"),
        description=str(run.get("description", "")),
    )


_CONFIG_PACKAGE = "robact_bench.configs"


def list_configs(pattern: str = "*") -> list[str]:
    """Names of the configs shipped with the package (``robact-bench list configs``)."""
    import fnmatch

    files = resources.files(_CONFIG_PACKAGE).iterdir()
    names = sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def shipped_yaml(package: str, name_or_path: str | os.PathLike[str]) -> Path | None:
    """An existing file, or the YAML file of that name shipped in ``package``; ``None`` when neither."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = resources.files(package) / f"{p.name.removesuffix('.yaml')}.yaml"
    return Path(str(shipped)) if p.parent == Path(".") and shipped.is_file() else None


def config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A config file's path: an existing file, or the name of a shipped config."""
    found = shipped_yaml(_CONFIG_PACKAGE, name_or_path)
    if found is not None:
        return found
    import difflib

    close = difflib.get_close_matches(str(name_or_path), list_configs(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"no config file {str(name_or_path)!r} and no shipped config of that name{hint} "
                     f"(see `robact-bench list configs`)")  # fmt: skip


def load_config_file(name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Read a YAML config (``yaml.safe_load``: no code runs); return ``(data, source name)``."""
    import yaml

    path = config_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        detail = getattr(exc, "problem", None) or exc  # a ReaderError has no problem, and its text is 2 lines
        raise ValueError(f"{path.name}: not valid YAML{where} ({' '.join(str(detail).split())})") from None
    except RecursionError:
        raise ValueError(f"{path.name}: not valid YAML (nested too deeply)") from None
    except ValueError as exc:  # PyYAML's int() of a number too long to convert
        raise ValueError(f"{path.name}: not valid YAML ({one_line(str(exc))})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: a config must be a mapping of keys {', '.join(_TOP_KEYS)}")
    return data, path.name
