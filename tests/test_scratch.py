"""convlab.scratch against PyTorch, and the seeds' worked examples."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, strategies as st

from convlab import scratch, tour
from convlab.errors import ShapeError
from convlab.cli import main


def test_d2l_cross_correlation():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert torch.equal(scratch.corr2d(X, K), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


def test_edge_detector_and_its_transpose():
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = scratch.corr2d(X, torch.tensor([[1.0, -1.0]]))
    assert Y.shape == (6, 7)
    assert torch.equal(Y[0], torch.tensor([0.0, 1, 0, 0, 0, -1, 0])) and torch.equal(Y[0], Y[5])
    # the horizontal kernel sees no edges in the transposed image
    assert torch.equal(scratch.corr2d(X.t(), torch.tensor([[1.0, -1.0]])), torch.zeros(8, 5))


def test_learning_the_edge_kernel():
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = scratch.corr2d(X, torch.tensor([[1.0, -1.0]]))
    K, losses = scratch.learn_kernel(X, Y, steps=10)
    assert losses[-1] < losses[0] / 10
    assert torch.allclose(K, torch.tensor([[1.0, -1.0]]), atol=0.15)


def test_multi_in_and_multi_out():
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    assert torch.equal(scratch.corr2d_multi_in(X, K), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    K3 = torch.stack((K, K + 1, K + 2), 0)
    out = scratch.corr2d_multi_in_out(X, K3)
    assert torch.equal(out[1], torch.tensor([[76.0, 100.0], [148.0, 172.0]]))
    assert torch.equal(out[2], torch.tensor([[96.0, 128.0], [192.0, 224.0]]))


def test_1x1_is_a_matmul():
    g = torch.Generator().manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3), generator=g)
    K = torch.normal(0, 1, (2, 3, 1, 1), generator=g)
    assert float((scratch.corr2d_1x1(X, K) - scratch.corr2d_multi_in_out(X, K)).abs().sum()) < 1e-6


def test_pooling_examples():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    assert torch.equal(scratch.pool2d(X, (2, 2)), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(scratch.pool2d(X, (2, 2), "avg"), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    X4 = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    assert torch.equal(scratch.pool2d_nchw(X4, 3), torch.tensor([[[[10.0]]]]))
    assert torch.equal(scratch.pool2d_nchw(X4, 3, 2, 1), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    X8 = torch.cat((X4, X4 + 1), 1)
    assert torch.equal(scratch.pool2d_nchw(X8, 3, 2, 1)[0, 1], torch.tensor([[6.0, 8.0], [14.0, 16.0]]))


def test_parameter_counts_of_seed_003():
    bn = nn.BatchNorm2d(32)
    trainable = sum(p.numel() for p in bn.parameters())
    stats = bn.running_mean.numel() + bn.running_var.numel()
    assert (trainable, stats) == (64, 64)
    assert scratch.separable_params(32, 64, 3)["total"] == 2400
    assert scratch.separable_params(32, 64, 3, depthwise_bias=True)["total"] == 2432
    assert scratch.separable_params(3, 2, 3, depthwise_bias=True)["total"] == 38


@given(n=st.integers(1, 2), groups=st.sampled_from([1, 2, 3]), cg=st.integers(1, 3), og=st.integers(1, 3),
       h=st.integers(3, 12), w=st.integers(3, 12), kh=st.integers(1, 3), kw=st.integers(1, 3),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       d=st.tuples(st.integers(1, 2), st.integers(1, 2)), bias=st.booleans(), seed=st.integers(0, 1000))
def test_conv2d_matches_torch(n, groups, cg, og, h, w, kh, kw, s, p, d, bias, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cg * groups, h, w, generator=g, dtype=torch.float64)
    wt = torch.randn(og * groups, cg, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(og * groups, generator=g, dtype=torch.float64) if bias else None
    try:
        ref = F.conv2d(x, wt, b, s, p, d, groups)
    except RuntimeError:
        with pytest.raises(ShapeError):
            scratch.conv2d(x, wt, b, s, p, d, groups)
        return
    assert torch.allclose(scratch.conv2d(x, wt, b, s, p, d, groups), ref, atol=1e-5)
    if n * og * groups * ref.shape[2] * ref.shape[3] <= 200:
        assert torch.allclose(scratch.conv2d_loop(x, wt, b, s, p, d, groups), ref, atol=1e-5)


@given(c=st.integers(1, 4), h=st.integers(2, 10), w=st.integers(2, 10), k=st.integers(1, 3), s=st.integers(1, 3),
       p=st.integers(0, 1), mode=st.sampled_from(["max", "avg"]), seed=st.integers(0, 100))
def test_pooling_matches_torch(c, h, w, k, s, p, mode, seed):
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed))
    layer = nn.MaxPool2d(k, s, p) if mode == "max" else nn.AvgPool2d(k, s, p)
    try:
        ref = layer(x)
    except RuntimeError:
        with pytest.raises(ShapeError):
            scratch.pool2d_nchw(x, k, s, p, mode)
        return
    assert torch.allclose(scratch.pool2d_nchw(x, k, s, p, mode), ref, atol=1e-5)


@given(c=st.integers(1, 5), four_d=st.booleans(), training=st.booleans(), seed=st.integers(0, 100))
def test_batch_norm_matches_torch(c, four_d, training, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*((4, c, 3, 3) if four_d else (6, c)), generator=g, dtype=torch.float64)
    bn = (nn.BatchNorm2d(c) if four_d else nn.BatchNorm1d(c)).double()
    with torch.no_grad():
        bn.weight.normal_(generator=g)
        bn.bias.normal_(generator=g)
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    bn.train(training)
    with torch.no_grad():
        ref = bn(x)
    y, m, v = scratch.batch_norm(x, bn.weight.detach(), bn.bias.detach(), rm, rv, training)
    assert torch.allclose(y, ref, atol=1e-5)
    assert torch.allclose(m, bn.running_mean, atol=1e-6) and torch.allclose(v, bn.running_var, atol=1e-6)


@pytest.mark.parametrize("topic", list(tour.TOPICS))
def test_tour_topics(topic, capsys):
    assert main(["tour", topic]) == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_tour_help_lists_every_topic(capsys):
    with pytest.raises(SystemExit):
        main(["tour", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(name in out for name in tour.TOPICS)


def test_tour_lines_fit_the_width():
    lines = tour.run(None, width=100)
    assert max(len(line) for line in lines if not any(c in line for c in "│┌└├█▒")) <= 100
    assert " ".join(tour.run("cost", width=0)).count("53,687,091,200") == 1


def test_tour_numbers(capsys):
    main(["tour", "cross-correlation"])
    assert "[[19, 25], [37, 43]]" in capsys.readouterr().out
    main(["tour", "parameters"])
    out = capsys.readouterr().out
    assert "2,400" in out and "2,432" in out and "38" in out and "64 trainable + 64 non-trainable" in out
    assert main(["tour", "nonsense"]) == 2
