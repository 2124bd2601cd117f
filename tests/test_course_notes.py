"""The course notes, item by item: each concrete example, number, exercise, claim and figure
placeholder of the five notes convlab serves has one test here, named after its note and the item,
asserting convlab's number, shape or behaviour (PyTorch as the oracle where it applies). A change
that breaks a course example fails here.

The notes, by the names the tests use (files 000–004 of the shared course notes):

    formula   the conv output-size formula, and the residual idea from the degradation question (000)
    d2l       d2l chapters 7 and 8 as homework: convolutions, padding, channels, pooling, LeNet, VGG, ResNet (001)
    resnet20  the ResNet-20 study: stem, three stages, head, with five picture placeholders (002)
    keras     the Keras notes: residual shapes, batch norm, separable convs, the binary head, activations (003)
    cs231n    the cs231n-style notes: conv and pooling layers, stride, fc as conv, in_features, patterns (004)

Each test's docstring starts with the kind of item: [example], [number], [exercise], [claim], [formula]
or [figure]. Items that wait on work not yet done are marked xfail (strict, so they fail loudly once
that work lands and the marker must go) or skipped, with the reason starting "open:". The list of open
items is the module's ``OPEN`` list.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import convlab
from convlab import arith, scratch, tour
from convlab.builder import build
from convlab.cli import build_parser, main
from convlab.analyze.checks import check
from convlab.errors import ShapeError
from convlab.factory import create_model

OPEN: dict[str, str] = {}  # empty: every item is covered (an item waiting on work goes here, its test marked _open)


def _open(key: str):
    return pytest.mark.xfail(reason=OPEN[key], strict=True)


def _commands() -> set[str]:
    p = build_parser()
    for a in p._actions:
        if isinstance(a, __import__("argparse")._SubParsersAction):
            return set(a.choices)
    return set()


def _parses(argv: list[str]) -> None:
    """Parse a command line; argparse exits (SystemExit) on an unknown flag or value."""
    build_parser().parse_args(argv)


def _shapes(model, input_shape, **kw) -> dict[str, tuple]:
    return {r.name: tuple(r.output_shape[1:]) for r in convlab.summary(model, input_shape, **kw).rows}


def _edge_image():
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    return X, scratch.corr2d(X, torch.tensor([[1.0, -1.0]]))


@functools.lru_cache(maxsize=None)
def _tour(name: str) -> str:
    return "\n".join(tour.run(name, width=0))


# =============================================================================================
# formula note: the conv output-size formula, and the residual idea


def test_formula_note__formula_subtracts_kd_plus_one():
    """[formula] The note's ⌊(H + 2p − k·d − 1)/s⌋ + 1 subtracts k·d + 1; the extent is d·(k − 1) + 1."""
    for h, k, s, p, d in [(28, 3, 1, 1, 1), (7, 3, 2, 1, 1), (16, 3, 1, 2, 2)]:
        torch_out = nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, h, h)).shape[-1]
        assert arith.conv1d_out(h, k, s, p, d) == torch_out
        assert tour.notes_formula_kd(h, k, s, p, d) != torch_out
    assert "subtracting k·d + 1 where the extent is d·(k − 1) + 1" in _tour("formulas")


def test_formula_note__first_conv_28_to_14():
    """[example] H=28, padding 1, kernel 3, stride 2: 14 after the first conv."""
    assert arith.conv1d_out(28, 3, 2, 1) == 14 == nn.Conv2d(1, 1, 3, 2, 1)(torch.zeros(1, 1, 28, 28)).shape[-1]
    assert tour.notes_formula_kd(28, 3, 2, 1) == 14   # the slip does not show here


def test_formula_note__chain_28_14_7_3_1():
    """[example] The note's chain [28, 14, 7, 3, 1] comes from its formula; the real one is 28 → 14 → 7 → 4 → 2 → 1."""
    notes = [28]
    for _ in range(4):
        notes.append(tour.notes_formula_kd(notes[-1], 3, 2, 1))
    assert notes == [28, 14, 7, 3, 1]
    real = [28] + [e.output for e in arith.explain_chain(28, "k3s2p1 x5")]
    net = nn.Sequential(*[nn.Conv2d(1, 1, 3, 2, 1) for _ in range(5)])
    x, sizes = torch.zeros(1, 1, 28, 28), [28]
    for layer in net:
        x = layer(x)
        sizes.append(x.shape[-1])
    assert real == sizes == [28, 14, 7, 4, 2, 1]
    assert "28 → 14 → 7 → 3 → 1; PyTorch: 28 → 14 → 7 → 4 → 2 → 1" in _tour("formulas")


def test_formula_note__stride_1_chain_28_27_13_6_3_1():
    """[example] Stride 1 in the first layer: the note's [28, 27, 13, 6, 3, 1]; PyTorch's 28 → 28 → 14 → 7 → 4 → 2."""
    notes, real = [28], [28]
    for i in range(5):
        s = 1 if i == 0 else 2
        notes.append(tour.notes_formula_kd(notes[-1], 3, s, 1))
        real.append(arith.conv1d_out(real[-1], 3, s, 1))
    assert notes == [28, 27, 13, 6, 3, 1]
    assert real == [28, 28, 14, 7, 4, 2]
    assert "28 → 27 → 13 → 6 → 3 → 1" in _tour("formulas")


def test_formula_note__stride_1_keeps_input_dimension():
    """[claim] 'Stride 1 keeps the input dimension' — true for k=3, p=1 (and false under the note's own formula)."""
    for h in (5, 14, 28, 32):
        assert arith.conv1d_out(h, 3, 1, 1) == h == nn.Conv2d(1, 1, 3, 1, 1)(torch.zeros(1, 1, h, h)).shape[-1]
    assert tour.notes_formula_kd(28, 3, 1, 1) == 27


def test_formula_note__nets_of_20_and_56_layers():
    """[example] The question's nets: plain and residual CNNs of 20 and 56 layers exist, the same but for the shortcuts."""
    for depth, params in ((20, 269_722), (56, 853_018)):
        plain, res = convlab.summary(f"plain{depth}"), convlab.summary(f"resnet{depth}")
        assert plain.trainable_params == res.trainable_params == params
        convs = [r for r in plain.rows if r.type == "Conv2d"]
        assert len(convs) + 1 == depth                     # + the fc layer
        assert sum(r.type == "BasicBlock" for r in res.rows) == (depth - 2) // 2
        assert sum(r.type == "BasicBlock" for r in plain.rows) == 0


@pytest.mark.slow
def test_formula_note__56_layers_train_worse_than_20(tmp_path):
    """[claim] The 56-layer plain CNN trains worse than the 20-layer one, and residual blocks fix it.
    The degradation experiment's quick preset on the real Fashion-MNIST (minutes on a CPU): plain-56
    ends with a higher training error than plain-20 (the first half of the claim)."""
    from convlab import experiment
    from convlab.data import registry

    if registry.find("fashion-mnist") is None:
        pytest.skip("needs Fashion-MNIST (convlab data fetch fashion-mnist)")
    res = experiment.degradation(tmp_path / "deg", depths=[20, 56], preset="quick", device="cpu", progress=False)
    assert not res["interrupted"]
    m = res["members"]
    assert m["plain56"]["train_error"] > m["plain20"]["train_error"]
    assert "(degradation)" in res["verdict"][0]


def test_formula_note__useless_layers_leave_the_input():
    """[claim] out = conv2d(conv2d(x)) + x: if the two convs are 'useless' (output zero), out = x."""
    m = build("residual[conv(8,3,p=1) conv(8,3,p=1)]", (8, 6, 6))
    with torch.no_grad():
        for p in m.residual.body.parameters():
            p.zero_()
        x = torch.randn(2, 8, 6, 6)
        assert torch.equal(m(x), x)


def test_formula_note__residue_is_out_minus_input():
    """[claim] out − img = conv2d(conv2d(x)): the block's layers learn the residue."""
    m = build("residual[conv(8,3,p=1) relu conv(8,3,p=1)]", (8, 6, 6))
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        body = m.residual.body
        ref = F.conv2d(F.relu(F.conv2d(x, body.conv1.weight, body.conv1.bias, padding=1)),
                       body.conv2.weight, body.conv2.bias, padding=1)
        assert torch.allclose(m(x) - x, ref, atol=1e-6)


def test_formula_note__other_channel_count_needs_a_1x1_conv():
    """[claim] Different channel counts cannot be summed: pass the input through a 1×1 conv."""
    with pytest.raises(ShapeError, match="1x1 conv 8→16"):
        build("residual[conv(16,3,p=1)]", (8, 6, 6))
    m = build("residual(proj)[conv(16,3,p=1)]", (8, 6, 6))
    proj = m.residual.proj[0]
    assert isinstance(proj, nn.Conv2d) and proj.kernel_size == (1, 1) and (proj.in_channels, proj.out_channels) == (8, 16)
    assert m(torch.zeros(1, 8, 6, 6)).shape == (1, 16, 6, 6)


# =============================================================================================
# d2l note: chapters 7 and 8


def test_d2l_note__cross_correlation_19_25_37_43():
    """[example] corr2d(X, K) = [[19, 25], [37, 43]] (d2l 7.2.1)."""
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[19.0, 25.0], [37.0, 43.0]])
    assert torch.equal(scratch.corr2d(X, K), expected)
    assert torch.equal(F.conv2d(X[None, None], K[None, None])[0, 0], expected)


def test_d2l_note__conv2d_module_weight_bias_forward():
    """[example] d2l 7.2.2's Conv2D: a weight of the kernel's size, a zero bias, forward = corr2d + bias."""
    layer = scratch.Conv2D((1, 2), generator=torch.Generator().manual_seed(0))
    names = dict(layer.named_parameters())
    assert set(names) == {"weight", "bias"} and names["weight"].shape == (1, 2) and torch.equal(names["bias"], torch.zeros(1))
    w = layer.weight.detach()
    assert 0 <= float(w.min()) and float(w.max()) < 1       # torch.rand, as d2l
    X, _ = _edge_image()
    with torch.no_grad():
        layer.bias.fill_(0.5)
    out = layer(X)
    assert torch.allclose(out.detach(), scratch.corr2d(X, w) + 0.5)
    assert torch.allclose(out.detach(), F.conv2d(X[None, None], w[None, None], layer.bias.detach())[0, 0])
    out.sum().backward()
    assert layer.weight.grad is not None and float(layer.bias.grad) == out.numel()


def test_d2l_note__edge_image_and_its_edges():
    """[example] X = ones(6, 8) with columns 2–5 black; corr2d with [1, −1] marks the two edges: [0, 1, 0, 0, 0, −1, 0]."""
    X, Y = _edge_image()
    assert X.shape == (6, 8) and torch.equal(X[0], torch.tensor([1.0, 1, 0, 0, 0, 0, 1, 1]))
    assert Y.shape == (6, 7)
    assert all(torch.equal(row, torch.tensor([0.0, 1, 0, 0, 0, -1, 0])) for row in Y)
    assert torch.equal(F.conv2d(X[None, None], torch.tensor([[[[1.0, -1.0]]]]))[0, 0], Y)


def test_d2l_note__kernel_finds_nothing_on_the_transpose():
    """[example] corr2d(X.t(), K) is all zeros: the horizontal kernel sees only vertical edges."""
    X, _ = _edge_image()
    assert torch.equal(scratch.corr2d(X.t(), torch.tensor([[1.0, -1.0]])), torch.zeros(8, 5))


def test_d2l_note__learning_a_kernel_losses():
    """[example] d2l 7.2.4's losses 4.519 … 0.074: the same method from the notes' start prints the same
    numbers; from convlab's own random start the numbers differ, and the tour says why."""
    X, Y = _edge_image()
    K, losses = scratch.learn_kernel(X, Y, steps=10, init=[tour.NOTES_START])
    assert [f"{v:.3f}" for v in losses[1::2]] == [f"{v:.3f}" for v in tour.NOTES_LOSSES]
    assert [f"{v:.4f}" for v in K.flatten().tolist()] == [f"{v:.4f}" for v in tour.NOTES_KERNEL]
    # d2l's own loop with nn.Conv2d from the same start: the oracle
    conv = nn.Conv2d(1, 1, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight[:] = torch.tensor(tour.NOTES_START).reshape(1, 1, 1, 2)
    ref = []
    for _ in range(10):
        loss = ((conv(X.reshape(1, 1, 6, 8)) - Y.reshape(1, 1, 6, 7)) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        conv.weight.data[:] -= 3e-2 * conv.weight.grad
        ref.append(float(loss.detach()))
    assert losses == pytest.approx(ref, rel=1e-5)
    _, own = scratch.learn_kernel(X, Y, steps=10)
    assert own[-1] < own[0] / 10 and f"{own[1]:.3f}" != "4.519"
    assert "another random start" in _tour("learning")


def test_d2l_note__learned_kernel_close_to_1_minus_1():
    """[number] The learned kernel [0.9650, −1.0204] is close to [1, −1]; so is convlab's."""
    X, Y = _edge_image()
    K, _ = scratch.learn_kernel(X, Y, steps=10)
    assert torch.allclose(K, torch.tensor([[1.0, -1.0]]), atol=0.1)
    assert torch.allclose(torch.tensor(tour.NOTES_KERNEL), torch.tensor([1.0, -1.0]), atol=0.05)


@pytest.mark.parametrize("kernel,padding,stride,out", [
    pytest.param(3, 1, 1, (8, 8), id="k3_p1_keeps_8x8"),
    pytest.param((5, 3), (2, 1), 1, (8, 8), id="k5x3_p2x1_keeps_8x8"),
    pytest.param(3, 1, 2, (4, 4), id="k3_p1_s2_gives_4x4"),
    pytest.param((3, 5), (0, 1), (3, 4), (2, 2), id="k3x5_p0x1_s3x4_gives_2x2"),
])
def test_d2l_note__padding_and_stride_shapes(kernel, padding, stride, out):
    """[example] d2l 7.3's four comp_conv2d shapes on an 8×8 input (one item each)."""
    assert arith.conv_out((8, 8), kernel, stride, padding) == out
    assert tuple(nn.Conv2d(1, 1, kernel, stride, padding)(torch.rand(1, 1, 8, 8)).shape[2:]) == out
    assert _shapes(f"conv(1,{'x'.join(map(str, arith.pair(kernel)))},s={'x'.join(map(str, arith.pair(stride)))},"
                   f"p={'x'.join(map(str, arith.pair(padding)))})", (1, 8, 8))["conv1"] == (1, *out)


def test_d2l_note__multi_in_56_72_104_120():
    """[example] Two input channels: corr2d_multi_in = [[56, 72], [104, 120]] (d2l 7.4.1)."""
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    expected = torch.tensor([[56.0, 72.0], [104.0, 120.0]])
    assert torch.equal(scratch.corr2d_multi_in(X, K), expected)
    assert torch.equal(F.conv2d(X[None], K[None])[0, 0], expected)


def test_d2l_note__stacked_kernels_shape_3_2_2_2():
    """[example] K.shape = (2, 2, 2); stacking K, K+1, K+2 gives (3, 2, 2, 2)."""
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    assert K.shape == (2, 2, 2) and torch.stack((K, K + 1, K + 2), 0).shape == (3, 2, 2, 2)
    assert "shape (3, 2, 2, 2)" in _tour("channels")


def test_d2l_note__multi_in_out_three_maps():
    """[example] corr2d_multi_in_out gives [[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]."""
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    K3 = torch.stack((K, K + 1, K + 2), 0)
    expected = torch.tensor([[[56.0, 72.0], [104.0, 120.0]], [[76.0, 100.0], [148.0, 172.0]],
                             [[96.0, 128.0], [192.0, 224.0]]])
    assert torch.equal(scratch.corr2d_multi_in_out(X, K3), expected)
    assert torch.equal(F.conv2d(X[None], K3)[0], expected)


def test_d2l_note__1x1_conv_is_a_matmul():
    """[example] corr2d_multi_in_out_1x1 (a matmul) equals the sliding window to < 1e-6 (d2l 7.4.3)."""
    g = torch.Generator().manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3), generator=g)
    K = torch.normal(0, 1, (2, 3, 1, 1), generator=g)
    Y1, Y2 = scratch.corr2d_1x1(X, K), scratch.corr2d_multi_in_out(X, K)
    assert float((Y1 - Y2).abs().sum()) < 1e-6
    assert torch.allclose(Y1, F.conv2d(X[None], K)[0], atol=1e-6)


def test_d2l_note__pool2d_max_and_mean_of_3x3():
    """[example] pool2d(X, (2, 2)) = [[4, 5], [7, 8]] and its mean [[2, 3], [5, 6]] (d2l 7.5.1)."""
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    assert torch.equal(scratch.pool2d(X, (2, 2)), F.max_pool2d(X[None, None], 2, 1)[0, 0])
    assert torch.equal(scratch.pool2d(X, (2, 2)), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(scratch.pool2d(X, (2, 2), "avg"), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))


@pytest.mark.parametrize("kernel,stride,padding,expected", [
    pytest.param(3, None, 0, [[10.0]], id="maxpool3_gives_10"),
    pytest.param(2, None, 0, [[5.0, 7.0], [13.0, 15.0]], id="maxpool2"),
    pytest.param(3, 2, 1, [[5.0, 7.0], [13.0, 15.0]], id="maxpool3_p1_s2"),
    pytest.param((2, 3), (2, 3), (0, 1), [[5.0, 7.0], [13.0, 15.0]], id="maxpool2x3_s2x3_p0x1"),
])
def test_d2l_note__pooling_padding_and_stride(kernel, stride, padding, expected):
    """[example] d2l 7.5.2's four max-pooling cases on arange(16) as 4×4 (one item each)."""
    X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    ref = nn.MaxPool2d(kernel, stride=stride, padding=padding)(X)
    ours = scratch.pool2d_nchw(X, kernel, stride, padding)
    assert torch.equal(ours, ref) and torch.equal(ours[0, 0], torch.tensor(expected))
    assert str([[int(v) for v in row] for row in expected]) in _tour("pooling")


def test_d2l_note__two_channel_input():
    """[example] X = cat(X, X + 1) has two channels 0..15 and 1..16."""
    X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    X2 = torch.cat((X, X + 1), 1)
    assert X2.shape == (1, 2, 4, 4) and float(X2[0, 1].min()) == 1 and float(X2[0, 1].max()) == 16


def test_d2l_note__two_channel_pooling():
    """[example] MaxPool2d(3, padding=1, stride=2) on two channels: [[5, 7], [13, 15]] and [[6, 8], [14, 16]]."""
    X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    X2 = torch.cat((X, X + 1), 1)
    ours = scratch.pool2d_nchw(X2, 3, 2, 1)
    assert torch.equal(ours, nn.MaxPool2d(3, padding=1, stride=2)(X2))
    assert torch.equal(ours, torch.tensor([[[[5.0, 7.0], [13.0, 15.0]], [[6.0, 8.0], [14.0, 16.0]]]]))
    assert "[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]" in _tour("pooling")


def _init_cnn(module):
    """d2l 7.6's init_cnn, as the notes write it (the oracle)."""
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


def test_d2l_note__init_cnn_xavier():
    """[example] d2l's init_cnn: Xavier-uniform on conv and linear weights (`--init xavier`)."""
    from convlab.training.init import init_weights

    _parses(["train", "lenet", "--init", "xavier"])
    torch.manual_seed(0)
    ours, theirs = create_model("lenet"), create_model("lenet")
    theirs.load_state_dict(ours.state_dict())
    torch.manual_seed(1)
    init_weights(ours, "xavier")
    torch.manual_seed(1)
    theirs.apply(_init_cnn)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert not torch.equal(ours.conv1.weight, create_model("lenet").conv1.weight)


def _d2l_lenet(act=nn.Sigmoid, pool=nn.AvgPool2d):
    return nn.Sequential(
        nn.LazyConv2d(6, kernel_size=5, padding=2), act(), pool(kernel_size=2, stride=2),
        nn.LazyConv2d(16, kernel_size=5), act(), pool(kernel_size=2, stride=2), nn.Flatten(),
        nn.LazyLinear(120), act(), nn.LazyLinear(84), act(), nn.LazyLinear(10))


def _layer_summary(net, shape) -> list[tuple]:
    """d2l's layer_summary: each layer's output shape after a real forward."""
    x, out = torch.randn(*shape), []
    with torch.no_grad():
        for layer in net:
            x = layer(x)
            out.append(tuple(x.shape[1:]))
    return out


D2L_LENET_SHAPES = [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,),
                    (120,), (120,), (84,), (84,), (10,)]


def test_d2l_note__lenet_layer_summary():
    """[example] LeNet's layer_summary on 1×1×28×28: 6×28×28 … 16×5×5, 400, 120, 84, 10 (d2l 7.6.1)."""
    assert _layer_summary(_d2l_lenet(), (1, 1, 28, 28)) == D2L_LENET_SHAPES
    assert list(_shapes("lenet", (1, 28, 28)).values()) == D2L_LENET_SHAPES
    assert convlab.summary("lenet").trainable_params == 61_706


def test_d2l_note__lenet_lazy_model_summary():
    """[example] convlab summary of d2l's own Lazy LeNet gives lenet's table, and leaves the model lazy."""
    net = _d2l_lenet()
    s = convlab.summary(net, (1, 28, 28))
    assert s.trainable_params == 61_706 and [tuple(r.output_shape[1:]) for r in s.rows] == D2L_LENET_SHAPES
    assert s.macs == convlab.summary("lenet").macs
    assert isinstance(net[0], nn.LazyConv2d) and all(nn.parameter.is_lazy(p) for p in net.parameters())


def _d2l_resolved(model: str, **kw):
    from convlab.factory import resolve_model
    from convlab.training import TrainConfig
    from convlab.training.config import with_family_defaults

    return with_family_defaults(TrainConfig(model=model, recipe="d2l", **kw), resolve_model(model).family)


D2L_TRAINER = dict(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                   schedule="constant", label_smoothing=0.0, augment="none", init="xavier")


def test_d2l_note__lenet_training_d2l_recipe():
    """[example] d2l 7.6.2: Trainer(max_epochs=10), batch 128, lr 0.1, Xavier init (`--recipe d2l`)."""
    _parses(["train", "lenet", "--recipe", "d2l"])
    c = _d2l_resolved("lenet")
    assert {k: getattr(c, k) for k in D2L_TRAINER} == D2L_TRAINER


def test_d2l_note__fc_layers_have_too_many_parameters():
    """[claim] Fully connected layers on images: too many parameters (convlab check says so)."""
    codes = [f.code for f in check("flatten fc(1000000)", (1, 1000, 1000))[0]]
    assert "fc-on-pixels" in codes
    assert not check("flatten fc(10)", (3, 32, 32))[0]            # a linear classifier is fine
    assert "fc-on-pixels" not in [f.code for f in check("cifar-cnn")[0]]


def test_d2l_note__translation_invariance():
    """[claim] A conv responds the same to a patch wherever it is: shift the input, the output shifts."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 2:4, 2:5] = torch.rand(2, 3, generator=g)
    w = torch.rand(2, 1, 3, 3, generator=g)
    shifted = torch.roll(x, (4, 5), (2, 3))
    for conv in (lambda t: scratch.conv2d(t, w, padding=1), lambda t: F.conv2d(t, w, padding=1)):
        assert torch.allclose(conv(shifted), torch.roll(conv(x), (4, 5), (2, 3)), atol=1e-6)
    assert "max |conv(moved x) − moved conv(x)| = 0" in _tour("translation")


def test_d2l_note__locality():
    """[claim] The earliest layers look at local regions: one changed pixel changes only a k×k patch of outputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64)
    w = torch.rand(1, 1, 3, 3, generator=g, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 6, 6] += 1
    changed = (F.conv2d(y, w, padding=1) - F.conv2d(x, w, padding=1)).abs() > 1e-12
    assert int(changed.sum()) == 9 and changed[0, 0, 5:8, 5:8].all()
    assert "9 after one 3×3 conv, 25 after two" in _tour("translation")


def test_d2l_note__deeper_layers_see_further():
    """[claim] Deeper layers capture longer-range features: the receptive field grows with depth
    (autograd's support of one output's gradient as the oracle)."""
    rf = arith.receptive_field([(3, 1, 1), (3, 2, 1), (3, 1, 1)])
    net = nn.Sequential(nn.Conv2d(1, 1, 3, 1, 1), nn.Conv2d(1, 1, 3, 2, 1), nn.Conv2d(1, 1, 3, 1, 1))
    with torch.no_grad():
        for m in net:
            m.weight.fill_(1.0)
    x = torch.rand(1, 1, 32, 32, requires_grad=True)
    sizes = []
    for depth in range(1, 4):
        x.grad = None
        out = net[:depth](x)
        out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
        rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
        sizes.append(int(rows.max() - rows.min() + 1))
    assert sizes == [r.size for r in rf] == [3, 5, 9]


def test_d2l_note__mlp_needs_10_to_the_12_parameters():
    """[number] An MLP from a 1-megapixel image to a hidden map of the same size needs 10¹² parameters."""
    s = convlab.summary("flatten fc(1000000)", (1, 1000, 1000))
    assert s.trainable_params == 10 ** 12 + 10 ** 6
    assert "≈ 10¹²" in _tour("mlp-vs-conv")


def test_d2l_note__translation_invariance_4_times_10_to_the_6():
    """[number] With translation invariance, V[a, b] for every offset: 4×10⁶ parameters."""
    s = convlab.summary("conv(1,1999,p=999)", (1, 1000, 1000))
    assert s.output_shape == [1, 1, 1000, 1000] and s.trainable_params == 1999 ** 2 + 1
    assert round(s.trainable_params / 1e6) == 4
    assert "4×10⁶" in _tour("mlp-vs-conv")


def test_d2l_note__locality_4_delta_squared():
    """[number] With locality (|a|, |b| ≤ Δ): (2Δ + 1)² ≈ 4Δ² weights."""
    for delta in (1, 5, 10):
        k = 2 * delta + 1
        assert convlab.summary(f"conv(1,{k},p={delta},bias=false)", (1, 64, 64)).trainable_params == \
            nn.Conv2d(1, 1, k, bias=False).weight.numel() == k * k
        assert k * k >= 4 * delta ** 2
    assert "the notes' 4Δ² = 400" in _tour("mlp-vs-conv")


def test_d2l_note__channels_kernel_V_abcd():
    """[formula] With channels, V[a, b, c, d]: one k×k kernel per input–output pair."""
    m = build("conv(5,3,p=1)", (4, 8, 8))
    assert m.conv1.weight.shape == nn.Conv2d(4, 5, 3).weight.shape == (5, 4, 3, 3)
    assert convlab.summary("conv(5,3,p=1)", (4, 8, 8)).trainable_params == 5 * 4 * 9 + 5


def test_d2l_note__conv_cost_formula():
    """[formula] A k×k conv costs c_in·c_out·k²·h·w (FlopCounterMode as the oracle: FLOPs = 2·MACs)."""
    from torch.utils.flop_counter import FlopCounterMode

    for c_in, c_out, k, hw in [(3, 8, 3, 10), (4, 6, 5, 7)]:
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        with FlopCounterMode(display=False) as fc:
            conv(torch.zeros(1, c_in, hw, hw))
        assert fc.get_total_flops() == 2 * arith.conv_macs(c_in, c_out, 1, (k, k), (hw, hw)) == \
            2 * c_in * c_out * k * k * hw * hw


def test_d2l_note__conv_cost_over_53_billion():
    """[number] 256×256, 5×5, 128 → 128: 26.8 G multiply-adds = 53.7 G operations ('over 53 billion')."""
    s = convlab.summary("conv(128,5,p=2,bias=false)", (128, 256, 256))
    assert s.macs == 128 * 128 * 25 * 256 * 256 == 26_843_545_600
    assert s.flops == 53_687_091_200 > 53e9
    out = _tour("cost")
    assert "26,843,545,600 MACs" in out and "53,687,091,200" in out and "over 53 billion" in out


def test_d2l_note__exercise_output_shape_2x2():
    """[exercise] 7.3.4: kernel (3, 5), padding (0, 1), stride (3, 4) on 8×8: ⌊(8 − 3 + 0 + 3)/3⌋ = 2,
    ⌊(8 − 5 + 1 + 4)/4⌋ = 2, consistent with the experiment."""
    assert tour.d2l_formula(8, 3, 3, 0) == 2 and tour.d2l_formula(8, 5, 4, 1) == 2
    assert tuple(nn.Conv2d(1, 1, (3, 5), (3, 4), (0, 1))(torch.rand(1, 1, 8, 8)).shape[2:]) == (2, 2)


def test_d2l_note__exercise_plugs_in_per_side_padding():
    """[formula] d2l's p is the padding of both sides; the exercise's per-side value is right only by luck."""
    assert tour.d2l_formula(8, 5, 4, 2) == tour.d2l_formula(8, 5, 4, 1) == arith.conv1d_out(8, 5, 4, 1)
    assert tour.d2l_formula(8, 3, 1, 1) == 7 != arith.conv1d_out(8, 3, 1, 1) == 8 == tour.d2l_formula(8, 3, 1, 2)
    assert "right by luck" in _tour("formulas")


def test_d2l_note__d2l_formula_equals_pytorch():
    """[formula] ⌊(h − k + p + s)/s⌋ with p = 2·padding is PyTorch's ⌊(h + 2·padding − k)/s⌋ + 1."""
    for h, k, pad, s in itertools.product(range(1, 40), range(1, 8), range(4), range(1, 5)):
        if h + 2 * pad >= k:
            assert tour.d2l_formula(h, k, s, 2 * pad) == arith.conv1d_out(h, k, s, pad)
    for h, k, pad, s in [(8, 3, 1, 2), (9, 4, 2, 3), (5, 5, 0, 1)]:
        assert tour.d2l_formula(h, k, s, 2 * pad) == nn.Conv2d(1, 1, k, s, pad)(torch.zeros(1, 1, h, h)).shape[-1]
    assert "0 differ" in _tour("formulas")


def test_d2l_note__kernel_shapes_ci_kh_kw_and_co_ci_kh_kw():
    """[claim] One output channel's kernel is c_i × k_h × k_w; c_o of them make c_o × c_i × k_h × k_w."""
    m = build("conv(6,3x5)", (4, 9, 9))
    assert m.conv1.weight.shape == (6, 4, 3, 5) and m.conv1.weight[0].shape == (4, 3, 5)


def test_d2l_note__1x1_conv_needs_co_times_ci_weights():
    """[number] A 1×1 conv has c_o × c_i weights."""
    for ci, co in [(3, 2), (64, 16), (256, 512)]:
        assert convlab.summary(f"conv({co},1,bias=false)", (ci, 5, 5)).trainable_params == co * ci == \
            nn.Conv2d(ci, co, 1, bias=False).weight.numel()


def test_d2l_note__lenet_two_convs_and_three_fc_layers():
    """[claim] LeNet: 2 conv layers (5×5, padding 2 first, each with 2×2 average pooling, stride 2), 3 fc layers."""
    m = create_model("lenet")
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    pools = [x for x in m.modules() if isinstance(x, nn.AvgPool2d)]
    fcs = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert len(convs) == 2 and len(fcs) == 3 and len(pools) == 2
    assert all(c.kernel_size == (5, 5) for c in convs) and convs[0].padding == (2, 2)
    assert all(arith.pair(p.kernel_size) == (2, 2) and arith.pair(p.stride) == (2, 2) for p in pools)


def test_d2l_note__lenet_originally_sigmoid_and_average_pooling():
    """[claim] The original LeNet uses sigmoids and average pooling."""
    types = {type(x) for x in create_model("lenet").modules()}
    assert nn.Sigmoid in types and nn.AvgPool2d in types and nn.ReLU not in types and nn.MaxPool2d not in types


def test_d2l_note__modern_lenet_relu_maxpool_summary():
    """[exercise] Modernising LeNet: ReLU and max pooling; the same shapes as d2l prints, and convlab's
    pool-then-ReLU order computes d2l's ReLU-then-pool exactly."""
    d2l = _d2l_lenet(nn.ReLU, nn.MaxPool2d)
    assert _layer_summary(d2l, (1, 1, 28, 28)) == D2L_LENET_SHAPES
    fast, textbook = create_model("lenet-modern"), create_model("lenet-modern:order=relu-pool")
    textbook.load_state_dict(fast.state_dict())
    types = {type(x) for x in fast.modules()}
    assert nn.ReLU in types and nn.Sigmoid not in types and nn.AvgPool2d not in types
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(fast(x), textbook(x))
    assert sorted(_shapes("lenet-modern:order=relu-pool", (1, 28, 28)).values()) == sorted(D2L_LENET_SHAPES)


def test_d2l_note__modern_lenet_training_d2l_recipe():
    """[example] The modern LeNet trained by the same d2l Trainer (`convlab train lenet-modern --recipe d2l`)."""
    _parses(["train", "lenet-modern", "--recipe", "d2l"])
    c = _d2l_resolved("lenet-modern")
    assert {k: getattr(c, k) for k in D2L_TRAINER} == D2L_TRAINER


def _d2l_vgg_block(num_convs, out_channels):
    layers = []
    for _ in range(num_convs):
        layers += [nn.LazyConv2d(out_channels, kernel_size=3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))


def test_d2l_note__vgg_block():
    """[example] vgg_block(num_convs, out_channels): 3×3 convs with padding 1 and ReLU, then 2×2 max-pool, stride 2."""
    ref = _d2l_vgg_block(2, 8)
    with torch.no_grad():
        expect = ref(torch.zeros(1, 3, 16, 16)).shape
    s = _shapes("(conv(8,3,p=1) relu)x2 maxpool(2)", (3, 16, 16))
    assert list(s.values()) == [(8, 16, 16)] * 4 + [tuple(expect[1:])] == [(8, 16, 16)] * 4 + [(8, 8, 8)]


def test_d2l_note__vgg_layer_summary_224():
    """[example] VGG arch ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)) on 1×224×224: 64×112×112 … 512×7×7,
    flatten 25088, fc 4096, 4096, 10."""
    s = convlab.summary("vgg11", (1, 224, 224), num_classes=10)
    pools = [tuple(r.output_shape[1:]) for r in s.rows if r.type == "MaxPool2d"]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert [r.output_shape[1] for r in s.rows if r.type in ("Flatten", "Linear")] == [25088, 4096, 4096, 10]
    assert sum(r.type == "Dropout" for r in s.rows) == 2


def test_d2l_note__vgg_training_arch():
    """[example] The trained VGG: arch ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)) on 224×224 Fashion-MNIST."""
    s = convlab.summary("vgg-d2l")
    assert tuple(s.input_shape) == (1, 224, 224)
    pools = [tuple(r.output_shape[1:]) for r in s.rows if r.type == "MaxPool2d"]
    assert pools == [(16, 112, 112), (32, 56, 56), (64, 28, 28), (128, 14, 14), (128, 7, 7)]
    assert [r.output_shape[1] for r in s.rows if r.type in ("Flatten", "Linear")] == [6272, 4096, 4096, 10]
    assert sum(r.type == "Conv2d" for r in s.rows) == 8


def _heavy_run(model: str, resize: int, tmp_path, monkeypatch, capsys):
    """d2l's run of ``model`` at ``resize``² by --recipe d2l on Fashion-MNIST, interrupted (as Ctrl-C would)
    once the estimate has been said: the first steps of the real run, not the hours after them."""
    from convlab.data import load
    from convlab.training import TrainConfig, progress, train

    monkeypatch.chdir(tmp_path)
    try:
        fm = load("fashion-mnist", download=False, progress=False)
    except Exception:
        pytest.skip("Fashion-MNIST is not installed")
    said = []
    original = progress._Estimate.after_step

    def after_step(self, steps_left):
        if self.done:  # the step after the estimate was timed (and said): stop here, as Ctrl-C would
            raise KeyboardInterrupt
        line = original(self, steps_left)
        if line:
            said.append(line)
        return line

    monkeypatch.setattr(progress._Estimate, "after_step", after_step)
    run = train(model, fm, TrainConfig(recipe="d2l", resize=resize, device="cpu", threads=1, out="runs/heavy"),
                progress=False)
    assert run.interrupted and len(said) == 1
    return run, capsys.readouterr().err


@pytest.mark.slow
def test_d2l_note__vgg_training_resize_224(tmp_path, monkeypatch, capsys):
    """[example] trainer.fit(VGG, FashionMNIST(resize=(224, 224))): a heavy run on a CPU — convlab says so after
    its first steps, with the time an epoch and the run will take; d2l's lr 0.01 comes with --recipe d2l."""
    run, err = _heavy_run("vgg-d2l", 224, tmp_path, monkeypatch, capsys)
    assert (run.config.lr, run.config.batch_size, run.config.epochs, run.config.resize) == (0.01, 128, 10, 224)
    # 60,000 images in batches of 128: 468 full steps (convlab drops the last partial batch of 96; d2l trains it)
    assert "estimate: this run is long here — about " in err and "468 steps an epoch" in err


class _D2LResidual(nn.Module):
    """d2l 8.6.2's Residual block, as the notes write it (the oracle)."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1, self.bn2 = nn.LazyBatchNorm2d(), nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        return F.relu(Y + X)


def test_d2l_note__residual_block_keeps_4_3_6_6():
    """[example] Residual(3) on (4, 3, 6, 6) gives (4, 3, 6, 6)."""
    X = torch.randn(4, 3, 6, 6)
    assert _D2LResidual(3)(X).shape == build("res(3)", (3, 6, 6))(X).shape == (4, 3, 6, 6)


def test_d2l_note__residual_block_1x1_stride_2_gives_4_6_3_3():
    """[example] Residual(6, use_1x1conv=True, strides=2) on (4, 3, 6, 6) gives (4, 6, 3, 3)."""
    X = torch.randn(4, 3, 6, 6)
    m = build("res(6,s=2,shortcut=B)", (3, 6, 6))
    assert _D2LResidual(6, use_1x1conv=True, strides=2)(X).shape == m(X).shape == (4, 6, 3, 3)
    proj = [x for x in m.modules() if isinstance(x, nn.Conv2d) and x.kernel_size == (1, 1)]
    assert len(proj) == 1 and proj[0].stride == (2, 2)


def test_d2l_note__resnet_b1_stem():
    """[example] ResNet's b1: 7×7 conv, 64 channels, stride 2, padding 3; BN; ReLU; 3×3 max-pool, stride 2, padding 1."""
    m = create_model("resnet18", (1, 96, 96), 10)
    assert (m.conv1.kernel_size, m.conv1.stride, m.conv1.padding, m.conv1.out_channels) == ((7, 7), (2, 2), (3, 3), 64)
    assert isinstance(m.bn1, nn.BatchNorm2d) and isinstance(m.relu, nn.ReLU)
    assert (arith.pair(m.maxpool.kernel_size), arith.pair(m.maxpool.stride), arith.pair(m.maxpool.padding)) == \
        ((3, 3), (2, 2), (1, 1))


def test_d2l_note__resnet18_layer_summary_96():
    """[example] ResNet18().layer_summary((1, 1, 96, 96)): 64×24×24, 64×24×24, 128×12×12, 256×6×6, 512×3×3, 10."""
    s = _shapes("resnet18", (1, 96, 96), num_classes=10)
    assert [s["maxpool"], s["layer1"], s["layer2"], s["layer3"], s["layer4"], s["fc"]] == \
        [(64, 24, 24), (64, 24, 24), (128, 12, 12), (256, 6, 6), (512, 3, 3), (10,)]
    m = create_model("resnet18", (1, 96, 96), 10)
    with torch.no_grad():
        assert m(torch.zeros(1, 1, 96, 96)).shape == (1, 10)


@pytest.mark.slow
def test_d2l_note__resnet18_training_96(tmp_path, monkeypatch, capsys):
    """[example] trainer.fit(ResNet18(lr=0.01), FashionMNIST(resize=(96, 96))): a heavy run on a CPU, announced
    with its estimate; lr 0.01 with --recipe d2l."""
    run, err = _heavy_run("resnet18", 96, tmp_path, monkeypatch, capsys)
    assert (run.config.lr, run.config.resize, run.config.init) == (0.01, 96, "xavier")
    # 60,000 images in batches of 128: 468 full steps (convlab drops the last partial batch of 96; d2l trains it)
    assert "estimate: this run is long here — about " in err and "468 steps an epoch" in err


def test_d2l_note__vgg_multiple_3x3_convs_between_pooling():
    """[claim] VGG's idea: several 3×3 convs between poolings — two see what one 5×5 sees, with 18 instead of 25
    weights per channel pair."""
    rf = arith.receptive_field([(3, 1, 1), (3, 1, 1)])
    assert rf[-1].size == arith.receptive_field([(5, 1, 2)])[-1].size == 5
    two = convlab.summary("conv(8,3,p=1,bias=false) conv(8,3,p=1,bias=false)", (8, 16, 16)).trainable_params
    one = convlab.summary("conv(8,5,p=2,bias=false)", (8, 16, 16)).trainable_params
    assert (two, one) == (18 * 64, 25 * 64)


def test_d2l_note__vgg_block_keeps_resolution_then_halves():
    """[claim] 3×3 convs with padding 1 keep the resolution; the 2×2 max-pool with stride 2 halves it."""
    for h in range(2, 65):
        assert arith.conv1d_out(h, 3, 1, 1) == h and arith.pool1d_out(h, 2, 2) == h // 2


def test_d2l_note__residual_mapping_g_is_f_minus_x():
    """[formula] The block learns g(x) = f(x) − x (the notes lose the minus sign): convlab's res block outputs
    relu(g(x) + x), with g the conv-bn-relu-conv-bn body."""
    m = build("res(8)", (8, 6, 6)).eval()
    b = next(x for x in m.modules() if type(x).__name__ == "BasicBlock")
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        g = b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x)))))
        assert torch.allclose(m(x), F.relu(g + x), atol=1e-6)
    assert "g(x) = f(x) − x" in _tour("residual")


def test_d2l_note__shortcut_added_before_the_last_activation():
    """[claim] The shortcut carries x to an addition before the block's last activation."""
    m = build("res(8)", (8, 6, 6)).eval()
    b = next(x for x in m.modules() if type(x).__name__ == "BasicBlock")
    seen = []
    b.relu.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        m(x)
        last_in = seen[-1]
        assert torch.allclose(last_in, b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x))))) + x, atol=1e-6)


def test_d2l_note__resnet_block_order():
    """[claim] 3×3 conv → BN → ReLU → 3×3 conv → BN → + shortcut → ReLU."""
    m = build("res(8)", (8, 6, 6))
    b = next(x for x in m.modules() if type(x).__name__ == "BasicBlock")
    kinds = [(n, type(c).__name__) for n, c in b.named_children()]
    assert kinds[:5] == [("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("relu", "ReLU"), ("conv2", "Conv2d"),
                         ("bn2", "BatchNorm2d")]
    assert b.conv1.kernel_size == b.conv2.kernel_size == (3, 3)


def test_d2l_note__downsample_with_a_strided_conv():
    """[claim] To downsample, the block's first conv takes a stride (and so does the shortcut)."""
    for shortcut in ("A", "B"):
        m = build(f"res(32,s=2,shortcut={shortcut})", (16, 32, 32))
        assert m(torch.zeros(1, 16, 32, 32)).shape == (1, 32, 16, 16)


# =============================================================================================
# resnet20 note: the ResNet-20 study


def _r20(shortcut="B"):
    return convlab.summary(f"resnet20:shortcut={shortcut}")


def _draw(tmp_path, block: str) -> dict:
    """The picture's graph as ``convlab draw --format json`` writes it: {name: node}, and the edges."""
    import json

    out = tmp_path / "picture.json"
    assert main(["draw", "resnet20:shortcut=B", "--block", block, "--format", "json", "--out", str(out)]) == 0
    g = json.loads(out.read_text())
    nodes = {n["name"]: n for n in g["nodes"]}
    assert nodes["input"]["kind"] == "input" and nodes["output"]["kind"] == "output"
    return {"nodes": nodes, "edges": g["edges"], "adds": [n for n in nodes if nodes[n]["kind"] == "add"]}


def test_resnet20_note__initial_conv_16x32x32():
    """[example] Input (3, 32, 32); 3×3 conv, 16 channels, stride 1, padding 1; BN and ReLU: (16, 32, 32)."""
    m = create_model("resnet20")
    assert (m.conv1.in_channels, m.conv1.out_channels, m.conv1.kernel_size, m.conv1.stride, m.conv1.padding) == \
        (3, 16, (3, 3), (1, 1), (1, 1))
    assert isinstance(m.bn1, nn.BatchNorm2d) and isinstance(m.relu, nn.ReLU)
    s = _shapes("resnet20", None)
    assert s["conv1"] == s["bn1"] == s["relu"] == (16, 32, 32)


def test_resnet20_note__initial_layer_picture(tmp_path):
    """[figure] 'TODO: Insert image here' — the stem."""
    g = _draw(tmp_path, "conv1,bn1,relu")
    assert g["nodes"]["input"]["output_shape"] == [1, 3, 32, 32]
    assert g["nodes"]["conv1"]["settings"] == "conv 3×3 p1" and g["nodes"]["output"]["output_shape"] == [1, 16, 32, 32]


def test_resnet20_note__block1_three_times_16x32x32():
    """[example] Block 1 three times: 3×3 convs, 16 channels, stride 1, padding 1; BN, ReLU; BN; skip from the
    block's input, then ReLU; (16, 32, 32)."""
    m = create_model("resnet20")
    blocks = list(m.layer1)
    assert len(blocks) == 3
    for b in blocks:
        for c in (b.conv1, b.conv2):
            assert (c.out_channels, c.kernel_size, c.stride, c.padding) == (16, (3, 3), (1, 1), (1, 1))
        assert b.downsample is None
    assert _shapes("resnet20", None)["layer1"] == (16, 32, 32)


def test_resnet20_note__block1_picture(tmp_path):
    """[figure] 'TODO: Insert image here' — a block of stage 1."""
    g = _draw(tmp_path, "layer1.0")
    assert g["nodes"]["input"]["output_shape"] == g["nodes"]["output"]["output_shape"] == [1, 16, 32, 32]
    assert g["adds"] == ["layer1.0.add"]
    assert {e["from"] for e in g["edges"] if e["to"] == "layer1.0.add"} == {"input", "layer1.0.bn2"}  # the skip


def test_resnet20_note__block2_first_conv_stride_2_gives_32x16x16():
    """[example] Block 2's first conv: 3×3, 32 channels, stride 2, padding 1: (32, 16, 16); the second stride 1;
    BN before the addition."""
    m = create_model("resnet20")
    b = m.layer2[0]
    assert (b.conv1.out_channels, b.conv1.stride, b.conv1.padding) == (32, (2, 2), (1, 1))
    assert b.conv2.stride == (1, 1) and isinstance(b.bn2, nn.BatchNorm2d)
    assert _shapes("resnet20", None)["layer2.0.conv1"] == (32, 16, 16)


def test_resnet20_note__block2_pointwise_shortcut():
    """[example] The skip downsamples with a point-wise conv: 1×1, 32 channels, stride 2, padding 0 (option B;
    convlab's resnet20 default is the paper's option A, with the same shapes)."""
    m = create_model("resnet20:shortcut=B")
    proj = m.layer2[0].downsample[0]
    assert (proj.kernel_size, proj.out_channels, proj.stride, proj.padding) == ((1, 1), 32, (2, 2), (0, 0))
    assert _shapes("resnet20:shortcut=B", None)["layer2.0.downsample"] == \
        _shapes("resnet20", None)["layer2.0.downsample"] == (32, 16, 16)


def test_resnet20_note__stride_2_padding_0_matches_the_block():
    """[claim] Stride 2 and padding 0 on the 1×1 conv give the block's size, so the two can be added."""
    for h in range(2, 65):
        assert arith.conv1d_out(h, 1, 2, 0) == arith.conv1d_out(h, 3, 2, 1)


def test_resnet20_note__block2_repeated_with_stride_1():
    """[example] Block 2 repeated twice more with stride 1 and 32 channels: (32, 16, 16)."""
    m = create_model("resnet20")
    assert len(m.layer2) == 3
    for b in list(m.layer2)[1:]:
        assert b.conv1.stride == (1, 1) and b.conv1.out_channels == 32 and b.downsample is None
    assert _shapes("resnet20", None)["layer2"] == (32, 16, 16)


def test_resnet20_note__block2_picture(tmp_path):
    """[figure] 'TODO: Insert image here' — the strided block with its 1×1 shortcut."""
    g = _draw(tmp_path, "layer2.0")
    assert g["nodes"]["layer2.0.downsample"]["settings"] == "1×1 conv s2 → 32×16×16, bn"
    assert {e["from"] for e in g["edges"] if e["to"] == "layer2.0.add"} == {"layer2.0.downsample", "layer2.0.bn2"}
    assert g["nodes"]["output"]["output_shape"] == [1, 32, 16, 16]


def test_resnet20_note__block3_64x8x8():
    """[example] Block 3 like block 2, to 64 channels and 8×8: (64, 8, 8)."""
    s = _shapes("resnet20", None)
    assert s["layer3.0.conv1"] == s["layer3"] == (64, 8, 8)
    assert len(create_model("resnet20").layer3) == 3


def test_resnet20_note__block3_picture(tmp_path):
    """[figure] 'TODO: Insert image here' — stage 3."""
    g = _draw(tmp_path, "layer3")
    assert len(g["adds"]) == 3 and g["nodes"]["output"]["output_shape"] == [1, 64, 8, 8]
    assert g["nodes"]["input"]["output_shape"] == [1, 32, 16, 16]


def test_resnet20_note__final_avgpool_8x8_and_fc_64_to_10():
    """[example] An 8×8 average pool gives (64, 1, 1); an fc turns 64 features into 10."""
    s = _shapes("resnet20", None)
    assert s["gap"] == (64, 1, 1) and s["fc"] == (10,)
    m = create_model("resnet20")
    assert (m.fc.in_features, m.fc.out_features) == (64, 10)
    x = torch.randn(2, 64, 8, 8)
    assert torch.allclose(m.gap(x), nn.AvgPool2d(8)(x), atol=1e-6)


def test_resnet20_note__final_layer_picture(tmp_path):
    """[figure] 'TODO: Insert image here' — the pooling and fc head."""
    g = _draw(tmp_path, "gap,flatten,fc")
    assert g["nodes"]["gap"]["output_shape"] == [1, 64, 1, 1] and g["nodes"]["fc"]["settings"] == "fc 64→10"
    assert g["nodes"]["output"]["output_shape"] == [1, 10]


def test_resnet20_note__for_cifar10_with_10_classes():
    """[claim] ResNet-20 for CIFAR-10: 10 classes; 0.27 M parameters (He et al. 2016, Table 6)."""
    s = convlab.summary("resnet20")
    assert s.output_shape == [1, 10] and tuple(s.input_shape) == (3, 32, 32)
    assert round(s.trainable_params / 1e6, 2) == 0.27
    m = create_model("resnet20")
    assert sum(p.numel() for p in m.parameters()) == s.trainable_params


# =============================================================================================
# keras note: residual shapes, batch norm, separable convs, the binary head, activations


def test_keras_note__add_layers_of_the_same_shape():
    """[claim] Add layers of the same shape: a residual whose body keeps the shape builds and adds."""
    m = build("conv(32,3) residual[conv(32,3,p=1) bn]", (3, 32, 32))
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 32, 30, 30)


def test_keras_note__30x30x64_plus_30x30x32_no():
    """[exercise] Can we add (30, 30, 64) and (30, 30, 32)? No."""
    with pytest.raises(RuntimeError):
        torch.zeros(1, 64, 30, 30) + torch.zeros(1, 32, 30, 30)
    with pytest.raises(ShapeError, match="32×30×30 into 64×30×30") as e:
        build("conv(32,3) residual[conv(64,3,p=1) bn]", (3, 32, 32))
    assert "1x1 conv 32→64" in str(e.value)
    assert "(30,30,64) + (30,30,32)? No" in _tour("residual")


def test_keras_note__pooling_in_between_needs_a_strided_skip():
    """[exercise] With a pooling layer in between the spatial size drops: use strides in the skip's conv."""
    with pytest.raises(ShapeError, match="with stride 2"):
        build("conv(32,3) residual[conv(64,3,p=1) bn maxpool(2)]", (3, 32, 32))
    m = build("conv(32,3) residual(proj)[conv(64,3,p=1) bn maxpool(2)]", (3, 32, 32))
    assert m.residual.proj[0].stride == (2, 2)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 15, 15)


def _grad_norms_by_depth(name: str, seed: int = 0) -> list[float]:
    """The weight-gradient norm of every conv and the fc, input to output, after one backward pass of
    a batch through the zoo net at initialisation (what the degradation experiment logs at step 1)."""
    torch.manual_seed(seed)
    net = create_model(f"{name}:width=4", input_shape=(1, 14, 14), num_classes=10)
    x, y = torch.randn(32, 1, 14, 14), torch.randint(0, 10, (32,))
    F.cross_entropy(net(x), y).backward()
    return [m.weight.grad.norm().item() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("seed", [0, 1])
def test_keras_note__arbitrary_depth_without_vanishing_gradients(seed):
    """[claim] Residual connections allow arbitrary depth without vanishing gradients (gradient norms by depth).
    On ResNet-56 every layer's gradient stays within two orders of magnitude of every other's, the first
    conv's included; on plain-56 (with batch norm) they span more than three — growing toward the input."""
    res, plain = _grad_norms_by_depth("resnet56", seed), _grad_norms_by_depth("plain56", seed)
    assert len(res) == len(plain) == 56
    assert max(res) / min(res) < 100
    assert max(plain) / min(plain) > 1000 and plain[0] > 100 * plain[-1]


def test_keras_note__shorter_path_for_gradients():
    """[claim] 'Shorter path for gradients' (gradient flow, plain vs residual): through the identity
    shortcuts the gradient at a block's input is the gradient at its output plus the body's term, so
    from the fc back to the first conv it keeps its scale; without them it is multiplied by every
    layer's Jacobian in turn (here it grows ~1000x over 56 layers)."""
    import torch.nn as nn

    res, plain = _grad_norms_by_depth("resnet56"), _grad_norms_by_depth("plain56")
    spread = lambda g: max(g) / min(g)  # noqa: E731
    assert spread(plain) > 100 * spread(res)
    block = build("res(8)", (8, 6, 6)).eval()  # one block: d out / d x = I + d body / d x (before the ReLU)
    x = torch.randn(1, 8, 6, 6, requires_grad=True)
    body = next(m for m in block.modules() if type(m).__name__ == "BasicBlock")
    with torch.no_grad():
        for p in body.parameters():
            p.zero_() if p.dim() > 1 else None
    F.relu(x).sum().backward()
    want = x.grad.clone()
    x.grad = None
    block(F.relu(x)).sum().backward()
    assert torch.allclose(x.grad, want)  # a body that adds nothing still passes the whole gradient back


def test_keras_note__easy_to_learn_the_identity():
    """[claim] A block learns the identity easily: with its last BN's γ = β = 0 it is the identity (on x ≥ 0)."""
    m = build("res(16)", (16, 8, 8)).eval()
    b = next(x for x in m.modules() if type(x).__name__ == "BasicBlock")
    x = F.relu(torch.randn(2, 16, 8, 8))
    with torch.no_grad():
        assert not torch.allclose(m(x), x)
        b.bn2.weight.zero_()
        b.bn2.bias.zero_()
        assert torch.equal(m(x), x)


def test_keras_note__ensemble_of_shallow_networks():
    """[claim] 'Ensemble of shallow networks': n blocks give 2ⁿ paths — stated with its source (Veit et al. 2016)."""
    n = sum(r.type == "BasicBlock" for r in convlab.summary("resnet20").rows)
    assert n == 9 and sum(math.comb(n, k) for k in range(n + 1)) == 512
    out = _tour("residual")
    assert "2^9 = 512 paths" in out and "Veit, Wilber & Belongie 2016" in out and "a claim" in out


def test_keras_note__batchnorm_128_parameters_64_trainable():
    """[number] BN after 32 channels: 4 per channel = 128, of which 64 trainable."""
    s = convlab.summary("conv(32,3,p=1) bn", (3, 8, 8))
    bn = s.rows[1]
    ref = nn.BatchNorm2d(32)
    assert bn.trainable_params == sum(p.numel() for p in ref.parameters()) == 64
    assert bn.non_trainable_params == ref.running_mean.numel() + ref.running_var.numel() == 64
    assert "64 trainable + 64 non-trainable = 128" in _tour("batchnorm")


def test_keras_note__batchnorm_moving_statistics_are_not_trained():
    """[claim] γ and β are trained; moving mean and variance come from the batches' statistics and are saved."""
    bn = nn.BatchNorm2d(3)
    assert all(p.requires_grad for p in bn.parameters())
    assert not bn.running_mean.requires_grad and "running_mean" in bn.state_dict()
    x = 5.0 + torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    bn.train()
    bn(x).sum().backward()
    assert torch.allclose(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)), atol=1e-5)   # momentum 0.1
    y, m, v = scratch.batch_norm(x, bn.weight.detach(), bn.bias.detach(), torch.zeros(3), torch.ones(3), True)
    assert torch.allclose(m, bn.running_mean, atol=1e-6) and torch.allclose(v, bn.running_var, atol=1e-5)


def test_keras_note__batchnorm_weak_regulariser():
    """[claim] BN is a weak regulariser (it adds noise): the noise is shown (an image's output depends on its
    batch in training, not in eval); the regularising effect is stated as a claim with its source."""
    bn = nn.BatchNorm2d(4)
    img = torch.randn(1, 4, 3, 3)
    others = [torch.randn(5, 4, 3, 3) * s for s in (1.0, 4.0)]
    with torch.no_grad():
        bn.train()
        a, b = (bn(torch.cat([img, o]))[0] for o in others)
        assert float((a - b).abs().max()) > 0.1
        bn.eval()
        a, b = (bn(torch.cat([img, o]))[0] for o in others)
        assert torch.equal(a, b)
    out = _tour("batchnorm")
    assert "a claim" in out and "Ioffe & Szegedy 2015" in out


def test_keras_note__separable_is_depthwise_then_pointwise():
    """[claim] Depthwise separable conv = depthwise conv (each channel on its own) + pointwise 1×1 conv."""
    m = build("sepconv(6,3,p=1)", (4, 8, 8))
    sep = next(x for x in m.modules() if type(x).__name__ == "SeparableConv2d")
    assert sep.depthwise.groups == 4 and sep.pointwise.kernel_size == (1, 1)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        ref = F.conv2d(F.conv2d(x, sep.depthwise.weight, sep.depthwise.bias, padding=1, groups=4),
                       sep.pointwise.weight, sep.pointwise.bias)
        assert torch.allclose(m(x), ref, atol=1e-5)
        y = x.clone()
        y[:, 1] += 1.0                                    # the depthwise part keeps channels apart
        d = (sep.depthwise(y) - sep.depthwise(x)).abs().sum(dim=(0, 2, 3))
        assert float(d[1]) > 0 and float(d[0] + d[2] + d[3]) == 0


def test_keras_note__separable_is_smaller():
    """[claim] It makes the model smaller: 2,400 parameters against a regular conv's 18,496."""
    sep = convlab.summary("sepconv(64,3,p=1)", (32, 8, 8)).trainable_params
    reg = convlab.summary("conv(64,3,p=1)", (32, 8, 8)).trainable_params
    assert (sep, reg) == (2400, 18_496)


def test_keras_note__no_separable_conv_at_the_rgb_input():
    """[exercise] Why not a depthwise separable conv at the input? RGB channels are correlated: convlab warns."""
    assert "separable-at-input" in [f.code for f in check("sepconv(32,3,p=1) relu", (3, 16, 16))[0]]
    assert "separable-at-input" not in [f.code for f in check("sepnet")[0]]


def test_keras_note__separable_params_2400():
    """[exercise] SeparableConv2D 32 → 64, 3×3: 288 + 2,048 + 64 = 2,400 (Keras: no depthwise bias)."""
    s = convlab.summary("sepconv(64,3,p=1)", (32, 8, 8))
    dw, pw = nn.Conv2d(32, 32, 3, groups=32, bias=False), nn.Conv2d(32, 64, 1)
    assert s.trainable_params == sum(p.numel() for p in [*dw.parameters(), *pw.parameters()]) == 2400
    parts = scratch.separable_params(32, 64, 3)
    assert (parts["depthwise"], parts["pointwise"], parts["pointwise_bias"]) == (288, 2048, 64)


def test_keras_note__separable_params_with_depthwise_bias_2432():
    """[exercise] With the depthwise bias too: 288 + 32 + 2,048 + 64 = 2,432."""
    assert convlab.summary("sepconv(64,3,p=1,dw_bias=true)", (32, 8, 8)).trainable_params == 2432
    assert scratch.separable_params(32, 64, 3, depthwise_bias=True)["total"] == 2432


def test_keras_note__separable_7x7x3_two_filters_38():
    """[exercise] 7×7×3 input, 3×3 filters, 2 filters, a bias each: depthwise 27 + 3, pointwise 6 + 2: 38."""
    s = convlab.summary("sepconv(2,3,dw_bias=true)", (3, 7, 7))
    dw, pw = nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 2, 1)
    assert [p.numel() for p in dw.parameters()] == [27, 3] and [p.numel() for p in pw.parameters()] == [6, 2]
    assert s.trainable_params == 38 == scratch.separable_params(3, 2, 3, depthwise_bias=True)["total"]


def test_keras_note__binary_head_gap_dropout_dense_1_sigmoid():
    """[example] GlobalAveragePooling2D → Dropout(0.5) → Dense(1, sigmoid): sepnet's head."""
    s = convlab.summary("sepnet")
    tail = [r.type for r in s.rows if r.depth == 0][-5:]
    assert tail == ["GlobalAvgPool", "Flatten", "Dropout", "Linear", "Sigmoid"]
    assert s.output_shape == [1, 1]
    m = create_model("sepnet", (3, 32, 32))
    assert m.dropout.p == 0.5
    with torch.no_grad():
        p = m.eval()(torch.randn(3, 3, 32, 32))
    assert p.shape == (3, 1) and bool(((p > 0) & (p < 1)).all())


def test_keras_note__binary_head_trains_with_bce(tmp_path, monkeypatch):
    """[example] The binary head trains with binary cross-entropy and reports the sigmoid's probability."""
    from convlab.data.registry import Dataset
    from convlab.training import TrainConfig, train
    from convlab.training.report import probabilities

    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (120,), generator=g)
    x = (torch.randint(0, 100, (120, 3, 16, 16), generator=g) + 120 * y[:, None, None, None]).to(torch.uint8)
    ds = Dataset("two", x[:80], y[:80], x[80:], y[80:], ["cat", "dog"], (0.45,) * 3, (0.3,) * 3)
    run = train("sepnet:width=4", ds, TrainConfig(epochs=5, batch_size=16, lr=0.05, augment="none",
                                                  label_smoothing=0.0, device="cpu", threads=1, out="runs/s"),
                progress=False)
    spec = (tmp_path / "runs/s/model.spec").read_text().strip()
    assert spec.endswith("dropout fc(1) sigmoid")          # the saved spec is the model that trained
    assert isinstance(run.model[-1], nn.Sigmoid) and run.model.fc.out_features == 1
    p = probabilities(run.model, ((x[80:].float() / 255 - 0.45) / 0.3))
    with torch.no_grad():
        sig = run.model.eval()(((x[80:].float() / 255 - 0.45) / 0.3))[:, 0]
    assert torch.allclose(p[:, 1], sig, atol=1e-6)
    # softmax over a sigmoid capped every probability at e/(1+e) = 73.1% and the loss at 0.313 or more
    assert float(p.max()) > 0.9 and run.metrics[-1]["train_loss"] < 0.313 and run.test_acc > 0.9


def _inspect_module():
    return importlib.import_module("convlab.inspect")


def test_keras_note__first_layer_edge_detectors():
    """[claim] The first layer acts as a collection of edge detectors: a vertical-edge kernel in conv1 lights
    up only along the edge of an image, and convlab's activation maps show it."""
    from convlab.inspect import activation_maps

    m = build("conv(1,3,p=1) relu flatten fc(2)", (1, 8, 8))
    with torch.no_grad():
        m.conv1.weight.copy_(torch.tensor([[[[-1.0, 0.0, 1.0]] * 3]]))
        m.conv1.bias.zero_()
    img = torch.zeros(1, 8, 8)
    img[:, :, 4:] = 1.0  # dark left half, bright right half: one vertical edge between columns 3 and 4
    maps = activation_maps(m, img)
    relu = next(v for k, v in maps.items() if k.startswith("relu"))
    lit = relu[0].nonzero()[:, 1].unique().tolist()
    assert lit == [3, 4]  # only the two columns next to the edge respond


def test_keras_note__deeper_activations_more_abstract():
    """[claim] Deeper activations are more abstract: Grad-CAM reads the LAST conv layer (class evidence
    where the image shows it) by default and names the layer it used."""
    from convlab.inspect import gradcam

    torch.manual_seed(0)
    m = create_model("lenet-modern").eval()
    cam = gradcam(m, torch.rand(1, 28, 28))
    assert cam.layer == "conv2"
    assert tuple(cam.map.shape[-2:]) == (28, 28) and float(cam.map.min()) >= 0


def test_keras_note__sparsity_grows_with_depth():
    """[claim] The sparsity of the activations increases with depth: convlab measures it per layer, in depth
    order, and states what the numbers say (here on a net whose second ReLU is sparser by construction)."""
    from convlab.inspect import activation_stats

    m = build("conv(4,3,p=1) relu conv(4,3,p=1) relu gap flatten fc(2)", (1, 8, 8))
    with torch.no_grad():
        m.conv2.bias.fill_(-100.0)  # the second ReLU's maps are blank for any image in [0, 1]
    st = activation_stats(m, [torch.rand(6, 1, 8, 8)])
    names = [layer.name for layer in st.layers]
    assert names == ["relu1", "relu2"]
    assert st.layers[1].zeros == 1.0 and st.layers[1].blank == 1.0 and st.layers[0].zeros < 1.0
    assert st.verdict().startswith("Deeper is sparser? yes"), st.verdict()


# =============================================================================================
# cs231n note: conv and pooling layers, stride, fc as conv, in_features, patterns


def test_cs231n_note__conv_layer_shares_filters_and_keeps_the_grid():
    """[claim] A conv layer learns shared filters and outputs one feature map per filter on the same grid."""
    for hw in (8, 32, 100):
        s = convlab.summary("conv(16,3,p=1)", (3, hw, hw))
        assert s.output_shape == [1, 16, hw, hw] and s.trainable_params == 3 * 16 * 9 + 16


def test_cs231n_note__stride_1_larger_stride_2_halves():
    """[claim] Stride 1 shifts one pixel (larger output); stride 2 jumps two (halves height and width)."""
    assert arith.conv_out((32, 32), 3, 1, 1) == (32, 32) and arith.conv_out((32, 32), 3, 2, 1) == (16, 16)
    assert nn.Conv2d(1, 1, 3, 2, 1)(torch.zeros(1, 1, 32, 32)).shape[2:] == (16, 16)


def test_cs231n_note__stride_2_is_faster():
    """[claim] Stride 2 makes the layer faster: a quarter of the multiply-adds."""
    s1 = convlab.summary("conv(16,3,p=1)", (16, 32, 32)).macs
    s2 = convlab.summary("conv(16,3,s=2,p=1)", (16, 32, 32)).macs
    assert s1 == 4 * s2


def test_cs231n_note__formula_without_the_plus_one():
    """[formula] The note's ⌊(H − F + 2P)/S⌋ drops the + 1: a 3×3, p=1, s=1 conv would turn 32 into 31."""
    assert tour.notes_formula_no_plus_one(32, 3, 1, 1) == 31
    assert arith.conv1d_out(32, 3, 1, 1) == 32 == nn.Conv2d(1, 1, 3, 1, 1)(torch.zeros(1, 1, 32, 32)).shape[-1]
    assert "would turn 32 into 31" in _tour("formulas")


def test_cs231n_note__pooling_per_channel_no_parameters():
    """[claim] Pooling shrinks height and width, works on each channel independently, and learns nothing."""
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    y = nn.MaxPool2d(2)(x)
    assert y.shape == (1, 3, 4, 4)
    y[0, 1].sum().backward()
    assert float(x.grad[0, 0].abs().sum()) == float(x.grad[0, 2].abs().sum()) == 0 < float(x.grad[0, 1].abs().sum())
    s = convlab.summary("maxpool(2)", (3, 8, 8))
    assert s.trainable_params == s.non_trainable_params == 0


def test_cs231n_note__maxpool_2x2_picture():
    """[figure] The pasted max-pooling picture (a 2×2 max, stride 2, over a 4×4 map), drawn by the tour."""
    P = torch.tensor([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]).reshape(1, 1, 4, 4)
    assert torch.equal(scratch.pool2d_nchw(P, 2), nn.MaxPool2d(2, 2)(P))
    assert torch.equal(nn.MaxPool2d(2, 2)(P)[0, 0], torch.tensor([[6.0, 8.0], [3.0, 4.0]]))
    out = _tour("pooling")
    assert "│ 1 1 │ 2 4 │" in out and "│ 6 │ 8 │" in out and "│ 3 │ 4 │" in out


def test_cs231n_note__fc_as_conv_same_parameters():
    """[number] An fc from 7×7×512 to 4096 and a conv with 4096 filters of 7×7 have the same parameters,
    and compute the same (checked small, with the weights reshaped)."""
    fc = convlab.summary("flatten fc(4096)", (512, 7, 7))
    conv = convlab.summary("conv(4096,7)", (512, 7, 7))
    assert fc.trainable_params == conv.trainable_params == 7 * 7 * 512 * 4096 + 4096 == 102_764_544
    assert conv.output_shape == [1, 4096, 1, 1]
    lin = nn.Linear(8 * 3 * 3, 5)
    x = torch.randn(2, 8, 3, 3)
    with torch.no_grad():
        assert torch.allclose(lin(x.flatten(1)), F.conv2d(x, lin.weight.reshape(5, 8, 3, 3), lin.bias).flatten(1),
                              atol=1e-5)


def test_cs231n_note__fc_as_conv_slides_over_larger_images():
    """[claim] The converted network slides over a larger image and gives a grid of class scores."""
    assert "fc-as-conv" in tour.TOPICS
    fcn = convlab.fully_convolutional(create_model("lenet"), (1, 28, 28))
    with torch.no_grad():
        assert fcn(torch.zeros(1, 1, 56, 56)).shape[-2:] == (8, 8)


def test_cs231n_note__in_features_is_c_h_w():
    """[claim] The first fc's in_features = C·H·W of the tensor before it; convlab computes it."""
    m = build("conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(64) fc(10)", (3, 32, 32))
    assert m.fc1.in_features == 32 * 8 * 8 == 2048
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cs231n_note__final_fc_out_features_is_the_class_count():
    """[claim] The final fc's out_features is the number of classes."""
    for k in (10, 7):
        m = create_model("cifar-cnn", num_classes=k)
        assert m.fc2.out_features == k


def test_cs231n_note__cifar_example_shapes():
    """[example] (N, 3, 32, 32) → conv 16 → (N, 16, 32, 32) → pool → (N, 16, 16, 16) → conv 32 → (N, 32, 16, 16)
    → pool → (N, 32, 8, 8) → flatten (N, 2048)."""
    s = _shapes("cifar-cnn", None)
    assert [s["conv1"], s["maxpool1"], s["conv2"], s["maxpool2"], s["flatten"]] == \
        [(16, 32, 32), (16, 16, 16), (32, 16, 16), (32, 8, 8), (2048,)]
    ref = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(16, 32, 3, 1, 1), nn.ReLU(),
                        nn.MaxPool2d(2, 2), nn.Flatten())
    assert ref(torch.zeros(4, 3, 32, 32)).shape == (4, 2048)


def test_cs231n_note__fc1_2048_to_hidden_fc2_to_10():
    """[example] fc1 = Linear(2048, hidden_units), fc2 = Linear(hidden_units, 10)."""
    for hidden in (128, 300):
        m = create_model(f"cifar-cnn:hidden={hidden}")
        assert (m.fc1.in_features, m.fc1.out_features, m.fc2.in_features, m.fc2.out_features) == (2048, hidden, hidden, 10)


@pytest.mark.parametrize("spec", [
    pytest.param("flatten fc(10)", id="input_fc"),
    pytest.param("conv(16,3,p=1) relu flatten fc(10)", id="input_conv_relu_fc"),
    pytest.param("(conv(16,3,p=1) relu maxpool(2))x2 flatten fc(64) relu fc(10)", id="conv_relu_pool_x2_fc_relu_fc"),
    pytest.param("(conv(16,3,p=1) relu conv(16,3,p=1) relu maxpool(2))x3 flatten (fc(64) relu)x2 fc(10)",
                 id="two_convs_per_pool_x3_fc_relu_x2_fc"),
])
def test_cs231n_note__architecture_patterns(spec):
    """[example] The four patterns the note lists, written in the spec language, build and run."""
    m = build(spec, (3, 32, 32))
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cs231n_note__template_m_n_k():
    """[example] Input → repeat M: (repeat N: conv → relu) → pool → repeat K: (fc → relu) → fc."""
    M, N, K = 2, 3, 2
    spec = f"((conv(8,3,p=1) relu)x{N} maxpool(2))x{M} flatten (fc(32) relu)x{K} fc(10)"
    m = build(spec, (3, 16, 16))
    def count(kind):
        return sum(isinstance(x, kind) for x in m.modules())

    assert count(nn.Conv2d) == M * N and count(nn.MaxPool2d) == M
    assert count(nn.Linear) == K + 1 and count(nn.ReLU) == M * N + K
    assert m(torch.zeros(1, 3, 16, 16)).shape == (1, 10)
