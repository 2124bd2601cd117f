"""Conv arithmetic against PyTorch, the oracle, over generated settings."""

import json

import pytest
import torch
import torch.nn as nn
from hypothesis import given, strategies as st

import convlab
from convlab import arith
from convlab.cli import main
from convlab.errors import ConvlabError, ShapeError

small = st.integers(1, 12)


def torch_size(module: nn.Module, shape):
    """Output spatial size from torch, or None when torch refuses."""
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros(1, 1, *shape)).shape[2:])
    except (RuntimeError, ValueError):
        return None


def convlab_size(fn, *args, **kw):
    try:
        out = fn(*args, **kw)
    except ShapeError:
        return None
    return out if isinstance(out, tuple) else (out,)


@given(size=st.integers(1, 40), k=small, s=st.integers(1, 5), p=st.integers(0, 6), d=st.integers(1, 3))
def test_conv1d_matches_torch(size, k, s, p, d):
    expected = torch_size(nn.Conv1d(1, 1, k, s, p, d), (size,))
    assert convlab_size(arith.conv_out, size, k, s, p, d) == expected


@given(h=st.integers(1, 30), w=st.integers(1, 30), kh=small, kw=small, sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 5), pw=st.integers(0, 5), dh=st.integers(1, 3), dw=st.integers(1, 3))
def test_conv2d_matches_torch_asymmetric(h, w, kh, kw, sh, sw, ph, pw, dh, dw):
    expected = torch_size(nn.Conv2d(1, 1, (kh, kw), (sh, sw), (ph, pw), (dh, dw)), (h, w))
    assert convlab_size(arith.conv_out, (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw)) == expected


@given(h=st.integers(1, 20), w=st.integers(1, 20), kh=st.integers(1, 6), kw=st.integers(1, 6),
       dh=st.integers(1, 3), dw=st.integers(1, 3))
def test_conv_same_padding_matches_torch(h, w, kh, kw, dh, dw):
    expected = torch_size(nn.Conv2d(1, 1, (kh, kw), padding="same", dilation=(dh, dw)), (h, w))
    assert convlab_size(arith.conv_out, (h, w), (kh, kw), 1, "same", (dh, dw)) == expected


@given(size=st.integers(1, 40), k=st.integers(1, 8), s=st.integers(1, 5), p=st.integers(0, 4),
       d=st.integers(1, 3), ceil=st.booleans())
def test_maxpool1d_matches_torch(size, k, s, p, d, ceil):
    expected = torch_size(nn.MaxPool1d(k, s, p, d, ceil_mode=ceil), (size,))
    assert convlab_size(arith.pool_out, size, k, s, p, d, ceil) == expected


@given(h=st.integers(1, 25), w=st.integers(1, 25), kh=st.integers(1, 6), kw=st.integers(1, 6),
       sh=st.integers(1, 4), sw=st.integers(1, 4), ph=st.integers(0, 3), pw=st.integers(0, 3),
       dh=st.integers(1, 3), dw=st.integers(1, 3), ceil=st.booleans())
def test_maxpool2d_matches_torch(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil):
    expected = torch_size(nn.MaxPool2d((kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil), (h, w))
    assert convlab_size(arith.pool_out, (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil) == expected


@given(h=st.integers(1, 25), w=st.integers(1, 25), kh=st.integers(1, 6), kw=st.integers(1, 6),
       sh=st.integers(1, 4), sw=st.integers(1, 4), ph=st.integers(0, 3), pw=st.integers(0, 3), ceil=st.booleans())
def test_avgpool2d_matches_torch(h, w, kh, kw, sh, sw, ph, pw, ceil):
    expected = torch_size(nn.AvgPool2d((kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil), (h, w))
    assert convlab_size(arith.pool_out, (h, w), (kh, kw), (sh, sw), (ph, pw), 1, ceil) == expected


@given(h=st.integers(1, 15), w=st.integers(1, 15), kh=st.integers(1, 6), kw=st.integers(1, 6),
       sh=st.integers(1, 4), sw=st.integers(1, 4), ph=st.integers(0, 4), pw=st.integers(0, 4),
       dh=st.integers(1, 3), dw=st.integers(1, 3), oh=st.integers(0, 3), ow=st.integers(0, 3))
def test_conv_transpose2d_matches_torch(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    try:
        mod = nn.ConvTranspose2d(1, 1, (kh, kw), (sh, sw), (ph, pw), (oh, ow), dilation=(dh, dw))
        expected = torch_size(mod, (h, w))
    except (RuntimeError, ValueError):
        expected = None
    if expected is not None and 0 in expected:
        expected = None  # torch's 2-D transposed conv returns an empty map here; convlab refuses a size below 1
    got = convlab_size(arith.conv_transpose_out, (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow))
    assert got == expected


@given(size=st.integers(1, 40), k=small, s=st.integers(1, 5), p=st.integers(0, 6), d=st.integers(1, 3))
def test_explanation_agrees_and_dropped_rows_are_real(size, k, s, p, d):
    try:
        e = arith.explain_conv(size, k, s, p, d)
    except ShapeError:
        return
    assert e.output == arith.conv_out(size, k, s, p, d)
    dim = e.dims[0]
    # the last window ends at (out-1)s + d(k-1) in padded coordinates: count the real rows after it
    last = (e.output - 1) * s + d * (k - 1)
    assert dim.dropped == max(0, (size + p - 1) - last)
    if dim.dropped and dim.fix and "padding=" in dim.fix:
        p2 = int(dim.fix.split("padding=")[1].split()[0])
        out2 = arith.conv_out(size, k, s, p2, d)
        assert max(0, (size + p2 - 1) - ((out2 - 1) * s + d * (k - 1))) == 0


def test_d2l_7_3_example():
    # d2l 7.3: 8x8 input, kernel (3, 5), padding (0, 1), stride (3, 4) -> 2x2
    assert arith.conv_out((8, 8), (3, 5), stride=(3, 4), padding=(0, 1)) == (2, 2)
    assert torch_size(nn.Conv2d(1, 1, (3, 5), (3, 4), (0, 1)), (8, 8)) == (2, 2)


def test_seed_000_chain_is_28_14_7_4_2_1():
    # seed 000 writes [28, 14, 7, 3, 1] with a wrong formula (- k*d - 1); the right chain is:
    sizes = [e.output for e in arith.explain_chain(28, "k3s2p1 x5")]
    assert sizes == [14, 7, 4, 2, 1]
    x = torch.zeros(1, 1, 28, 28)
    torch_sizes = []
    for _ in range(5):
        x = nn.Conv2d(1, 1, 3, 2, 1)(x)
        torch_sizes.append(x.shape[-1])
    assert torch_sizes == sizes


def test_seed_004_formula_missing_plus_one_is_wrong():
    # seed 004: floor((H - F + 2P) / S) without the + 1 gives 31 for a 3x3/p1 conv on 32; torch says 32
    assert arith.conv_out(32, 3, 1, 1) == 32 == torch_size(nn.Conv2d(1, 1, 3, 1, 1), (32, 32))[0]


@pytest.mark.parametrize("bad", [
    dict(size=0, kernel=3), dict(size=5, kernel=0), dict(size=5, kernel=3, stride=0),
    dict(size=5, kernel=3, padding=-1), dict(size=3, kernel=7), dict(size=5, kernel=2.5),
])
def test_invalid_conv_raises_shape_error_with_numbers(bad):
    with pytest.raises(ShapeError) as info:
        arith.conv_out(**bad)
    assert isinstance(info.value, ConvlabError)
    assert any(str(v) in str(info.value) for v in bad.values())


def test_kernel_too_big_message_names_fix():
    with pytest.raises(ShapeError, match=r"padded input 3 \+ 2·0 = 3; use padding >= 2"):
        arith.conv_out(3, 7)


def test_pool_padding_limit_and_output_padding_limit():
    with pytest.raises(ShapeError, match="more than half the kernel 3"):
        arith.pool_out(8, 3, 1, 2)
    with pytest.raises(ShapeError, match="output_padding 2 must be smaller than the stride 2"):
        arith.conv_transpose_out(5, 3, 2, 1, output_padding=2)


def test_explain_dropped_and_fix():
    e = arith.explain_pool(7, 2)
    assert e.output == 3 and e.dropped == 1
    assert "ceil_mode=True" in e.dims[0].fix and "(output 4)" in e.dims[0].fix
    # 28 -> 14 with k3 s2 p1: only a padding row is skipped
    e = arith.explain_conv(28, 3, 2, 1)
    assert e.dropped == 0 and e.dims[0].remainder == 1
    assert e.to_dict()["steps"][0] == "floor((28 + 2·1 − 1·(3 − 1) − 1) / 2) + 1"


def test_solve_28_to_14_lists_the_classics_and_matches_torch():
    sols = arith.solve(28, 14)
    keys = [(s.kernel, s.stride, s.padding, s.dilation) for s in sols]
    assert (3, 2, 1, 1) in keys and (2, 2, 0, 1) in keys
    assert keys.index((3, 2, 1, 1)) < 3
    # exact ones first
    flags = [s.dropped > 0 for s in sols]
    assert flags == sorted(flags)
    for s in sols:
        assert torch_size(nn.Conv1d(1, 1, s.kernel, s.stride, s.padding, s.dilation), (28,)) == (14,)


@given(n=st.integers(1, 40), m=st.integers(1, 40))
def test_solve_is_complete_within_bounds(n, m):
    got = {(s.kernel, s.stride, s.padding, s.dilation) for s in arith.solve(n, m, range(1, 5), range(1, 4), range(1, 3))}
    want = set()
    for k in range(1, 5):
        for s in range(1, 4):
            for d in range(1, 3):
                for p in range(0, (d * (k - 1)) // 2 + 2):
                    if convlab_size(arith.conv_out, n, k, s, p, d) == (m,):
                        want.add((k, s, p, d))
    assert got == want


def test_receptive_field_resnet18_stem_and_chain():
    steps = arith.receptive_field([(7, 2, 3), (3, 2, 1)])
    assert (steps[0].size, steps[0].jump) == (7, 2)
    assert (steps[1].size, steps[1].jump) == (11, 4)
    # two 3x3 convs see 5x5; three see 7x7 (VGG's argument)
    assert [r.size for r in arith.receptive_field([(3, 1, 1)] * 3)] == [3, 5, 7]
    pair = arith.receptive_field([((3, 5), 1, (1, 2))])
    assert pair[0].size == (3, 5)


@pytest.mark.parametrize("bad, says", [
    ("k3s2", "takes a list of layers"), (5, "takes a list of layers"), (["k3s2"], "layer 0 is 'k3s2'"),
    ([(3, 1), 3], "layer 1 is 3"), ([()], "layer 0 is ()"), ([(3, 1, 0, 1, 2)], "layer 0 is (3, 1, 0, 1, 2)"),
    ([(3, "a")], "stride must be an integer, got 'a'"), ([(3, 0)], "stride must be >= 1, got 0"),
    ([(0,)], "kernel must be >= 1"), ([(3, 1, -1)], "padding must be >= 0"), ([{"s": 2}], "kernel must be an integer"),
])
def test_receptive_field_refuses_what_is_not_a_list_of_layers(bad, says):
    with pytest.raises(ShapeError, match="receptive_field") as e:
        arith.receptive_field(bad)
    assert says in str(e.value)
    if "must be" not in says:  # a malformed layer: the message shows the form to write
        assert "(kernel, stride, padding, dilation)" in str(e.value)


@given(layers=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 2), st.integers(0, 2), st.integers(1, 2)),
                       min_size=1, max_size=5))
def test_receptive_field_matches_gradient_support(layers):
    """Size and start agree with the span of input pixels that have a gradient for one output."""
    n = 600
    x = torch.zeros(1, 1, n, requires_grad=True)
    y = x
    for k, s, p, d in layers:
        conv = nn.Conv1d(1, 1, k, s, p, d, bias=False)
        nn.init.constant_(conv.weight, 1.0)
        y = conv(y)
    rf = arith.receptive_field(layers)[-1]
    j = y.shape[-1] // 2  # an output whose field lies inside the image
    y[0, 0, j].backward()
    nz = (x.grad[0, 0] != 0).nonzero().flatten()
    centre = rf.start + j * rf.jump
    assert nz.min().item() == centre - (rf.size - 1) / 2
    assert nz.max().item() == centre + (rf.size - 1) / 2
    assert rf.jump == __import__("math").prod(s for _, s, _, _ in layers)


def test_chain_parse_errors():
    with pytest.raises(ShapeError, match="cannot read step"):
        arith.parse_chain("k3s2p1 blah")
    with pytest.raises(ShapeError, match="no step before"):
        arith.parse_chain("x3")
    with pytest.raises(ShapeError, match="step 3"):
        arith.explain_chain(8, "k3s2 k3s2 k3s2")


def test_top_level_exports():
    assert convlab.conv_out is arith.conv_out
    assert issubclass(convlab.ShapeError, convlab.ConvlabError)


# ------------------------------------------------------------------ CLI


def test_cli_size_json(capsys):
    assert main(["size", "conv", "--in", "7", "--kernel", "3", "--stride", "2", "--padding", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output"] == 4 and out["dropped"] == 0 and "floor" in out["formula"] and out["steps"]


def test_cli_size_pair_and_ceil(capsys):
    assert main(["size", "pool", "--in", "7,5", "--kernel", "2", "--ceil", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == [4, 3]


def test_cli_bad_usage_exits_2_with_one_line(capsys):
    assert main(["size", "conv", "--in", "3", "--kernel", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "use padding >= 2" in err
    assert main(["size", "conv", "--in", "x", "--kernel", "3"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["size", "conv", "--in", "5", "--kernel", "3", "--ceil"]) == 2


def test_cli_solve_and_chain(capsys):
    assert main(["solve", "--in", "28", "--out", "14", "--json"]) == 0
    sols = json.loads(capsys.readouterr().out)
    assert {"kernel": 3, "stride": 2, "padding": 1, "dilation": 1}.items() <= sols[1].items()
    assert main(["chain", "--in", "28", "k3s2p1", "x5"]) == 0
    assert "28 → 14 → 7 → 4 → 2 → 1" in capsys.readouterr().out
