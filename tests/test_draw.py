"""convlab draw: the graph of a model checked against the plan (zoo), against a forward-hook trace
on real tensors (third-party-style modules with branches), and against the summary's shapes."""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import convlab
from convlab import zoo
from convlab.cli import main
from convlab.drawing import draw
from convlab.errors import ShapeError, UsageError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
RESIDUAL = {"BasicBlock", "Bottleneck", "Residual"}


def _graph(model, shape=None, **kw):
    return json.loads(draw(model, shape, **kw).to_json())


# -- zoo models against their plan --------------------------------------------------------------

@pytest.mark.parametrize("name", zoo.list_models())
def test_zoo_graph_has_one_node_per_planned_layer(name):
    s = convlab.summary(name)
    g = _graph(name)
    kinds = [n["kind"] for n in g["nodes"]]
    projections = {r.name for r in s.rows if not r.leaf and r.name.rsplit(".", 1)[-1] == "downsample"}
    planned = [r.name for r in s.rows if r.leaf and not any(r.name.startswith(p + ".") for p in projections)]
    drawn = [n["name"] for n in g["nodes"] if n["kind"] == "layer"]
    # a module called twice (the block's relu) is two nodes: name, name_1
    assert sorted(d.split("_")[0] if d.rsplit("_", 1)[-1].isdigit() else d for d in drawn) == \
        sorted(p for p in planned)
    assert sorted(n["name"] for n in g["nodes"] if n["kind"] == "projection") == sorted(projections)
    residual = sum(r.type in RESIDUAL for r in s.rows)
    adds = [n["name"] for n in g["nodes"] if n["kind"] == "add"]
    assert len(adds) == residual
    for a in adds:
        assert len([e for e in g["edges"] if e["to"] == a]) == 2
    # every projection feeds an addition: it sits on a shortcut
    for p in projections:
        assert [e["to"] for e in g["edges"] if e["from"] == p] == [p.rsplit(".", 1)[0] + ".add"]
    assert kinds.count("input") == kinds.count("output") == 1


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "lenet", "mobilenet"])
def test_every_label_shape_equals_the_summary(name):
    s = convlab.summary(name)
    by_name = {}
    for r in s.rows:
        by_name.setdefault(r.name, []).append(r.output_shape)
    g = draw(name).graph
    for n in g.nodes:
        if n.kind in ("layer", "projection", "block"):
            assert n.output_shape in by_name[n.module], n.name
    for name_, (typ, shape) in g.clusters.items():
        assert shape == by_name[name_][0]
    assert g.node("output").output_shape == s.output_shape


def test_depth_folds_blocks():
    g = draw("resnet50", depth=1).graph
    blocks = [n for n in g.nodes if n.kind == "block"]
    assert len(blocks) == 3 + 4 + 6 + 3 and all(n.type == "Bottleneck" for n in blocks)
    assert not [n for n in g.nodes if n.kind == "add"]  # inside the folded blocks
    s = convlab.summary("resnet50", depth=1)
    shapes = {r.name: r.output_shape for r in s.rows}
    assert all(n.output_shape == shapes[n.name] for n in blocks)


def test_block_has_input_and_output_shapes():
    g = _graph("resnet20:shortcut=B", blocks="layer2.0")
    nodes = {n["name"]: n for n in g["nodes"]}
    assert nodes["input"]["output_shape"] == [1, 16, 32, 32]
    assert nodes["output"]["output_shape"] == [1, 32, 16, 16]
    proj = nodes["layer2.0.downsample"]
    assert proj["kind"] == "projection" and proj["settings"] == "1×1 conv s2 → 32×16×16, bn"
    assert nodes["layer2.0.conv1"]["settings"] == "conv 3×3 s2 p1"
    assert {e["to"] for e in g["edges"] if e["from"] == "input"} == {"layer2.0.conv1", "layer2.0.downsample"}
    assert len([e for e in g["edges"] if e["to"] == "layer2.0.add"]) == 2


def test_settings_in_the_spec_language():
    g = _graph("resnet50", depth=1)
    settings = {n["name"]: n["settings"] for n in g["nodes"]}
    assert settings["conv1"] == "conv 7×7 s2 p3" and settings["fc"] == "fc 2048→1000"
    assert settings["maxpool"] == "maxpool 3 s2 p1"
    assert _graph("lenet")["nodes"][3]["settings"].startswith(("avgpool 2", "maxpool 2"))


def test_unknown_block_is_named():
    with pytest.raises(UsageError, match="layer9.*did you mean"):
        draw("resnet20", blocks="layer9")


@pytest.mark.parametrize("model,shape", [("conv(16,3) fc(10)", (3, 8, 8)), ("conv(16,9)", (3, 4, 4)),
                                         ("resnet20", (3, 0, 32))])
def test_bad_input_gives_the_summary_error(model, shape):
    with pytest.raises(ShapeError) as want:
        convlab.summary(model, shape)
    with pytest.raises(ShapeError) as got:
        draw(model, shape)
    assert str(got.value) == str(want.value)


def test_bad_module_gives_the_summary_error():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ShapeError) as want:
        convlab.summary(m, (3, 8, 8))
    with pytest.raises(ShapeError) as got:
        draw(m, (3, 8, 8))
    assert str(got.value) == str(want.value) and "2" in str(got.value)


# -- third-party-style modules against a forward-hook trace ------------------------------------

class Inception(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 3, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class DenseBlock(nn.Module):
    def __init__(self, c=8, growth=4, n=3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(c + i * growth), nn.ReLU(),
                                                  nn.Conv2d(c + i * growth, growth, 3, padding=1)) for i in range(n))

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class SE(nn.Module):
    def __init__(self, c=8, r=2):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)

    def forward(self, x):
        y = self.conv(x)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(y).flatten(1)))))
        return F.relu(x + y * w.view(-1, y.shape[1], 1, 1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.inception = Inception()
        self.reduce = nn.Conv2d(16, 8, 1)
        self.dense = DenseBlock()
        self.trans = nn.Conv2d(20, 8, 1)
        self.se = SE()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x):
        return self.head(self.se(self.trans(self.dense(self.reduce(self.inception(self.stem(x)))))))


def _hook_trace(model, x):
    """Who fed whom, on real tensors: forward hooks on leaf modules, functional ops seen through."""
    producer, through, keep = {id(x): "input"}, {}, [x]
    inside = [0]
    pairs = set()

    def feeders(t):
        if id(t) in producer:
            return {producer[id(t)]}
        return through.get(id(t), set())

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not inside[0]:
                ins = [a for a in torch.utils._pytree.tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
                f = set().union(*[feeders(t) for t in ins]) if ins else set()
                for o in torch.utils._pytree.tree_flatten(out)[0]:
                    if isinstance(o, torch.Tensor) and f and id(o) not in producer:
                        through[id(o)] = f
                        keep.append(o)
            return out

    handles = []
    for name, m in model.named_modules():
        if next(m.children(), None) is not None or m is model:
            continue

        def pre(mod, args, name=name):
            for a in args:
                if isinstance(a, torch.Tensor):
                    pairs.update((src, name) for src in feeders(a))
            inside[0] += 1

        def post(mod, args, out, name=name):
            inside[0] -= 1
            producer[id(out)] = name
            keep.append(out)

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad(), Mode():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    pairs.update((src, "output") for src in feeders(out))
    return pairs


def _collapsed(g):
    """The drawn graph's layer-to-layer pairs, op nodes (+, concat, view ...) seen through."""
    into = {}
    for e in g.edges:
        into.setdefault(e.dst, []).append(e.src)
    kind = {n.name: n.kind for n in g.nodes}
    module = {n.name: n.module for n in g.nodes}

    def feeders(name):
        out = set()
        for src in into.get(name, []):
            out |= {module[src] or src} if kind[src] in ("layer", "input", "projection") else feeders(src)
        return out

    return {(src, module[n.name] or n.name) for n in g.nodes if n.kind in ("layer", "output")
            for src in feeders(n.name)}


@pytest.mark.parametrize("make,shape", [(Net, (3, 8, 8)), (Inception, (8, 6, 6)), (DenseBlock, (8, 5, 5)),
                                        (SE, (8, 4, 4))])
def test_branches_equal_a_forward_hook_trace(make, shape):
    torch.manual_seed(0)
    m = make().eval()
    g = draw(m, shape).graph
    assert _collapsed(g) == _hook_trace(m, torch.randn(1, *shape))


def test_concatenation_has_one_edge_per_branch():
    g = draw(Inception(), (8, 6, 6)).graph
    cat = [n for n in g.nodes if n.kind == "concat"]
    assert len(cat) == 1 and cat[0].output_shape == [1, 16, 6, 6]
    assert sorted(e.src for e in g.edges if e.dst == cat[0].name) == ["b1", "b2.2", "b3.2", "b4.1"]
    dense = draw(DenseBlock(), (8, 5, 5)).graph
    cats = [n for n in dense.nodes if n.kind == "concat"]
    assert [len([e for e in dense.edges if e.dst == c.name]) for c in cats] == [1, 2, 3, 4]


def test_a_tensor_fed_to_several_layers_has_its_shape_written_once():
    """A dense block feeds each layer's output (and the input) to every later concat: the shape is written
    on one of those edges, not on each; the input's edges and single edges keep their label."""
    from convlab.drawing.dot import _id, to_dot

    g = draw(DenseBlock(), (8, 5, 5)).graph
    lines = to_dot(g).splitlines()
    fan = {}
    for e in g.edges:
        fan.setdefault(e.src, []).append(e)
    assert len(fan["input"]) == 4 and max(len(v) for v in fan.values()) >= 3  # the case this test is about
    labelled = {}
    for src, edges in fan.items():
        out = [ln for ln in lines if ln.startswith(f"  {_id(src)} -> ")]
        assert len(out) == len(edges)
        labelled[src] = sum("label=" in ln for ln in out)
        assert labelled[src] <= len({tuple(e.shape) for e in edges if e.shape is not None})
    assert labelled["input"] == 1
    # each dense layer's output goes to the later concats: labelled once, where it changed shape
    fanned = [src for src, edges in fan.items() if len(edges) >= 2 and src != "input"]
    assert len(fanned) >= 2 and [labelled[src] for src in fanned] == [1] * len(fanned)


def test_draw_leaves_the_model_alone():
    m = Net().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    draw(m, (3, 8, 8))
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# -- pictures ----------------------------------------------------------------------------------

@needs_dot
def test_svg_is_valid_xml_and_deterministic():
    a = draw("resnet20").to_svg()
    b = draw("resnet20").to_svg()
    assert a == b
    root = ET.fromstring(a.encode("utf-8"))
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    assert "32×16×16" in text and "conv 3×3 p1" in text


@needs_dot
def test_save_png_and_pdf(tmp_path):
    d = draw("lenet")
    assert d.save(tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert d.save(tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    assert d._repr_svg_().lstrip().startswith("<?xml")


def test_without_graphviz_dot_and_json_still_work(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    d = draw("resnet20")
    assert d.to_dot().startswith("digraph") and json.loads(d.to_json())["nodes"]
    with pytest.raises(convlab.errors.ConvlabError, match="apt-get install graphviz"):
        d.to_svg()
    assert main(["draw", "resnet20", "--format", "dot", "--out", str(tmp_path / "r.dot")]) == 0
    assert main(["draw", "resnet20", "--out", str(tmp_path / "r.svg")]) == 2


def test_cli_default_out_and_no_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", "lenet", "--format", "json"]) == 0
    out = tmp_path / "lenet-graph.json"
    first = out.read_bytes()
    assert json.loads(first)["edges"]
    out.write_text("mine")
    assert main(["draw", "lenet", "--format", "json"]) == 2
    assert out.read_text() == "mine" and "--force" in capsys.readouterr().err
    assert main(["draw", "lenet", "--format", "json", "--force"]) == 0
    assert out.read_bytes() == first


def _dense_dot(n: int = 70) -> str:
    """Every box wired to every later one: Graphviz needs well over a minute to lay this out."""
    edges = "\n".join(f"  a{i} -> a{j};" for i in range(n) for j in range(i + 1, n))
    return "digraph g {\n" + "\n".join(f'  a{i} [label="{i}"];' for i in range(n)) + "\n" + edges + "\n}\n"


@needs_dot
def test_a_slow_layout_is_announced_then_stopped_and_dot_does_not_outlive_it(monkeypatch):
    import time

    from convlab.drawing import dot

    monkeypatch.setattr(dot, "SLOW_NOTE_S", 0.3)
    notes = []
    t = time.perf_counter()
    with pytest.raises(dot.GraphvizError, match=r"took over 1\.5 s .*--depth N or --block NAME"):
        dot.render(_dense_dot(), "svg", timeout=1.5, note=notes.append)
    assert time.perf_counter() - t < 5
    assert len(notes) == 1 and "still laying out 70 boxes and 2415 arrows after 0.3 s" in notes[0], notes
    notes.clear()
    assert dot.render("digraph g { a -> b; }", "svg", note=notes.append).startswith(b"<?xml")
    assert notes == []  # a quick layout says nothing


@needs_dot
def test_the_draw_command_prints_the_slow_layout_note(monkeypatch, tmp_path, capsys):
    from convlab.cli import main
    from convlab.drawing import dot

    monkeypatch.setattr(dot, "SLOW_NOTE_S", 0.0)  # every layout counts as slow
    assert main(["draw", "lenet", "--out", str(tmp_path / "lenet.svg")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("convlab: Graphviz is still laying out") and err.count("\n") == 1, err
