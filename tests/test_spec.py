"""Spec language and builder: grammar rows, round trips, errors, and PyTorch as the oracle."""

import itertools
import json
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn as nn
from hypothesis import assume, event, given, strategies as st

from convlab import build, parse
from convlab.arith import conv_out
from convlab.errors import ConvlabError, ShapeError, SpecError
from convlab.plan import _proj_stride, plan
from strategies import chains
from convlab.spec import (BN, FC, GAP, Act, AvgPool, Bottleneck, Conv, Dropout, DWConv, Flatten, MaxPool, Res,
                          Residual, SepConv, Stage)

SEED_004 = "conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(128) relu fc(10)"


def nparams(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- grammar table, one test per row


@pytest.mark.parametrize("text, expected", [
    ("conv(16,3)", Conv(16, 3)),
    ("conv(16, 3x5, s=2, p=same, d=2, groups=4, bias=false)", Conv(16, (3, 5), 2, "same", 2, 4, False)),
    ("conv(out=8, k=3, padding=1)", Conv(8, 3, 1, 1)),
    ("dwconv(3, 2, 1, mult=2)", DWConv(3, 2, 1, 2)),
    ("sepconv(64, 3, p=1, dw_bias=true)", SepConv(64, 3, 1, 1, True)),
    ("bn", BN()),
    ("relu", Act("relu")), ("sigmoid", Act("sigmoid")), ("tanh", Act("tanh")), ("gelu", Act("gelu")),
    ("silu", Act("silu")),
    ("maxpool(2)", MaxPool(2)), ("maxpool(3, 2, 1)", MaxPool(3, 2, 1)), ("avgpool(2, s=1)", AvgPool(2, 1)),
    ("gap", GAP()), ("flatten", Flatten()),
    ("fc(10)", FC(10)), ("linear(10, bias=false)", FC(10, False)), ("fc(128, in=2048)", FC(128, in_=2048)),
    ("dropout(0.25)", Dropout(0.25)), ("dropout", Dropout(0.5)),
    ("res(32, s=2, shortcut=A)", Res(32, 2, "A")), ("res(16)", Res(16, 1, "B")),
    ("bottleneck(64, 2)", Bottleneck(64, 2)),
    ("residual[conv(8,3,p=1) bn]", Residual(False, (Conv(8, 3, 1, 1), BN()))),
    ("residual(proj)[conv(8,3,s=2,p=1)]", Residual(True, (Conv(8, 3, 2, 1),))),
    ("[res(16) res(16)]", Stage(body=(Res(16), Res(16)))),
])
def test_vocabulary_row(text, expected):
    spec = parse(text)
    assert spec.layers == (expected,)
    assert parse(spec.to_text()) == spec


@pytest.mark.parametrize("text", [
    "conv(8,3) -> relu -> maxpool(2)", "conv(8,3) → relu → maxpool(2)", "conv(8,3), relu, maxpool(2)",
    "conv(8,3) relu maxpool(2)", "conv(8,3)\n relu  # comment\n maxpool(2)",
])
def test_separators(text):
    assert parse(text).layers == (Conv(8, 3), Act("relu"), MaxPool(2))


def test_repeats_on_layers_and_groups():
    assert parse("relu x3").layers == (Act("relu"),) * 3
    assert parse("conv(8,3)x2").layers == (Conv(8, 3),) * 2
    assert parse("(conv(8,3) relu)×2").layers == (Conv(8, 3), Act("relu")) * 2
    assert parse("(conv(8,3) relu) x 2").layers == (Conv(8, 3), Act("relu")) * 2
    assert parse("[res(8)]x2").layers == (Stage(body=(Res(8),)),) * 2


def test_input_layer():
    spec = parse("input(1,28,28) conv(6,5,p=2)")
    assert spec.input_shape == (1, 28, 28) and spec.layers == (Conv(6, 5, 1, 2),)
    assert build(spec)(torch.zeros(1, 1, 28, 28)).shape == (1, 6, 28, 28)


def test_yaml_and_json_forms(tmp_path):
    yaml_text = """
input: ignored-by-layers-key
layers:
  - conv: {out: 16, k: 3, p: 1}
  - relu
  - maxpool: 2
  - res: [32, 2]
  - residual: {proj: true, body: [{conv: {out: 64, k: 3, s: 2, p: 1}}, bn]}
  - stage: [{res: {out: 64, x: 2}}]
  - gap
  - flatten
  - fc: [10]
"""
    p = tmp_path / "net.yaml"
    p.write_text(yaml_text)
    spec = parse(p)
    text = ("conv(16,3,p=1) relu maxpool(2) res(32,s=2) residual(proj)[conv(64,3,s=2,p=1) bn] [res(64)x2] "
            "gap flatten fc(10)")
    assert spec == parse(text)
    j = tmp_path / "net.json"
    j.write_text(json.dumps([{"conv": {"out": 16, "k": 3, "p": 1}}, "relu", {"maxpool": 2}]))
    assert parse(j) == parse("conv(16,3,p=1) relu maxpool(2)")


# ---------------------------------------------------------------- the done-when


def test_seed_004_first_linear_has_2048_inputs():
    m = build(SEED_004, input_shape=(3, 32, 32))
    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert linears[0].in_features == 2048
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any("Lazy" in type(x).__name__ for x in m.modules())


def test_names_follow_the_literature():
    m = build("conv(16,3,p=1,bias=false) bn relu res(16)x3 res(32,s=2) res(32)x2 res(64,s=2) res(64)x2 gap "
              "flatten fc(10)", input_shape=(3, 32, 32))
    names = dict(m.named_modules())
    for n in ["conv1", "bn1", "relu", "layer1.0.conv1", "layer2.0.downsample.0", "layer3.2.bn2", "fc"]:
        assert n in names, n
    assert "layer4" not in names
    assert nparams(m) == 272474  # option B projections (DESIGN reference table, computed)


def test_num_classes_replaces_last_fc():
    m = build(SEED_004, (3, 32, 32), num_classes=7)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ShapeError, match="no fc layer"):
        build("conv(8,3)", (3, 8, 8), num_classes=3)


# ---------------------------------------------------------------- seed nets as specs


def test_d2l_lenet_61706():
    m = build("conv(6,5,p=2) sigmoid avgpool(2) conv(16,5) sigmoid avgpool(2) flatten fc(120) sigmoid fc(84) "
              "sigmoid fc(10)", (1, 28, 28))
    assert nparams(m) == 61706  # d2l 7.6
    assert m(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_seed_002_resnet20_projection_shortcuts():
    # seed 002: 3x3 stem, three stages of three blocks, 1x1 stride-2 projections, 8x8 average pool, fc
    m = build("conv(16,3,p=1,bias=false) bn relu res(16)x3 res(32,s=2) res(32)x2 res(64,s=2) res(64)x2 "
              "avgpool(8) flatten fc(10)", (3, 32, 32))
    assert nparams(m) == 272474
    assert m.layer2[0].downsample[0].stride == (2, 2) and m.layer2[0].downsample[0].kernel_size == (1, 1)


def test_seed_003_separable_classifier():
    m = build("conv(32,3,p=1) bn relu sepconv(64,3,p=1) bn relu sepconv(128,3,p=1) bn relu gap flatten "
              "dropout(0.5) fc(1) sigmoid", (3, 32, 32))
    sep = m.sepconv1
    assert sum(p.numel() for p in sep.parameters()) == 2400  # 288 + 2048 + 64 (Keras, seed 003)
    m2 = build("sepconv(2,3,dw_bias=true)", (3, 7, 7))
    assert nparams(m2) == 38  # seed 003's worked example
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 1)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("text, needles", [
    ("conv(16,3) relu cnov(32,3)", ["unknown layer 'cnov'", "did you mean 'conv'", "column 17", "^^^^"]),
    ("conv(16)", ["conv needs 'k'", "conv(out, k, s=1"]),
    ("conv(16,3,q=1)", ["no argument 'q'"]),
    ("conv(16,3,1,0,1,1,true,9)", ["at most 7 positional"]),
    ("conv(16,3", ["never closed"]),
    ("(conv(16,3) relu", ["expected ')'"]),
    ("conv(16,3))", ["unexpected ')'"]),
    ("conv(0,3)", ["out must be >= 1, got 0"]),
    ("conv(-4,3)", ["out must be >= 1, got -4"]),
    ("relu x0", ["repeat count must be >= 1"]),
    ("maxpool(2, ceil=maybe)", ["true or false", "maybe"]),
    ("dropout(1.5)", ["[0, 1)", "1.5"]),
    ("res(16, shortcut=C)", ["A or B"]),
    ("residual relu", ["needs a body"]),
    ("conv(8,3) $", ["unexpected character '$'"]),
    ("", ["empty spec"]),
    ("relu(3)", ["relu takes no arguments"]),
    ("conv(8, k=3, 1)", ["positional argument after a keyword"]),
])
def test_spec_errors_read_like_a_compiler(text, needles):
    with pytest.raises(SpecError) as info:
        parse(text)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))


@pytest.mark.parametrize("text, shape, needles", [
    ("conv(16,3) maxpool(2) conv(64,7)", (3, 8, 8), ["conv2", "kernel 7", "3 + 2·0 = 3", "padding >= 2",
                                                     "maxpool"]),
    ("conv(64,3) residual[conv(32,3,p=1)]", (3, 32, 32), ["64×30×30 into 32×30×30", "residual(proj)",
                                                          "1x1 conv 64→32 with stride 1"]),
    ("conv(32,3,p=1) residual[conv(64,3,s=2,p=1)]", (3, 30, 30), ["stride 2", "32→64"]),
    ("conv(32,3,p=1) maxpool(2) flatten fc(10, in=2000)", (3, 32, 32), ["in=2000", "8192 features", "in=8192"]),
    ("conv(32,3,p=1) maxpool(2) fc(10)", (3, 32, 32), ["add flatten", "32·16·16 = 8192", "gap"]),
    ("conv(30,3,groups=4)", (8, 8, 8), ["groups=4", "(8)", "(30)"]),
    ("flatten conv(8,3)", (3, 8, 8), ["C×H×W", "192 flat features"]),
    ("res(8,shortcut=A)", (16, 8, 8), ["cannot go from 16 down to 8", "shortcut=B"]),
])
def test_shape_errors_name_layer_numbers_and_fix(text, shape, needles):
    with pytest.raises(ShapeError) as info:
        build(text, shape)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))


def test_input_shape_required_and_checked():
    with pytest.raises(ShapeError, match="input shape is unknown"):
        build("conv(8,3)")
    with pytest.raises(ShapeError, match="three positive integers"):
        build("conv(8,3)", (3, 0, 8))
    with pytest.raises(ShapeError, match="drop one of them"):
        build("input(1,28,28) conv(8,3)", (3, 28, 28))


# ---------------------------------------------------------------- property tests, torch as oracle

def _randomise_bn(model: nn.Module):
    """BatchNorm that is not the identity in eval mode, so a dropped or misplaced bn changes the output."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1, generator=g)
                m.running_var.uniform_(0.5, 2, generator=g)
                m.weight.uniform_(0.5, 2, generator=g)
                m.bias.uniform_(-1, 1, generator=g)


def _copy_weights(reference: nn.Module, model: nn.Module):
    """Give ``model`` the twin's weights and running statistics, tensor by tensor in registration order
    (the twin registers its modules in the order convlab names them); a missing or misshapen one fails."""
    ours, theirs = model.state_dict(), reference.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()], \
        (list(ours), list(theirs))
    model.load_state_dict(dict(zip(ours, theirs.values())))


@given(chains())
def test_random_specs_match_handwritten_torch(case):
    """convlab plans and builds exactly what the hand-written torch twin computes, and refuses exactly
    what torch refuses."""
    shape, text, reference = case
    reference.eval()
    _randomise_bn(reference)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    try:
        p = plan(text, shape)
    except ShapeError as e:
        event("refused by convlab and torch")
        with pytest.raises(RuntimeError), torch.no_grad():  # torch must refuse it too
            reference(x)
        with pytest.raises(ShapeError):
            build(text, shape)
        assert str(e)
        return
    with torch.no_grad():
        expected = reference(x)
    assert tuple(p.output_shape) == tuple(expected.shape[1:])
    model = build(text, shape).eval()
    assert nparams(model) == nparams(reference)
    # planned counts (trainable + running statistics) agree with the module
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert p.params == nparams(model) + buffers
    # with the twin's weights the built model computes the twin's function
    _copy_weights(reference, model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
    assert parse(parse(text).to_text()) == parse(text)


_TOKENS = ["conv(8,3)", "conv(", ")", "(", "[", "]", "relu", "x2", "×", "fc(10)", "flatten", "bn", "res(8)",
           "residual", "maxpool(2)", "gap", "=", ",", "->", "3x5", "conv(8,3,p=same)", "sepconv(4,3)", "-1", "1.5",
           "dropout(0.1)", "input(3,16,16)", "bottleneck(4)", "avgpool(3,2,1)", "conv(4,7,s=2)", "cnov"]


@given(st.lists(st.sampled_from(_TOKENS), min_size=0, max_size=10), st.sampled_from(["", " "]))
def test_random_token_soup_raises_only_convlab_errors(tokens, sep):
    text = sep.join(tokens)
    try:
        model = build(text, (3, 16, 16))
    except ConvlabError:
        return
    model.eval()(torch.zeros(1, 3, 16, 16))


@given(st.text(max_size=40))
def test_random_text_raises_only_spec_errors(text):
    try:
        parse(text)
    except SpecError:
        pass


# ---------------------------------------------------------------- planner and builder, apart

EVERY_KIND = ("conv(16,3,p=same,bias=false) bn relu res(32,s=2,shortcut=A) res(32,shortcut=NONE) res(64,s=2) "
              "bottleneck(8) bottleneck(8,s=2) sepconv(16,3,p=1) dwconv(3,p=1,mult=2) gelu silu tanh sigmoid relu6 "
              "maxpool(2,ceil=true) avgpool(3,1,1) residual[conv(32,3,p=1) bn] residual(proj)[conv(48,3,s=2,p=1)] "
              "[conv(48,1) relu] gap flatten dropout(0.3) fc(32,bias=false) bn fc(10)")


def test_planning_imports_no_torch():
    code = ("import sys; from convlab.plan import plan; "
            f"p = plan({EVERY_KIND!r}, (3, 64, 64)); print(len(p.walk()), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "False" and int(out.split()[0]) > 50


def test_builder_makes_each_node_as_its_type_and_settings_say():
    p = plan(EVERY_KIND, (3, 64, 64))
    m = build(EVERY_KIND, (3, 64, 64))
    types = {type(node.layer).__name__ for node, _ in p.walk() if node.layer is not None}
    assert len(types) == 15  # every layer kind but input is planned here
    for node, _ in p.walk():
        module = m.get_submodule(node.name)
        assert type(module).__name__ == node.type, node.name
        if node.type == "Conv2d":
            i = node.info
            assert (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None) == (
                i["in_channels"], node.out_shape[0], i["kernel"], i["stride"], i["padding"], i["dilation"],
                i["groups"], i["bias"]), node.name
    assert type(m.maxpool).__module__ == "convlab.nn.pool"  # the fast pool, a subclass of nn.MaxPool2d
    assert isinstance(m.maxpool, nn.MaxPool2d) and m.maxpool.ceil_mode
    assert m.dropout.p == 0.3 and m.fc1.bias is None and m.layer1[0].downsample.stride == 2
    assert tuple(m.eval()(torch.zeros(1, 3, 64, 64)).shape) == (1, *p.output_shape)


def _proj_stride_by_search(shape, out):
    """The search the planner used to run: every stride up to the map size, smallest first."""
    return next((s for s in range(1, max(shape[1], shape[2]) + 1)
                 if conv_out(shape[1:], 1, s) == tuple(out[1:])), None)


def test_projection_stride_equals_the_search_on_every_small_size():
    for h, w, oh, ow in itertools.product(range(1, 11), repeat=4):
        assert _proj_stride((1, h, w), (1, oh, ow)) == _proj_stride_by_search((1, h, w), (1, oh, ow)), (h, w, oh, ow)


@given(h=st.integers(1, 400), w=st.integers(1, 400), sh=st.integers(1, 400), sw=st.integers(1, 400),
       nudge=st.sampled_from([(0, 0), (0, 0), (1, 0), (0, -1), (1, 1)]))
def test_projection_stride_equals_the_search(h, w, sh, sw, nudge):
    # outputs some stride gives (sh == sw, or not), and ones next to them that may have none
    oh, ow = (h - 1) // sh + 1 + nudge[0], (w - 1) // sw + 1 + nudge[1]
    assume(oh >= 1 and ow >= 1)
    stride = _proj_stride((1, h, w), (1, oh, ow))
    assert stride == _proj_stride_by_search((1, h, w), (1, oh, ow))
    if sh == sw and nudge == (0, 0):
        assert stride is not None and stride <= sh


def _finishes(fn, seconds=60):
    """Run fn in a thread; whether it returned in time (a hang fails instead of stalling the suite)."""
    box = []
    t = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    return box


def test_residual_on_a_huge_map_needs_no_search():
    def refuse():
        with pytest.raises(ShapeError, match="keep the body's spatial size, or downsample by an integer stride"):
            plan("input(1,100000000,100000000) residual[conv(1,3)]")
        return True

    assert _finishes(refuse) == [True], "planning did not finish"
    # the smallest stride taking 10^8 to 2 is 5·10^7: fifty million steps of a search
    found = _finishes(lambda: plan("input(1,100000000,100000000) residual(proj)[maxpool(50000000)]"))
    assert found, "planning did not finish"
    (res,) = found[0].nodes
    assert res.children[1].children[0].info["stride"] == (50_000_000, 50_000_000)
