"""Shared fixtures: small real data and small seeded models trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from robact_bench import load_dataset
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N (tox -e test): one thread per worker and per child process
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "robustbench_model_info"

try:  # property-based tests (tests/test_properties.py): reproducible in CI
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("robact", derandomize=True, deadline=None, database=None, print_blob=False)
    _hypothesis_settings.load_profile("robact")
except ImportError:  # hypothesis is in requirements/test.txt; without it test_properties.py is skipped
    pass


def pytest_collection_modifyitems(session, config, items):
    """Tests marked ``long`` first: under ``pytest -n 2`` (tox -e test) each starts at once, beside the rest."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line: how many generated inputs each property target was fed (counted in the test bodies)."""
    import sys

    module = next((m for name, m in sys.modules.items() if name.endswith("test_properties")
                   and hasattr(m, "INPUTS_TRIED")), None)  # fmt: skip
    if module is None or not any(module.INPUTS_TRIED.values()):
        return
    counts = ", ".join(f"{target} {n}" for target, n in module.INPUTS_TRIED.items())
    terminalreporter.write_line(f"property inputs tried: {counts} ({module.TRACEBACKS['count']} tracebacks)")


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's real 8x8 digits: (x_train, y_train, x_test, y_test)."""
    xtr, ytr = load_dataset("digits", "train")
    xte, yte = load_dataset("digits", "test")
    return xtr, ytr, xte, yte


def _train(spec: ModelSpec, data, **cfg) -> torch.nn.Module:
    xtr, ytr, _, _ = data
    torch.manual_seed(0)
    model = spec.build()
    train_model(model, xtr, ytr, TrainConfig(**cfg), progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def digits_relu(digits):
    """A naturally trained ReLU MLP on digits (deterministic)."""
    spec = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [64, 64]})
    return _train(spec, digits, recipe="standard", epochs=15, lr=3e-3)


@pytest.fixture(scope="session")
def digits_brelu(digits):
    """A naturally trained BReLU MLP on digits (random in eval())."""
    spec = ModelSpec("mlp2", "brelu", arch_kwargs={"img_size": 8, "hidden": [64, 64]})
    return _train(spec, digits, recipe="standard", epochs=15, lr=3e-3)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The 143 real RobustBench CIFAR-10 entries (skips where the folder is absent)."""
    if not REFERENCE.is_dir():
        pytest.skip(f"RobustBench reference files not found at {REFERENCE}")
    return REFERENCE
