"""Determinism: the same `robact-bench eval` command twice gives byte-identical JSON numbers on the
CPU (timings aside), for a deterministic model and, through its recorded seeds, a random one."""

import json
import os
import subprocess
import sys

import pytest

from robact_bench.models import ModelSpec
from robact_bench.models.checkpoint import save_checkpoint

TIMING = ("seconds", "wall_time")


def _numbers(obj):
    """The JSON document without its timings (wall-clock seconds differ from run to run)."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if not any(t in k for t in TIMING)}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


@pytest.mark.parametrize("act", ["relu", "brelu"])
def test_same_command_same_numbers(tmp_path, act, digits_relu, digits_brelu):
    model = digits_relu if act == "relu" else digits_brelu
    spec = ModelSpec("mlp2", act, arch_kwargs={"img_size": 8, "hidden": [64, 64]})
    save_checkpoint(tmp_path / "run" / "model", model, spec, {"training": {"dataset": "digits", "name": act}})
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    texts = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        cmd = [sys.executable, "-m", "robact_bench", "eval", "--checkpoint", str(tmp_path / "run"), "--suite",
               "adaptive", "--attacks", "apgd-ce", "pgd20", "fgsm", "--sweep-steps", "1", "5", "--sweep-eps", "2",
               "--n-examples", "30", "--eps", "0.1", "--eot-iter", "3", "--passes", "3", "--threads", "1",
               "--no-progress", "--out", str(out)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        texts.append(json.dumps(_numbers(json.loads(out.read_text())), sort_keys=True))
    assert texts[0] == texts[1]
    result = json.loads(texts[0])
    assert result["stochastic"] is (act == "brelu") and result["n_examples"] == 30
    # the seeds that make the random model's numbers repeatable are in the file
    assert result["eval_config"]["seed"] == 0
    assert all("seed" in a["record"] for a in result["attacks"])
