import pytest
import torch
from torch import nn

from robact_bench import ModelSpec, create_model, list_models, with_drelu_head
from robact_bench.activations import BReLU, DReLU, MReLU

EXPECTED = {"mlp2", "shallow_cnn", "lenet5", "lenet_cifar", "resnet18_cifar", "vgg16_cifar"}
SHAPES = {
    "mlp2": (1, 28),
    "shallow_cnn": (1, 28),
    "lenet5": (1, 28),
    "lenet_cifar": (3, 32),
    "resnet18_cifar": (3, 32),
    "vgg16_cifar": (3, 32),
}
# every activation family on every architecture; caps low enough that they receive gradients
ACTS = [("relu", {}), ("brelu", {}), ("drelu", {"m_init": 0.05}), ("mrelu", {}), ("rbf", {})]
SMALL = {"vgg16_cifar": {"hidden": 32}}


def test_registry_lists_the_seed_architectures():
    # the seed papers' architectures, and RobustBench's CIFAR zoo layouts (tests/test_wide_resnets.py)
    assert set(list_models()) == EXPECTED | {"preact_resnet18", "wrn_28_10", "wrn_34_10", "wrn_70_16"}


# the two large CIFAR models are checked with two activation families (time)
CASES = [
    (arch, act, kw)
    for arch in sorted(EXPECTED)
    for act, kw in ACTS
    if arch not in ("resnet18_cifar", "vgg16_cifar") or act in ("relu", "drelu")
]


@pytest.mark.parametrize(("arch", "act", "act_kwargs"), CASES, ids=[f"{a}-{b}" for a, b, _ in CASES])
def test_forward_backward_every_parameter_gets_a_gradient(arch, act, act_kwargs):
    c, s = SHAPES[arch]
    torch.manual_seed(0)
    model = create_model(arch, act_layer=act, num_classes=7, act_kwargs=act_kwargs, **SMALL.get(arch, {}))
    model.train()
    x = torch.rand(4, c, s, s)
    y = model(x)
    assert y.shape == (4, 7)
    assert torch.isfinite(y).all()
    nn.functional.cross_entropy(y, torch.arange(4) % 7).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    caps = [n for n, m in model.named_modules() if isinstance(m, DReLU)]
    # a cap gets a non-zero gradient only where inputs exceed it: deep capped layers may see none
    assert not [n for n in zero if n.rsplit(".", 1)[0] not in caps], f"zero gradient for {zero}"
    if caps:
        assert len([c for c in caps if f"{c}.m" not in zero]) >= 1


def test_act_layer_is_used_everywhere_and_never_hard_coded():
    model = create_model("resnet18_cifar", act_layer="brelu")
    acts = [m for m in model.modules() if isinstance(m, BReLU)]
    assert len(acts) == 17  # stem + 2 per basic block x 8
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    lenet = create_model("lenet5", act_layer=MReLU)  # a class works as well as a name
    assert sum(isinstance(m, MReLU) for m in lenet.modules()) == 3


def test_lenet5_follows_the_symmetric_activation_paper():
    model = create_model("lenet5", act_layer="mrelu", fc_act_layer="relu")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert model.fc[0].out_features == 500 and isinstance(model.fc[1], nn.ReLU)
    assert sum(isinstance(m, MReLU) for m in model.modules()) == 2
    cifar = create_model("lenet_cifar")
    convs = [m for m in cifar.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64] and cifar.fc[0].out_features == 64


def test_resnet18_cifar_stem_and_size():
    model = create_model("resnet18_cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert 11_100_000 < sum(p.numel() for p in model.parameters()) < 11_200_000


def test_model_contract_inputs_in_unit_range_normalized_inside():
    model = create_model("lenet5").eval()
    x = torch.rand(3, 1, 28, 28)
    manual = (x - 0.1307) / 0.3081
    ref = model.features(manual)
    assert torch.allclose(model.features(model.normalize(x)), ref, atol=1e-5)


def test_with_drelu_head_inserts_a_dense_drelu_layer_before_the_output():
    model = create_model("lenet5")
    with_drelu_head(model, width=64, m_init=100.0)
    head = model.classifier
    assert isinstance(head, nn.Sequential)
    assert (head[0].in_features, head[0].out_features) == (500, 64)
    assert isinstance(head[1], DReLU) and head[1].m.shape == (64,) and head[1].m[0].item() == 100.0
    assert (head[2].in_features, head[2].out_features) == (64, 10)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    foreign = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with_drelu_head(foreign)  # no classifier_name: the last nn.Linear is the output layer
    assert isinstance(foreign[3][1], DReLU) and foreign[3][1].m.numel() == 8
    with pytest.raises(ValueError, match=r"not nn\.Linear"):
        with_drelu_head(model)


def test_create_model_errors_are_clear():
    with pytest.raises(KeyError, match=r"did you mean .*'lenet5'"):
        create_model("lenet6")
    with pytest.raises(TypeError, match="architecture 'mlp2' does not take depth"):
        create_model("mlp2", depth=3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("mlp2", num_classes=1)
    with pytest.raises(KeyError, match="unknown activation"):
        create_model("mlp2", act_layer="nope")
    with pytest.raises(ValueError, match="alpha must be"):
        create_model("mlp2", act_layer="vbrelu", act_kwargs={"alpha": 0})


def test_model_spec_round_trip_and_build():
    spec = ModelSpec("LeNet5", "BReLU", {"grad": "expected"}, 10, {"batch_norm": True}, drelu_head=32)
    assert spec.arch == "lenet5" and spec.act == "brelu"
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    model = spec.build()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert isinstance(model.classifier[1], DReLU)
    with pytest.raises(ValueError, match="model spec 'ModelSpec' does not take weights_url"):
        ModelSpec.from_dict({"arch": "mlp2", "weights_url": "x"})
    with pytest.raises(ValueError, match="JSON values"):
        ModelSpec("mlp2", act_kwargs={"generator": torch.Generator()})
