"""Training: pure losses, recipes, run configs, the resumable loop and the on-disk run driver.

Public API::

    TrainConfig, RunConfig, resolve_run_config, load_config_file, list_configs
    RECIPES (standard, pgd_at, trades, drelu, saf, fast_at)
    train_model (in memory), train_run (one run on disk: checkpoints, log, resume)
"""

from robact_bench.training.config import (
    RunConfig,
    TrainConfig,
    list_configs,
    load_config_file,
    resolve_run_config,
)
from robact_bench.training.loop import train_model
from robact_bench.training.recipes import RECIPES
from robact_bench.training.run import train_run

__all__ = [
    "RECIPES",
    "RunConfig",
    "TrainConfig",
    "list_configs",
    "load_config_file",
    "resolve_run_config",
    "train_model",
    "train_run",
]
