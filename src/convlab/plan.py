"""Spec → plan: every layer's name, shapes, parameters, MACs and receptive field, by arithmetic alone.

The plan is what the builder instantiates and what the summary prints for a spec, so the numbers
come from one place (``convlab.arith``) and no tensor is computed. Shape bugs are raised here as
:class:`~convlab.errors.ShapeError` naming the layer, its input and a concrete fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

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
    """One module of the planned model (or one more call of a module used twice, ``reuse``)."""

    name: str
    type: str
    in_shape: Shape
    out_shape: Shape
    trainable: int = 0       # own parameters (children excluded)
    non_trainable: int = 0   # own running statistics (BatchNorm mean and var)
    macs: int = 0            # own multiply-accumulates per sample
    rf: RF = None
    children: list["Node"] = field(default_factory=list)
    factory: Optional[Callable] = None  # () -> module for leaves, (OrderedDict of children) -> module
    reuse: bool = False
    layer: Optional[Layer] = None
    info: dict = field(default_factory=dict)  # conv/pool settings, for the checks

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


def _lib():
    """torch modules, imported only when a model is built."""
    import torch.nn as nn

    from .nn import blocks

    return nn, blocks


class _Planner:
    def __init__(self):
        self.last_down: str | None = None  # the last layer that shrank the spatial size, for fixes

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
                text = layer.src.text if layer.src else layer.to_text()
                where = f" (line {layer.src.line}, column {layer.src.col})" if layer.src and layer.src.line else ""
                err = ShapeError(f"layer {qual} '{text}'{where} on input {_fmt(shape)}: {e}"
                                 + (layer.src.caret() if layer.src else ""))
                err._located = True
                raise err from None
            nodes.append(node)
            shape, rf = node.out_shape, node.rf
        return nodes, shape, rf

    def container(self, name, typ, layer, shape, children, out, rf, factory) -> Node:
        return Node(name, typ, shape, out, rf=rf, children=children, factory=factory, layer=layer)

    # -- layers --------------------------------------------------------------------------

    def _need_map(self, shape: Shape, what: str):
        if len(shape) != 3:
            raise ShapeError(f"{what} needs a C×H×W feature map but gets {shape[0]} flat features "
                             f"(after flatten or fc); move it before the flatten")

    def conv_node(self, name, shape, rf, out_c, k, s, p, d, groups, bias, layer=None) -> Node:
        self._need_map(shape, "conv")
        c = shape[0]
        if c % groups or out_c % groups:
            raise ShapeError(f"groups={groups} must divide both the input channels ({c}) and the output "
                             f"channels ({out_c}); use groups in "
                             f"{[g for g in range(1, c + 1) if c % g == 0 and out_c % g == 0]}")
        try:
            if isinstance(p, str):
                hw = arith.conv_out(shape[1:], pair(k), pair(s), p, pair(d))
            else:
                (kh_, kw_), (sh_, sw_), (ph_, pw_), (dh_, dw_) = pair(k), pair(s), pair(p), pair(d)
                hw = (arith.conv1d_out(shape[1], kh_, sh_, ph_, dh_, validate=False),
                      arith.conv1d_out(shape[2], kw_, sw_, pw_, dw_, validate=False))
        except ShapeError as e:
            raise ShapeError(self._with_down(str(e).split(": ", 1)[-1])) from None
        kh, kw = pair(k)
        out = (out_c, *hw)
        params = out_c * (c // groups) * kh * kw + (out_c if bias else 0)
        macs = arith.conv_macs(c, out_c, groups, (kh, kw), hw)
        pp = arith.pad_before(p, k, d)
        if hw[0] < shape[1] or hw[1] < shape[2]:
            self.last_down = name
        padding = p if isinstance(p, str) else pair(p)
        def make():
            nn, _ = _lib()
            return nn.Conv2d(c, out_c, pair(k), pair(s), padding, pair(d), groups, bias)

        info = {"kernel": (kh, kw), "stride": pair(s), "padding": p if isinstance(p, str) else pair(p),
                "dilation": pair(d), "groups": groups, "bias": bias, "in_channels": c}
        return Node(name, "Conv2d", shape, out, trainable=params, macs=macs, rf=_rf_update(rf, k, s, pp, d),
                    factory=make, layer=layer, info=info)

    def _with_down(self, msg: str) -> str:
        if self.last_down:
            return f"{msg} (the last layer that shrank the map is {self.last_down})"
        return msg

    def bn_node(self, name, shape, rf, layer=None) -> Node:
        c = shape[0]
        two_d = len(shape) == 3

        def make():
            nn, _ = _lib()
            return nn.BatchNorm2d(c) if two_d else nn.BatchNorm1d(c)

        return Node(name, "BatchNorm2d" if two_d else "BatchNorm1d", shape, shape, trainable=2 * c,
                    non_trainable=2 * c, rf=rf, factory=make, layer=layer)

    def act_node(self, name, shape, rf, act: str, layer=None, reuse=False) -> Node:
        cls = ACTIVATIONS[act]

        def make():
            nn, _ = _lib()
            return getattr(nn, cls)()

        return Node(name, cls, shape, shape, rf=rf, factory=None if reuse else make, reuse=reuse, layer=layer)

    def pool_node(self, name, shape, rf, layer: MaxPool | AvgPool) -> Node:
        kind = "maxpool" if isinstance(layer, MaxPool) else "avgpool"
        self._need_map(shape, kind)
        s = layer.k if layer.s is None else layer.s
        try:
            hw = arith.pool_out(shape[1:], pair(layer.k), pair(s), pair(layer.p), 1, layer.ceil)
        except ShapeError as e:
            raise ShapeError(self._with_down(str(e).split(": ", 1)[-1])) from None
        if hw != tuple(shape[1:]):
            self.last_down = name
        cls = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"

        def make():
            nn, _ = _lib()
            if kind == "maxpool":  # nn.MaxPool2d with a faster CPU path for 2x2 pools on few channels
                from .nn.pool import MaxPool2d

                return MaxPool2d(pair(layer.k), pair(s), pair(layer.p), ceil_mode=layer.ceil)
            return nn.AvgPool2d(pair(layer.k), pair(s), pair(layer.p), ceil_mode=layer.ceil)

        info = {"kernel": pair(layer.k), "stride": pair(s), "padding": pair(layer.p), "dilation": (1, 1),
                "ceil_mode": layer.ceil}
        return Node(name, cls, shape, (shape[0], *hw), rf=_rf_update(rf, layer.k, s, layer.p, 1), factory=make,
                    layer=layer, info=info)

    def layer(self, layer: Layer, shape: Shape, rf: RF, name: str) -> Node:
        if isinstance(layer, Conv):
            return self.conv_node(name, shape, rf, layer.out, layer.k, layer.s, layer.p, layer.d, layer.groups,
                                  layer.bias, layer)
        if isinstance(layer, DWConv):
            self._need_map(shape, "dwconv")
            c = shape[0]
            return self.conv_node(name, shape, rf, c * layer.mult, layer.k, layer.s, layer.p, layer.d, c,
                                  layer.bias, layer)
        if isinstance(layer, SepConv):
            self._need_map(shape, "sepconv")
            c = shape[0]
            dw = self.conv_node(f"{name}.depthwise", shape, rf, c, layer.k, layer.s, layer.p, 1, c, layer.dw_bias)
            pw = self.conv_node(f"{name}.pointwise", dw.out_shape, dw.rf, layer.out, 1, 1, 0, 1, 1, layer.bias)

            def make(ch):
                _, blocks = _lib()
                return blocks.SeparableConv2d(ch["depthwise"], ch["pointwise"])

            return self.container(name, "SeparableConv2d", layer, shape, [dw, pw], pw.out_shape, pw.rf, make)
        if isinstance(layer, BN):
            return self.bn_node(name, shape, rf, layer)
        if isinstance(layer, Act):
            return self.act_node(name, shape, rf, layer.name, layer)
        if isinstance(layer, (MaxPool, AvgPool)):
            return self.pool_node(name, shape, rf, layer)
        if isinstance(layer, GAP):
            self._need_map(shape, "gap")

            def make():
                _, blocks = _lib()
                return blocks.GlobalAvgPool()

            return Node(name, "GlobalAvgPool", shape, (shape[0], 1, 1), rf=None, factory=make, layer=layer)
        if isinstance(layer, Flatten):
            n = 1
            for v in shape:
                n *= v

            def make():
                nn, _ = _lib()
                return nn.Flatten()

            return Node(name, "Flatten", shape, (n,), rf=None, factory=make, layer=layer)
        if isinstance(layer, FC):
            return self.fc(layer, shape, name)
        if isinstance(layer, Dropout):
            def make():
                nn, _ = _lib()
                return nn.Dropout(layer.p)

            return Node(name, "Dropout", shape, shape, rf=rf, factory=make, layer=layer)
        if isinstance(layer, Res):
            return self.res(layer, shape, rf, name)
        if isinstance(layer, Bottleneck):
            return self.bottleneck(layer, shape, rf, name)
        if isinstance(layer, Residual):
            return self.residual(layer, shape, rf, name)
        if isinstance(layer, Stage):
            children, out, rf2 = self.seq(layer.body, shape, rf, f"{name}.", indexed=True)

            def make(ch):
                nn, _ = _lib()
                return nn.Sequential(ch)

            return self.container(name, "Sequential", layer, shape, children, out, rf2, make)
        raise ShapeError(f"cannot place layer {layer.to_text()!r} here")  # pragma: no cover

    def fc(self, layer: FC, shape: Shape, name: str) -> Node:
        if len(shape) != 1:
            n = shape[0] * shape[1] * shape[2]
            raise ShapeError(f"fc needs flat features but gets a {len(shape)}-D map {_fmt(shape)}; add flatten "
                             f"before it (→ {shape[0]}·{shape[1]}·{shape[2]} = {n} features) or gap then flatten "
                             f"(→ {shape[0]} features)")
        f_in = shape[0]
        if layer.in_ is not None and layer.in_ != f_in:
            raise ShapeError(f"fc says in={layer.in_} but its input has {f_in} features; write fc({layer.out}) "
                             f"to take in_features from the shape, or in={f_in}")

        def make():
            nn, _ = _lib()
            return nn.Linear(f_in, layer.out, layer.bias)

        return Node(name, "Linear", shape, (layer.out,), trainable=f_in * layer.out + (layer.out if layer.bias else 0),
                    macs=arith.linear_macs(f_in, layer.out), rf=None, factory=make, layer=layer)

    def _shortcut_b(self, name, shape, rf, out_c, s) -> Node:
        conv = self.conv_node(f"{name}.0", shape, rf, out_c, 1, s, 0, 1, 1, False)
        bn = self.bn_node(f"{name}.1", conv.out_shape, conv.rf)

        def make(ch):
            nn, _ = _lib()
            return nn.Sequential(ch)

        return self.container(name, "Sequential", None, shape, [conv, bn], bn.out_shape, bn.rf, make)

    def res(self, layer: Res, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "res")
        c = shape[0]
        saved = self.last_down
        conv1 = self.conv_node(f"{name}.conv1", shape, rf, layer.out, 3, layer.s, 1, 1, 1, False)
        bn1 = self.bn_node(f"{name}.bn1", conv1.out_shape, conv1.rf)
        relu = self.act_node(f"{name}.relu", bn1.out_shape, bn1.rf, "relu")
        conv2 = self.conv_node(f"{name}.conv2", relu.out_shape, relu.rf, layer.out, 3, 1, 1, 1, 1, False)
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

            def make_a():
                _, blocks = _lib()
                return blocks.ShortcutA(c, layer.out, layer.s)

            ds = Node(f"{name}.downsample", "ShortcutA", shape, (layer.out, *hw),
                      rf=_rf_update(rf, 1, layer.s, 0, 1), factory=make_a)
            children.append(ds)
            rf_out = _rf_merge(rf_out, ds.rf)
            cls = "BasicBlock"
        else:
            rf_out = _rf_merge(rf_out, rf)
            cls = "BasicBlock"
        children.append(self.act_node(f"{name}.relu", out, rf_out, "relu", reuse=True))
        self.last_down = name if layer.s != 1 else saved

        def make(ch):
            _, blocks = _lib()
            if cls == "PlainBlock":
                return blocks.PlainBlock(ch["conv1"], ch["bn1"], ch["relu"], ch["conv2"], ch["bn2"])
            return blocks.BasicBlock(ch["conv1"], ch["bn1"], ch["relu"], ch["conv2"], ch["bn2"], ch.get("downsample"))

        return self.container(name, cls, layer, shape, children, out, rf_out, make)

    def bottleneck(self, layer: Bottleneck, shape: Shape, rf: RF, name: str) -> Node:
        self._need_map(shape, "bottleneck")
        c, mid = shape[0], layer.mid
        saved = self.last_down
        conv1 = self.conv_node(f"{name}.conv1", shape, rf, mid, 1, 1, 0, 1, 1, False)
        bn1 = self.bn_node(f"{name}.bn1", conv1.out_shape, conv1.rf)
        relu = self.act_node(f"{name}.relu", bn1.out_shape, bn1.rf, "relu")
        conv2 = self.conv_node(f"{name}.conv2", relu.out_shape, relu.rf, mid, 3, layer.s, 1, 1, 1, False)
        bn2 = self.bn_node(f"{name}.bn2", conv2.out_shape, conv2.rf)
        relu2 = self.act_node(f"{name}.relu", bn2.out_shape, bn2.rf, "relu", reuse=True)
        conv3 = self.conv_node(f"{name}.conv3", relu2.out_shape, relu2.rf, 4 * mid, 1, 1, 0, 1, 1, False)
        bn3 = self.bn_node(f"{name}.bn3", conv3.out_shape, conv3.rf)
        children = [conv1, bn1, relu, conv2, bn2, relu2, conv3, bn3]
        rf_out = bn3.rf
        if layer.s != 1 or c != 4 * mid:
            ds = self._shortcut_b(f"{name}.downsample", shape, rf, 4 * mid, layer.s)
            children.append(ds)
            rf_out = _rf_merge(rf_out, ds.rf)
        else:
            rf_out = _rf_merge(rf_out, rf)
        children.append(self.act_node(f"{name}.relu", bn3.out_shape, rf_out, "relu", reuse=True))
        self.last_down = name if layer.s != 1 else saved

        def make(ch):
            _, blocks = _lib()
            return blocks.Bottleneck(ch["conv1"], ch["bn1"], ch["conv2"], ch["bn2"], ch["conv3"], ch["bn3"],
                                     ch["relu"], ch.get("downsample"))

        return self.container(name, "Bottleneck", layer, shape, children, bn3.out_shape, rf_out, make)

    def residual(self, layer: Residual, shape: Shape, rf: RF, name: str) -> Node:
        body_nodes, out, body_rf = self.seq(layer.body, shape, rf, f"{name}.body.")

        def make_seq(ch):
            nn, _ = _lib()
            return nn.Sequential(ch)

        body = self.container(f"{name}.body", "Sequential", None, shape, body_nodes, out, body_rf, make_seq)
        children = [body]
        if layer.proj:
            if len(shape) != 3 or len(out) != 3:
                raise ShapeError("residual(proj) needs C×H×W maps on both sides; keep flatten/fc outside the block")
            stride = next((s for s in range(1, max(shape[1], shape[2]) + 1)
                           if arith.conv_out(shape[1:], 1, s) == tuple(out[1:])), None)
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
                if len(shape) == 3 and len(out) == 3:
                    stride = next((s for s in range(1, max(shape[1], shape[2]) + 1)
                                   if arith.conv_out(shape[1:], 1, s) == tuple(out[1:])), None)
                    if stride is not None:
                        fix = (f"; write residual(proj)[...] to add a 1x1 conv {shape[0]}→{out[0]} with stride "
                               f"{stride} (+bn) on the shortcut")
                    else:
                        fix = "; keep the body's spatial size, or downsample by an integer stride"
                raise ShapeError(f"the body turns {_fmt(shape)} into {_fmt(out)}, so the input cannot be added to "
                                 f"it (shapes must match){fix}")
            rf_out = _rf_merge(body_rf, rf)

        def make(ch):
            _, blocks = _lib()
            return blocks.Residual(ch["body"], ch.get("proj"))

        return self.container(name, "Residual", layer, shape, children, out, rf_out, make)


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


def check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ShapeError(f"input shape must be (C, H, W) integers, got {input_shape!r}") from None
    if len(shape) != 3 or any(v < 1 for v in shape):
        raise ShapeError(f"input shape must be three positive integers (C, H, W), got {input_shape!r}")
    return shape


def plan(spec, input_shape=None, num_classes: int | None = None) -> Plan:
    """Plan a spec for an input shape (C, H, W): names, shapes, counts, receptive fields."""
    spec = parse(spec)
    if input_shape is None:
        if spec.input_shape is None:
            raise ShapeError("the input shape is unknown: pass input_shape=(C, H, W) or begin the spec with "
                             "input(C,H,W)")
        input_shape = spec.input_shape
    shape = check_input_shape(input_shape)
    if spec.input_shape is not None and tuple(spec.input_shape) != shape:
        raise ShapeError(f"the spec begins with input({','.join(map(str, spec.input_shape))}) but the input shape "
                         f"given is {_fmt(shape)}; drop one of them")
    layers = spec.layers
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ShapeError(f"num_classes must be a positive integer, got {num_classes!r}")
        layers, found = _replace_last_fc(layers, num_classes)
        if not found:
            raise ShapeError(f"num_classes={num_classes} given, but the spec has no fc layer to resize")
    rf0 = ((1, 1, 0.0), (1, 1, 0.0))
    nodes, _, _ = _Planner().seq(layers, shape, rf0, "")
    return Plan(dataclasses.replace(spec, layers=layers), shape, nodes)
