"""Spec → plan: every layer's name, shapes, parameters, MACs and receptive field, by arithmetic alone.

The plan is what the builder instantiates and what the summary prints for a spec, so the numbers
come from one place (``convlab.arith``) and no tensor is computed. Shape bugs are raised here as
:class:`~convlab.errors.ShapeError` naming the layer, its input and a concrete fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from . import arith
from .arith import pair
from .errors import ShapeError
from .spec import (BN, FC, GAP, Act, AvgPool, Bottleneck, Conv, Dropout, DWConv, Flatten, Layer, MaxPool, Res,
                   Residual, SepConv, Spec, Stage, parse)
from .spec.layers import ACTIVATIONS

Shape = tuple  # (C, H, W) or (F,), without the batch dimension
# receptive field per spatial dim: ((size, jump, start) for H, (size, jump, start) for W); None once global
RF = Optional[tuple]


@dataclass
class Node:
    """One module of the planned model (or one more call of a module used twice, ``reuse``).

    ``type`` names the module (``Conv2d``, ``ReLU``, ``BasicBlock``, ``Sequential``, ...), and the
    builder makes it from the type, the shapes and ``info``, its settings: for ``Conv2d`` ``kernel``,
    ``stride``, ``padding``, ``dilation`` (pairs; padding may be ``"same"``/``"valid"``), ``groups``,
    ``bias`` and ``in_channels``; for ``MaxPool2d``/``AvgPool2d`` ``kernel``, ``stride``, ``padding``,
    ``dilation`` and ``ceil_mode``; for ``ShortcutA`` its ``stride``. The checks read the same keys.
    ``layer`` is the spec layer the node was planned from (fc bias and dropout p are read there).
    A container's children are named by the last part of their ``name``, as its module takes them.
    """

    name: str
    type: str
    in_shape: Shape
    out_shape: Shape
    trainable: int = 0       # own parameters (children excluded)
    non_trainable: int = 0   # own running statistics (BatchNorm mean and var)
    macs: int = 0            # own multiply-accumulates per sample
    rf: RF = None
    children: list["Node"] = field(default_factory=list)
    reuse: bool = False
    layer: Optional[Layer] = None
    info: dict = field(default_factory=dict)  # the module's settings, for the builder and the checks

    def walk(self, depth: int = 0):
        """(node, depth) for this node and every node under it, in call order."""
        out, todo = [], [(self, depth)]
        while todo:
            node, d = todo.pop()
            out.append((node, d))
            todo.extend((c, d + 1) for c in reversed(node.children))
        return out


@dataclass
class Plan:
    spec: Spec
    input_shape: tuple[int, int, int]
    nodes: list[Node]
    notes: tuple[str, ...] = ()  # what fitting the head to num_classes changed beyond the width (said to the user)

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].out_shape

    def walk(self):
        return [x for n in self.nodes for x in n.walk(0)]

    @property
    def params(self) -> int:
        return sum(n.trainable + n.non_trainable for n, _ in self.walk() if not n.reuse)


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape))


def _rf_update(rf: RF, k, s, p, d) -> RF:
    return None if rf is None else arith.rf_step_2d(rf, k, s, p, d)


def _rf_merge(a: RF, b: RF) -> RF:
    return None if a is None or b is None else arith.rf_widest((a, b))


def _proj_stride(shape: Shape, out: Shape) -> Optional[int]:
    """The smallest stride of a 1x1 conv that maps ``shape``'s H×W to ``out``'s, or None when none does.

    A 1x1 conv with stride s maps a size H to (H-1)//s + 1, so the strides that give O are those with
    (H-1)//s == O-1 =: q: the integers in ((H-1)//(q+1), (H-1)//q], unbounded above when q == 0.
    Intersecting H's and W's intervals answers in constant time for any map size.
    """
    lo, hi = 1, None
    for size, target in zip(shape[1:], out[1:]):
        q = target - 1
        if q < 0:
            return None
        lo = max(lo, (size - 1) // (q + 1) + 1)
        if q:
            hi = (size - 1) // q if hi is None else min(hi, (size - 1) // q)
    return lo if hi is None or lo <= hi else None


class _Planner:
    """Walks a spec's layers once: names each module, computes its shapes, counts and receptive field.

    :meth:`layer` dispatches on the layer's kind to one method per kind (``conv`` → :meth:`_conv`).
    """

    def __init__(self):
        self.last_down: str | None = None  # the last layer that shrank the spatial size, for fixes
        # a conv's arithmetic by its input shape and settings: the blocks of a stage repeat the same convs
        self._convs: dict[tuple, tuple] = {}

    # -- naming --------------------------------------------------------------------------

    @staticmethod
    def _base(layer: Layer) -> str:
        if isinstance(layer, Act):
            return layer.name
        return {"residual": "residual"}.get(layer.kind, layer.kind)

    def _group(self, layers: Sequence[Layer]) -> list:
        """Put runs of res/bottleneck blocks into stages: a new stage starts at a stride or a width change."""
        out: list = []
        run: list[Layer] = []
        prev_out = None

        def width(b):
            return b.out if isinstance(b, Res) else 4 * b.mid

        for layer in layers:
            if isinstance(layer, (Res, Bottleneck)):
                if run and (layer.s != 1 or width(layer) != prev_out):
                    out.append(Stage(body=tuple(run)))
                    run = []
                run.append(layer)
                prev_out = width(layer)
            else:
                if run:
                    out.append(Stage(body=tuple(run)))
                    run, prev_out = [], None
                out.append(layer)
        if run:
            out.append(Stage(body=tuple(run)))
        return out

    def _names(self, layers: Sequence[Layer], indexed: bool) -> list[str]:
        if indexed:
            return [str(i) for i in range(len(layers))]
        counts: dict[str, int] = {}
        for layer in layers:
            if not isinstance(layer, Stage):
                counts[self._base(layer)] = counts.get(self._base(layer), 0) + 1
        seen: dict[str, int] = {}
        names = []
        stage = 0
        for layer in layers:
            if isinstance(layer, Stage):
                stage += 1
                names.append(f"layer{stage}")
                continue
            b = self._base(layer)
            seen[b] = seen.get(b, 0) + 1
            names.append(f"{b}{seen[b]}" if b in ("conv", "bn") or counts[b] > 1 else b)
        return names

    # -- sequences -----------------------------------------------------------------------

    def seq(self, layers: Sequence[Layer], shape: Shape, rf: RF, prefix: str,
            indexed: bool = False) -> tuple[list[Node], Shape, RF]:
        layers = self._group(layers) if not indexed else list(layers)
        names = self._names(layers, indexed)
        nodes = []
        for i, (layer, name) in enumerate(zip(layers, names)):
            qual = f"{prefix}{name}"
            try:
                node = self.layer(layer, shape, rf, qual)
            except ShapeError as e:
                if getattr(e, "_located", False):
                    raise
                src = layer.src
                text = src.text if src else layer.to_text()
                err = ShapeError(f"layer {qual} '{text}'{src.where() if src else ''} on input {_fmt(shape)}: {e}"
                                 + (src.caret() if src else ""))
                err._located = True
                raise err from None
            nodes.append(node)
            shape, rf = node.out_shape, node.rf
        return nodes, shape, rf

    def layer(self, layer: Layer, shape: Shape, rf: RF, name: str) -> Node:
        """Plan one layer on an input ``shape``: ``self._<kind>(layer, shape, rf, name)``."""
        method = getattr(self, f"_{layer.kind}", None)
        if method is None:  # pragma: no cover - every kind the parser makes has a method
            raise ShapeError(f"cannot place layer {layer.to_text()!r} here")
        return method(layer, shape, rf, name)

    # -- nodes shared by several kinds ---------------------------------------------------

    def _need_map(self, shape: Shape, what: str):
        if len(shape) != 3:
            raise ShapeError(f"{what} needs a C×H×W feature map but gets {shape[0]} flat features "
                             f"(after flatten or fc); move it before the flatten")

    def _with_down(self, msg: str) -> str:
        if self.last_down:
            return f"{msg} (the last layer that shrank the map is {self.last_down})"
        return msg

    def conv_node(self, name: str, shape: Shape, rf: RF, *, out: int, k, s=1, p=0, d=1, groups: int = 1,
                  bias: bool = True, layer: Layer | None = None) -> Node:
        """A Conv2d with ``out`` channels, kernel ``k``, stride ``s``, padding ``p``, dilation ``d``."""
        if len(shape) != 3:
            self._need_map(shape, "conv")
        c = shape[0]
        if c % groups or out % groups:
            raise ShapeError(f"groups={groups} must divide both the input channels ({c}) and the output "
                             f"channels ({out}); use groups in "
                             f"{[g for g in range(1, c + 1) if c % g == 0 and out % g == 0]}")
        key = (shape, out, k, s, p, d, groups, bias)
        try:
            known = self._convs.get(key)
        except TypeError:  # a setting given as a list: not a key
            known, key = None, None
        if known is None:
            kk, ss, dd = pair(k), pair(s), pair(d)
            try:
                if isinstance(p, str):
                    hw = arith.conv_out(shape[1:], kk, ss, p, dd)
                else:
                    pp = pair(p)
                    hw = (arith.conv1d_out(shape[1], kk[0], ss[0], pp[0], dd[0], validate=False),
                          arith.conv1d_out(shape[2], kk[1], ss[1], pp[1], dd[1], validate=False))
            except ShapeError as e:
                raise ShapeError(self._with_down(str(e).split(": ", 1)[-1])) from None
            kh, kw = kk
            params = out * (c // groups) * kh * kw + (out if bias else 0)
            macs = out * (c // groups) * kh * kw * hw[0] * hw[1]  # arith.conv_macs, written out
            if isinstance(p, str):
                pp = arith.pad_before(p, kk, dd)
            info = {"kernel": kk, "stride": ss, "padding": p if isinstance(p, str) else pp,
                    "dilation": dd, "groups": groups, "bias": bias, "in_channels": c}
            known = (hw, params, macs, info, kk, ss, pp, dd, hw[0] < shape[1] or hw[1] < shape[2])
            if key is not None:
                self._convs[key] = known
        hw, params, macs, info, kk, ss, pp, dd, down = known
        if down:
            self.last_down = name
        return Node(name, "Conv2d", shape, (out, *hw), trainable=params, macs=macs,
                    rf=None if rf is None else arith.rf_step_2d(rf, kk, ss, pp, dd), layer=layer, info=dict(info))

    def bn_node(self, name: str, shape: Shape, rf: RF, layer: Layer | None = None) -> Node:
        """BatchNorm2d on a map, BatchNorm1d on flat features."""
        c = shape[0]
        return Node(name, "BatchNorm2d" if len(shape) == 3 else "BatchNorm1d", shape, shape, trainable=2 * c,
                    non_trainable=2 * c, rf=rf, layer=layer)

    def act_node(self, name: str, shape: Shape, rf: RF, act: str, layer: Layer | None = None,
                 reuse: bool = False) -> Node:
        """An activation by its spec name (``relu`` → ReLU); ``reuse``: a second call of the same module."""
        return Node(name, ACTIVATIONS[act], shape, shape, rf=rf, reuse=reuse, layer=layer)

    def _shortcut_b(self, name: str, shape: Shape, rf: RF, out: int, s: int) -> Node:
        """The projection shortcut: Sequential(1x1 conv with stride ``s``, bn), named ``.0`` and ``.1``."""
        conv = self.conv_node(f"{name}.0", shape, rf, out=out, k=1, s=s, bias=False)
        bn = self.bn_node(f"{name}.1", conv.out_shape, conv.rf)
        return Node(name, "Sequential", shape, bn.out_shape, rf=bn.rf, children=[conv, bn])

    # -- one method per layer kind -------------------------------------------------------

    def _conv(self, layer: Conv, shape: Shape, rf: RF, name: str) -> Node:
        return self.conv_node(name, shape, rf, out=layer.out, k=layer.k, s=layer.s, p=layer.p, d=layer.d,
                              groups=layer.groups, bias=layer.bias, layer=layer)

    def _dwconv(self, layer: DWConv, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "dwconv")
        c = shape[0]
        return self.conv_node(name, shape, rf, out=c * layer.mult, k=layer.k, s=layer.s, p=layer.p, d=layer.d,
                              groups=c, bias=layer.bias, layer=layer)

    def _sepconv(self, layer: SepConv, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "sepconv")
        c = shape[0]
        dw = self.conv_node(f"{name}.depthwise", shape, rf, out=c, k=layer.k, s=layer.s, p=layer.p, groups=c,
                            bias=layer.dw_bias)
        pw = self.conv_node(f"{name}.pointwise", dw.out_shape, dw.rf, out=layer.out, k=1, bias=layer.bias)
        return Node(name, "SeparableConv2d", shape, pw.out_shape, rf=pw.rf, children=[dw, pw], layer=layer)

    def _bn(self, layer: BN, shape: Shape, rf: RF, name: str) -> Node:
        return self.bn_node(name, shape, rf, layer)

    def _act(self, layer: Act, shape: Shape, rf: RF, name: str) -> Node:
        return self.act_node(name, shape, rf, layer.name, layer)

    def _pool(self, layer: MaxPool | AvgPool, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, layer.kind)
        s = layer.k if layer.s is None else layer.s
        try:
            hw = arith.pool_out(shape[1:], pair(layer.k), pair(s), pair(layer.p), 1, layer.ceil)
        except ShapeError as e:
            raise ShapeError(self._with_down(str(e).split(": ", 1)[-1])) from None
        if hw != tuple(shape[1:]):
            self.last_down = name
        info = {"kernel": pair(layer.k), "stride": pair(s), "padding": pair(layer.p), "dilation": (1, 1),
                "ceil_mode": layer.ceil}
        return Node(name, "MaxPool2d" if layer.kind == "maxpool" else "AvgPool2d", shape, (shape[0], *hw),
                    rf=_rf_update(rf, layer.k, s, layer.p, 1), layer=layer, info=info)

    _maxpool = _avgpool = _pool

    def _gap(self, layer: GAP, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "gap")
        return Node(name, "GlobalAvgPool", shape, (shape[0], 1, 1), rf=None, layer=layer)

    def _flatten(self, layer: Flatten, shape: Shape, rf: RF, name: str) -> Node:
        return Node(name, "Flatten", shape, (math.prod(shape),), rf=None, layer=layer)

    def _fc(self, layer: FC, shape: Shape, rf: RF, name: str) -> Node:
        if len(shape) != 1:
            n = shape[0] * shape[1] * shape[2]
            raise ShapeError(f"fc needs flat features but gets a {len(shape)}-D map {_fmt(shape)}; add flatten "
                             f"before it (→ {shape[0]}·{shape[1]}·{shape[2]} = {n} features) or gap then flatten "
                             f"(→ {shape[0]} features)")
        f_in = shape[0]
        if layer.in_ is not None and layer.in_ != f_in:
            raise ShapeError(f"fc says in={layer.in_} but its input has {f_in} features; write fc({layer.out}) "
                             f"to take in_features from the shape, or in={f_in}")
        return Node(name, "Linear", shape, (layer.out,), trainable=f_in * layer.out + (layer.out if layer.bias else 0),
                    macs=arith.linear_macs(f_in, layer.out), rf=None, layer=layer)

    def _dropout(self, layer: Dropout, shape: Shape, rf: RF, name: str) -> Node:
        return Node(name, "Dropout", shape, shape, rf=rf, layer=layer)

    def _stage(self, layer: Stage, shape: Shape, rf: RF, name: str) -> Node:
        children, out, rf_out = self.seq(layer.body, shape, rf, f"{name}.", indexed=True)
        return Node(name, "Sequential", shape, out, rf=rf_out, children=children, layer=layer)

    def _res(self, layer: Res, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "res")
        c = shape[0]
        saved = self.last_down
        conv1 = self.conv_node(f"{name}.conv1", shape, rf, out=layer.out, k=3, s=layer.s, p=1, bias=False)
        bn1 = self.bn_node(f"{name}.bn1", conv1.out_shape, conv1.rf)
        relu = self.act_node(f"{name}.relu", bn1.out_shape, bn1.rf, "relu")
        conv2 = self.conv_node(f"{name}.conv2", relu.out_shape, relu.rf, out=layer.out, k=3, p=1, bias=False)
        bn2 = self.bn_node(f"{name}.bn2", conv2.out_shape, conv2.rf)
        out = bn2.out_shape
        children = [conv1, bn1, relu, conv2, bn2]
        rf_out = bn2.rf
        change = layer.s != 1 or c != layer.out
        if layer.shortcut == "NONE":
            cls = "PlainBlock"
        elif change and layer.shortcut == "B":
            ds = self._shortcut_b(f"{name}.downsample", shape, rf, layer.out, layer.s)
            children.append(ds)
            rf_out = _rf_merge(rf_out, ds.rf)
            cls = "BasicBlock"
        elif change:
            if layer.out < c:
                raise ShapeError(f"option A shortcut zero-pads channels, so it cannot go from {c} down to "
                                 f"{layer.out} channels; use shortcut=B (1x1 conv {c}→{layer.out}, stride {layer.s})")
            hw = tuple(-(-x // layer.s) for x in shape[1:])
            ds = Node(f"{name}.downsample", "ShortcutA", shape, (layer.out, *hw),
                      rf=_rf_update(rf, 1, layer.s, 0, 1), info={"stride": pair(layer.s)})
            children.append(ds)
            rf_out = _rf_merge(rf_out, ds.rf)
            cls = "BasicBlock"
        else:
            rf_out = _rf_merge(rf_out, rf)
            cls = "BasicBlock"
        children.append(self.act_node(f"{name}.relu", out, rf_out, "relu", reuse=True))
        self.last_down = name if layer.s != 1 else saved
        return Node(name, cls, shape, out, rf=rf_out, children=children, layer=layer)

    def _bottleneck(self, layer: Bottleneck, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "bottleneck")
        c, mid = shape[0], layer.mid
        saved = self.last_down
        conv1 = self.conv_node(f"{name}.conv1", shape, rf, out=mid, k=1, bias=False)
        bn1 = self.bn_node(f"{name}.bn1", conv1.out_shape, conv1.rf)
        relu = self.act_node(f"{name}.relu", bn1.out_shape, bn1.rf, "relu")
        conv2 = self.conv_node(f"{name}.conv2", relu.out_shape, relu.rf, out=mid, k=3, s=layer.s, p=1, bias=False)
        bn2 = self.bn_node(f"{name}.bn2", conv2.out_shape, conv2.rf)
        relu2 = self.act_node(f"{name}.relu", bn2.out_shape, bn2.rf, "relu", reuse=True)
        conv3 = self.conv_node(f"{name}.conv3", relu2.out_shape, relu2.rf, out=4 * mid, k=1, bias=False)
        bn3 = self.bn_node(f"{name}.bn3", conv3.out_shape, conv3.rf)
        children = [conv1, bn1, relu, conv2, bn2, relu2, conv3, bn3]
        if layer.s != 1 or c != 4 * mid:
            ds = self._shortcut_b(f"{name}.downsample", shape, rf, 4 * mid, layer.s)
            children.append(ds)
            rf_out = _rf_merge(bn3.rf, ds.rf)
        else:
            rf_out = _rf_merge(bn3.rf, rf)
        children.append(self.act_node(f"{name}.relu", bn3.out_shape, rf_out, "relu", reuse=True))
        self.last_down = name if layer.s != 1 else saved
        return Node(name, "Bottleneck", shape, bn3.out_shape, rf=rf_out, children=children, layer=layer)

    def _residual(self, layer: Residual, shape: Shape, rf: RF, name: str) -> Node:
        body_nodes, out, body_rf = self.seq(layer.body, shape, rf, f"{name}.body.")
        children = [Node(f"{name}.body", "Sequential", shape, out, rf=body_rf, children=body_nodes)]
        maps = len(shape) == 3 and len(out) == 3
        if layer.proj:
            if not maps:
                raise ShapeError("residual(proj) needs C×H×W maps on both sides; keep flatten/fc outside the block")
            stride = _proj_stride(shape, out)
            if stride is None:
                raise ShapeError(f"residual(proj): the body turns {_fmt(shape)} into {_fmt(out)}, and no 1x1 conv "
                                 f"stride maps {shape[1]}×{shape[2]} to {out[1]}×{out[2]}; make the body downsample "
                                 f"by an integer stride (e.g. conv(…,3,s=2,p=1))")
            proj = self._shortcut_b(f"{name}.proj", shape, rf, out[0], stride)
            children.append(proj)
            rf_out = _rf_merge(body_rf, proj.rf)
        else:
            if tuple(out) != tuple(shape):
                fix = ""
                if maps:
                    stride = _proj_stride(shape, out)
                    if stride is not None:
                        fix = (f"; write residual(proj)[...] to add a 1x1 conv {shape[0]}→{out[0]} with stride "
                               f"{stride} (+bn) on the shortcut")
                    else:
                        fix = "; keep the body's spatial size, or downsample by an integer stride"
                raise ShapeError(f"the body turns {_fmt(shape)} into {_fmt(out)}, so the input cannot be added to "
                                 f"it (shapes must match){fix}")
            rf_out = _rf_merge(body_rf, rf)
        return Node(name, "Residual", shape, out, rf=rf_out, children=children, layer=layer)


def _replace_last_fc(layers: tuple[Layer, ...], num_classes: int) -> tuple[tuple[Layer, ...], bool]:
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, FC):
            return layers[:i] + (dataclasses.replace(layer, out=num_classes),) + layers[i + 1:], True
        if isinstance(layer, (Stage, Residual)):
            body, done = _replace_last_fc(layer.body, num_classes)
            if done:
                return layers[:i] + (dataclasses.replace(layer, body=body),) + layers[i + 1:], True
    return layers, False


def _fit_head(layers: tuple[Layer, ...], num_classes: int) -> tuple[tuple[Layer, ...], bool, tuple[str, ...]]:
    """The layers with the head fitted to ``num_classes``: (layers, an fc was found, notes).

    A one-unit head (``fc(1)``, with or without a ``sigmoid`` after it) on two classes is kept: it is a
    binary classifier, trained with binary cross-entropy on its logit. Any other head is resized to
    ``num_classes`` scores; a ``sigmoid`` ending the spec right after that fc is dropped then, since
    softmax cross-entropy takes the scores themselves (a sigmoid under it caps every probability at
    e/(1+e) ≈ 73.1% for two classes) — and a note says so.
    """
    last = next((i for i in range(len(layers) - 1, -1, -1) if isinstance(layers[i], FC)), None)
    tail = layers[last + 1:] if last is not None else ()
    sigmoid_tail = len(tail) == 1 and isinstance(tail[0], Act) and tail[0].name == "sigmoid"
    if last is not None and num_classes == 2 and layers[last].out == 1 and (not tail or sigmoid_tail):
        return layers, True, ()
    out, found = _replace_last_fc(layers, num_classes)
    if found and sigmoid_tail and layers[last].out != num_classes and num_classes >= 2:
        before = f"{layers[last].to_text()} sigmoid"
        return out[:-1], True, (f"the head {before} is resized to {out[last].to_text()} for {num_classes} classes, "
                                f"and its sigmoid is dropped: softmax cross-entropy takes the {num_classes} scores",)
    return out, found, ()


def check_input_shape(input_shape) -> tuple[int, int, int]:
    from . import limits

    try:
        values = tuple(input_shape)
        if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in values):
            raise TypeError
        shape = tuple(int(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise ShapeError(f"input shape must be (C, H, W) integers, got {str(input_shape)[:60]}") from None
    if len(shape) != 3 or any(v < 1 for v in shape):
        raise ShapeError(f"input shape must be three positive integers (C, H, W), got {str(input_shape)[:60]}")
    for name, v in zip("CHW", shape):
        limits.check_int(v, f"input shape {name}", ShapeError)
    return shape


def memory_needed(p: Plan, batch_size: int = 1) -> tuple[int, int]:
    """(parameter bytes, activation bytes) of a planned model in fp32: every parameter and running statistic,
    and every layer's output for ``batch_size`` images (what a training step keeps for the backward pass)."""
    params = acts = 0
    for node, _ in p.walk():
        if not node.reuse:
            params += node.trainable + node.non_trainable
        if not node.children:
            acts += math.prod(node.out_shape) * batch_size
    return 4 * params, 4 * acts


def check_fits(p: Plan, what: str = "build") -> None:
    """Refuse, before torch allocates anything, a model whose parameters do not fit in this machine's memory."""
    from . import limits

    params, _ = memory_needed(p)
    avail = limits.available_memory()
    if params > avail:
        raise ShapeError(f"cannot {what} the model: its {params // 4:,} parameters need {limits.gib(params)} in fp32, "
                         f"and this machine has {limits.gib(avail)} of memory available; make it smaller (fewer "
                         f"channels, a smaller fc, or pool before the flatten)")


def plan(spec, input_shape=None, num_classes: int | None = None) -> Plan:
    """Plan a spec for an input shape (C, H, W): names, shapes, counts, receptive fields."""
    spec = parse(spec)
    if input_shape is None:
        if spec.input_shape is None:
            raise ShapeError("the input shape is unknown: give it (--input C,H,W on the command line, "
                             "input_shape=(C, H, W) in Python) or begin the spec with input(C,H,W)")
        input_shape = spec.input_shape
    shape = check_input_shape(input_shape)
    if spec.input_shape is not None and tuple(spec.input_shape) != shape:
        raise ShapeError(f"the spec begins with input({','.join(map(str, spec.input_shape))}) but the input shape "
                         f"given is {_fmt(shape)}; drop one of them")
    layers = spec.layers
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ShapeError(f"num_classes must be a positive integer, got {str(num_classes)[:40]}")
        from . import limits

        limits.check_int(num_classes, "num_classes", ShapeError)
    notes: tuple[str, ...] = ()
    if num_classes is not None:
        layers, found, notes = _fit_head(layers, num_classes)
        if not found:
            raise ShapeError(f"num_classes={num_classes} given, but the spec has no fc layer to resize")
    rf0 = ((1, 1, 0.0), (1, 1, 0.0))
    nodes, _, _ = _Planner().seq(layers, shape, rf0, "")
    return Plan(dataclasses.replace(spec, layers=layers), shape, nodes, notes)
