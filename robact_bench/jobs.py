"""Boards as data: a YAML board file says what a leaderboard holds; :func:`run_board` builds it.

``robact-bench run [BOARD ...]`` loads each board (a shipped board's name, see
``robact-bench list boards``, or a path) and runs it. With no argument it runs the *main job*
(:data:`MAIN_JOB`, :func:`main_job_board`): the digits board, every row, one seed, 100 test points,
into ``runs/main/``; ``--full`` runs the published boards (:data:`PUBLISHED_BOARDS`) into ``.``.
A board file holds:

* ``board``, ``description``; ``dataset``, ``threat_model``, ``eps``, ``suite``, ``n_examples``,
  ``seeds``, and ``evaluation`` (further :class:`~robact_bench.evaluation.config.EvalConfig`
  fields, e.g. ``eot_iter``, ``passes``);
* ``publish_weights`` (publish every checkpoint with its entry, see below) and
  ``weights_budget_mb`` (their size limit);
* ``entries``: each with ``name``, ``title``, ``method`` (the paper), and optionally
  ``architecture``, ``link``, ``venue``, ``authors``, ``baseline``, ``reported`` (the paper's own
  number for this model, as RobustBench uses the field; default ``""``), and exactly one source:

  - ``config``: a shipped training config (``robact-bench list configs``) or a YAML path;
  - ``model`` + ``train`` (+ ``n_train``): an inline training config, the same keys as a config file;
  - ``checkpoint``: a submitted checkpoint of ours (a run folder, or the path of its ``model.json``);
  - ``state_dict``: a submitted ``.pt``/``.pth`` state dict, with ``model`` (at least ``arch``
    and ``act``), ``normalization`` (``none`` or ``{mean: [...], std: [...]}``) and optionally
    ``layout`` and ``rename``; it is converted as ``robact-bench convert`` does (read with
    ``torch.load(weights_only=True)``, the architecture from our registry).

  Relative paths are relative to the board file.

A trained entry runs once per seed (``<name>_s<seed>.json``); training goes through
:func:`~robact_bench.training.run.train_run`, the path ``robact-bench train`` takes, into
``<out>/runs/<dataset>/<name>/seed<k>/``. A submitted entry is evaluated once (``<name>.json``).
Each result goes to ``<out>/runs/...`` (``eval.json``) and to the board folder
``<out>/leaderboards/<dataset>/<threat_model>/`` as a RobustBench entry; with
``publish_weights`` the checkpoint and its ``eval.json`` are copied to
``<out>/weights/<dataset>/<threat_model>/<file>/``, and the entry's ``robact.weights`` records the
path and the weights' SHA-256 (as ``model.json`` does). Then the folder is validated and
rendered. Under ``torchrun`` the (entry, seed) units are spread over the ranks (:func:`board_units`,
:func:`run_board`), each computed by one process as in a one-process run.
:func:`recheck_board` redoes the checks and the export from the saved ``eval.json``
files (the published ones when ``runs/`` is gone), with no training and no attack.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.result import EvalResult
from robact_bench.fileio import atomic_write_json, read_json, remove_stale_temps
from robact_bench.models import ModelSpec
from robact_bench.parsing import one_line
from robact_bench.training.config import RunConfig, load_config_file, resolve_run_config, shipped_yaml

log = logging.getLogger(__name__)

__all__ = [
    "MAIN_JOB",
    "PUBLISHED_BOARDS",
    "Board",
    "BoardEntry",
    "MainJob",
    "board_path",
    "board_units",
    "check_data",
    "list_boards",
    "load_board",
    "main_job_board",
    "recheck_board",
    "run_board",
    "summary_rows",
]

#: the shipped boards ``robact-bench run --full`` builds: the published leaderboards
PUBLISHED_BOARDS = ("digits", "mnist5k")


@dataclass(frozen=True)
class MainJob:
    """What ``robact-bench run`` runs with no argument: one shipped board, fewer seeds and points.

    Attributes:
        board: The shipped board (every row of it).
        seeds: The training seeds (in place of the board's).
        n_examples: Test points per model (in place of the board's).
        out: The default output root (``<out>/leaderboards``, ``runs``, ``weights``), kept apart
            from the published ``leaderboards/`` and ``weights/``.

    """

    board: str
    seeds: tuple[int, ...]
    n_examples: int
    out: str


#: the main job: the digits board, every row, seed 0, 100 points per model, into ``runs/main/``
MAIN_JOB = MainJob(board="digits", seeds=(0,), n_examples=100, out="runs/main")

_BOARD_PACKAGE = "robact_bench.boards"
_TOP_KEYS = (
    "board", "description", "dataset", "threat_model", "eps", "suite", "n_examples", "seeds", "evaluation",
    "publish_weights", "weights_budget_mb", "entries",
)  # fmt: skip
_SOURCES = ("config", "train", "checkpoint", "state_dict")
_ENTRY_KEYS = (
    "name", "title", "method", "architecture", "link", "venue", "authors", "baseline", "reported",
    "config", "model", "train", "n_train", "checkpoint", "state_dict", "normalization", "layout", "rename",
)  # fmt: skip
#: what the published table shows as architecture (RobustBench's ``architecture`` field)
_ARCH_TITLES = {
    "lenet5": "LeNet-5",
    "lenet_cifar": "LeNet (CIFAR)",
    "mlp2": "MLP-2",
    "shallow_cnn": "Shallow CNN",
    "resnet18_cifar": "ResNet-18",
    "vgg16_cifar": "VGG-16",
    "preact_resnet18": "PreActResNet-18",
    "wrn_28_10": "WideResNet-28-10",
    "wrn_34_10": "WideResNet-34-10",
    "wrn_70_16": "WideResNet-70-16",
}


@dataclass(frozen=True)
class BoardEntry:
    """One row of a board: what to evaluate, where it comes from, and how the table names it.

    Attributes:
        name: File-safe model name (the JSON files are ``<name>_s<seed>.json``, or ``<name>.json``
            for a submitted checkpoint).
        title: RobustBench's ``name`` field.
        method: The paper the method comes from (title), or the baseline's reference.
        run: The training run (trained entries; its seed is replaced per seed), else ``None``.
        checkpoint: A submitted checkpoint of ours (its ``model.json``), else ``None``.
        state_dict: A submitted ``.pt``/``.pth`` file, else ``None``.
        spec: The model spec of a ``state_dict`` entry.
        normalization: Its input normalization (``"none"`` or ``(mean, std)``).
        layout: Its parameter layout (:data:`robact_bench.models.convert.LAYOUTS`), if not ours.
        rename: Further ``(theirs, ours)`` renames.
        architecture: RobustBench's ``architecture`` (default: from the spec).
        link: RobustBench's ``link``.
        venue: RobustBench's ``venue``.
        authors: RobustBench's ``authors``.
        baseline: A baseline row every table shows.
        reported: The paper's own number for this model, or ``""``.

    """

    name: str
    title: str
    method: str
    run: RunConfig | None = None
    checkpoint: Path | None = None
    state_dict: Path | None = None
    spec: ModelSpec | None = None
    normalization: Any = None
    layout: str | None = None
    rename: tuple[tuple[str, str], ...] = ()
    architecture: str | None = None
    link: str = ""
    venue: str = "robact_bench reproduction"
    authors: str = "robact_bench"
    baseline: bool = False
    reported: str = ""

    @property
    def trained(self) -> bool:
        """The entry is trained by the board (once per seed), not submitted."""
        return self.run is not None

    def file_name(self, seed: int | None) -> str:
        """The JSON file stem (and run folder): ``<name>_s<seed>``, or ``<name>`` when submitted."""
        return f"{self.name}_s{seed}" if self.trained else self.name


@dataclass(frozen=True)
class Board:
    """A leaderboard as data (see the module docstring)."""

    name: str
    dataset: str
    eval_cfg: EvalConfig
    seeds: tuple[int, ...]
    entries: tuple[BoardEntry, ...]
    description: str = ""
    publish_weights: bool = False
    weights_budget_mb: float = 20.0
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def threat_model(self) -> str:
        """``Linf`` or ``L2``."""
        return self.eval_cfg.norm

    def folder(self, out: str | os.PathLike[str] = ".") -> Path:
        """The board's entry folder: ``<out>/leaderboards/<dataset>/<threat_model>``."""
        return Path(out) / "leaderboards" / self.dataset / self.threat_model

    def weights_folder(self, out: str | os.PathLike[str] = ".") -> Path:
        """Where published checkpoints go: ``<out>/weights/<dataset>/<threat_model>``."""
        return Path(out) / "weights" / self.dataset / self.threat_model

    def select(self, models: Sequence[str] | None) -> Board:
        """A copy holding only the entries named in ``models`` (``None``: all)."""
        if models is None:
            return self
        known = [e.name for e in self.entries]
        unknown = sorted(set(models) - set(known))
        if unknown:
            raise ValueError(f"--models: no model {', '.join(unknown)} on board {self.name}; have {', '.join(known)}")
        return replace(self, entries=tuple(e for e in self.entries if e.name in models))

    def with_settings(self, *, seeds: Sequence[int] | None = None, n_examples: int | None = None) -> Board:
        """A copy with other training ``seeds`` and/or another number of test points (``None``: kept)."""
        board = self
        if seeds is not None:
            if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
                raise ValueError(f"seeds must be integers >= 0; got {one_line(repr(seeds))}")
            board = replace(board, seeds=tuple(seeds))
        if n_examples is not None:
            if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
                raise ValueError(f"n_examples must be an integer >= 1; got {one_line(repr(n_examples))}")
            board = replace(board, eval_cfg=replace(board.eval_cfg, n_examples=n_examples))
        return board


def main_job_board(*, quick: bool = False, job: MainJob = MAIN_JOB) -> Board:
    """The main job's board: ``job.board`` with ``job.seeds`` and ``job.n_examples``.

    With ``quick`` it is that board's smoke run (:func:`load_board` with ``quick=True``: its
    first seed, 8 points), as ``--quick`` makes of any board.
    """
    board = load_board(job.board, quick=quick)
    return board if quick else board.with_settings(seeds=job.seeds, n_examples=job.n_examples)


def list_boards() -> list[str]:
    """Names of the boards shipped with the package (``robact-bench list boards``)."""
    files = resources.files(_BOARD_PACKAGE).iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def board_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A board file's path: an existing file, or the name of a shipped board."""
    found = shipped_yaml(_BOARD_PACKAGE, name_or_path)
    if found is not None:
        return found
    raise ValueError(
        f"no board file {one_line(str(name_or_path))!r} and no shipped board of that name "
        f"(shipped: {', '.join(list_boards())})"
    )


def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ValueError(f"{where}: missing '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{where}: '{key}' must be a {names}; got {one_line(repr(value))}")
    return value


def _optional_str(data: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}: '{key}' must be a string; got {one_line(repr(value))}")
    return value


def _normalization(value: Any, where: str) -> Any:
    if value == "none":
        return "none"
    if isinstance(value, Mapping) and set(value) == {"mean", "std"}:
        mean, std = value["mean"], value["std"]
        ok = all(isinstance(v, list) and v and all(isinstance(t, int | float) and not isinstance(t, bool)
                                                    for t in v) for v in (mean, std))  # fmt: skip
        if ok and len(mean) == len(std) and all(math.isfinite(t) for t in mean) and all(s > 0 for s in std):
            return (tuple(float(t) for t in mean), tuple(float(t) for t in std))
    raise ValueError(
        f"{where}: 'normalization' must be none or {{mean: [...], std: [...]}} (one finite number per channel, "
        f"std > 0); got {one_line(repr(value))}"
    )


def _entry(raw: Any, i: int, board: Mapping[str, Any], base: Path, quick: bool) -> BoardEntry:
    where = f"{board.get('_source', 'board')}: entries[{i}]"
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{where}: an entry must be a mapping with name, title, method and one of {', '.join(_SOURCES)}"
        )
    unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_ENTRY_KEYS)}")
    name = _need(raw, "name", str, where)
    where = f"{board.get('_source', 'board')}: entry {name}"
    sources = [k for k in _SOURCES if k in raw]
    if len(sources) != 1:
        raise ValueError(f"{where}: give exactly one of {', '.join(_SOURCES)}; got {', '.join(sources) or 'none'}")
    common: dict[str, Any] = {
        "name": name,
        "title": _need(raw, "title", str, where),
        "method": _need(raw, "method", str, where),
        "architecture": raw.get("architecture"),
        "link": _optional_str(raw, "link", "", where),
        "venue": _optional_str(raw, "venue", "robact_bench reproduction", where),
        "authors": _optional_str(raw, "authors", "robact_bench", where),
        "reported": _optional_str(raw, "reported", "", where),
    }
    if not isinstance(raw.get("baseline", False), bool):
        raise ValueError(f"{where}: 'baseline' must be true or false; got {one_line(repr(raw['baseline']))}")
    common["baseline"] = raw.get("baseline", False)
    source = sources[0]
    submitted_only = ("normalization", "layout", "rename")
    if source != "state_dict" and any(k in raw for k in submitted_only):
        raise ValueError(f"{where}: {', '.join(k for k in submitted_only if k in raw)} belong to a state_dict entry")
    if source in ("config", "train"):
        if source == "config":
            if "model" in raw or "n_train" in raw:
                raise ValueError(f"{where}: a 'config' entry takes its model and n_train from the config file")
            cfg = _need(raw, "config", str, where)
            path = base / cfg if (base / cfg).is_file() else cfg
            data, src = load_config_file(path)
        else:
            data, src = {"model": raw.get("model"), "train": raw.get("train"), "n_train": raw.get("n_train")}, where
        if source == "config" and data.get("dataset", board["dataset"]) != board["dataset"]:
            raise ValueError(f"{where}: the config trains on {data.get('dataset')}, the board is {board['dataset']}")
        data = {**data, "name": name, "dataset": board["dataset"]}
        overrides = {"train": {"epochs": 1}} if quick else None
        run = resolve_run_config(data, overrides=overrides, source=src, require_recipe=True)
        if quick:
            run = replace(run, n_train=1000)
        return BoardEntry(run=run, **common)
    if "n_train" in raw or "train" in raw:
        raise ValueError(f"{where}: a submitted checkpoint is not trained (no 'train' or 'n_train')")
    path = base / _need(raw, source, str, where)
    if source == "checkpoint":
        if "model" in raw:
            raise ValueError(f"{where}: a 'checkpoint' entry takes its model from its model.json")
        meta = path / "model.json" if path.is_dir() else path
        if not meta.is_file():
            raise ValueError(f"{where}: no checkpoint at {path} (give a run folder or its model.json)")
        return BoardEntry(checkpoint=meta, **common)
    model = _need(raw, "model", Mapping, where)
    try:
        spec = ModelSpec.from_dict(dict(model))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: model: {one_line(str(exc))}") from None
    if "normalization" not in raw:
        raise ValueError(f"{where}: a state_dict entry must state its input 'normalization' (none, or mean and std)")
    rename = raw.get("rename", {}) or {}
    if not isinstance(rename, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
        raise ValueError(f"{where}: 'rename' must map their component names to ours; got {one_line(repr(rename))}")
    layout = raw.get("layout")
    if layout is not None and not isinstance(layout, str):
        raise ValueError(f"{where}: 'layout' must be a layout name; got {one_line(repr(layout))}")
    if not path.is_file():
        raise ValueError(f"{where}: no state dict file {path}")
    return BoardEntry(state_dict=path, spec=spec, normalization=_normalization(raw["normalization"], where),
                      layout=layout, rename=tuple(rename.items()), **common)  # fmt: skip


def load_board(name_or_path: str | os.PathLike[str], *, quick: bool = False) -> Board:
    """Read a board file (``yaml.safe_load``: no code runs) and resolve every entry.

    Args:
        name_or_path: A shipped board's name or a YAML path.
        quick: Smoke run: trained entries get 1 epoch on 1,000 images.

    Raises:
        ValueError: one line naming the file, the entry and the key that is wrong.

    """
    import yaml

    path = board_path(name_or_path)
    src = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{src}: not a valid YAML board file ({one_line(str(exc))})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{src}: a board must be a mapping of keys {', '.join(_TOP_KEYS)}")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise ValueError(f"{src}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_KEYS)}")
    name = _need(data, "board", str, src)
    from robact_bench.data import DATASETS

    dataset = DATASETS.resolve(_need(data, "dataset", str, src))
    evaluation = data.get("evaluation") or {}
    if not isinstance(evaluation, Mapping):
        raise ValueError(f"{src}: 'evaluation' must be a mapping of evaluation settings")
    clash = sorted(k for k in evaluation if k in ("suite", "eps", "norm", "n_examples"))
    if clash:
        raise ValueError(f"{src}: give {', '.join(clash)} at the top of the board, not under 'evaluation'")
    eps = _need(data, "eps", (int, float, str), src)
    if isinstance(eps, str):
        import argparse

        from robact_bench.cli import parse_eps

        try:
            eps = parse_eps(eps)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{src}: {exc}") from None
    try:
        eval_cfg = EvalConfig.from_dict({
            **{k: tuple(v) if isinstance(v, list) else v for k, v in evaluation.items()},
            "suite": _need(data, "suite", str, src),
            "eps": float(eps),
            "norm": _need(data, "threat_model", str, src),
            "n_examples": _need(data, "n_examples", int, src),
        })  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{src}: evaluation: {one_line(str(exc))}") from None
    if quick:
        from robact_bench.evaluation.preflight import QUICK_ATTACKS, quick_attacks

        kept = quick_attacks(eval_cfg.suite)
        if not kept:
            raise ValueError(f"{src}: suite {eval_cfg.suite} has none of the attacks --quick runs "
                             f"({', '.join(QUICK_ATTACKS)}): run this board without --quick")  # fmt: skip
        eval_cfg = replace(eval_cfg, n_examples=8, attacks=kept, sweeps=False)
    seeds = _need(data, "seeds", list, src)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"{src}: 'seeds' must be a list of integers >= 0; got {one_line(repr(seeds))}")
    raws = _need(data, "entries", list, src)
    if not raws:
        raise ValueError(f"{src}: 'entries' is empty: a board needs at least one entry")
    ctx = {"_source": src, "dataset": dataset}
    entries = tuple(_entry(raw, i, ctx, path.parent, quick) for i, raw in enumerate(raws))
    dup = sorted({e.name for e in entries if [f.name for f in entries].count(e.name) > 1})
    if dup:
        raise ValueError(f"{src}: entry name(s) {', '.join(dup)} used more than once")
    _check_suite(eval_cfg, entries, dataset, src, quick)
    publish = data.get("publish_weights", False)
    budget = data.get("weights_budget_mb", 20.0)
    if not isinstance(publish, bool):
        raise ValueError(f"{src}: 'publish_weights' must be true or false; got {one_line(repr(publish))}")
    if not isinstance(budget, int | float) or isinstance(budget, bool) or not budget > 0:
        raise ValueError(f"{src}: 'weights_budget_mb' must be a number > 0; got {one_line(repr(budget))}")
    return Board(
        name=name, dataset=dataset, eval_cfg=eval_cfg, seeds=tuple(seeds) if not quick else (seeds[0],),
        entries=entries, description=_optional_str(data, "description", "", src),
        publish_weights=publish and not quick, weights_budget_mb=float(budget), source=str(path), raw=data,
    )  # fmt: skip


def _entry_kinds(entry: BoardEntry) -> set[str]:
    """``{"deterministic"}`` or ``{"random"}`` as the entry's activations declare; both when unknown."""
    from robact_bench.activations import get_activation

    spec = entry.run.model if entry.run is not None else entry.spec
    if spec is None and entry.checkpoint is not None:
        try:
            spec = ModelSpec.from_dict(read_json(entry.checkpoint).get("spec", {}))
        except (ValueError, TypeError, KeyError, OSError, AttributeError):
            spec = None
    if spec is None:
        return {"deterministic", "random"}
    acts = [get_activation(spec.act, **spec.act_kwargs)]
    fc_act = spec.arch_kwargs.get("fc_act_layer")
    if isinstance(fc_act, str):
        acts.append(get_activation(fc_act))
    return {"random" if any(getattr(a, "stochastic", False) for a in acts) else "deterministic"}


def _check_suite(eval_cfg: EvalConfig, entries: Sequence[BoardEntry], dataset: str, src: str, quick: bool) -> None:
    """The board's suite can evaluate every entry and give each a robust accuracy: checked before any training."""
    from robact_bench.data import dataset_info
    from robact_bench.evaluation.preflight import check_runnable

    kinds: set[str] = set()
    for entry in entries:
        try:
            kinds |= _entry_kinds(entry)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{src}: entry {entry.name}: {one_line(str(exc))}") from None
    try:
        check_runnable(eval_cfg, kinds=sorted(kinds), saf_betas=dataset_info(dataset).saf_betas, dataset=dataset)
    except ValueError as exc:
        extra = f" (--quick runs only {', '.join(eval_cfg.attacks or ())} of it)" if quick else ""
        raise ValueError(f"{src}: {one_line(str(exc))}{extra}") from None


def check_data(board: Board) -> None:
    """The board's test split loads and holds its ``n_examples`` points: checked before any training.

    Raises:
        ValueError: too few test points (one line); ``DatasetNotFoundError`` for missing files.

    """
    from robact_bench.data import load_dataset

    _, y = load_dataset(board.dataset, "test")
    n = board.eval_cfg.n_examples
    if n is not None and n > len(y):
        raise ValueError(f"{Path(board.source).name}: n_examples {n}: the test split of {board.dataset} has "
                         f"{len(y)} points")  # fmt: skip


def _arch_title(spec: ModelSpec) -> str:
    title = _ARCH_TITLES.get(spec.arch, spec.arch)
    if spec.drelu_head:
        title += " + D-ReLU head" if spec.drelu_head_act == "drelu" else " + S-ReLU head"
    return title


def _training_record(entry: BoardEntry, run: RunConfig, history: list[dict[str, Any]], seconds: float,
                     n_train: int) -> dict[str, Any]:  # fmt: skip
    return {
        "recipe": run.train.recipe,
        "method": entry.method,
        "config": run.train.to_dict(),
        "run": run.to_dict(),
        "dataset": run.dataset,
        "split": "train",
        "n_train": n_train,
        "history": history,
        "seconds": round(seconds, 2),
    }


def _model(board: Board, entry: BoardEntry, seed: int | None, runs: Path, *, resume: bool, progress: bool
           ) -> tuple[Any, ModelSpec, dict[str, Any], Path]:  # fmt: skip
    """The entry's model (trained for ``seed``, or the submitted one), its spec, training record and checkpoint."""
    from robact_bench.models.checkpoint import load_checkpoint

    if entry.run is not None:
        from robact_bench.training.run import run_dir, train_run

        run = entry.run.with_seed(int(seed))  # type: ignore[arg-type]
        if not resume and run_dir(runs, run).is_dir():  # a fresh run replaces what an earlier one left
            shutil.rmtree(run_dir(runs, run))
        got = train_run(run, runs, resume=resume, progress=progress)
        model, spec, meta = load_checkpoint(run_dir(runs, run) / "model")
        n_train = int(meta.get("training", {}).get("n_train", 0))
        return model, spec, _training_record(entry, run, got.history, got.train_seconds, n_train), run_dir(runs, run)
    folder = runs / entry.name
    if entry.state_dict is not None:
        from robact_bench.models.convert import convert_state_dict

        spec = entry.spec
        assert spec is not None
        from robact_bench.data import dataset_info

        info = dataset_info(board.dataset)
        c, h, _ = info.shape
        spec = replace(
            spec, num_classes=info.num_classes, arch_kwargs={"in_chans": c, "img_size": h, **spec.arch_kwargs}
        )
        convert_state_dict(entry.state_dict, folder, spec, normalization=entry.normalization, dataset=board.dataset,
                           name=entry.name, layout=entry.layout, rename=entry.rename, overwrite=True)  # fmt: skip
        meta_path = folder / "model.json"
    else:
        assert entry.checkpoint is not None
        meta_path = entry.checkpoint
    model, spec, meta = load_checkpoint(meta_path)
    training = dict(meta.get("training", {}))
    training.setdefault("method", entry.method)
    if entry.checkpoint is not None and folder != meta_path.parent:  # keep a copy beside its result
        folder.mkdir(parents=True, exist_ok=True)
        for f in (meta_path, meta_path.with_suffix(".safetensors")):
            shutil.copyfile(f, folder / f"model{f.suffix}")
    return model, spec, training, folder


def _publish_weights(board: Board, file_name: str, run_folder: Path, out: Path) -> dict[str, Any]:
    """Copy the checkpoint and eval.json to the board's weights folder; return ``robact.weights``."""
    from robact_bench.fileio import atomic_write_bytes
    from robact_bench.models.checkpoint import weights_sha256

    dest = board.weights_folder(out) / file_name
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json", "eval.json"):
        atomic_write_bytes(dest / name, (run_folder / name).read_bytes())
    return {
        "path": (dest / "model.safetensors").relative_to(out).as_posix(),
        "sha256": weights_sha256(dest / "model"),
        "eval": (dest / "eval.json").relative_to(out).as_posix(),
    }


def _export(board: Board, entry: BoardEntry, result: EvalResult, spec: ModelSpec, file_name: str,
            weights: dict[str, Any] | None, out: Path) -> None:  # fmt: skip
    from robact_bench.leaderboard.export import to_robustbench, write_entry

    exported = to_robustbench(result, link=entry.link, venue=entry.venue, authors=entry.authors,
                              architecture=entry.architecture or _arch_title(spec), group=entry.name,
                              baseline=entry.baseline, reported=entry.reported, weights=weights)  # fmt: skip
    write_entry(exported, board.folder(out), file_name)


def run_entry(board: Board, entry: BoardEntry, seed: int | None, *, out: str | os.PathLike[str] = ".",
              progress: bool = True, resume: bool = False, quick: bool = False) -> EvalResult:  # fmt: skip
    """Train (or load) one entry, evaluate it, write its ``eval.json`` and its board entry.

    The evaluation saves each finished unit (clean pass, attack, sweep point) in
    ``eval.state.json`` beside ``eval.json``; with ``resume`` a stopped unit continues from it
    (the same numbers, :mod:`robact_bench.evaluation.state`), without it the file is discarded.
    The file is removed once ``eval.json`` is written.
    """
    from robact_bench.data import load_dataset
    from robact_bench.evaluation.engine import run_evaluation

    out = Path(out)
    file_name = entry.file_name(seed)
    model, spec, training, folder = _model(board, entry, seed, out / "runs" / board.dataset, resume=resume,
                                           progress=progress)  # fmt: skip
    x, y = load_dataset(board.dataset, "test")
    state = folder / "eval.state.json"  # finished attacks, so a stopped unit goes on where it stopped
    if not resume:
        state.unlink(missing_ok=True)
    result = run_evaluation(model, x, y, board.eval_cfg, model_name=file_name, title=entry.title,
                            dataset=board.dataset, split="test", spec=spec.to_dict(), training=training,
                            progress=progress, quick=quick, state_path=str(state), resume=resume)  # fmt: skip
    atomic_write_json(folder / "eval.json", result.to_dict())
    state.unlink(missing_ok=True)
    weights = _publish_weights(board, file_name, folder, out) if board.publish_weights else None
    _export(board, entry, result, spec, file_name, weights, out)
    return result


def _check_budget(board: Board, out: Path) -> None:
    folder = board.weights_folder(out)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
    if size > board.weights_budget_mb * 1e6:
        raise ValueError(f"{folder}: published weights take {size / 1e6:.1f} MB, over the board's "
                         f"weights_budget_mb {board.weights_budget_mb:g}")  # fmt: skip
    log.info("%s: published weights %.1f MB (budget %g MB)", folder, size / 1e6, board.weights_budget_mb)


def board_units(board: Board, seeds: Sequence[int] | None = None) -> list[tuple[BoardEntry, int | None]]:
    """The units in board order: a trained entry once per seed (``seeds`` or the board's), a submitted one once."""
    chosen = tuple(seeds) if seeds is not None else board.seeds
    return [(entry, seed) for entry in board.entries for seed in (chosen if entry.trained else (None,))]


def _one_line_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return one_line(text.splitlines()[0]) if text else type(exc).__name__


def run_board(
    board: Board,
    *,
    out: str | os.PathLike[str] = ".",
    progress: bool = True,
    quick: bool = False,
    resume: bool = False,
    seeds: Sequence[int] | None = None,
) -> tuple[list[EvalResult], Path]:
    """Run every entry of ``board`` (trained ones with every seed), then publish its folder.

    Under ``torchrun`` (a joined group of ``W`` processes, :mod:`robact_bench.distributed`) the
    units of :func:`board_units` are dealt round-robin, unit ``i`` to rank ``i mod W``, and each
    rank computes its units alone (:func:`~robact_bench.distributed.alone`), so every unit's files
    are exactly those one process writes. Then every rank reports whether its units succeeded (a
    rank's error is raised on every rank, none is left waiting) and rank 0 alone checks the weights
    budget, validates and renders the folder. ``out`` must be a folder every rank sees.

    Args:
        board: The board (:func:`load_board`).
        out: Output root: ``<out>/leaderboards/``, ``<out>/runs/`` and ``<out>/weights/``.
        progress: Show progress bars (rank 0's only, under torchrun).
        quick: Smoke run (marked in every file).
        resume: Skip a unit whose JSON file is already in the board folder and valid, and
            continue an unfinished training run (a stopped job goes on where it stopped).
        seeds: Override the board's seeds.

    Returns:
        The results this process computed (under torchrun: its own units; gather them with
        :func:`~robact_bench.distributed.gather`) and the board's Markdown table.

    Raises:
        ValueError: a unit failed on another rank (one line naming the rank); a unit's own
            error is raised as it is on the rank that ran it.

    """
    from robact_bench import distributed
    from robact_bench.leaderboard.publish import publish
    from robact_bench.leaderboard.schema import validate_paths

    out = Path(out)
    folder = board.folder(out)
    if resume and distributed.is_main():  # temporary files a killed job left behind (never read or published)
        for f in (folder, folder / "plots", *sorted((out / "runs" / board.dataset).rglob("*"))):
            if f.is_dir():
                remove_stale_temps(f)
    distributed.barrier()  # no rank writes before rank 0 has cleaned up
    world, me = distributed.world_size(), distributed.rank()
    progress = progress and distributed.is_main()
    results = []
    failure: Exception | None = None
    try:
        with distributed.alone():
            for i, (entry, seed) in enumerate(board_units(board, seeds)):
                if i % world != me:
                    continue
                done = folder / f"{entry.file_name(seed)}.json"
                if resume and done.is_file() and validate_paths([done]).ok:
                    log.info("%s exists and is valid: skipped (resume)", done)
                    continue
                log.info("running %s%s%s", entry.name, f" seed {seed}" if seed is not None else "",
                         f" (rank {me} of {world})" if world > 1 else "")  # fmt: skip
                t0 = time.perf_counter()
                results.append(run_entry(board, entry, seed, out=out, progress=progress, resume=resume, quick=quick))
                log.info("%s done in %.1f s", entry.file_name(seed), time.perf_counter() - t0)
    except Exception as exc:  # re-raised below, after every rank has said how its units went
        if world == 1:
            raise
        failure = exc
    statuses = distributed.gather(None if failure is None else _one_line_error(failure))
    if failure is not None:
        raise failure
    failed = [(r, msg) for r, msg in enumerate(statuses) if msg is not None]
    if failed:
        rank_, msg = failed[0]
        raise ValueError(f"board {board.name}: rank {rank_} of {world} failed: {msg}")

    def finish() -> Path:
        if board.publish_weights:
            _check_budget(board, out)
        return publish(folder)[0]

    return results, distributed.on_main(finish)


def recheck_board(board: Board, *, out: str | os.PathLike[str] = ".", seeds: Sequence[int] | None = None) -> Path:
    """Recompute every entry's checks from its saved result and rewrite the board; no training, no attack.

    The checks (:mod:`robact_bench.evaluation.masking`) read only the ``EvalResult``, so after a
    change to a check the board is brought up to date from each entry's ``eval.json``: the one in
    ``runs/`` (written by :func:`run_entry`), else the published one beside its weights. The
    numbers stay those of the evaluation (its ``environment.code_sha256`` says which code made
    them); the checks and the export are redone (``robact.masking.code_sha256`` says which code
    judged them), then the folder is published.

    Raises:
        ValueError: a saved result is missing (one line naming it).

    """
    from robact_bench.evaluation.masking import masking_checks
    from robact_bench.leaderboard.publish import publish
    from robact_bench.models.checkpoint import weights_sha256

    out = Path(out)
    for entry, seed in board_units(board, seeds):
        file_name = entry.file_name(seed)
        published = board.weights_folder(out) / file_name
        run = out / "runs" / board.dataset / entry.name
        candidates = [run / f"seed{seed}" / "eval.json" if seed is not None else run / "eval.json",
                      published / "eval.json"]  # fmt: skip
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ValueError(
                f"{candidates[0]}: no saved result to recheck (run `robact-bench run` for this model first)"
            )
        result = EvalResult.from_dict(read_json(path))
        result = replace(result, masking=tuple(masking_checks(result)))
        weights = None
        if board.publish_weights and (published / "model.safetensors").is_file():
            weights = {"path": (published / "model.safetensors").relative_to(out).as_posix(),
                       "sha256": weights_sha256(published / "model"),
                       "eval": (published / "eval.json").relative_to(out).as_posix()}  # fmt: skip
        _export(board, entry, result, ModelSpec.from_dict(result.model), file_name, weights, out)
        log.info("rechecked %s", file_name)
    return publish(board.folder(out))[0]


def summary_rows(results: Sequence[EvalResult]) -> list[dict[str, Any]]:
    """Compact per-model numbers for printing."""
    return [
        {
            "model": r.model_name,
            "clean": round(100 * r.clean_acc, 2),
            "autoattack": None if r.autoattack_acc is None else round(100 * r.autoattack_acc, 2),
            "robust": round(100 * r.robust_acc, 2) if r.robust_acc is not None else None,
            "n": r.n_examples,
            "seconds": round(r.wall_time_s + float(r.training.get("seconds", 0.0) or 0.0), 1),
        }
        for r in results
    ]
