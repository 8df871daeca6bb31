"""The bf16 attack mode: the wrapper, the config, and an evaluation scored in fp32."""

from __future__ import annotations

import pytest
import torch

from robact_bench import create_model, evaluate
from robact_bench.attacks.precision import Bf16Model, bf16_supported, check_precision, with_precision
from robact_bench.evaluation import engine as engine_mod
from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.engine import _chunk_seed

needs_bf16 = pytest.mark.skipif(not bf16_supported("cpu"), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")


def test_bad_precision_is_one_line_error():
    with pytest.raises(ValueError, match=r"^precision must be one of fp32, bf16; got 'fp16'$"):
        EvalConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        with_precision(torch.nn.Identity(), "half")
    assert EvalConfig().precision == "fp32"
    assert EvalConfig.from_dict({"precision": "bf16"}).to_dict()["precision"] == "bf16"


def test_unsupported_device_is_refused(monkeypatch):
    from robact_bench.attacks import precision

    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="needs native bf16") as exc:
        precision.check_precision("bf16", "cpu")
    assert "\n" not in str(exc.value)
    precision.check_precision("fp32", "cpu")  # fp32 runs anywhere


def test_wrapper_returns_float32_close_to_fp32():
    torch.manual_seed(0)
    net = create_model("lenet5", act_layer="relu").eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
    wrapped = Bf16Model(net)
    with torch.no_grad():
        out = wrapped(x)
    assert out.dtype == torch.float32
    diff = float((out - ref).abs().max())
    scale = float(ref.abs().max())
    assert 0 < diff <= 0.05 * scale + 1e-3, (diff, scale)  # bf16 (8-bit mantissa): small but not zero
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(wrapped(xg), ref.argmax(1)).backward()
    assert xg.grad is not None and xg.grad.dtype == torch.float32 and torch.isfinite(xg.grad).all()
    assert with_precision(net, "fp32") is net


def _spy(monkeypatch):
    """Record every scoring call of the engine: the model, images, points, passes, seed name, chunk, counts."""
    calls = []
    original = engine_mod._Engine.counts

    def counts(self, images, sl, passes, seed_name, chunk):
        got = original(self, images, sl, passes, seed_name, chunk)
        calls.append((self.model, self.xs[sl].clone(), self.ys[sl].clone(), images.clone(), passes, seed_name,
                      chunk, got.clone(), self.cfg.seed))  # fmt: skip
        return got

    monkeypatch.setattr(engine_mod._Engine, "counts", counts)
    return calls


@needs_bf16
@pytest.mark.parametrize("which", ["digits_relu", "digits_brelu"])
def test_bf16_evaluation_scores_in_fp32(which, request, digits, monkeypatch):
    model = request.getfixturevalue(which)
    _, _, x, y = digits
    calls = _spy(monkeypatch)
    eps = 0.1
    r = evaluate(model, x, y, "brelu_paper", eps=eps, n_examples=20, attacks=("pgd20",), sweeps=False, eot_iter=2,
                 passes=3, select_passes=3, confirm_passes=3, batch_size=10, precision="bf16",
                 progress=False)  # fmt: skip
    assert r.eval_config["precision"] == "bf16"
    assert r.attack("pgd20").accuracy <= r.clean_acc
    attacked = [c for c in calls if c[5] != "clean" and not c[5].endswith(":clean")]
    assert attacked, "no attacked image was scored"
    for scorer, xs, ys, images, passes, seed_name, chunk, got, seed in calls:
        assert not isinstance(scorer, Bf16Model) and scorer is model  # scoring on the fp32 model itself
        assert images.dtype == torch.float32
        assert float((images - xs).abs().amax()) <= eps + 1e-6 and images.min() >= 0 and images.max() <= 1
        torch.manual_seed(_chunk_seed(seed, seed_name, chunk))  # the same passes, scored again by hand in fp32
        with torch.no_grad():
            again = sum((model(images).argmax(1) == ys).long() for _ in range(passes))
        assert torch.equal(again, got), seed_name


@needs_bf16
def test_bf16_reaches_the_exported_entry(digits_relu, digits):
    from robact_bench.leaderboard.export import to_robustbench
    from robact_bench.leaderboard.schema import validate_entry

    _, _, x, y = digits
    r = evaluate(digits_relu, x, y, "brelu_paper", eps=0.1, n_examples=10, attacks=("pgd20",), sweeps=False,
                 precision="bf16", progress=False, dataset="digits")  # fmt: skip
    entry = to_robustbench(r, architecture="MLP-2")
    assert entry["robact"]["evaluation"]["precision"] == "bf16"
    assert entry["robact"]["evaluation"]["config"]["precision"] == "bf16"
    assert validate_entry(entry) == []
    bad = {**entry, "robact": {**entry["robact"], "evaluation": {**entry["robact"]["evaluation"], "precision": "x"}}}
    assert validate_entry(bad)


def test_check_precision_fp32_anywhere():
    check_precision("fp32", "meta")
