"""The volumes view: the textbook (LeNet/AlexNet-style) picture of a model.

Every feature map is a box seen in oblique projection: its height follows H, its oblique depth W
(square roots, so a 224×224 input and a 7×7 map are both visible), its thickness along the chain the
channels (log-scaled, so VGG-16's 512 channels still fit). Under each box: its shape in convlab's
style (``6×28×28``) and the layer that produced it (``conv 5×5 p2``, ``maxpool 2``, ``fc 120``).
A conv or pool's kernel is drawn on the face of the map it reads, with projection lines to the
map it produces; flatten and fc outputs are tall thin bars; every residual block is an arc above the
chain from its input to its output, labelled with its shortcut's projection where it has one
(``1×1 conv s2, bn``; ``pad s2`` for option A).

One layout (:func:`layout`) gives a list of primitives (polygons, lines, curves, texts) that two
backends draw: :func:`render_volumes` as a standalone SVG (deterministic bytes) and
:func:`render_volumes_png` with matplotlib (PNG/PDF). Long nets fold each residual block into one
volume (automatic above :data:`FOLD_ABOVE` volumes) and wrap onto several lines at ``max_width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Optional

from ..errors import ShapeError, UsageError

FOLD_ABOVE = 16  # more volumes than this with blocks expanded: fold each residual block into one
MAX_WIDTH = 1400  # default wrap width, px (SVG user units)
FONT = 12  # label font size, px
CHAR_W = 0.64  # estimated advance of one character, in font sizes (sans-serif digits and lowercase)

_SAME_SHAPE = ("BatchNorm", "ReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "LeakyReLU", "ELU", "Hardswish",
               "Hardsigmoid", "Mish", "Dropout", "Identity", "Softmax", "LogSoftmax", "PReLU", "ReLU6",
               "LayerNorm", "GroupNorm", "InstanceNorm")
_BLOCK_TYPES = ("BasicBlock", "Bottleneck", "Residual")
_SHORTCUT_NAMES = ("downsample", "shortcut", "proj")

FILL = {"input": "#e8e8e8", "conv": "#a9cbe8", "pool": "#f4c48f", "fc": "#a8d8a0", "flatten": "#d6d6d6",
        "block": "#c8b3e0", "other": "#e0e0e0"}
STROKE = "#333333"


@dataclass
class Volume:
    """One feature map of the picture: the row that produced it, its shape without the batch."""

    name: str
    shape: tuple
    kind: str  # input, conv, pool, fc, flatten, block, other
    label: str  # the layer in the spec language's words
    kernel: Optional[tuple] = None  # (kh, kw) read from the previous volume
    in_shape: Optional[tuple] = None  # what the layer read, without the batch (None: unknown)
    # filled by the layout
    x: float = 0.0
    line: int = 0
    geom: dict = field(default_factory=dict, repr=False)


@dataclass
class Arc:
    """A residual block's shortcut: from the volume it reads to the volume it is added to."""

    block: str
    start: int  # index into the volumes
    end: int
    label: str  # '' for identity


def shape_text(shape) -> str:
    """A shape without the batch as convlab prints it: '6×28×28', '120'."""
    return "×".join(str(v) for v in shape)


def _pair(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"


def _conv_label(info, prefix="conv") -> str:
    k, s, p = info.get("kernel", (1, 1)), info.get("stride", (1, 1)), info.get("padding", (0, 0))
    d, g = info.get("dilation", (1, 1)), info.get("groups", 1)
    if g > 1 and g == info.get("in_channels"):
        prefix = "dwconv"
    text = f"{prefix} {k[0]}×{k[1]}"
    if tuple(s) != (1, 1):
        text += f" s{_pair(s)}"
    if tuple(p) != (0, 0):
        text += f" p{_pair(p)}"
    if tuple(d) != (1, 1):
        text += f" d{_pair(d)}"
    if g > 1 and prefix != "dwconv":
        text += f" g{g}"
    return text


def _pool_label(r) -> str:
    info = r.info
    kind = "maxpool" if "Max" in r.type else "avgpool"
    k, s = info.get("kernel"), info.get("stride")
    if k is None:
        return r.type.lower()
    text = f"{kind} {_pair(k)}"
    if s is not None and tuple(s) != tuple(k):
        text += f" s{_pair(s)}"
    if tuple(info.get("padding", (0, 0))) != (0, 0):
        text += f" p{_pair(info['padding'])}"
    return text


def _leaf_volume(r, shape) -> Optional[Volume]:
    t = r.type
    if t.startswith("Conv"):
        return Volume(r.name, shape, "conv", _conv_label(r.info), tuple(r.info.get("kernel", (1, 1))))
    if t in ("GlobalAvgPool", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalMaxPool"):
        return Volume(r.name, shape, "pool", "gap" if "Avg" in t else "global maxpool")
    if "Pool" in t:
        k = r.info.get("kernel")
        return Volume(r.name, shape, "pool", _pool_label(r), tuple(k) if k else None)
    if t == "Linear":
        return Volume(r.name, shape, "fc", f"fc {shape[-1]}")
    if t == "Flatten":
        return Volume(r.name, shape, "flatten", "flatten")
    if t.startswith(_SAME_SHAPE):
        return None
    return Volume(r.name, shape, "other", t.lower())


def _is_block(r, rows, i) -> bool:
    if r.leaf:
        return False
    if r.type.startswith(_BLOCK_TYPES):
        return True
    return any(c.name.rsplit(".", 1)[-1] in _SHORTCUT_NAMES for c in _children(rows, i))


def _children(rows, i):
    d = rows[i].depth
    for c in rows[i + 1:]:
        if c.depth <= d:
            return
        if c.depth == d + 1:
            yield c


def _subtree_end(rows, i) -> int:
    d = rows[i].depth
    j = i + 1
    while j < len(rows) and rows[j].depth > d:
        j += 1
    return j


def _shortcut_label(rows, i) -> str:
    """What the block's shortcut does, in words: '1×1 conv s2, bn', 'pad s2', '' for identity."""
    for j in range(i + 1, _subtree_end(rows, i)):
        c = rows[j]
        if c.name.rsplit(".", 1)[-1] in _SHORTCUT_NAMES and c.depth == rows[i].depth + 1:
            parts = []
            for k in range(j, _subtree_end(rows, j)):
                x = rows[k]
                if not x.leaf:
                    continue
                if x.type.startswith("Conv"):
                    kind, k, *rest = _conv_label(x.info).split(" ")  # 'conv 1×1 s2' -> '1×1 conv s2'
                    parts.append(" ".join([k, kind, *rest]))
                elif x.type.startswith("BatchNorm"):
                    parts.append("bn")
                elif x.type == "ShortcutA":
                    s = x.info.get("stride", (1, 1))
                    parts.append(f"pad{'' if tuple(s) == (1, 1) else ' s' + _pair(s)}")
                elif not x.type.startswith("Identity"):
                    parts.append(x.type.lower())
            return ", ".join(parts)
    return ""


def _is_shortcut(rows, i) -> bool:
    r = rows[i]
    if r.name.rsplit(".", 1)[-1] not in _SHORTCUT_NAMES or "." not in r.name:
        return False
    parent = r.name.rsplit(".", 1)[0]
    for j in range(i - 1, -1, -1):
        if rows[j].name == parent:
            return _is_block(rows[j], rows, j)
    return False


def _block_label(r, rows, i) -> str:
    convs = [rows[j] for j in range(i + 1, _subtree_end(rows, i))
             if rows[j].leaf and rows[j].type.startswith("Conv") and not _in_shortcut(rows, i, j)]
    ks = "+".join(f"{c.info['kernel'][0]}" for c in convs if "kernel" in c.info)
    strided = [c for c in convs if tuple(c.info.get("stride", (1, 1))) != (1, 1)]
    text = f"block {ks}" if ks else "block"
    if strided:
        text += f" s{_pair(strided[0].info['stride'])}"
    return text


def _in_shortcut(rows, block_i, j) -> bool:
    prefix = rows[block_i].name + "."
    rest = rows[j].name[len(prefix):] if rows[j].name.startswith(prefix) else ""
    return rest.split(".", 1)[0] in _SHORTCUT_NAMES


def plan_volumes(summary, fold_blocks: Optional[bool] = None) -> tuple[list[Volume], list[Arc]]:
    """The volumes (input first) and residual arcs of a summary. ``fold_blocks``: each residual block
    as one volume (True), every layer (False), or folded when expanded would exceed :data:`FOLD_ABOVE`
    volumes (None)."""
    from ..analyze.rows import Summary

    if not isinstance(summary, Summary):
        raise UsageError(f"the volumes view draws a convlab summary (convlab.summary(model, input_shape)), "
                         f"got {type(summary).__name__}")
    if not summary.rows:
        raise ShapeError(f"the summary of {summary.model!r} has no layers: nothing to draw "
                         "(give a model with at least one layer)")
    if fold_blocks is None:
        vols, arcs = _plan(summary, False)
        if len(vols) > FOLD_ABOVE and arcs:
            return _plan(summary, True)
        return vols, arcs
    return _plan(summary, bool(fold_blocks))


def _plan(summary, fold: bool):
    rows = summary.rows
    vols = [Volume("input", tuple(summary.input_shape), "input", "input")]
    arcs: list[Arc] = []
    pending = []  # (block row index, index of the volume it reads, end of its subtree)
    i = 0
    while i < len(rows):
        while pending and i >= pending[-1][2]:
            bi, start, _ = pending.pop()
            arcs.append(Arc(rows[bi].name, start, len(vols) - 1, _shortcut_label(rows, bi)))
        r = rows[i]
        shape = tuple(r.output_shape[1:]) if r.output_shape and not isinstance(r.output_shape[0], list) else None
        if _is_shortcut(rows, i):
            i = _subtree_end(rows, i)
            continue
        if _is_block(r, rows, i):
            if fold and shape is not None:
                vols.append(Volume(r.name, shape, "block", _block_label(r, rows, i)))
                arcs.append(Arc(r.name, len(vols) - 2, len(vols) - 1, _shortcut_label(rows, i)))
                i = _subtree_end(rows, i)
                continue
            pending.append((i, len(vols) - 1, _subtree_end(rows, i)))
            i += 1
            continue
        if r.leaf and shape is not None:
            v = _leaf_volume(r, shape)
            if v is None and shape != vols[-1].shape:
                v = Volume(r.name, shape, "other", r.type.lower())
            if v is not None:
                if r.input_shape and not isinstance(r.input_shape[0], list):
                    v.in_shape = tuple(r.input_shape[1:])
                vols.append(v)
        i += 1
    while pending:
        bi, start, _ = pending.pop()
        arcs.append(Arc(rows[bi].name, start, len(vols) - 1, _shortcut_label(rows, bi)))
    arcs.sort(key=lambda a: (a.start, a.end))
    if len(vols) == 1:  # only layers that keep the shape (bn, relu): the map they make
        last = next((r for r in reversed(rows) if r.leaf and r.output_shape
                     and not isinstance(r.output_shape[0], list)), None)
        if last is not None:
            vols.append(Volume(last.name, tuple(last.output_shape[1:]), "other", last.type.lower()))
    if len(vols) == 1:
        raise ShapeError(f"the summary of {summary.model!r} has no layer with a known output shape: "
                         "nothing to draw")
    return vols, arcs


# -- geometry ------------------------------------------------------------------------------

def spatial_px(n: int) -> float:
    """Height (H) or oblique depth (W) of a map of side n, px: 9·√n, from 8 px up to 160 px."""
    return min(160.0, max(8.0, 9.0 * math.sqrt(n)))


def channel_px(c: int) -> float:
    """Thickness along the chain of a map of c channels, px: 4 + 6·log2(c)."""
    return 4.0 + 6.0 * math.log2(max(1, c))


def vector_px(n: int) -> float:
    """Height of a flat vector's bar (flatten, fc), px: 12 + 13·log2(n), at most 190."""
    return min(190.0, 12.0 + 13.0 * math.log2(max(1, n)))


OBLIQUE = (math.cos(math.radians(40)) * 0.5, math.sin(math.radians(40)) * 0.5)  # per px of W


def box_size(shape) -> tuple[float, float, float]:
    """(thickness, height, oblique depth) of a volume's box, px."""
    if len(shape) == 3:
        c, h, w = shape
        return channel_px(c), spatial_px(h), spatial_px(w)
    if len(shape) == 1:
        return 8.0, vector_px(shape[0]), 8.0
    n = math.prod(shape)
    return 8.0, vector_px(n), 8.0


def _text_w(s: str, size: float = FONT) -> float:
    return len(s) * size * CHAR_W


@dataclass
class Prim:
    """One drawing primitive in picture coordinates (y down)."""

    kind: str  # poly, line, curve, text
    pts: tuple
    fill: str = "none"
    stroke: str = STROKE
    width: float = 1.0
    dash: bool = False
    text: str = ""
    size: float = FONT
    anchor: str = "middle"
    cls: str = ""
    data: tuple = ()  # (key, value) pairs for the SVG's data- attributes


GAP = 26.0  # px between a column's box and the next column
MARGIN = 20.0


def layout(summary, *, title=None, max_width=None, fold_blocks=None):
    """Place the volumes and arcs: (width, height, primitives, volumes, arcs)."""
    vols, arcs = plan_volumes(summary, fold_blocks)
    max_width = MAX_WIDTH if max_width is None else max_width
    if not isinstance(max_width, (int, float)) or isinstance(max_width, bool) or max_width < 200:
        raise UsageError(f"max_width must be a number of pixels of at least 200, got {max_width!r}")
    ox, oy = OBLIQUE
    # column widths: the box with its oblique depth, or its labels, whichever is wider
    cols = []
    for v in vols:
        t, h, z = box_size(v.shape)
        box_w = t + z * ox
        label_w = max(_text_w(shape_text(v.shape)), _text_w(v.label))
        cols.append((t, h, z, max(box_w, label_w)))
    # wrap into lines
    lines: list[list[int]] = [[]]
    x = MARGIN
    for i, (_, _, _, cw) in enumerate(cols):
        if lines[-1] and x + cw > max_width - MARGIN:
            lines.append([])
            x = MARGIN
        lines[-1].append(i)
        vols[i].line = len(lines) - 1
        vols[i].x = x + (cw - (cols[i][0] + cols[i][2] * ox)) / 2
        x += cw + GAP
    fit = int((max_width - 2 * MARGIN) / ((FONT + 3) * CHAR_W))  # a long spec as title is cut to the width
    if title and len(title) > fit:
        title = title[:fit - 1] + "…"
    width = max([2 * MARGIN + _text_w(title or "", FONT + 3)]
                + [2 * MARGIN + sum(cols[i][3] for i in ln) + GAP * (len(ln) - 1) for ln in lines])
    prims: list[Prim] = []
    y = MARGIN
    if title:
        prims.append(Prim("text", (MARGIN, y + FONT + 3), text=title, size=FONT + 3, anchor="start", stroke="none",
                          cls="title"))
        y += FONT + 3 + 8
    for li, ln in enumerate(lines):
        has_arc = any(vols[a.start].line == li or vols[a.end].line == li for a in arcs)
        any_label = any(a.label for a in arcs if vols[a.end].line == li)
        top_room = (40.0 if has_arc else 0.0) + (FONT + 2 if any_label else 0.0)
        up = max(cols[i][1] / 2 + cols[i][2] * oy for i in ln)  # above the centre line
        down = max(cols[i][1] / 2 for i in ln)
        cy = y + top_room + up
        for i in ln:
            t, h, z, _ = cols[i]
            v = vols[i]
            x0, y0, y1 = v.x, cy - h / 2, cy + h / 2
            dx, dy = z * ox, -z * oy
            v.geom = {"x0": x0, "x1": x0 + t, "y0": y0, "y1": y1, "dx": dx, "dy": dy, "cy": cy}
        label_y = cy + down + 6
        for i in ln:
            v, (t, h, z, cw) = vols[i], cols[i]
            _box(prims, v, t)
            cx = v.x + (t + z * ox) / 2
            prims.append(Prim("text", (cx, label_y + FONT), text=shape_text(v.shape), stroke="none", cls="shape"))
            prims.append(Prim("text", (cx, label_y + 2 * FONT + 3), text=v.label, stroke="none", cls="layer",
                              fill="#444444"))
        # kernels and their projections onto the next volume
        for i in ln:
            v = vols[i]
            # only where the layer reads the map drawn before it (a branch of a module is no chain)
            if (v.kernel and i > 0 and len(vols[i - 1].shape) == 3 and vols[i - 1].line == li
                    and v.in_shape == vols[i - 1].shape):
                _kernel(prims, vols[i - 1], v)
        # residual arcs
        for k, a in enumerate(arcs):  # neighbours alternate in height so touching arcs stay apart
            s, e = vols[a.start], vols[a.end]
            if s.line > li or e.line < li:
                continue
            _arc(prims, a, s, e, li, y + top_room - 14 + 8 * (k % 2), width)
        y = label_y + 2 * FONT + 3 + 22
    height = y - 22 + MARGIN
    return math.ceil(width), math.ceil(height), prims, vols, arcs


def _box(prims, v, t):
    g = v.geom
    x0, x1, y0, y1, dx, dy = g["x0"], g["x1"], g["y0"], g["y1"], g["dx"], g["dy"]
    fill = FILL.get(v.kind, FILL["other"])
    data = (("name", v.name), ("shape", shape_text(v.shape)), ("kind", v.kind),
            ("w", f"{t:.1f}"), ("h", f"{y1 - y0:.1f}"), ("d", f"{math.hypot(dx, dy):.1f}"))
    prims.append(Prim("poly", ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), fill=fill, cls="volume", data=data))
    prims.append(Prim("poly", ((x0, y0), (x0 + dx, y0 + dy), (x1 + dx, y0 + dy), (x1, y0)), fill=_shade(fill, 1.08),
                      cls="top"))
    prims.append(Prim("poly", ((x1, y0), (x1 + dx, y0 + dy), (x1 + dx, y1 + dy), (x1, y1)), fill=_shade(fill, 0.88),
                      cls="side"))


def _shade(hexcol: str, f: float) -> str:
    r, g, b = (int(hexcol[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{min(255, max(0, round(c * f))):02x}" for c in (r, g, b))


def _kernel(prims, src, dst):
    """The kernel as a small patch on the H×W face of the map it reads, lines to the map it makes."""
    g = src.geom
    _, hin, win = src.shape
    kh, kw = dst.kernel
    fh = max(3.0, (g["y1"] - g["y0"]) * min(1.0, kh / hin))
    # the face x = x1: point (u along depth 0..1, v along height 0..1)
    def face(u, vv):
        return (g["x1"] + g["dx"] * u, g["y0"] + (g["y1"] - g["y0"]) * vv + g["dy"] * u)
    zu = max(min(1.0, kw / win), 3.0 / max(1.0, math.hypot(g["dx"], g["dy"])))
    hv = fh / (g["y1"] - g["y0"])
    u0, v0 = 0.5 - zu / 2, 0.45 - hv / 2
    corners = (face(u0, v0), face(u0 + zu, v0), face(u0 + zu, v0 + hv), face(u0, v0 + hv))
    prims.append(Prim("poly", corners, fill="#d9534f", stroke="#8b1a1a", width=0.8, cls="kernel",
                      data=(("of", dst.name),)))
    d = dst.geom
    if len(dst.shape) == 3:
        tip = (d["x0"] + min(3.0, (d["x1"] - d["x0"]) / 2), (d["y0"] + d["y1"]) / 2)
    else:
        tip = (d["x0"], (d["y0"] + d["y1"]) / 2)
    for c in (corners[0], corners[2]):
        prims.append(Prim("line", (c, tip), stroke="#8b1a1a", width=0.7, dash=True, cls="projection"))


def _arc(prims, a, s, e, li, top, width):
    """A residual arc over the chain; split at a line break (each half runs to the margin)."""
    def anchor(v):
        g = v.geom
        return (g["x0"] + (g["x1"] - g["x0"] + g["dx"]) / 2, g["y0"] + g["dy"] - 2)
    color = "#6a3d9a"
    # a piece that runs off to the right margin, or in from the left one, leaves and enters level
    p0 = anchor(s) if s.line == li else (4.0, top)
    p3 = anchor(e) if e.line == li else (width - 4.0, top)
    c1, c2 = (p0[0], top), (p3[0], top)
    prims.append(Prim("curve", (p0, c1, c2, p3), stroke=color, width=1.4, cls="arc",
                      data=(("block", a.block), ("from", "input" if a.start == 0 else s.name), ("to", e.name))))
    if e.line == li:
        prims.append(Prim("text", (p3[0] + 5, p3[1] - 3), text="+", size=FONT + 1, stroke="none", fill=color,
                          anchor="start", cls="add"))
        if a.label:
            mid = (p0[0] + p3[0]) / 2
            prims.append(Prim("text", (mid, top - 4), text=a.label, size=FONT - 1, stroke="none", fill=color,
                              cls="arc-label"))


# -- backends ------------------------------------------------------------------------------

def _f(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def render_volumes(summary, *, title=None, max_width=None, fold_blocks=None) -> str:
    """The volumes picture of ``summary`` (what ``convlab.summary(model, input_shape)`` returns) as a
    standalone SVG string: same summary, same bytes. ``title``: a line above the picture (default:
    the model's name); ``max_width``: wrap width in px (default :data:`MAX_WIDTH`); ``fold_blocks``:
    see :func:`plan_volumes`."""
    title = getattr(summary, "model", None) if title is None else title
    w, h, prims, _, _ = layout(summary, title=title, max_width=max_width, fold_blocks=fold_blocks)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{FONT}">',
           f'<rect width="{w}" height="{h}" fill="#ffffff"/>']
    for p in prims:
        data = "".join(f' data-{k}="{escape(str(v))}"' for k, v in p.data)
        cls = f' class="{p.cls}"' if p.cls else ""
        if p.kind == "poly":
            pts = " ".join(f"{_f(x)},{_f(y)}" for x, y in p.pts)
            out.append(f'<polygon{cls}{data} points="{pts}" fill="{p.fill}" stroke="{p.stroke}" '
                       f'stroke-width="{_f(p.width)}" stroke-linejoin="round"/>')
        elif p.kind == "line":
            (x1, y1), (x2, y2) = p.pts
            dash = ' stroke-dasharray="3,2"' if p.dash else ""
            out.append(f'<line{cls}{data} x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
                       f'stroke="{p.stroke}" stroke-width="{_f(p.width)}"{dash}/>')
        elif p.kind == "curve":
            (a, b), (c, d), (e, f), (g, hh) = p.pts
            out.append(f'<path{cls}{data} d="M{_f(a)},{_f(b)} C{_f(c)},{_f(d)} {_f(e)},{_f(f)} {_f(g)},{_f(hh)}" '
                       f'fill="none" stroke="{p.stroke}" stroke-width="{_f(p.width)}"/>')
        elif p.kind == "text":
            x, y = p.pts
            fill = p.fill if p.fill != "none" else "#111111"
            out.append(f'<text{cls}{data} x="{_f(x)}" y="{_f(y)}" font-size="{_f(p.size)}" text-anchor="{p.anchor}" '
                       f'fill="{fill}">{escape(p.text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fold_for_depth(summary, depth: Optional[int]) -> Optional[bool]:
    """``--depth`` in the volumes view's words: None (fold long nets), or fold each residual block into
    one volume when ``depth`` does not reach inside the shallowest block (resnet20: blocks sit at depth 1,
    so ``--depth 1`` folds them and ``--depth 2`` draws every layer)."""
    if depth is None:
        return None
    rows = getattr(summary, "rows", [])
    block_depths = [r.depth for i, r in enumerate(rows) if _is_block(r, rows, i)]
    return bool(block_depths) and depth <= min(block_depths)


def _figure(summary, *, title=None, max_width=None, fold_blocks=None):
    from matplotlib.figure import Figure
    from matplotlib.patches import PathPatch, Polygon
    from matplotlib.path import Path as MPath

    title = getattr(summary, "model", None) if title is None else title
    w, h, prims, _, _ = layout(summary, title=title, max_width=max_width, fold_blocks=fold_blocks)
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    pt = 72 / 100  # px -> points at 100 dpi
    for p in prims:
        if p.kind == "poly":
            ax.add_patch(Polygon(p.pts, closed=True, facecolor=p.fill, edgecolor=p.stroke, linewidth=p.width * pt,
                                 joinstyle="round"))
        elif p.kind == "line":
            (x1, y1), (x2, y2) = p.pts
            ax.plot([x1, x2], [y1, y2], color=p.stroke, linewidth=p.width * pt,
                    linestyle=(0, (3, 2)) if p.dash else "-")
        elif p.kind == "curve":
            curve = MPath(p.pts, [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])
            ax.add_patch(PathPatch(curve, facecolor="none", edgecolor=p.stroke, linewidth=p.width * pt))
        elif p.kind == "text":
            x, y = p.pts
            ha = {"middle": "center", "start": "left", "end": "right"}[p.anchor]
            ax.text(x, y, p.text, fontsize=p.size * pt, ha=ha, va="baseline",
                    color=p.fill if p.fill != "none" else "#111111", family="DejaVu Sans")
    return fig


def render_volumes_image(summary, fmt: str = "png", *, title=None, max_width=None, fold_blocks=None,
                         dpi=100) -> bytes:
    """The same picture drawn with matplotlib, as PNG or PDF bytes; 1 px of the SVG = 1 px of the PNG at
    ``dpi`` 100. A bare Figure (no pyplot): the user's matplotlib backend is left alone."""
    import io

    if fmt not in ("png", "pdf"):
        raise UsageError(f"the volumes view is drawn as svg, png or pdf, not {fmt!r}")
    fig = _figure(summary, title=title, max_width=max_width, fold_blocks=fold_blocks)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Software": None} if fmt == "png" else None)
    return buf.getvalue()


def render_volumes_png(summary, path, *, title=None, max_width=None, fold_blocks=None, dpi=100):
    """:func:`render_volumes_image` saved to ``path`` (.png or .pdf, by its suffix) through convlab's atomic
    writer. Returns the path."""
    from ..fileio import write_bytes

    fmt = "pdf" if str(path).lower().endswith(".pdf") else "png"
    return write_bytes(path, render_volumes_image(summary, fmt, title=title, max_width=max_width,
                                                  fold_blocks=fold_blocks, dpi=dpi))
