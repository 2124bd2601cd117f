"""convlab's summary of every model in the corpus (tests/model_corpus.py) against PyTorch itself: a real
forward with hooks on every leaf module (output shapes), the model's parameters (trainable, frozen,
running statistics) and FlopCounterMode (MACs = FLOPs / 2). Matrix products convlab does not count
(einsum, bmm, matmul, ...) are taken out of torch's total by counting each such call on its own, and
the summary must name every one of them in its footnote."""

import copy
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import convlab
from convlab.analyze.trace import _UNCOUNTED
from model_corpus import CORPUS, third_party


def oracle(model, shape):
    """(leaf output shapes, trainable, non-trainable, MACs of conv + linear + attention, uncounted calls, output)."""
    shapes, hooks = {}, []
    for name, m in model.named_modules():
        if name and not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o, name=name: shapes.__setitem__(name, list(o.shape)) if isinstance(o, torch.Tensor)
                else None))
    uncounted = {"flops": 0, "calls": 0}

    class Uncounted(torch.overrides.TorchFunctionMode):  # each uncounted product's FLOPs, measured alone
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in _UNCOUNTED:
                with FlopCounterMode(display=False) as one:
                    out = func(*args, **(kwargs or {}))
                uncounted["flops"] += one.get_total_flops()
                uncounted["calls"] += 1
                return out
            return func(*args, **(kwargs or {}))

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused kernel hides the projections from FlopCounterMode
    try:
        # torch's math attention (its CPU flash kernel is not counted by FlopCounterMode)
        with FlopCounterMode(display=False) as fc, torch.no_grad(), sdpa_kernel(SDPBackend.MATH), Uncounted():
            out = model(torch.randn(*shape))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    for h in hooks:
        h.remove()
    params = {id(p): p for p in model.parameters()}.values()
    trainable = sum(p.numel() for p in params if p.requires_grad)
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers()
                if n.rsplit(".", 1)[-1].startswith("running_") and b.is_floating_point())
    return shapes, trainable, frozen + stats, (fc.get_total_flops() - uncounted["flops"]) // 2, uncounted["calls"], out


def check_exact(model, shape):
    before = copy.deepcopy(model.state_dict())
    s = convlab.summary(model, shape[1:], batch_size=shape[0])
    after = model.state_dict()  # the summary left the model as it was
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    shapes, trainable, non_trainable, macs, uncounted_calls, out = oracle(model, shape)
    got = {r.name: r.output_shape for r in s.rows if r.leaf and r.name in shapes}
    assert got == shapes
    assert (s.trainable_params, s.non_trainable_params) == (trainable, non_trainable)
    assert s.macs == macs
    named = sum(int(re.match(r"(\d+) ", u).group(1)) for u in s.uncounted)
    assert named == uncounted_calls  # every product convlab does not count is in the footnote
    if uncounted_calls:
        assert "MACs not counted" in str(s)
    if isinstance(out, torch.Tensor):
        assert s.output_shape == list(out.shape)
    elif isinstance(out, dict):
        assert s.output_shape == [list(v.shape) for v in out.values()]
    return s


@pytest.mark.parametrize("name, make, shape", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_model_is_exact(name, make, shape):
    torch.manual_seed(0)
    check_exact(make().eval(), shape)


def test_corpus_attention_names_its_uncounted_products():
    s = check_exact(dict((n, m) for n, m, _ in CORPUS)["non-local+mha"]().eval(), (1, 3, 32, 32))
    assert s.uncounted == ("1 bmm call in nonlocal_block", "1 matmul call in nonlocal_block")
    assert any(r.type == "MultiheadAttention" and r.macs > 0 for r in s.rows)


def test_corpus_frozen_and_shared_layers():
    from model_corpus import SharedAndNiN, TinyUNet

    unet = TinyUNet()
    s = convlab.summary(unet, (3, 32, 32))
    frozen = sum(p.numel() for p in unet.enc1.parameters())
    assert s.non_trainable_params == frozen + sum(b.numel() for n, b in unet.named_buffers() if "running" in n)
    shared = convlab.summary(SharedAndNiN(), (3, 31, 31))
    assert [r.trainable_params for r in shared.rows if r.name == "shared"] == [16 * 16 * 9 + 16, 0]


THIRD_PARTY = third_party(imagenet=False)


@pytest.mark.skipif(not THIRD_PARTY, reason="no third-party model collection installed (pip install pytorchcv)")
@pytest.mark.parametrize("name, make, shape", THIRD_PARTY, ids=[c[0] for c in THIRD_PARTY])
def test_third_party_model_is_exact(name, make, shape):
    check_exact(make().eval(), shape)


@pytest.mark.slow
@pytest.mark.parametrize("name, make, shape", third_party(imagenet=True)[len(THIRD_PARTY):],
                         ids=[c[0] for c in third_party(imagenet=True)[len(THIRD_PARTY):]])
def test_third_party_imagenet_model_is_exact(name, make, shape):
    check_exact(make().eval(), shape)


# -- the shape rules the corpus needed, against torch ------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convlab.errors  # noqa: E402


def _summary_or_error(fn, shape):
    """(convlab's output shape, torch's) for a one-op model, or both raise."""
    class Op(nn.Module):
        def forward(self, x):
            return fn(x)

    x = torch.randn(*shape)
    try:
        expect = fn(x)
    except (RuntimeError, ValueError, IndexError, TypeError):
        with pytest.raises(convlab.errors.ShapeError):
            convlab.summary(Op(), shape[1:], batch_size=shape[0])
        return None, None
    s = convlab.summary(Op(), shape[1:], batch_size=shape[0])
    return s, expect


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2, 3), min_size=2, max_size=6).filter(lambda p: len(p) % 2 == 0),
       st.sampled_from([(1, 2, 3, 4), (2, 3, 5), (1, 1, 2, 3, 2)]), st.sampled_from([0.0, 1.5]))
def test_constant_pad_has_torchs_shape(pad, shape, value):
    s, expect = _summary_or_error(lambda x: F.pad(x, pad, value=value), shape)
    if s is not None:
        assert s.output_shape == list(expect.shape)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["linear", "bilinear", "bicubic", "trilinear"]), st.integers(3, 5),
       st.one_of(st.floats(0.3, 3.1), st.integers(1, 7)), st.booleans(), st.booleans(),
       st.sampled_from([None, True, False]))
def test_interpolate_has_torchs_shape(mode, nd, amount, by_size, align, recompute):
    import torch.nn.functional as F2

    shape = (1, 2, 5, 7, 3)[:nd]
    kw = {"size": int(amount) if by_size else None, "scale_factor": None if by_size else amount,
          "mode": mode, "align_corners": align, "recompute_scale_factor": None if by_size else recompute}
    s, expect = _summary_or_error(lambda x: F2.interpolate(x, **kw), shape)
    if s is not None:
        assert s.output_shape == list(expect.shape)


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.none(), st.integers(-4, 3), st.lists(st.integers(-4, 3), min_size=1, max_size=3, unique=True)),
       st.booleans(), st.sampled_from(["var", "std", "var_mean", "std_mean"]))
def test_variance_rules_have_torchs_shapes(dim, keepdim, op):
    def fn(x):
        kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
        out = getattr(torch, op)(x, **kw, correction=0)
        return out[0] * out[1] if isinstance(out, tuple) else out

    s, expect = _summary_or_error(fn, (2, 3, 4, 5))
    if s is not None:
        assert s.output_shape == list(expect.shape)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([torch.float32, torch.float64, torch.int64]),
       st.sampled_from(["add", "mul", "sub", "div"]), st.sampled_from([(3, 1), (1,), (4, 3, 2)]))
def test_binary_ops_with_real_tensors_have_torchs_shape_and_dtype(dtype, op, other_shape):
    other = torch.ones(other_shape).to(dtype)  # a real tensor made in the model (a mask, a table)

    class Op(nn.Module):
        def forward(self, x):
            return getattr(torch, op)(x.clamp(0, 1), other).sum(-1, keepdim=True).to(torch.float32) + \
                getattr(torch, op)(other, 2).clamp(min=0.5).sum()

    s, expect = _summary_or_error(Op().forward, (4, 3, 2))
    if s is not None:
        assert s.output_shape == list(expect.shape)
