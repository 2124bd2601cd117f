"""The graph of a model: one node per layer (or folded block), an edge per tensor handed on.

The graph comes from the same meta-device run as ``convlab summary`` (``convlab.analyze.trace``):
a :class:`GraphTracer` is the summary's tracer that also remembers which node produced each
tensor, so every module call and every functional op between modules (``out += identity``,
``torch.cat``, ``x * w``) knows who fed it. No activation is computed. The summary's own tracer is
left untouched (and as fast as it was): the bookkeeping lives in the subclass only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analyze import trace as _trace
from ..errors import ShapeError

# the last part of a container's name that marks a shortcut (its projection is drawn as one box)
_SHORTCUT_NAMES = {"downsample", "shortcut", "proj", "projection", "skip", "residual_proj"}
# functional ops that are bookkeeping, not a step of the model
_SKIP_OPS = _trace._PASSTHROUGH | _trace._MOVES | {"contiguous", "clone", "detach", "__get__", "type_as",
                                                    "float", "half", "requires_grad_", "__setstate__"}
_OP_WORDS = {"add": "⊕", "__add__": "⊕", "__iadd__": "⊕", "__radd__": "⊕", "add_": "⊕",
             "mul": "⊗", "__mul__": "⊗", "__imul__": "⊗", "__rmul__": "⊗", "mul_": "⊗",
             "cat": "concat", "concat": "concat", "stack": "stack"}
ADD = "add"


@dataclass
class Node:
    name: str
    type: str
    settings: str
    output_shape: list | None
    params: int = 0
    input_shape: list | None = None
    cluster: tuple = ()  # enclosing containers, outermost first
    kind: str = "layer"  # layer, block, projection, op, add, concat, input, output
    module: str = ""  # the module's name (a module called twice has one name, two nodes)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "kind": self.kind, "settings": self.settings,
                "input_shape": self.input_shape, "output_shape": self.output_shape, "params": self.params}


@dataclass
class Edge:
    src: str
    dst: str
    shape: list | None

    def to_dict(self) -> dict:
        return {"from": self.src, "to": self.dst, "shape": self.shape}


@dataclass
class Graph:
    model: str
    input_shape: tuple
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict = field(default_factory=dict)  # container name -> (type, output shape)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def dims(shape) -> str:
    """[1, 32, 16, 16] -> '32×16×16' (the batch dimension left out)."""
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], list):
        return ", ".join(dims(s) for s in shape)
    return "×".join(str(v) for v in shape[1:]) if len(shape) > 1 else str(shape[0])


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _k(v) -> str:
    a, b = _pair(v)
    return f"{a}×{b}" if a != b else f"{a}×{a}"


def _n(v) -> str:
    a, b = _pair(v)
    return str(a) if a == b else f"{a},{b}"


def settings_of(m) -> str:
    """A module's settings in the spec language's words: 'conv 3×3 s2 p1', 'maxpool 2', 'fc 2048→10'."""
    import torch.nn as nn

    if isinstance(m, nn.Conv2d):
        s = [f"conv {_k(m.kernel_size)}"]
        if _pair(m.stride) != (1, 1):
            s.append(f"s{_n(m.stride)}")
        if isinstance(m.padding, str):
            s.append(f"p={m.padding}")
        elif _pair(m.padding) != (0, 0):
            s.append(f"p{_n(m.padding)}")
        if _pair(m.dilation) != (1, 1):
            s.append(f"d{_n(m.dilation)}")
        if m.groups != 1:
            s.append("dw" if m.groups == m.in_channels == m.out_channels else f"g{m.groups}")
        return " ".join(s)
    if isinstance(m, nn.ConvTranspose2d):
        return f"convT {_k(m.kernel_size)} s{_n(m.stride)}"
    if isinstance(m, nn.Linear):
        return f"fc {m.in_features}→{m.out_features}"
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        word = "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool"
        k = _pair(m.kernel_size)
        s = [f"{word} {_n(k)}"]
        stride = _pair(m.stride or m.kernel_size)
        if stride != k:
            s.append(f"s{_n(stride)}")
        if _pair(m.padding) != (0, 0):
            s.append(f"p{_n(m.padding)}")
        return " ".join(s)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        word = "avgpool" if isinstance(m, nn.AdaptiveAvgPool2d) else "maxpool"
        return f"global {word}" if _pair(m.output_size) == (1, 1) else f"adaptive {word} {_k(m.output_size)}"
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return "bn"
    if isinstance(m, (nn.Dropout, nn.Dropout2d)):
        return f"dropout {m.p:g}"
    simple = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.GELU: "gelu",
              nn.SiLU: "silu", nn.Flatten: "flatten", nn.Identity: "identity", nn.Softmax: "softmax",
              nn.LeakyReLU: "leaky relu", nn.LayerNorm: "layernorm", nn.GroupNorm: "groupnorm"}
    for cls, word in simple.items():
        if type(m) is cls:
            return word
    return type(m).__name__


def _is_projection(name: str, m) -> bool:
    import torch.nn as nn

    kids = list(m.children())
    return (bool(kids) and name.rsplit(".", 1)[-1] in _SHORTCUT_NAMES and len(kids) <= 2
            and isinstance(kids[0], nn.Conv2d) and all(isinstance(k, (nn.BatchNorm2d, nn.Identity)) for k in kids[1:]))


def _projection_text(m, out) -> str:
    kids = list(m.children())
    conv = kids[0]
    s = f"{_k(conv.kernel_size)} conv" + (f" s{_n(conv.stride)}" if _pair(conv.stride) != (1, 1) else "")
    return s + f" → {dims(out)}" + ("".join(", bn" for k in kids[1:] if type(k).__name__ == "BatchNorm2d"))


class GraphTracer(_trace._Tracer):
    """The summary's tracer, also recording producer → consumer for every tensor."""

    chains = False  # every module's call is seen: the edges follow tensors

    def __init__(self, model, depth: int | None = None):
        super().__init__(model)
        self.fold = depth
        self.inside = 0  # > 0 while inside a module drawn as one node
        self.producer: dict[int, str] = {}
        self.keep: list = []  # tensors seen, kept alive so that their ids stay unique
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.names: set[str] = set()
        self.scope: list[str] = []  # the containers being called
        self.clusters: dict[str, tuple] = {}
        self.param_of = {}

    # -- bookkeeping ------------------------------------------------------------------------

    def _inputs(self, args, kwargs):
        import torch
        from torch.utils._pytree import tree_flatten

        return [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]

    def _outputs(self, out):
        import torch
        from torch.utils._pytree import tree_flatten

        return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]

    def _unique(self, name: str) -> str:
        base, i = name, 1
        while name in self.names:
            name = f"{base}_{i}"
            i += 1
        self.names.add(name)
        return name

    def _add_node(self, node: Node, ins, outs) -> None:
        node.module = node.module or node.name
        node.name = self._unique(node.name)
        seen = set()
        for t in ins:
            src = self.producer.get(id(t))
            if src is None or (src, id(t)) in seen:
                continue
            seen.add((src, id(t)))
            self.edges.append(Edge(src, node.name, list(t.shape)))
        for t in outs:
            self.producer[id(t)] = node.name
            self.keep.append(t)
        self.nodes.append(node)

    # -- the traced calls -------------------------------------------------------------------

    def start(self, x) -> None:
        self.producer[id(x)] = "input"
        self.keep.append(x)
        self.names.add("input")
        self.nodes.append(Node("input", "input", "input", list(x.shape), kind="input"))

    def _call(self, module, name, own, rule, forward, *args, **kwargs):
        import torch

        if self.inside:
            return super()._call(module, name, own, rule, forward, *args, **kwargs)
        with torch._C.DisableTorchFunction():
            leaf = next(iter(module.children()), None) is None
            depth = len(self.stack)
            proj = not leaf and _is_projection(name, module)
            is_node = leaf or proj or (self.fold is not None and depth >= self.fold)
            ins = self._inputs(args, kwargs)
            at = len(self.recs)
        if not is_node:
            self.scope.append(name)
            try:
                out = super()._call(module, name, own, rule, forward, *args, **kwargs)
            finally:
                self.scope.pop()
            with torch._C.DisableTorchFunction():
                self.clusters[name] = (type(module).__name__, _trace._out_shape(out))
            return out
        self.inside += 1
        try:
            out = super()._call(module, name, own, rule, forward, *args, **kwargs)
        finally:
            self.inside -= 1
        with torch._C.DisableTorchFunction():
            recs = self.recs[at:]
            params = sum(r.trainable + r.non_trainable for r in recs)
            shape = _trace._out_shape(out)
            if proj:
                kind, settings = "projection", _projection_text(module, shape)
            elif leaf:
                kind, settings = "layer", settings_of(module)
            else:
                kind, settings = "block", type(module).__name__
            self._add_node(Node(name, type(module).__name__, settings, shape, params,
                                list(ins[0].shape) if ins else None, tuple(self.scope), kind),
                           ins, self._outputs(out))
        return out

    def dispatch(self, func, args, kwargs):
        out = super().dispatch(func, args, kwargs)
        if self.inside:
            return out
        name = getattr(func, "__name__", "")
        if name in _SKIP_OPS:
            return out
        import torch

        with torch._C.DisableTorchFunction():
            ins = [t for t in self._inputs(args, kwargs) if id(t) in self.producer]
            outs = self._outputs(out)
            if not ins or not outs:
                return out
            if len(outs) == 1 and len(ins) == 1 and outs[0] is ins[0] and name not in _OP_WORDS:
                return out  # a view handed back unchanged
            word = _OP_WORDS.get(name, name.strip("_"))
            kind = ADD if word == "⊕" else "concat" if word == "concat" else "op"
            scope = self.scope[-1] if self.scope else ""
            label = {"⊕": "add", "⊗": "mul"}.get(word, word)
            self._add_node(Node(f"{scope}.{label}" if scope else label, label, word, _trace._out_shape(out), 0,
                                list(ins[0].shape), tuple(self.scope), kind), ins, outs)
        return out


def graph_of_module(model, input_shape, depth: int | None = None, label: str | None = None) -> Graph:
    """Trace ``model`` on a meta batch of ``input_shape`` (C, H, W) and return its graph."""
    import torch

    from ..plan import check_input_shape

    shape = check_input_shape(input_shape) if len(tuple(input_shape)) == 3 else tuple(int(v) for v in input_shape)
    x = torch.empty((1, *shape), device="meta")
    x._cl_rf = ((1, 1, 0.0), (1, 1, 0.0)) if len(shape) == 3 else None
    model = _trace._lazy_twin(model, (x,), {}) if _trace._is_lazy(model) else model
    tracer = GraphTracer(model, depth)
    tracer.start(x)
    out = tracer.run(x)
    outs = tracer._outputs(out)
    g = Graph(label or type(model).__name__, shape, tracer.nodes, tracer.edges, tracer.clusters)
    if outs:
        g.nodes.append(Node("output", "output", "output", _trace._out_shape(out), kind="output"))
        for t in outs:
            src = tracer.producer.get(id(t))
            if src is not None:
                g.edges.append(Edge(src, "output", list(t.shape)))
    return g


def select(g: Graph, blocks: list[str]) -> Graph:
    """Just the named parts (``layer2.0``, ``conv1``), with an input and an output node that carry
    the shapes entering and leaving them."""
    names = {n.name for n in g.nodes}
    known = set(names) | set(g.clusters)
    for b in blocks:
        if b not in known and not any(n.startswith(b + ".") for n in names):
            from ..errors import UsageError, did_you_mean

            parts = sorted(known - {"input", "output"})
            raise UsageError(f"--block {b}: the model has no layer or block of that name{did_you_mean(b, parts)} "
                             f"('convlab summary MODEL' lists the names)")

    def inside(name: str) -> bool:
        return any(name == b or name.startswith(b + ".") for b in blocks)

    keep = [n for n in g.nodes if inside(n.name)]
    kept = {n.name for n in keep}
    sub = Graph(g.model, g.input_shape, [], [], {k: v for k, v in g.clusters.items() if inside(k)})
    ins, outs = [], []
    for e in g.edges:
        if e.src in kept and e.dst in kept:
            sub.edges.append(e)
        elif e.dst in kept:
            ins.append(e)
        elif e.src in kept:
            outs.append(e)
    in_shapes = []
    for e in ins:
        if e.shape not in in_shapes:
            in_shapes.append(e.shape)
    sub.nodes.append(Node("input", "input", "input", in_shapes[0] if len(in_shapes) == 1 else in_shapes or None,
                          kind="input"))
    sub.nodes.extend(keep)
    for e in ins:
        sub.edges.append(Edge("input", e.dst, e.shape))
    out_shapes = []
    for e in outs:
        if e.shape not in out_shapes:
            out_shapes.append(e.shape)
    if outs:
        sub.nodes.append(Node("output", "output", "output",
                              out_shapes[0] if len(out_shapes) == 1 else out_shapes, kind="output"))
        done = set()
        for e in outs:
            if e.src not in done:
                done.add(e.src)
                sub.edges.append(Edge(e.src, "output", e.shape))
    # de-duplicate edges from the one input node
    seen, edges = set(), []
    for e in sub.edges:
        key = (e.src, e.dst, tuple(e.shape or ()))
        if key not in seen:
            seen.add(key)
            edges.append(e)
    sub.edges = edges
    return sub
