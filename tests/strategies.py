"""Hypothesis strategies shared by the tests: random CNN specs with a hand-written torch twin.

The twin is written from the layers' definitions, not from convlab's builder, and registers its
modules in the order convlab names them, so the tests can copy its weights into the built model.
"""

import torch
import torch.nn as nn
from hypothesis import strategies as st


# one generated conv: (spec text, the torch module it means, its output channels)
def _conv_desc(draw, c_in):
    out = draw(st.integers(1, 12))
    k = draw(st.sampled_from([1, 2, 3, 5, (1, 3), (3, 1), (3, 5)]))
    s = draw(st.sampled_from([1, 1, 2, (1, 2)]))
    p = draw(st.sampled_from([0, 1, 2, (0, 1)]))
    d = draw(st.sampled_from([1, 1, 2]))
    g_choices = [g for g in (1, 2, 3) if c_in % g == 0 and out % g == 0]
    g = draw(st.sampled_from(g_choices))
    bias = draw(st.booleans())
    fmt = lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else str(v)  # noqa: E731
    text = f"conv({out},{fmt(k)},s={fmt(s)},p={fmt(p)},d={d},groups={g},bias={'true' if bias else 'false'})"
    return text, nn.Conv2d(c_in, out, k, s, p, d, g, bias), out


@st.composite
def chains(draw):
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    texts, mods = [], []
    c_cur = c
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "pool", "sep", "dw", "res", "residual"]))
        if kind == "conv":
            t, m, c_cur = _conv_desc(draw, c_cur)
        elif kind == "bn":
            t, m = "bn", nn.BatchNorm2d(c_cur)
        elif kind == "act":
            a = draw(st.sampled_from(["relu", "gelu", "tanh", "sigmoid", "silu"]))
            t, m = a, {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}[a]()
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            s = draw(st.integers(1, 3))
            p = draw(st.integers(0, k // 2))
            mx = draw(st.booleans())
            t = f"{'maxpool' if mx else 'avgpool'}({k},{s},{p})"
            m = (nn.MaxPool2d if mx else nn.AvgPool2d)(k, s, p)
        elif kind == "sep":
            out = draw(st.integers(1, 8))
            t = f"sepconv({out},3,p=1)"
            m = nn.Sequential(nn.Conv2d(c_cur, c_cur, 3, padding=1, groups=c_cur, bias=False), nn.Conv2d(c_cur, out, 1))
            c_cur = out
        elif kind == "dw":
            mult = draw(st.integers(1, 2))
            t = f"dwconv(3,p=1,mult={mult})"
            m = nn.Conv2d(c_cur, c_cur * mult, 3, padding=1, groups=c_cur)
            c_cur *= mult
        elif kind == "res":
            out = draw(st.integers(1, 8))
            s = draw(st.integers(1, 2))
            t = f"res({out},s={s})"
            m = _TorchBasic(c_cur, out, s)
            c_cur = out
        else:
            out = draw(st.integers(1, 8))
            s = draw(st.integers(1, 2))
            proj = out != c_cur or s != 1
            t = f"residual{'(proj)' if proj else ''}[conv({out},3,s={s},p=1) bn]"
            m = _TorchResidual(c_cur, out, s, proj)
            c_cur = out
        texts.append(t)
        mods.append(m)
    return (c, h, w), " ".join(texts), nn.Sequential(*mods)


class _TorchBasic(nn.Module):
    """A basic block written by hand, as torchvision does."""

    def __init__(self, cin, cout, s):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.ds = (nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))
                   if s != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.ds(x))


class _TorchResidual(nn.Module):
    def __init__(self, cin, cout, s, proj):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1), nn.BatchNorm2d(cout))
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout)) if proj else None

    def forward(self, x):
        return self.body(x) + (x if self.proj is None else self.proj(x))


