"""WRN-28-10, WRN-34-10, WRN-70-16 and PreAct ResNet-18: every activation, and RobustBench's layouts.

``tests/data/robustbench_arch_reference.json`` was made once by running RobustBench's own
architecture classes (``robustbench/model_zoo/architectures/{wide_resnet,dm_wide_resnet,resnet}.py``
at the commit it names) on state dicts built by :func:`reference_state_dict` below: per case the
state-dict keys with shapes and dtypes and the logits on :func:`reference_input`. No weights are
stored; the tests rebuild the same tensors, load them into our architectures the way
``robact-bench convert`` does, and compare the logits.
"""

import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from robact_bench.activations import ACTIVATIONS, BReLU, swap_activations
from robact_bench.cli import main
from robact_bench.models import ModelSpec, create_model, list_models
from robact_bench.models.checkpoint import check_state_dict, load_checkpoint
from robact_bench.models.convert import convert_state_dict
from robact_bench.models.wide_resnet import DMWideResNet, WideResNet

FIXTURE = Path(__file__).parent / "data" / "robustbench_arch_reference.json"
NEW = ("preact_resnet18", "wrn_28_10", "wrn_34_10", "wrn_70_16")
#: per-activation arguments the forward/backward test needs (a D-ReLU cap low enough to be reached)
ACT_KWARGS = {"drelu": {"m_init": 0.05}}


def reference_tensor(key: str, shape, dtype: str) -> torch.Tensor:
    """The fixture's deterministic value of one state-dict entry, from its name and shape only.

    Uniform draws from a generator seeded with ``zlib.crc32(key)``: conv/linear weights with
    variance ``1 / fan_in``, BN scales in [0.8, 1.2), biases and running means in [-0.1, 0.1),
    running variances in [0.5, 1.5) (so eval-mode activations neither vanish nor blow up).
    """
    if dtype == "int64":  # BatchNorm's num_batches_tracked
        return torch.full(tuple(shape), 7, dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    u = torch.rand(tuple(shape), generator=g, dtype=torch.float32)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + u
    if leaf in ("running_mean", "bias"):
        return 0.2 * (u - 0.5)
    if leaf == "weight" and len(shape) == 1:
        return 0.8 + 0.4 * u
    fan_in = math.prod(shape[1:])
    return (2 * u - 1) * math.sqrt(3.0 / fan_in)


def reference_state_dict(keys) -> dict[str, torch.Tensor]:
    """``{key: reference_tensor(key, shape, dtype)}`` for ``[key, shape, dtype]`` rows."""
    return {k: reference_tensor(k, shape, dtype) for k, shape, dtype in keys}


def reference_input() -> torch.Tensor:
    """The fixture's input batch: two 3x32x32 images in [0, 1]."""
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference():
    return json.loads(FIXTURE.read_text())


def _case(reference, name):
    return next(c for c in reference["cases"] if c["name"] == name)


def _ours_without_normalize(model):
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()
            if not k.startswith("normalize.")}  # fmt: skip


def _stated(normalization):
    """The ``mean``/``std`` architecture arguments convert records for a stated normalization."""
    if normalization == "none":
        return {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    return {"mean": normalization[0], "std": normalization[1]}


def _assert_logits(got, case):
    ref = torch.tensor(case["logits"])
    assert ref.shape == (2, 10) and ref.abs().max() > 0.1  # the reference is not degenerate
    assert (ref[0] - ref[1]).abs().max() > 1e-2 and ref.std() > 1e-2
    scale = ref.abs().max().item()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * scale)


def _built_on_meta(arch, **kwargs):
    """The architecture without memory or initialization: for names, shapes and sizes."""
    with torch.device("meta"):
        return create_model(arch, **kwargs)


def _load_like_convert(case, model=None):
    """``convert_state_dict`` without the file: the stated normalization as architecture arguments,
    ``check_state_dict`` (convert's checks, with our ``normalize.*`` set to the stated values) and a
    strict load. Returns the model in eval mode."""
    spec = ModelSpec(case["arch"], case["act"], arch_kwargs={**case["arch_kwargs"], **_stated(case["normalization"])})
    model = spec.build() if model is None else model
    tensors = reference_state_dict(case["keys"])
    assert _ours_without_normalize(model) == {k: [s, d] for k, s, d in case["keys"]}
    assert not {"mean", "std"} & set(tensors)  # RobustBench's DMWideResNet keeps them out: no clash
    tensors.update({f"normalize.{b}": torch.tensor(spec.arch_kwargs[b]).view(1, -1, 1, 1) for b in ("mean", "std")})
    check_state_dict(tensors, model, spec, source=case["name"])
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def test_registered_with_robustbench_sizes_and_defaults():
    assert set(NEW) <= set(list_models())
    sizes = {a: sum(p.numel() for p in _built_on_meta(a).parameters()) for a in NEW}
    assert sizes == {"preact_resnet18": 11_171_146, "wrn_28_10": 36_479_194, "wrn_34_10": 46_160_474,
                     "wrn_70_16": 266_796_506}  # fmt: skip
    wrn = _built_on_meta("wrn_28_10")
    assert isinstance(wrn, WideResNet) and wrn.classifier_name == "fc"
    assert len(wrn.block1.layer) == 4 and not hasattr(wrn, "sub_block1")
    assert len(_built_on_meta("wrn_34_10", sub_block1=True).sub_block1.layer) == 5
    dm = _built_on_meta("wrn_70_16")
    assert isinstance(dm, DMWideResNet) and dm.classifier_name == "logits"
    assert [len(g.block) for g in dm.layer] == [11, 11, 11]
    preact = create_model("preact_resnet18")
    assert preact.classifier_name == "linear" and preact.bn is None and preact.layer1[0].shortcut is None
    assert preact.layer2[0].shortcut is not None and not preact.layer2[0].out_shortcut
    # fresh models normalize with the registry's default; converted ones with what was stated
    assert torch.allclose(preact.normalize.std.flatten(), torch.tensor([0.2470, 0.2435, 0.2616]))
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(depth=30)
    with pytest.raises(TypeError, match="does not take depth"):
        create_model("wrn_28_10", depth=16)


def _forward_backward_every_activation(model, arch):
    """Swap in each registered activation; forward and input gradient on (2, 3, 32, 32).

    The weights are frozen (only the input gradient is asserted: half the backward time);
    ``tests/test_models.py`` checks parameter gradients on the small architectures.
    """
    model.requires_grad_(False)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    done = []
    for act in ACTIVATIONS.list():
        assert swap_activations(model, act, **ACT_KWARGS.get(act, {})) > 0
        model.train()
        xi = x.clone().requires_grad_(True)
        y = model(xi)
        assert y.shape == (2, 10), (arch, act)
        assert torch.isfinite(y).all(), (arch, act)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(y, torch.tensor([3, 7])), xi)
        assert torch.isfinite(grad).all(), (arch, act)
        assert grad.abs().sum() > 0, (arch, act)
        done.append(act)
    assert done == ACTIVATIONS.list() and len(done) >= 13


@pytest.mark.parametrize("arch", ["preact_resnet18", "wrn_28_10", "wrn_34_10"])
def test_forward_backward_every_activation(arch):
    torch.manual_seed(0)
    model = create_model(arch, act_layer="brelu")
    acts = [n for n, m in model.named_modules() if isinstance(m, BReLU)]
    assert len(acts) == {"preact_resnet18": 16, "wrn_28_10": 25, "wrn_34_10": 31}[arch]
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    _forward_backward_every_activation(model, arch)


def test_dm_wide_resnet_every_activation_small():
    """The WRN-70-16 class at depth 16, width 2: the same blocks, every activation, fast."""
    torch.manual_seed(0)
    model = DMWideResNet(depth=16, width=2, act_layer="brelu").to(memory_format=torch.channels_last)
    assert sum(isinstance(m, BReLU) for m in model.modules()) == 2 * 6 + 1
    _forward_backward_every_activation(model, "DMWideResNet-16-2")


@pytest.fixture(scope="module")
def wrn_70_16(reference):
    """One WRN-70-16 (~267M parameters, ~4 s to build on 2 CPU cores), as the Gowal2020 case states it."""
    case = _case(reference, "wrn_70_16")
    spec = ModelSpec("wrn_70_16", case["act"], arch_kwargs=_stated(case["normalization"]))
    return spec.build()


def test_wrn_70_16_act_layer_everywhere(wrn_70_16):
    swap_activations(wrn_70_16, "silu")  # the module's fixture is shared: whatever ran before, silu
    acts = [n for n, m in wrn_70_16.named_modules() if isinstance(m, torch.nn.SiLU)]
    assert len(acts) == 2 * 33 + 1 and acts[-1] == "relu" and acts[0] == "layer.0.block.0.relu_0"
    assert not any(isinstance(m, torch.nn.ReLU) for m in wrn_70_16.modules())


def test_robustbench_wrn_70_16_loads_by_name_and_gives_robustbench_logits(reference, wrn_70_16):
    """Gowal et al.'s DMWideResNet-70-16: Swish, CIFAR-10 statistics inside but not in its state dict."""
    case = _case(reference, "wrn_70_16")
    assert case["act"] == "silu" and case["normalization"][1] == [0.2471, 0.2435, 0.2616]
    swap_activations(wrn_70_16, "silu")
    model = _load_like_convert(case, wrn_70_16)
    with torch.no_grad():
        _assert_logits(model(reference_input()), case)


def test_wrn_70_16_forward_backward_silu(wrn_70_16):
    """The zoo's activation on the full WRN-70-16 (~3 s here); every activation: the slow test below
    (and the same class at depth 16 above)."""
    torch.manual_seed(0)
    wrn_70_16.requires_grad_(False)
    swap_activations(wrn_70_16, "silu")
    wrn_70_16.train()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = wrn_70_16(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    (grad,) = torch.autograd.grad(y.logsumexp(1).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.slow
def test_wrn_70_16_forward_backward_every_activation(wrn_70_16):
    """All registered activations on the full WRN-70-16: ~3 s each on a 2-core CPU."""
    torch.manual_seed(0)
    _forward_backward_every_activation(wrn_70_16, "wrn_70_16")


def test_fixture_records_robustbench_commit(reference):
    assert reference["robustbench_commit"] == "78fcc9e48a07a861268f295a777b975f25155964"
    assert {c["arch"] for c in reference["cases"]} == set(NEW)


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet18_v2", "wrn_28_10"])
def test_robustbench_state_dict_file_converts_and_gives_robustbench_logits(reference, tmp_path, name):
    """A RobustBench-layout .pt through convert_state_dict: RobustBench's names, RobustBench's logits."""
    case = _case(reference, name)
    spec = ModelSpec(case["arch"], case["act"], arch_kwargs=case["arch_kwargs"])
    src = tmp_path / "robustbench.pt"
    torch.save(reference_state_dict(case["keys"]), src)
    norm = case["normalization"] if case["normalization"] == "none" else tuple(case["normalization"])
    res = convert_state_dict(src, tmp_path / "out", spec, normalization=norm, dataset="cifar10")
    assert res.n_tensors == len(case["keys"]) + 2  # + our normalize.mean / normalize.std
    model, got_spec, _ = load_checkpoint(res.metadata_path)
    assert got_spec.arch_kwargs == {**case["arch_kwargs"], **_stated(case["normalization"])}
    assert _ours_without_normalize(model) == {k: [s, d] for k, s, d in case["keys"]}
    with torch.no_grad():
        _assert_logits(model.eval()(reference_input()), case)


def test_robustbench_trades_wrn_34_10_with_sub_block1_gives_robustbench_logits(reference):
    """TRADES' WRN-34-10 (Zhang2019Theoretically) holds an unused ``sub_block1``: it loads, and is unused."""
    case = _case(reference, "wrn_34_10_sub_block1")
    assert case["arch_kwargs"] == {"sub_block1": True} and case["normalization"] == "none"
    assert sum(k.startswith("sub_block1.") for k, _, _ in case["keys"]) == 5 * 12 + 1  # 5 blocks + a shortcut
    model = _load_like_convert(case)
    with torch.no_grad():
        _assert_logits(model(reference_input()), case)


def test_cli_convert_preact_resnet18_robustbench_file(reference, tmp_path, capsys):
    case = _case(reference, "preact_resnet18")
    src = tmp_path / "Andriushchenko2020Understanding.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference_state_dict(case["keys"]).items()}}, src)
    out = tmp_path / "converted"
    code = main(["convert", str(src), "--arch", "preact_resnet18", "--act", "relu", "--dataset", "cifar10",
                 "--normalization", "none", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["tensors"] == len(case["keys"]) + 2 and summary["stripped_prefix"] == "module."
    model, spec, meta = load_checkpoint(out / "model.json")
    assert spec.arch == "preact_resnet18" and meta["converted"]["normalization"] == "none"
    with torch.no_grad():
        _assert_logits(model.eval()(reference_input()), case)
