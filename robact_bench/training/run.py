"""One training run from a :class:`~robact_bench.training.config.RunConfig`, on disk.

``robact-bench train`` calls :func:`train_run` once per config and seed. A run lives in
``<out>/<name>/seed<k>/``:

* ``config.yaml``: the resolved config (written first);
* ``train_state.safetensors``: the complete training state after the last finished epoch
  (``--resume`` continues from it);
* ``history.csv``: the training log, one row per epoch (loss, lr, validation accuracies, caps);
* ``model.safetensors`` + ``model.json``: the trained model and its spec, config and history
  (written last: their presence marks a finished run).

Every file is written to a temporary file and renamed (:mod:`robact_bench.fileio`), so a
kill at any moment leaves each file complete; ``--resume`` first removes the temporary files a
killed session left behind (they are never read).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robact_bench import distributed
from robact_bench.data import balanced_subset, load_dataset, validation_split
from robact_bench.fileio import atomic_write_text, read_json, remove_stale_temps
from robact_bench.models.checkpoint import checkpoint_paths, save_checkpoint
from robact_bench.training.config import RunConfig
from robact_bench.training.loop import train_model
from robact_bench.training.state import state_header

log = logging.getLogger(__name__)

__all__ = ["RunResult", "history_csv", "run_dir", "train_run"]

STATE_FILE = "train_state.safetensors"


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_run` produced.

    Attributes:
        run: The resolved config.
        directory: The run's folder.
        history: One row per epoch.
        train_seconds: Sum of the epochs' training time (validation excluded; over all
            sessions of a resumed run).
        resumed_from: The epoch the run continued after (0: started fresh).
        skipped: The run had already finished; nothing was trained.

    """

    run: RunConfig
    directory: Path
    history: list[dict[str, float]]
    train_seconds: float
    resumed_from: int = 0
    skipped: bool = False


def run_dir(out: str | os.PathLike[str], run: RunConfig) -> Path:
    """``<out>/<name>/seed<seed>``."""
    return Path(out) / run.name / f"seed{run.train.seed}"


def history_csv(history: list[dict[str, float]]) -> str:
    """The training log as CSV text (columns: the union of the rows' keys, in first-seen order)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _load_data(
    run: RunConfig, root: str | os.PathLike[str] | None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
    x, y = load_dataset(run.dataset, "train", root=root)
    if run.n_train is not None:
        keep = balanced_subset(y, run.n_train)
        x, y = x[keep], y[keep]
    if run.train.val_fraction == 0:
        return (x, y), None
    tr, va = validation_split(y, run.train.val_fraction)
    if len(va) == 0:
        raise ValueError(f"val_fraction {run.train.val_fraction} leaves no validation images out of {len(y)}")
    return (x[tr], y[tr]), (x[va], y[va])


def train_run(
    run: RunConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    data_root: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Train one run into ``<out>/<name>/seed<k>/`` (see the module docstring).

    Args:
        run: The resolved config.
        out: Output root.
        resume: Continue an interrupted run from its last finished epoch; a finished run is
            left as it is.
        device: Where to train (``cpu``, ``cuda``, ``cuda:1``...).
        progress: Show progress bars.
        data_root: Folder of on-disk datasets (default ``$ROBACT_DATA`` or ``./data``).

    Raises:
        ValueError: the folder already holds a run and ``resume`` is off, or holds a run with
            another config.

    """
    directory = run_dir(out, run)
    weights, meta_path = checkpoint_paths(directory / "model")
    state_path = directory / STATE_FILE
    if meta_path.is_file():
        if not resume:
            raise ValueError(f"{directory} already holds a finished run: pass --resume to keep it or use another --out")
        meta = read_json(meta_path).get("metadata", {}).get("training", {})
        if meta.get("fingerprint") != run.fingerprint():
            raise ValueError(f"{directory} holds a finished run with a different config; use another --out")
        if distributed.is_main():  # litter of a killed session (never read)
            remove_stale_temps(directory)
        log.info("%s: already finished, skipped", directory)
        return RunResult(run, directory, meta.get("history", []), float(meta.get("train_seconds", 0.0)), skipped=True)
    resumed_from = 0
    if state_path.is_file():
        if not resume:
            raise ValueError(f"{directory} holds an unfinished run: pass --resume to continue it, or use another --out")
        header = state_header(state_path)
        if header["fingerprint"] != run.fingerprint():
            raise ValueError(f"{directory} holds an unfinished run with a different config; use another --out")
        resumed_from = int(header["epoch"])
    writer = distributed.is_main()  # under torchrun every rank trains, rank 0 writes
    if resume and writer:  # temporary files of a killed session: never read, so only litter
        for tmp in remove_stale_temps(directory):
            log.info("removed %s, left by an interrupted write", tmp)

    import yaml

    if writer:
        atomic_write_text(directory / "config.yaml", yaml.safe_dump(run.to_dict(), sort_keys=False))
    train, val = _load_data(run, data_root)
    torch.manual_seed(run.train.seed)
    model = run.model.build(run.dataset).to(device)  # the dataset's normalization
    t0 = time.perf_counter()
    history = train_model(
        model, *train, run.train, val=val, progress=progress, desc=f"{run.name} seed {run.train.seed}",
        state_path=state_path, resume=resume, fingerprint=run.fingerprint(),
        on_epoch_end=lambda hist: atomic_write_text(directory / "history.csv", history_csv(hist)),
    )  # fmt: skip
    train_seconds = sum(row["seconds"] for row in history)
    training: dict[str, Any] = {
        "name": run.name,
        "description": run.description,
        "recipe": run.train.recipe,
        "config": run.to_dict(),
        "fingerprint": run.fingerprint(),
        "dataset": run.dataset,
        "n_train": len(train[1]),
        "n_val": 0 if val is None else len(val[1]),
        "history": history,
        "train_seconds": round(train_seconds, 3),
        "wall_seconds_this_session": round(time.perf_counter() - t0, 3),
        "resumed_from_epoch": resumed_from,
        "device": str(device),
        "world_size": distributed.world_size(),
    }
    if writer:
        atomic_write_text(directory / "history.csv", history_csv(history))
        save_checkpoint(directory / "model", model, run.model, {"training": training})
    log.info("%s: trained in %.1f s -> %s", directory, train_seconds, weights)
    return RunResult(run, directory, history, train_seconds, resumed_from)
