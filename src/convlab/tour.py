"""``convlab tour``: the concepts of the course notes, each with its numbers computed live."""

from __future__ import annotations

from typing import Callable

TOPICS: dict[str, tuple[str, Callable[[], list[str]]]] = {}

# d2l 7.2.4 as the notes ran it: the losses and kernel they print, and a start that reproduces them. The
# start is fitted to those printed digits (every start within about ±0.0002 of it prints the same);
# the learning topic shows how it is found.
NOTES_LOSSES = (4.519, 1.377, 0.485, 0.185, 0.074)
NOTES_KERNEL = (0.9650, -1.0204)
NOTES_START = (0.11046, -0.62684)


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


def _digits(t) -> list[str]:
    """A 2-D tensor of small non-negative integers as rows of digits, zeros as '·'."""
    return [" ".join("·" if int(v) == 0 else str(int(v)) for v in row.tolist()) for row in t]


def _side_by_side(blocks: list[tuple[str, list[str]]], gap: int = 4) -> list[str]:
    """Text blocks next to each other, each under its caption."""
    widths = [max(len(cap), *(len(r) for r in rows)) for cap, rows in blocks]
    height = max(len(rows) for _, rows in blocks)
    out = ["    " + (" " * gap).join(cap.ljust(w) for (cap, _), w in zip(blocks, widths)).rstrip()]
    for i in range(height):
        out.append("    " + (" " * gap).join((rows[i] if i < len(rows) else "").ljust(w)
                                              for (_, rows), w in zip(blocks, widths)).rstrip())
    return out


def _approx(n: float) -> str:
    """1.0e12 -> '10¹²'; 3,996,002 -> '4×10⁶' (the notes' style)."""
    import math

    sup = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
    e = int(math.floor(math.log10(n)))
    m = round(n / 10 ** e)
    if m == 10:
        m, e = 1, e + 1
    return (f"{m}×" if m != 1 else "") + "10" + str(e).translate(sup)


@topic("mlp-vs-conv", "Why convolutions: a fully connected layer on an image needs 10¹² weights (d2l 7.1)")
def _mlp_vs_conv() -> list[str]:
    from .analyze import summary
    from .analyze.checks import check

    side = 1000                                     # a 1-megapixel image, to a hidden map of the same size
    shape = (1, side, side)
    fc = summary(f"flatten fc({side * side})", shape)
    shared = summary(f"conv(1,{2 * side - 1},p={side - 1})", shape)  # one weight per offset a, b in −999..999
    delta = 10
    local = summary(f"conv(1,{2 * delta + 1},p={delta})", shape)
    multi = summary("conv(64,3,p=1)", (3, side, side))
    warns = [f for f in check(f"flatten fc({side * side})", shape)[0] if f.code == "fc-on-pixels"]
    lines = [
        f"a {side}×{side} image (1 megapixel) to a {side}×{side} hidden map; convlab counts each layer:",
        f"  fully connected, H[i,j] = U[i,j] + Σ V[i,j,a,b]·X[i+a,j+b]: flatten fc({side * side:,}) has "
        f"{fc.trainable_params:,} parameters ≈ {_approx(fc.trainable_params)} ({4 * fc.trainable_params / 1e12:.0f} TB "
        "in fp32)",
        f"  translation invariance, V[a,b] the same at every position: conv(1,{2 * side - 1},p={side - 1}) "
        f"keeps {shared.output_shape[2]}×{shared.output_shape[3]} with {shared.trainable_params:,} ≈ "
        f"{_approx(shared.trainable_params)} (one weight per offset a, b in −{side - 1}..{side - 1}, plus u)",
        f"  locality, V[a,b] = 0 for |a| or |b| > Δ = {delta}: conv(1,{2 * delta + 1},p={delta}) has "
        f"{local.trainable_params} = (2Δ + 1)² + 1; the notes' 4Δ² = {4 * delta * delta} counts 2Δ offsets per axis",
        f"  channels, V[a,b,c,d]: one (2Δ + 1)² kernel per input–output pair; Δ = 1, 3 → 64 channels: conv(64,3,p=1) has "
        f"3·64·3·3 + 64 = {multi.trainable_params:,}",
    ]
    if warns:
        lines.append(f"convlab check 'flatten fc({side * side})' --input 1,{side},{side}:")
        lines.append("  " + str(warns[0]).splitlines()[0])
    return lines


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

    from .scratch import Conv2D, corr2d, im2col, learn_kernel

    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = corr2d(X, torch.tensor([[1.0, -1.0]]))
    K, losses = learn_kernel(X, Y, steps=10)
    lines = ["start from a random 1×2 kernel (uniform in [0, 1), seed 0); minimise Σ(conv(X, K) − Y)² by "
             "gradient descent (lr 0.03):"]
    lines += [f"  step {i + 1:>2}: loss {loss:8.3f}" for i, loss in enumerate(losses) if i % 2 == 1]
    lines.append(f"learned kernel: {_m(K)} — close to the edge detector [1, −1]")

    # the notes' run: same method, another random start (nn.LazyConv2d draws it uniform in ±1/√2).
    # The update is linear, w ← w* + M(w − w*) with M = I − 2·lr·AᵀA (A: the image's 1×2 windows), so it
    # can be run backwards from the kernel the notes print.
    A = im2col(X.reshape(1, 1, *X.shape).double(), (1, 2)).reshape(-1, 2)
    M = torch.eye(2, dtype=torch.float64) - 2 * 0.03 * A.T @ A
    w_star = torch.tensor([1.0, -1.0], dtype=torch.float64)
    back = w_star + torch.linalg.matrix_power(torch.linalg.inv(M), 10) @ (torch.tensor(NOTES_KERNEL, dtype=torch.float64) - w_star)
    amp = float(torch.linalg.eigvalsh(M).abs().min()) ** -10
    Kn, ln = learn_kernel(X, Y, steps=10, init=[NOTES_START])
    lines += [
        "the notes print losses " + ", ".join(f"{v:.3f}" for v in NOTES_LOSSES) + " and kernel ["
        + ", ".join(f"{v:.4f}" for v in NOTES_KERNEL) + "]:"
        " the same method from another random start (their nn.LazyConv2d draws it uniform in ±1/√2)",
        f"  the update is linear, so it runs backwards: from their kernel, 10 steps back is ≈ {_m(back.float())} "
        f"(their 4 printed digits, amplified up to {amp:.0f}× on the way)",
        f"  starting at {list(NOTES_START)}, this code prints their numbers: "
        + ", ".join(f"{v:.3f}" for v in ln[1::2]) + "; kernel [" + ", ".join(f"{v:.4f}" for v in Kn.flatten().tolist())
        + "]",
    ]

    def train_layer(lr: float, steps: int):
        layer = Conv2D((1, 2), generator=torch.Generator().manual_seed(0))
        for _ in range(steps):
            loss = ((layer(X) - Y) ** 2).sum()
            layer.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in layer.parameters():
                    p -= lr * p.grad
        return layer.weight.detach().flatten().tolist(), float(layer.bias.detach()), float(loss.detach())

    Ab = torch.cat([A, torch.ones(len(A), 1, dtype=A.dtype)], 1)        # the bias reads a constant 1
    top = float(torch.linalg.eigvalsh(2 * Ab.T @ Ab).max())
    _, _, bad = train_layer(0.03, 10)
    w, b, loss = train_layer(0.01, 30)
    lines += [
        f"the notes' own layer, scratch.Conv2D (corr2d + one bias): at lr 0.03 it diverges (loss {bad:.2g} after 10 "
        f"steps) — the bias moves all 42 outputs at once, a direction of curvature {top:.0f}, and gradient descent "
        f"is stable only for lr < 2/{top:.0f} = {2 / top:.3f}",
        f"  at lr 0.01, 30 steps: kernel [{w[0]:.3f}, {w[1]:.3f}], bias {b:.4f}, loss {loss:.3f}",
    ]
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
                 + "  (one course note says 28 → 14 → 7 → 3 → 1: see the formulas topic)")
    return lines


def notes_formula_kd(h: int, k: int, s: int, p: int, d: int = 1) -> int:
    """The conv-formula note's version: floor((H + 2p − k·d − 1) / s) + 1 (subtracts k·d + 1)."""
    return (h + 2 * p - k * d - 1) // s + 1


def notes_formula_no_plus_one(h: int, k: int, s: int, p: int) -> int:
    """The cs231n-style note's version: floor((H − F + 2P) / S), without the + 1."""
    return (h - k + 2 * p) // s


def d2l_formula(h: int, k: int, s: int, p_total: int) -> int:
    """d2l 7.3's form: floor((h − k + p + s) / s), with p the padding of both sides together."""
    return (h - k + p_total + s) // s


@topic("formulas", "Three slips in the notes' output-size formulas, with numbers")
def _formulas() -> list[str]:
    from . import arith

    def chain(f, first_stride: int, n: int) -> list[int]:
        sizes = [28]
        for i in range(n):
            sizes.append(f(sizes[-1], first_stride if i == 0 else 2))
        return sizes

    ok = lambda h, s: arith.conv1d_out(h, 3, s, 1)          # noqa: E731 (PyTorch's rule)
    kd = lambda h, s: notes_formula_kd(h, 3, s, 1)           # noqa: E731
    lines = [
        "PyTorch: out = ⌊(in + 2p − d·(k − 1) − 1) / s⌋ + 1 — a kernel dilated by d spans d·(k − 1) + 1 pixels",
        "1. one note writes ⌊(H + 2p − k·d − 1) / s⌋ + 1, subtracting k·d + 1 where the extent is d·(k − 1) + 1:",
        f"   for k=3 it takes 4 instead of 3; with p=1, s=2 both give {kd(28, 2)} on 28, but {kd(7, 2)} instead "
        f"of {ok(7, 2)} on 7",
        "   its chain of k=3, s=2, p=1 convs: " + " → ".join(map(str, chain(kd, 2, 4))) + "; PyTorch: "
        + " → ".join(map(str, chain(ok, 2, 5))),
        "   with stride 1 in the first layer: " + " → ".join(map(str, chain(kd, 1, 5)))
        + f" — its 28 → {kd(28, 1)} contradicts its own 'stride 1 keeps the input dimension'; PyTorch: "
        + " → ".join(map(str, chain(ok, 1, 5))),
        "2. another writes ⌊(H − F + 2P) / S⌋ and drops the + 1: a 3×3 conv with p=1, s=1 would turn 32 into "
        f"{notes_formula_no_plus_one(32, 3, 1, 1)}, while its own CIFAR example (and PyTorch) keeps "
        f"{arith.conv1d_out(32, 3, 1, 1)}",
        "3. d2l writes ⌊(h − k + p + s) / s⌋ with p the padding of BOTH sides; the exercise plugs in the per-side "
        f"padding (0, 1): w = ⌊(8 − 5 + 1 + 4) / 4⌋ = {d2l_formula(8, 5, 4, 1)}, right by luck — the total "
        f"padding 2 gives ⌊(8 − 5 + 2 + 4) / 4⌋ = {d2l_formula(8, 5, 4, 2)}, and PyTorch {arith.conv1d_out(8, 5, 4, 1)}",
        f"   where it shows: k=3, padding 1, s=1 on 8: per-side {d2l_formula(8, 3, 1, 1)}, total "
        f"{d2l_formula(8, 3, 1, 2)}, PyTorch {arith.conv1d_out(8, 3, 1, 1)}",
    ]
    cases = differ = 0
    for h in range(1, 65):
        for k in range(1, 8):
            for pad in range(0, 4):
                for st in range(1, 5):
                    if h + 2 * pad < k:
                        continue
                    cases += 1
                    differ += d2l_formula(h, k, st, 2 * pad) != arith.conv1d_out(h, k, st, pad)
    lines.append(f"d2l's form is PyTorch's: ⌊(h − k + p + s) / s⌋ = ⌊(h − k + p) / s⌋ + 1 with p = 2·padding; "
                 f"checked for in ≤ 64, k ≤ 7, padding ≤ 3, s ≤ 4: {cases:,} cases, {differ} differ")
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
    return [f"2 input channels, kernel 2×2×2: corr2d_multi_in = {_m(corr2d_multi_in(X, K))}",
            f"3 output channels (kernels K, K+1, K+2, shape {tuple(K3.shape)}): output {tuple(out.shape)}",
            f"  {_m(out)}",
            "a layer's kernel is c_out × c_in × k_h × k_w; what it costs: the cost topic"]


@topic("cost", "What a convolution costs: c_in · c_out · k² · h · w multiply-adds (d2l 7.1)")
def _cost() -> list[str]:
    from . import arith
    from .analyze import summary

    c, k, hw = 128, 5, 256
    macs = arith.conv_macs(c, c, 1, (k, k), (hw, hw))
    s = summary(f"conv({c},{k},p={k // 2},bias=false)", (c, hw, hw))
    sep = summary(f"sepconv({c},{k},p={k // 2},bias=false)", (c, hw, hw))
    small = summary(f"conv({c},3,p=1,bias=false)", (c, hw, hw))
    return [
        "each output value is a dot product of c_in·k² inputs with a kernel: one multiply and one add per weight;",
        "  there are c_out·h·w output values, so c_in · c_out · k² · h · w multiply-adds (MACs)",
        f"the notes' case: {hw}×{hw} image, {k}×{k} kernel, {c} → {c} channels (padding {k // 2} keeps the size):",
        f"  {c}·{c}·{k * k}·{hw * hw:,} = {macs:,} MACs ≈ {macs / 1e9:.1f} G "
        f"(convlab summary: {s.macs:,})",
        f"  counting the multiplication and the addition apart: 2·MACs = {2 * macs:,} ≈ {2 * macs / 1e9:.1f} G "
        "FLOPs — the notes' 'over 53 billion operations'; convlab prints both",
        f"the same map with a 3×3 kernel: {small.macs / 1e9:.1f} G MACs; as a separable {k}×{k} conv "
        f"(depthwise + 1×1): {sep.macs / 1e9:.2f} G, {macs / sep.macs:.0f}× fewer",
    ]


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

    # the classic picture (cs231n's, which one note pastes): a 2×2 max with stride 2 over a 4×4 map
    P = torch.tensor([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    Q = pool2d_nchw(P.reshape(1, 1, 4, 4), 2)[0, 0]
    v = [[int(x) for x in row] for row in P.tolist()]
    q = [[int(x) for x in row] for row in Q.tolist()]
    left = ["┌─────┬─────┐", f"│ {v[0][0]} {v[0][1]} │ {v[0][2]} {v[0][3]} │", f"│ {v[1][0]} {v[1][1]} │ {v[1][2]} {v[1][3]} │",
            "├─────┼─────┤", f"│ {v[2][0]} {v[2][1]} │ {v[2][2]} {v[2][3]} │", f"│ {v[3][0]} {v[3][1]} │ {v[3][2]} {v[3][3]} │",
            "└─────┴─────┘"]
    right = ["", "┌───┬───┐", f"│ {q[0][0]} │ {q[0][1]} │", "├───┼───┤", f"│ {q[1][0]} │ {q[1][1]} │", "└───┴───┘", ""]
    arrow = ["", "", "", "maxpool(2) →", "", "", ""]
    lines = ["the picture: max over each 2×2 window, stride 2 — 4×4 becomes 2×2, the largest value of each quarter:"]
    lines += [f"    {a}   {b:<12}   {c}".rstrip() for a, b, c in zip(left, arrow, right)]

    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    X4 = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    X8 = torch.cat((X4, X4 + 1), 1)
    both = pool2d_nchw(X8, 3, 2, 1)
    alone = pool2d_nchw(X8[:, 1:], 3, 2, 1)
    lines += [
        f"d2l: X = {_m(X)}: 2×2 max {_m(pool2d(X, (2, 2)))}, 2×2 mean {_m(pool2d(X, (2, 2), 'avg'))} (stride 1)",
        f"4×4 input 0..15 = {_m(X4[0, 0])}:",
        f"  3×3 window, stride 3 (the stride defaults to the window) → {_m(pool2d_nchw(X4, 3)[0, 0])}",
        f"  2×2 window, stride 2 → {_m(pool2d_nchw(X4, 2)[0, 0])}",
        f"  3×3 window, padding 1, stride 2 → {_m(pool2d_nchw(X4, 3, 2, 1)[0, 0])} (padding counts as −∞ for max)",
        f"  2×3 window, stride (2, 3), padding (0, 1) → {_m(pool2d_nchw(X4, (2, 3), (2, 3), (0, 1))[0, 0])}",
        f"two channels (X and X + 1) stay two: {tuple(X8.shape)} → {tuple(both.shape)}: {_m(both[0])}",
        f"  each channel is pooled on its own: channel 1 alone gives {_m(alone[0, 0])}, the same; "
        "pooling mixes no channels and has no parameters",
    ]
    return lines


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


@topic("batchnorm", "Batch normalisation: 2 trainable and 2 tracked numbers per channel")
def _batchnorm() -> list[str]:
    import torch
    from torch import nn

    from .analyze import summary
    from .scratch import batch_norm

    bn_row = summary("conv(32,3,p=1) bn", (3, 8, 8)).rows[1]
    bn = nn.BatchNorm2d(32)
    learnable = [(n, p.numel(), p.requires_grad) for n, p in bn.named_parameters()]
    stats = [(n, b.numel()) for n, b in bn.named_buffers() if n.startswith("running")]
    g = torch.Generator().manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(16, 32, 4, 4, generator=g)        # mean 3, std 2 in every channel
    with torch.no_grad():
        bn.train()
        bn(x)
        after_one = float(bn.running_mean.mean())
        for _ in range(49):
            bn(x)
        after_fifty = float(bn.running_mean.mean())
        # the same image, normalised among two different sets of batch-mates
        others = [torch.randn(7, 32, 4, 4, generator=g) * s for s in (1.0, 3.0)]
        img = x[:1]
        y = [bn(torch.cat([img, o]))[0] for o in others]
        bn.eval()
        z = [bn(torch.cat([img, o]))[0] for o in others]
    ref, _, _ = batch_norm(img, bn.weight.detach(), bn.bias.detach(), bn.running_mean, bn.running_var, training=False)
    return [
        f"BatchNorm over 32 channels (after a conv with 32 outputs): convlab counts {bn_row.trainable_params} trainable "
        f"+ {bn_row.non_trainable_params} non-trainable = {bn_row.trainable_params + bn_row.non_trainable_params}",
        "  trainable, learned by gradient descent: " + ", ".join(f"{n} ({k}, requires_grad={r})" for n, k, r in learnable)
        + " — γ and β, the scale and shift",
        "  non-trainable: " + ", ".join(f"{n} ({k})" for n, k in stats) + " — no gradient reaches them; each "
        "training step moves them 10% towards the batch's statistics, and evaluation uses them",
        f"  (PyTorch also keeps num_batches_tracked, a step counter that neither Keras nor convlab counts)",
        f"batches with mean 3 in every channel: running mean {after_one:.3f} after one step (0.1·3), "
        f"{after_fifty:.3f} after 50 (3·(1 − 0.9⁵⁰))",
        f"in training mode an image's output depends on its batch-mates: the same image in two batches differs by "
        f"up to {float((y[0] - y[1]).abs().max()):.2f}; in eval mode by {float((z[0] - z[1]).abs().max()):g} "
        f"(and equals scratch.batch_norm's to {float((z[0] - ref[0]).abs().max()):.0e})",
        "that noise is why the notes call BN a weak regulariser, like dropout or data augmentation — a claim "
        "(Ioffe & Szegedy 2015, §3.4 'Batch Normalization regularizes the model'); this tour does not measure it",
    ]


@topic("residual", "Residual blocks: learn g(x) = f(x) − x, add x back (d2l 8.6, He et al. 2016)")
def _residual() -> list[str]:
    import math

    import torch
    import torch.nn.functional as F

    from .analyze import summary
    from .builder import build
    from .errors import ShapeError

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    lines = ["a block's layers compute g(x); the block outputs g(x) + x. To output a wanted f(x) they must learn "
             "the residual g(x) = f(x) − x (one note writes 'g(x) = f(x) x', the minus sign lost)"]

    body = build("residual[conv(16,3,p=1) relu conv(16,3,p=1)]", (16, 8, 8))
    x = torch.randn(2, 16, 8, 8, generator=g)
    with torch.no_grad():
        diff = float((body(x) - x - body.residual.body(x)).abs().max())
    lines.append(f"  residual[conv relu conv]: out − x equals the convs' output to {diff:.0e} — the notes' "
                 "'out − img = conv2d(conv2d(x))'")

    blk = build("res(16)", (16, 8, 8)).eval()
    b = next(m for m in blk.modules() if type(m).__name__ == "BasicBlock")
    xr = F.relu(torch.randn(2, 16, 8, 8, generator=g))          # inside a ResNet a block's input comes out of a ReLU
    with torch.no_grad():
        before = float((blk(xr) - xr).abs().max())
        b.bn2.weight.zero_()
        b.bn2.bias.zero_()
        after = float((blk(xr) - xr).abs().max())
    lines.append(f"  when the body outputs zero the block is the identity: convlab's res(16) (conv-bn-relu-conv-bn, + x, "
                 f"relu) with bn2's γ = β = 0: max |block(x) − x| = {after:g} (at its random start: {before:.2f}); "
                 "torchvision's zero_init_residual starts every block so")

    lines.append("shapes must match: (30,30,64) + (30,30,32)? No — the addition is elementwise:")
    try:
        torch.zeros(1, 64, 30, 30) + torch.zeros(1, 32, 30, 30)
    except RuntimeError as e:
        lines.append(f"  torch: {str(e).splitlines()[0]}")
    try:
        build("conv(32,3) residual[conv(64,3,p=1) bn]", (3, 32, 32))
    except ShapeError as e:
        lines.append("  convlab: " + str(e).splitlines()[0].split(": ", 1)[1])
    try:
        build("conv(32,3) residual[conv(64,3,p=1) bn maxpool(2)]", (3, 32, 32))
    except ShapeError as e:
        msg = str(e).splitlines()[0]
        lines.append("  a pooling layer (or a stride) in the body shrinks H and W too, so the shortcut needs the same "
                     "stride: convlab says " + msg[msg.index("the body"):])
    m = build("conv(32,3) residual(proj)[conv(64,3,p=1) bn maxpool(2)]", (3, 32, 32))
    with torch.no_grad():
        out = m(torch.zeros(1, 3, 32, 32))
    lines.append(f"  residual(proj)[...] adds that 1×1 conv 32→64, stride 2: output {tuple(out.shape[1:])}")

    a, bb = summary("resnet20"), summary("resnet20:shortcut=B")
    proj = [r for r in bb.rows if r.name.endswith("downsample") and r.trainable_params]
    lines += [
        "two fixes when the channels grow (He et al. 2016 §3.3):",
        "  option A: subsample by the stride and zero-pad the new channels — no parameters",
        "  option B: a 1×1 conv (+ BN) on the shortcut — the notes' '1×1 identity conv2d' and the ResNet-20 "
        "study's point-wise stride-2 conv",
        f"  ResNet-20: A {a.trainable_params:,} trainable (+ {a.non_trainable_params:,} BN statistics), "
        f"B {bb.trainable_params:,} (+ {bb.non_trainable_params:,}): "
        + " and ".join(f"{r.name} {r.trainable_params:,}" for r in proj)
        + f" = {bb.trainable_params - a.trainable_params:,} more",
    ]

    lines += [
        "'without having to worry about vanishing gradients' and 'a shorter path for gradients' (the notes) are "
        "claims; He et al. (§4.1) found their deep plain nets, trained with BatchNorm, to have healthy gradient "
        "norms and harder optimisation instead — the degradation experiment measures both",
    ]

    n = sum(1 for r in a.rows if r.type == "BasicBlock")
    counts = [math.comb(n, k) for k in range(n + 1)]
    lines += [
        f"'an ensemble of shallow networks': each block can be passed through or around, so ResNet-20's {n} blocks "
        f"make 2^{n} = {2 ** n} paths; by how many blocks they pass through: "
        + " ".join(f"{k}:{c}" for k, c in enumerate(counts)),
        "  a claim with its source: Veit, Wilber & Belongie 2016, 'Residual Networks Behave Like Ensembles of "
        "Relatively Shallow Networks' (removing one block at test time barely hurts a ResNet; most of the "
        "gradient in a 110-layer one comes through paths 10–34 layers deep)",
    ]
    return lines


@topic("translation", "Translation invariance and locality, seen on a convolution (d2l 7.1)")
def _translation() -> list[str]:
    import torch

    from . import arith
    from .analyze import summary
    from .scratch import conv2d

    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1, 1] = x[0, 0, 2, 1] = x[0, 0, 2, 2] = 1           # a small L
    K = torch.tensor([[[[0.0, 0, 0], [0, 1, 0], [0, 1, 1]]]])  # the L itself: a matched filter
    dy, dx = 3, 4
    xs = torch.roll(x, (dy, dx), (2, 3))                          # the L moved (it stays inside the frame)
    y, ys = conv2d(x, K, padding=1), conv2d(xs, K, padding=1)
    equi = float((ys - torch.roll(y, (dy, dx), (2, 3))).abs().max())
    peak = divmod(int(y.argmax()), 8)
    peak_s = divmod(int(ys.argmax()), 8)
    lines = [f"an image with a small L, the same image with the L moved by ({dy}, {dx}), and a 3×3 conv of each "
             "(kernel: the L; padding 1):"]
    lines += _side_by_side([("x", _digits(x[0, 0])), ("conv(x)", _digits(y[0, 0])),
                            ("x moved", _digits(xs[0, 0])), ("conv(x moved)", _digits(ys[0, 0]))])
    lines += [
        f"translation invariance of the layer — one kernel at every position — makes its output move with the "
        f"input: max |conv(moved x) − moved conv(x)| = {equi:g}; the peak goes from {peak} to {peak_s}",
        f"  a global max over the map then answers the same wherever the L is: {float(y.max()):g} and "
        f"{float(ys.max()):g} (the notes' 'similar response regardless of location')",
        f"  and the weights do not depend on the image size: conv(1,3,p=1) has "
        f"{summary('conv(1,3,p=1)', (1, 8, 8)).trainable_params} parameters on 8×8 and "
        f"{summary('conv(1,3,p=1)', (1, 1000, 1000)).trainable_params} on 1000×1000",
    ]
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64)
    k1, k2 = (torch.rand(1, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(2))
    poked = img.clone()
    poked[0, 0, 6, 6] += 1.0
    one = int(((conv2d(poked, k1, padding=1) - conv2d(img, k1, padding=1)).abs() > 1e-12).sum())
    two = int(((conv2d(conv2d(poked, k1, padding=1), k2, padding=1)
                - conv2d(conv2d(img, k1, padding=1), k2, padding=1)).abs() > 1e-12).sum())
    rf = arith.receptive_field([(3, 1, 1)] * 2)
    lines += [
        f"locality: change one pixel of a 12×12 image and count the outputs that change: {one} after one 3×3 conv, "
        f"{two} after two",
        f"  each output sees only its receptive field ({rf[0].size}×{rf[0].size}, then {rf[1].size}×{rf[1].size}): "
        "deeper layers see further — the next topic",
    ]
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
    from .inspect import fully_convolutional
    from .inspect import grid_geometry
    from .factory import create_model

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
    (stride, _), _ = grid_geometry(full, (1, 28, 28))
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


def _wrap(line: str, width: int) -> list[str]:
    """A long line folded at spaces to ``width``, its continuation indented under it; pictures are left alone."""
    import textwrap

    if len(line) <= width or any(c in line for c in "│┌└├█▒"):
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line.lstrip(), width, initial_indent=lead, subsequent_indent=lead + "    ",
                         break_long_words=False, break_on_hyphens=False)


def run(name: str | None, width: int | None = None) -> list[str]:
    """The lines of one topic (or of all), folded to ``width`` columns (default: the terminal's, 72–120;
    0 leaves lines whole)."""
    import shutil

    if width is None:
        width = min(max(shutil.get_terminal_size((100, 24)).columns - 1, 72), 120)
    names = [name] if name else list(TOPICS)
    out = []
    # the topics compute on tiny tensors, where worker threads only add start-up and contention
    # (on a busy 2-core machine one BatchNorm call on 16×32×4×4 took 46 ms with 2 threads)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for n in names:
            title, fn = TOPICS[n]
            lines = [f"== {title}", *fn(), ""]
            out += [w for line in lines for w in (_wrap(line, width) if width else [line])]
    finally:
        torch.set_num_threads(threads)
    return out
