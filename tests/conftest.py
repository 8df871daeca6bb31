"""Shared fixtures: small real data and small seeded models trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robact_bench import load_dataset
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "robustbench_model_info"


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
