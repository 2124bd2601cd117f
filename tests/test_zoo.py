"""Registry-driven: every zoo model builds for another class count and input, trains one step, and
has the parameter count its paper or torchvision publishes."""

import pytest
import torch
import torch.nn as nn

import convlab
from convlab import zoo
from convlab.analyze import summary

# a small input for the gradient check, with a non-default channel count where that makes sense
SMALL_INPUT = {
    "lenet": (3, 28, 28), "lenet-modern": (3, 28, 28), "cifar-cnn": (1, 32, 32), "sepnet": (1, 40, 40),
    "vgg-d2l": (3, 64, 64), "mobilenet": (1, 64, 64),
}


def small_input(name):
    e = zoo.get(name)
    if name in SMALL_INPUT:
        return SMALL_INPUT[name]
    if e.family == "vgg" or e.family == "resnet":
        return (1, 64, 64)
    return (1, 32, 32)


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_builds_runs_and_learns(name):
    shape = small_input(name)
    torch.manual_seed(0)
    m = convlab.create_model(name, input_shape=shape, num_classes=7)
    x = torch.randn(2, *shape)
    out = m(x)
    assert out.shape == (2, 7)
    out.float().pow(2).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing
    s = summary(name, shape, num_classes=7)
    assert s.trainable_params == sum(p.numel() for p in m.parameters())
    assert s.output_shape == [1, 7]


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if zoo.get(n).params is not None])
def test_published_parameter_counts(name):
    e = zoo.get(name)
    # sources: torchvision weights metadata (resnet18..152, vgg11..19), He et al. 2016 §4.2 (CIFAR
    # ResNets; plain nets have the same layers), Howard et al. 2017 / Keras (MobileNet trainable),
    # d2l 7.6 (LeNet), seed 004 (cifar-cnn: 448 + 4,640 + 262,272 + 1,290)
    assert summary(name).trainable_params == e.params


def test_resnet18_module_names_match_torchvision():
    keys = set(convlab.create_model("resnet18").state_dict())
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight",
              "fc.weight", "fc.bias"]:
        assert k in keys, k
    assert len([k for k in keys if k.endswith("num_batches_tracked")]) == 20  # torchvision's BN count


def test_d2l_resnet18_on_fashion_mnist_96():
    s = summary("resnet18", (1, 96, 96), num_classes=10)
    stages = {r.name: r.output_shape[1:] for r in s.rows if r.name.startswith("layer") and "." not in r.name}
    assert stages == {"layer1": [64, 24, 24], "layer2": [128, 12, 12], "layer3": [256, 6, 6], "layer4": [512, 3, 3]}


def test_overrides_and_options():
    assert summary("resnet20:shortcut=B").trainable_params == 272_474
    assert summary("cifar-cnn:hidden=256").trainable_params == 448 + 4640 + 2048 * 256 + 256 + 2570
    assert summary("mobilenet:width=0.5").trainable_params < summary("mobilenet").trainable_params
    plain = convlab.create_model("plain20")
    assert not any(type(m).__name__ == "BasicBlock" for m in plain.modules())
    with pytest.raises(convlab.ConvlabError, match="has no option 'depth'"):
        zoo.spec_for("resnet20:depth=3")
    with pytest.raises(convlab.ConvlabError, match="shortcut must be A or B"):
        zoo.spec_for("resnet20:shortcut=C")


def test_unknown_name_gets_close_matches():
    with pytest.raises(convlab.ConvlabError) as info:
        zoo.get("resnet2")
    assert "did you mean" in str(info.value) and "resnet20" in str(info.value) and "convlab zoo" in str(info.value)


def test_list_models_natural_order_and_pattern():
    names = convlab.list_models("resnet*")
    assert names.index("resnet20") < names.index("resnet110")
    assert convlab.list_models("plain*") == ["plain20", "plain32", "plain44", "plain56", "plain110"]


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="twice"):
        zoo.register(zoo.get("lenet"))


def test_option_a_shortcut_pads_channels_with_zeros():
    m = convlab.create_model("resnet20")
    block = m.layer2[0]
    x = torch.randn(1, 16, 32, 32)
    sc = block.downsample(x)
    assert sc.shape == (1, 32, 16, 16)
    assert torch.equal(sc[:, 8:24], x[:, :, ::2, ::2]) and sc[:, :8].abs().sum() == 0
    assert isinstance(m.layer1[0].conv1, nn.Conv2d) and m.layer1[0].conv1.bias is None


def test_lenet_modern_pool_relu_order_is_the_same_function():
    fast = convlab.create_model("lenet-modern")
    d2l = convlab.create_model("lenet-modern:order=relu-pool")
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in d2l.named_parameters()]
    d2l.load_state_dict(fast.state_dict())
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(fast(x), d2l(x))


# ---------------------------------------------------------------------------------------------
# what a MODEL names: resolved once (factory.resolve_model)


@pytest.mark.parametrize("typo, close", [("resnt20", "resnet20"), ("lenet-modret", "lenet-modern"),
                                         ("mobilnet", "mobilenet"), ("plain-56", "plain56")])
def test_a_misspelled_zoo_name_is_matched_against_the_zoo(typo, close, capsys):
    from convlab.cli import main
    from convlab.errors import ZooError

    with pytest.raises(ZooError, match=f"no zoo model '{typo}'.*'{close}'"):
        convlab.summary(typo)
    assert main(["summary", typo]) == 2
    err = capsys.readouterr().err
    assert f"did you mean '{close}'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bare_layer_word_is_still_a_spec_and_a_layer_typo_gets_layer_names():
    from convlab.errors import SpecError

    assert convlab.summary("relu", (1, 2, 2)).output_shape == [1, 1, 2, 2]
    with pytest.raises(SpecError, match="did you mean 'conv'"):
        convlab.summary("cnov", (1, 2, 2))


def test_module_path_typed_on_the_command_line_is_found_in_the_current_folder(tmp_path, monkeypatch, capsys):
    from convlab.cli import main

    (tmp_path / "mymodels_cwd_test.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "mymodels_cwd_test:Net", "--input", "3,10,10", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["output_shape"] == [1, 8, 8, 8]


def test_a_module_path_read_back_from_a_run_is_never_imported(tmp_path, monkeypatch):
    from convlab.errors import UsageError
    from convlab.factory import resolve_model

    (tmp_path / "planted_mod.py").write_text("import pathlib\npathlib.Path('RAN').write_text('x')\nNet = None\n")
    monkeypatch.chdir(tmp_path)
    for model in ("planted_mod:Net", "tempfile:mkdtemp", "secret.txt", "../x.yaml"):
        with pytest.raises(UsageError):
            resolve_model(model, trusted=False)
    assert not (tmp_path / "RAN").exists()
    assert resolve_model("resnet20", trusted=False).family == "resnet-cifar"
    assert resolve_model("conv(8,3) relu", trusted=False).kind == "spec"


def test_module_path_passed_to_convlab_summary_is_found_in_the_current_folder(tmp_path, monkeypatch):
    import sys

    (tmp_path / "mymodels_py_cwd_test.py").write_text(
        "import torch.nn as nn\n"
        "def Net():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    s = convlab.summary("mymodels_py_cwd_test:Net", (3, 6, 6))
    assert s.output_shape == [1, 4, 4, 4] and s.trainable_params == 3 * 4 * 9 + 4
    assert sys.path == path_before  # the folder was on the path for the import only


@pytest.mark.parametrize("name, shape", [("resnet20", None), ("resnet20:shortcut=B", None), ("lenet", (1, 32, 32))])
def test_build_takes_a_zoo_name_as_summary_does(name, shape):
    net = convlab.build(name, shape)
    s = convlab.summary(name, shape)
    assert sum(p.numel() for p in net.parameters()) == s.trainable_params
    want = shape or zoo.get(name.split(":")[0]).input_shape
    assert list(net(torch.zeros(1, *want)).shape) == s.output_shape
