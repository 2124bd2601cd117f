"""``convlab tour``: the concepts of the course notes, each with its numbers computed live."""

from __future__ import annotations

from typing import Callable

TOPICS: dict[str, tuple[str, Callable[[], list[str]]]] = {}


def topic(name: str, title: str):
    def deco(fn):
        TOPICS[name] = (title, fn)
        return fn
    return deco


def _m(t) -> str:
    """A tensor as a compact nested list with integers where exact."""
    vals = t.tolist()

    def fmt(v):
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(int(v)) if float(v).is_integer() else f"{v:.3g}"

    return fmt(vals)


def _picture(t, chars=None) -> list[str]:
    chars = chars or {1: "█", 0: "·", -1: "▒"}
    return ["    " + "".join(chars.get(int(round(float(v))), "?") * 2 for v in row) for row in t]


@topic("cross-correlation", "Cross-correlation: slide a kernel, multiply, add (d2l 7.2.1)")
def _xcorr() -> list[str]:
    import torch

    from .scratch import corr2d

    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    Y = corr2d(X, K)
    return [f"X = {_m(X)}", f"K = {_m(K)}",
            f"Y = corr2d(X, K) = {_m(Y)}",
            "Y[0,0] = 0·0 + 1·1 + 3·2 + 4·3 = 19: the 2×2 window at the top left, weighted by K",
            f"output size: (3 − 2 + 1) × (3 − 2 + 1) = {Y.shape[0]}×{Y.shape[1]}; "
            "deep learning's 'convolution' is this cross-correlation (no kernel flip)"]


@topic("edges", "An edge detector: the kernel [1, −1] (d2l 7.2.3)")
def _edges() -> list[str]:
    import torch

    from .scratch import corr2d

    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = corr2d(X, torch.tensor([[1.0, -1.0]]))
    Yt = corr2d(X.t(), torch.tensor([[1.0, -1.0]]))
    return ["image X (6×8: white █, black ·):", *_picture(X),
            "Y = corr2d(X, [[1, −1]]): +1 (█) where white turns black, −1 (▒) where black turns white:",
            *_picture(Y), f"row 0 of Y = {_m(Y[0])}",
            f"on the transposed image the same kernel finds nothing: corr2d(Xᵀ, K) is all zeros "
            f"({Yt.shape[0]}×{Yt.shape[1]}, max |value| {float(Yt.abs().max()):g}) — it only sees vertical edges"]


@topic("learning", "Learning the kernel from examples (d2l 7.2.4)")
def _learning() -> list[str]:
    import torch

    from .scratch import corr2d, learn_kernel

    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = corr2d(X, torch.tensor([[1.0, -1.0]]))
    K, losses = learn_kernel(X, Y, steps=10)
    lines = ["start from a random 1×2 kernel; minimise Σ(conv(X, K) − Y)² by gradient descent (lr 0.03):"]
    lines += [f"  step {i + 1:>2}: loss {loss:8.3f}" for i, loss in enumerate(losses) if i % 2 == 1]
    lines.append(f"learned kernel: {_m(K)} — close to the edge detector [1, −1]")
    return lines


@topic("padding", "Padding and stride: out = floor((in + 2p − d(k − 1) − 1) / s) + 1 (d2l 7.3)")
def _padding() -> list[str]:
    from . import arith

    lines = []
    for args, note in [(((8, 8), 3, 1, 1), "k=3, p=1 keeps 8×8"),
                       (((8, 8), (5, 3), 1, (2, 1)), "k=(5,3), p=(2,1) keeps 8×8"),
                       (((8, 8), 3, 2, 1), "stride 2 halves it"),
                       (((8, 8), (3, 5), (3, 4), (0, 1)), "d2l's exercise: k=(3,5), p=(0,1), s=(3,4)")]:
        e = arith.explain_conv(args[0], args[1], args[2], args[3])
        out = e.output
        lines.append(f"{note}: {out[0]}×{out[1]}")
        for d in e.dims:
            lines.append(f"    {d.axis}: {d.substituted} = {d.output}"
                         + (f"  ({d.dropped} row(s) never read)" if d.dropped else ""))
    sizes = [28] + [e.output for e in arith.explain_chain(28, "k3s2p1 x5")]
    lines.append("a chain of k=3, s=2, p=1 convs: " + " → ".join(map(str, sizes))
                 + "  (one course note says 28 → 14 → 7 → 3 → 1: its formula subtracts k·d + 1)")
    return lines


@topic("channels", "Channels: one kernel per input channel, summed; one such stack per output (d2l 7.4)")
def _channels() -> list[str]:
    import torch

    from .scratch import corr2d_multi_in, corr2d_multi_in_out

    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    K3 = torch.stack((K, K + 1, K + 2), 0)
    out = corr2d_multi_in_out(X, K3)
    cost = 128 * 128 * 5 * 5 * 256 * 256
    return [f"2 input channels, kernel 2×2×2: corr2d_multi_in = {_m(corr2d_multi_in(X, K))}",
            f"3 output channels (kernels K, K+1, K+2, shape {tuple(K3.shape)}): output {tuple(out.shape)}",
            f"  {_m(out)}",
            "cost of a k×k conv: c_in · c_out · k² · h · w multiply-adds; "
            f"128 → 128 channels, 5×5 kernel, 256×256 image: {cost:,} ≈ {cost / 1e9:.1f} billion"]


@topic("1x1", "The 1×1 convolution is a matrix product over channels (d2l 7.4.3)")
def _one_by_one() -> list[str]:
    import torch

    from .scratch import corr2d_1x1, corr2d_multi_in_out

    g = torch.Generator().manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3), generator=g)
    K = torch.normal(0, 1, (2, 3, 1, 1), generator=g)
    diff = float((corr2d_1x1(X, K) - corr2d_multi_in_out(X, K)).abs().sum())
    return ["X: 3 channels × 3×3, K: 2 × 3 × 1×1",
            "as a matmul: (2×3 weights) @ (3 × 9 pixels) = 2 × 9 → reshape to 2×3×3",
            f"sum |matmul − sliding window| = {diff:.2e}: the same numbers",
            "it mixes channels at each pixel and sees no neighbours: c_in·c_out weights "
            "(ResNet uses it to change widths and in shortcuts)"]


@topic("pooling", "Pooling: the max or mean of each window, per channel (d2l 7.5)")
def _pooling() -> list[str]:
    import torch

    from .scratch import pool2d, pool2d_nchw

    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    X4 = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    X8 = torch.cat((X4, X4 + 1), 1)
    return [f"X = {_m(X)}: 2×2 max {_m(pool2d(X, (2, 2)))}, 2×2 mean {_m(pool2d(X, (2, 2), 'avg'))}",
            f"4×4 input 0..15: 3×3 window, stride 3 (the default) → {_m(pool2d_nchw(X4, 3)[0, 0])}",
            f"3×3 window, padding 1, stride 2 → {_m(pool2d_nchw(X4, 3, 2, 1)[0, 0])}",
            f"two channels stay two: {tuple(X8.shape)} → {tuple(pool2d_nchw(X8, 3, 2, 1).shape)}; "
            "pooling has no parameters"]


@topic("parameters", "Counting parameters, layer by layer")
def _parameters() -> list[str]:
    from .analyze import summary
    from .scratch import separable_params

    s = summary("lenet")
    lines = ["LeNet (d2l 7.6) on 1×28×28:"]
    for r in s.rows:
        if r.trainable_params:
            lines.append(f"  {r.name:<6} {r.type:<7} {r.trainable_params:>7,}")
    lines.append(f"  total  {s.trainable_params:,} (fc1 alone: 16·5·5·120 + 120 = 48,120)")
    bn = summary("conv(32,3,p=1) bn", (3, 8, 8)).rows[1]
    lines.append(f"BatchNorm over 32 channels: {bn.trainable_params} trainable + {bn.non_trainable_params} "
                 f"non-trainable = {bn.trainable_params + bn.non_trainable_params} (γ, β; running mean, variance)")
    a, b, c = separable_params(32, 64, 3), separable_params(32, 64, 3, True), separable_params(3, 2, 3, True)
    lines += [f"separable 3×3, 32 → 64 (Keras, no depthwise bias): 288 + 2,048 + 64 = {a['total']:,}; "
              f"a regular conv would need {a['regular_conv']:,}",
              f"  with the depthwise bias too: {b['total']:,}",
              f"separable 3×3 on 7×7×3, 2 filters, both biases: 27 + 3 + 6 + 2 = {c['total']}"]
    return lines


@topic("receptive-field", "Receptive field: how much of the input one output sees")
def _receptive() -> list[str]:
    from . import arith
    from .analyze import summary

    rf = arith.receptive_field([(3, 1, 1)] * 3)
    r18 = summary("resnet18")
    last = [r for r in r18.rows if r.type == "Conv2d"][-1]
    return ["stacked 3×3 convs (stride 1): " + ", ".join(f"{r.size}×{r.size}" for r in rf)
            + " — two 3×3 see what one 5×5 sees, with 18 instead of 25 weights per channel pair (VGG)",
            "rule: size += (k − 1)·jump, jump *= stride",
            f"ResNet-18 at 224×224, {last.name}: {last.receptive_field['size'][0]}×{last.receptive_field['size'][1]} "
            f"pixels, jump {last.receptive_field['jump'][0]} (larger than the image: the centre pixels weigh most)"]


@topic("fc-as-conv", "An fc layer is a convolution: the network slides over larger images")
def _fc_as_conv() -> list[str]:
    import torch
    import torch.nn as nn

    from . import summary
    from .inspect import _geometry, fully_convolutional
    from .zoo import create_model

    def params(m) -> int:
        return sum(p.numel() for p in m.parameters())

    # VGG-16's first fc, counted without allocating its 411 MB of weights
    fc = nn.Linear(7 * 7 * 512, 4096, device="meta")
    conv = nn.Conv2d(512, 4096, 7, device="meta")
    lines = [f"fc reading 7×7×512 = {fc.in_features:,} features → 4096: weight {tuple(fc.weight.shape)} + bias "
             f"{tuple(fc.bias.shape)} = {params(fc):,} parameters",
             f"conv with 4096 filters of 7×7×512 (stride 1, no padding): weight {tuple(conv.weight.shape)} + bias "
             f"{tuple(conv.bias.shape)} = {params(conv):,} parameters",
             f"  {'equal' if params(fc) == params(conv) else 'NOT equal'}: 7·7·512·4096 + 4096 = "
             f"{7 * 7 * 512 * 4096 + 4096:,} either way; fc.weight.view(4096, 512, 7, 7) is the conv's weight"]
    torch.manual_seed(0)
    lenet = create_model("lenet-modern").eval()
    full = fully_convolutional(lenet, (1, 28, 28)).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        diff = float((full(x).flatten(1) - lenet(x)).abs().max())
        grid = full(torch.randn(1, 1, 56, 56))
    kinds = ", ".join(f"{n} → {m.kernel_size[0]}×{m.kernel_size[1]} conv" for n, m in full.named_children()
                      if n.startswith("fc"))
    gh, gw = grid.shape[2:]
    (stride, _), _ = _geometry(full, (1, 28, 28))
    one, big = summary(lenet, (1, 28, 28)).macs, summary(full, (1, 56, 56)).macs
    lines += [f"LeNet (lenet-modern, random weights): {kinds}",
              f"  on 28×28 the converted copy gives the original's 10 scores: max |difference| {diff:.1e}",
              f"  on 56×56 it gives a 10×{gh}×{gw} grid: the scores of every 28×28 window, {stride} pixels apart "
              f"(the pools' total stride)",
              f"  cost: {big:,} MACs for all {gh * gw} windows at once, against {gh * gw} × {one:,} = "
              f"{gh * gw * one:,} one window at a time ({gh * gw * one / big:.1f}× more): neighbouring windows "
              f"share their conv work",
              "convlab inspect RUN --what sliding --canvas 4 draws such a grid over 4×4 test images"]
    return lines


def run(name: str | None) -> list[str]:
    names = [name] if name else list(TOPICS)
    out = []
    for n in names:
        title, fn = TOPICS[n]
        out += [f"== {title}", *fn(), ""]
    return out
