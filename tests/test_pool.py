"""convlab's 2×2 max pool path gives F.max_pool2d's outputs and gradients exactly, ties included."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from convlab.nn.pool import MaxPool2d, _MaxPool2x2, fast_path


def _grads(fn, x, g):
    x = x.detach().requires_grad_()
    out = fn(x)
    (gx,) = torch.autograd.grad(out, x, g)
    return out, gx


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 12), h=st.integers(2, 13), w=st.integers(2, 13),
       levels=st.sampled_from([3, 1000]), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_pairwise_path_equals_torch(n, c, h, w, levels, channels_last, seed):
    gen = torch.Generator().manual_seed(seed)
    # few distinct levels make ties common, as on an image's flat background
    x = torch.randint(0, levels, (n, c, h, w), generator=gen).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(n, c, h // 2, w // 2, generator=gen)
    out, gx = _grads(_MaxPool2x2.apply, x, g)
    ref_out, ref_gx = _grads(lambda t: F.max_pool2d(t, 2), x, g)
    assert torch.equal(out, ref_out)
    assert torch.equal(gx, ref_gx)
    assert gx.sum().item() == pytest.approx(g.sum().item(), rel=1e-5, abs=1e-4)  # each gradient goes once


def test_tie_goes_to_the_first_maximum_in_row_major_order():
    # maximum 5 at (0,1) and at (1,0): PyTorch routes the gradient to (0,1)
    x = torch.tensor([[1.0, 5.0], [5.0, 0.0]]).reshape(1, 1, 2, 2)
    _, gx = _grads(_MaxPool2x2.apply, x, torch.ones(1, 1, 1, 1))
    assert gx.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_module_takes_the_path_only_where_it_is_faster():
    lenet_pool1 = torch.randn(4, 6, 28, 28).contiguous(memory_format=torch.channels_last)
    assert fast_path(lenet_pool1)
    assert not fast_path(lenet_pool1.contiguous())                                  # NCHW
    assert not fast_path(torch.randn(4, 16, 28, 28).contiguous(memory_format=torch.channels_last))  # many channels
    assert not fast_path(torch.randn(4, 6, 10, 10).contiguous(memory_format=torch.channels_last))   # small map
    assert not fast_path(lenet_pool1.to(torch.bfloat16))


@pytest.mark.parametrize("args", [dict(kernel_size=2), dict(kernel_size=2, stride=2), dict(kernel_size=3, stride=2),
                                  dict(kernel_size=2, padding=1), dict(kernel_size=2, ceil_mode=True)])
def test_module_matches_nn_maxpool_for_any_arguments(args):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 27, 29).contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(nn.MaxPool2d(**args)(x))
    out, gx = _grads(MaxPool2d(**args), x, g)
    ref_out, ref_gx = _grads(nn.MaxPool2d(**args), x, g)
    assert torch.equal(out, ref_out) and torch.equal(gx, ref_gx)
    assert repr(MaxPool2d(**args)) == repr(nn.MaxPool2d(**args))


@pytest.mark.parametrize("grad", [True, False])
def test_max_pool2x2_with_and_without_autograd(grad):
    from convlab.nn.pool import max_pool2x2

    torch.manual_seed(1)
    x = torch.randint(0, 4, (3, 6, 17, 16)).float().contiguous(memory_format=torch.channels_last)
    assert fast_path(x)
    with torch.inference_mode(not grad):
        out = max_pool2x2(x.requires_grad_(grad) if grad else x)
    assert torch.equal(out.detach(), F.max_pool2d(x.detach(), 2))
    assert out.requires_grad == grad


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated, still used
def test_models_with_the_fast_pool_still_trace_and_script():
    from convlab import build

    torch.manual_seed(0)
    model = build("conv(6,5,p=2) maxpool(2) relu conv(16,5) maxpool(2) relu flatten fc(10)", (1, 28, 28))
    model = model.to(memory_format=torch.channels_last).eval()
    x = torch.randn(3, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert isinstance(model.maxpool1, MaxPool2d) and fast_path(model.conv1(x))
    expected = model(x)
    traced = torch.jit.trace(model, x)
    scripted = torch.jit.script(model)
    assert torch.allclose(traced(x), expected, atol=1e-6) and torch.allclose(scripted(x), expected, atol=1e-6)
    assert "max_pool2d" in str(traced.inlined_graph)  # the recorded graph holds PyTorch's op, not a Python function
    fx = torch.fx.symbolic_trace(model)
    assert torch.allclose(fx(x), expected, atol=1e-6)
