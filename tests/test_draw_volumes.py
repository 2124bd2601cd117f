"""The volumes view (``convlab draw --view volumes``): one box per feature map of the plan, labelled with
the summary's shapes, sizes monotone in H, W and channels, one arc per residual block, valid and
deterministic SVG."""

import xml.etree.ElementTree as ET

import pytest
from hypothesis import assume, given, settings
from strategies import chains

import convlab
from convlab.analyze import summary
from convlab.drawing.volumes import (box_size, plan_volumes, render_volumes, render_volumes_png, shape_text)
from convlab.errors import ConvlabError, ShapeError

NS = "{http://www.w3.org/2000/svg}"


def _boxes(svg):
    root = ET.fromstring(svg)
    return root, [p for p in root.iter(NS + "polygon") if p.get("class") == "volume"]


def _expected_maps(s):
    """The feature maps, read from the rows independently of the drawing code: the input, then each
    leaf outside a shortcut whose layer is not an activation/norm/dropout (those keep the shape)."""
    keep = ("Conv", "Linear", "Flatten", "MaxPool", "AvgPool", "GlobalAvgPool", "AdaptiveAvgPool")
    shortcuts = [r.name + "." for r in s.rows if r.name.rsplit(".", 1)[-1] in ("downsample", "proj", "shortcut")]
    out = [tuple(s.input_shape)]
    for r in s.rows:
        if not r.leaf or any(r.name.startswith(p) or r.name + "." == p for p in shortcuts):
            continue
        if r.type.startswith(keep):
            out.append(tuple(r.output_shape[1:]))
    return out


RES_SPEC = "conv(8,3) residual(proj)[conv(16,3,s=2,p=1) bn] res(16) res(32,s=2) gap flatten fc(10)"


@pytest.mark.parametrize("model", ["lenet", "lenet-modern", "vgg11", "cifar-cnn", "resnet18", "resnet20", RES_SPEC])
def test_one_box_per_feature_map_with_the_summary_shapes(model):
    s = summary(model, (3, 16, 16) if model == RES_SPEC else None)
    svg = render_volumes(s, fold_blocks=False)
    root, boxes = _boxes(svg)
    assert [b.get("data-shape") for b in boxes] == [shape_text(x) for x in _expected_maps(s)]
    shape_texts = [t.text for t in root.iter(NS + "text") if t.get("class") == "shape"]
    assert shape_texts == [shape_text(x) for x in _expected_maps(s)]


def test_lenet_labels_name_the_layers():
    root, _ = _boxes(render_volumes(summary("lenet")))
    layers = [t.text for t in root.iter(NS + "text") if t.get("class") == "layer"]
    assert layers == ["input", "conv 5×5 p2", "avgpool 2", "conv 5×5", "avgpool 2", "flatten", "fc 120", "fc 84",
                      "fc 10"]
    kernels = [p.get("data-of") for p in root.iter(NS + "polygon") if p.get("class") == "kernel"]
    assert kernels == ["conv1", "avgpool1", "conv2", "avgpool2"]


def test_svg_is_deterministic_and_valid():
    a = render_volumes(summary("resnet20"))
    b = render_volumes(summary("resnet20"))
    assert a == b
    ET.fromstring(a)
    assert render_volumes(summary("lenet"), title="LeNet & <co>") != render_volumes(summary("lenet"))
    ET.fromstring(render_volumes(summary("lenet"), title="LeNet & <co>"))


def test_box_size_is_monotone_in_spatial_size_and_channels():
    for c in (1, 3, 16, 64, 512, 2048):
        for h in (1, 2, 5, 7, 14, 28, 56, 112, 224):
            t, hh, d = box_size((c, h, h))
            t2, hh2, _ = box_size((c * 2, h, h))
            _, hh3, d3 = box_size((c, h + 1, h + 1))
            assert t2 > t and hh3 >= hh and d3 >= d and hh3 > 0
    assert box_size((16, 28, 28))[1] > box_size((16, 14, 14))[1] > box_size((16, 5, 5))[1]


def test_drawn_boxes_follow_the_shapes():
    _, boxes = _boxes(render_volumes(summary("vgg16")))
    dims = [(b.get("data-shape"), float(b.get("data-w")), float(b.get("data-h"))) for b in boxes]
    by_shape = {}
    for shp, w, h in dims:
        by_shape.setdefault(shp, (w, h))
        assert by_shape[shp] == (w, h)  # the same shape, the same box
    assert by_shape["64×224×224"][1] > by_shape["64×112×112"][1]
    assert by_shape["512×28×28"][0] > by_shape["256×28×28"][0]


@pytest.mark.parametrize("model,blocks,projections", [("resnet20", 9, 2), ("resnet18", 8, 3)])
def test_one_arc_per_residual_block_on_the_right_volumes(model, blocks, projections):
    s = summary(model)
    for fold in (True, False):
        svg = render_volumes(s, fold_blocks=fold, max_width=100000)
        root, boxes = _boxes(svg)
        names = [b.get("data-name") for b in boxes]
        arcs = [p for p in root.iter(NS + "path") if p.get("class") == "arc"]
        assert len(arcs) == blocks
        block_rows = [r.name for r in s.rows if r.type == "BasicBlock"]
        assert [a.get("data-block") for a in arcs] == block_rows
        for a in arcs:
            i, j = names.index(a.get("data-from")), names.index(a.get("data-to"))
            assert i < j
            if fold:
                assert a.get("data-to") == a.get("data-block") and j == i + 1
            else:  # from the block's input to its last conv's map
                assert a.get("data-to").startswith(a.get("data-block") + ".")
                assert not names[i].startswith(a.get("data-block") + ".")
        labels = [t.text for t in root.iter(NS + "text") if t.get("class") == "arc-label"]
        assert len(labels) == projections
    vols, _ = plan_volumes(s)
    assert all(v.kind != "conv" or "downsample" not in v.name for v in vols)


def test_resnet18_projection_is_labelled_as_a_strided_1x1_conv():
    root, _ = _boxes(render_volumes(summary("resnet18")))
    labels = [t.text for t in root.iter(NS + "text") if t.get("class") == "arc-label"]
    assert labels == ["1×1 conv s2, bn"] * 3


def test_long_nets_wrap_within_max_width():
    for width in (600, 1000, 1400):
        root = ET.fromstring(render_volumes(summary("vgg16"), max_width=width))
        assert int(root.get("width")) <= width
        for p in root.iter(NS + "polygon"):
            for pt in p.get("points").split():
                x, y = map(float, pt.split(","))
                assert 0 <= x <= int(root.get("width")) and 0 <= y <= int(root.get("height"))
    narrow = ET.fromstring(render_volumes(summary("vgg16"), max_width=600))
    wide = ET.fromstring(render_volumes(summary("vgg16"), max_width=100000))
    assert int(narrow.get("height")) > int(wide.get("height"))


@settings(max_examples=25)
@given(chains())
def test_generated_specs_one_box_per_map(chain):
    shape, text, _ = chain
    try:
        s = convlab.summary(text, shape)
    except ShapeError:  # the generated chain shrank the map below a kernel
        assume(False)
    root, boxes = _boxes(render_volumes(s, fold_blocks=False))
    got = [b.get("data-shape") for b in boxes]
    assert got[0] == shape_text(shape) and got[-1] == shape_text(s.output_shape[1:])
    n_blocks = sum(1 for r in s.rows if r.type in ("BasicBlock", "Residual"))
    assert len([p for p in root.iter(NS + "path") if p.get("class") == "arc"]) == n_blocks
    folded = render_volumes(s, fold_blocks=True)
    assert folded == render_volumes(s, fold_blocks=True)
    ET.fromstring(folded)


def test_bad_input_is_a_clear_error():
    s = summary("lenet")
    empty = type(s)(**{**s.__dict__, "rows": []})
    with pytest.raises(ConvlabError, match="no layers"):
        render_volumes(empty)
    with pytest.raises(ConvlabError, match="convlab summary"):
        render_volumes("lenet")
    with pytest.raises(ConvlabError, match="max_width"):
        render_volumes(s, max_width=10)


def test_png_and_pdf(tmp_path):
    s = summary("lenet")
    png = render_volumes_png(s, tmp_path / "lenet.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = render_volumes_png(s, tmp_path / "lenet.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_kernels_only_where_the_layer_reads_the_map_before_it():
    import torch
    import torch.nn as nn

    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    root, boxes = _boxes(render_volumes(summary(TwoBranches(), (3, 8, 8))))
    assert [b.get("data-name") for b in boxes] == ["input", "a", "b"]
    # b reads the input (3×8×8), not a's 4×8×8 map: no kernel drawn from a onto b
    assert [p.get("data-of") for p in root.iter(NS + "polygon") if p.get("class") == "kernel"] == ["a"]


def test_draw_volumes_as_png_pdf_and_depth_folds_blocks(tmp_path):
    # convlab.draw's volumes view: PNG/PDF bytes from the same layout; --depth 1 folds resnet20's nine
    # blocks (they sit at depth 1), --depth 2 draws every conv
    folded = convlab.draw("resnet20", view="volumes", depth=1)
    full = convlab.draw("resnet20", view="volumes", depth=2)
    assert folded.fold_blocks is True and full.fold_blocks is False
    kinds = lambda d: [v.kind for v in plan_volumes(d.summary, d.fold_blocks)[0]]  # noqa: E731
    assert kinds(folded).count("block") == 9
    assert kinds(full).count("block") == 0 and kinds(full).count("conv") == 19
    assert folded.render("png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert full.save(tmp_path / "r.pdf").read_bytes()[:4] == b"%PDF"
    assert folded.render("png") != full.render("png")


def test_draw_cli_volumes_png(tmp_path, capsys):
    from convlab.cli import main

    out = tmp_path / "lenet.png"
    assert main(["draw", "lenet", "--view", "volumes", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["draw", "lenet", "--view", "volumes", "--format", "dot", "--out", str(tmp_path / "x")]) == 2
    assert "no DOT text" in capsys.readouterr().err
