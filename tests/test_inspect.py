"""Inside a trained model: activation statistics, Grad-CAM, the fc head as convolutions, image files, and the
``inspect`` / ``viz --image`` / ``tour fc-as-conv`` commands, each against a direct computation in torch."""

import copy
import json
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from minidata import make_idx_dataset

from convlab import build, create_model
from convlab.cli import main
from convlab.errors import ConversionError, ConvlabError, DataError, UsageError
from convlab.inspect import (LayerStats, activation_maps, activation_stats, class_grid, class_index,
                             fully_convolutional, gradcam, load_image, sparsity_verdict)

# ---------------------------------------------------------------------------------------------
# activation statistics against hooks written here


def reference_stats(outputs: list[torch.Tensor]) -> dict:
    """The numbers straight from the concatenated outputs of one layer (N, C, ...)."""
    y = torch.cat(outputs).double()
    zero = y == 0
    blank = zero.flatten(2).all(2) if y.dim() > 2 else zero
    return {"zeros": zero.double().mean().item(), "blank": blank.double().mean(1).mean().item(),
            "dead": blank.all(0).nonzero().flatten().tolist(), "mean": y.mean().item(),
            "std": y.std(unbiased=False).item(), "shape": tuple(y.shape[1:])}


def check(stats_layer, ref):
    assert stats_layer.shape == ref["shape"]
    assert stats_layer.zeros == pytest.approx(ref["zeros"], abs=1e-12)
    assert stats_layer.blank == pytest.approx(ref["blank"], abs=1e-12)
    assert stats_layer.dead == ref["dead"]
    assert stats_layer.mean == pytest.approx(ref["mean"], rel=1e-6, abs=1e-9)
    assert stats_layer.std == pytest.approx(ref["std"], rel=1e-5, abs=1e-9)


def test_stats_of_a_spec_model_match_forward_hooks():
    torch.manual_seed(0)
    model = build("conv(4,3,p=1) bn relu maxpool(2) conv(8,3,p=1) relu flatten fc(16) relu fc(10)", (1, 12, 12))
    with torch.no_grad():
        model.conv2.bias[0] = -100.0     # channel 0 of relu2: zero for every image (dead)
        model.conv2.bias[1] = -1.5       # channel 1: blank for some images only
    model.train()                        # the stats run in eval mode and leave it as it was
    batches = [torch.randn(5, 1, 12, 12), torch.randn(3, 1, 12, 12) * 2]
    seen = {n: [] for n in ("relu1", "relu2", "relu3")}
    hooks = [getattr(model, n).register_forward_hook(lambda m, a, o, n=n: seen[n].append(o.detach().clone()))
             for n in seen]
    model.eval()
    with torch.no_grad():
        for b in batches:
            model(b)
    for h in hooks:
        h.remove()
    model.train()
    stats = activation_stats(model, batches, images={"split": "test", "indices": "0..7"})
    assert [s.name for s in stats.layers] == ["relu1", "relu2", "relu3"]
    assert stats.n_images == 8 and stats.images == {"split": "test", "indices": "0..7"}
    for s in stats.layers:
        check(s, reference_stats(seen[s.name]))
    relu2 = stats.layer("relu2")
    assert 0 in relu2.dead and relu2.kind == "map" and stats.layer("relu3").kind == "vector"
    assert relu2.blank_min <= relu2.blank <= relu2.blank_max
    assert model.training and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # (images, labels) pairs are taken too
    again = activation_stats(model, [(b, torch.zeros(len(b))) for b in batches])
    assert [s.zeros for s in again.layers] == [s.zeros for s in stats.layers]


class Functional(nn.Module):
    """ReLUs called as functions, as a method, and one module called twice."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3)
        self.c2 = nn.Conv2d(4, 6, 3)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        a = F.relu(self.c1(x))              # forward:relu
        b = self.act(self.c2(a))            # act
        c = self.act(b - 0.3)               # act#2
        d = (c * 2 - 0.5).relu()            # forward:relu#2 (a Tensor method)
        return self.fc(torch.sigmoid(d).flatten(1))   # forward:sigmoid


def test_functional_relus_and_a_module_called_twice_are_each_a_layer():
    torch.manual_seed(1)
    model = Functional()
    xs = [torch.randn(4, 1, 8, 8), torch.randn(2, 1, 8, 8)]
    # the reference: hooks on the modules whose outputs feed each activation, and the activation applied here
    pre, acts = {"c1": [], "c2": []}, []
    hooks = [model.c1.register_forward_hook(lambda m, a, o: pre["c1"].append(o.detach())),
             model.c2.register_forward_hook(lambda m, a, o: pre["c2"].append(o.detach())),
             model.act.register_forward_hook(lambda m, a, o: acts.append(o.detach()))]
    with torch.no_grad():
        for x in xs:
            model(x)
    for h in hooks:
        h.remove()
    r1 = [torch.relu(t) for t in pre["c1"]]
    act1, act2 = acts[0::2], acts[1::2]
    r2 = [torch.relu(c * 2 - 0.5) for c in act2]
    sig = [torch.sigmoid(t) for t in r2]
    stats = activation_stats(model, xs)
    assert [(s.name, s.type) for s in stats.layers] == [
        ("forward:relu", "F.relu"), ("act", "ReLU"), ("act#2", "ReLU"), ("forward:relu#2", "F.relu"),
        ("forward:sigmoid", "F.sigmoid")]
    for s, ref in zip(stats.layers, [r1, act1, act2, r2, sig]):
        check(s, reference_stats(ref))
    maps = activation_maps(model, xs[0][0])
    assert list(maps) == [s.name for s in stats.layers]
    assert torch.allclose(maps["act#2"], act2[0][0], atol=1e-6)


def test_a_residual_net_reports_every_relu_call_in_order():
    torch.manual_seed(0)
    model = create_model("resnet20", (3, 16, 16))
    calls = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, a, o: calls.append((names[m], o.detach().clone())))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    x = torch.randn(3, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    stats = activation_stats(model, [x])
    assert len(stats.layers) == len(calls) == 19             # the stem's relu + 2 per block × 9 blocks
    assert stats.layers[1].name == "layer1.0.relu" and stats.layers[2].name == "layer1.0.relu#2"
    for s, (name, out) in zip(stats.layers, calls):
        assert s.name.split("#")[0] == name
        check(s, reference_stats([out]))


def _layer(name, zeros, blank, kind="map", type_="ReLU"):
    shape = (8, 4, 4) if kind == "map" else (8,)
    return LayerStats(name, type_, shape, zeros, blank, blank, blank, [], 0.0, 1.0)


def test_the_verdict_follows_the_numbers():
    rising = [_layer("r1", 0.3, 0.0), _layer("r2", 0.5, 0.2), _layer("r3", 0.8, 0.6), _layer("f", 0.1, 0.1, "vector")]
    v = sparsity_verdict(rising)
    assert v.startswith("Deeper is sparser? yes") and "30.0% → 50.0% → 80.0%" in v and "r1 … r3" in v
    rare = [_layer("r1", 0.4, 0.0), _layer("r2", 0.5, 0.004)]
    assert sparsity_verdict(rare).startswith("Deeper is sparser? partly") and "seldom blank" in sparsity_verdict(rare)
    falling = [_layer("r1", 0.6, 0.3), _layer("r2", 0.4, 0.1), _layer("r3", 0.2, 0.0)]
    assert sparsity_verdict(falling).startswith("Deeper is sparser? no")
    bumpy = [_layer("r1", 0.2, 0.1), _layer("r2", 0.5, 0.05), _layer("r3", 0.4, 0.2)]
    assert "partly" in sparsity_verdict(bumpy) and "1 of 2 steps up" in sparsity_verdict(bumpy)
    sig = [_layer("s1", 0.0, 0.0, type_="Sigmoid"), _layer("s2", 0.0, 0.0, type_="Sigmoid")]
    assert "cannot tell" in sparsity_verdict(sig) and "Sigmoid" in sparsity_verdict(sig)
    mixed = rising + [_layer("g", 0.0, 0.0, type_="GELU")]
    assert "GELU layers left out" in sparsity_verdict(mixed)


def test_stats_need_images_and_activations():
    with pytest.raises(UsageError, match="empty"):
        activation_stats(build("conv(2,3) relu", (1, 5, 5)), [])
    with pytest.raises(UsageError, match="no activation"):
        activation_stats(build("conv(2,3) flatten fc(3)", (1, 5, 5)), [torch.randn(2, 1, 5, 5)])


# ---------------------------------------------------------------------------------------------
# Grad-CAM against autograd


def reference_cam(model, layer_module, x, target, start=0.0, jump=1):
    """Grad-CAM by hand; the low map is placed with unit i centred on pixel start + jump·i (np.interp)."""
    import numpy as np

    held = {}
    h = layer_module.register_forward_hook(lambda m, a, o: held.__setitem__("A", o))
    model.eval()
    out = model(x[None])
    h.remove()
    (g,) = torch.autograd.grad(out[0, target], held["A"])
    A = held["A"].detach()[0]
    w = g[0].mean(dim=(1, 2))                                   # α_c: spatial mean of ∂y_c/∂A
    low = torch.relu((w[:, None, None] * A).sum(0))
    H, W = x.shape[-2:]
    centres_y, centres_x = start + jump * np.arange(low.shape[0]), start + jump * np.arange(low.shape[1])
    rows = np.stack([np.interp(np.arange(H), centres_y, col) for col in low.numpy().T], 1)      # (H, w)
    full = np.stack([np.interp(np.arange(W), centres_x, row) for row in rows])                  # (H, W)
    return torch.from_numpy(full).float(), low, w


def test_gradcam_is_the_weighted_sum_of_maps_by_mean_gradient():
    torch.manual_seed(0)
    model = create_model("lenet-modern")
    x = torch.randn(1, 28, 28)
    model.eval()
    with torch.no_grad():
        logits = model(x[None])[0]
    model.train()
    cam = gradcam(model, x)
    assert cam.layer == "conv2" and cam.target == int(logits.argmax())          # last conv, predicted class
    # conv1 (pad 2) keeps pixel centres, the 2×2 pool puts unit i at 0.5 + 2i, conv2's 5×5 at 4.5 + 2i
    assert cam.start == (4.5, 4.5) and cam.jump == (2, 2)
    ref, low, w = reference_cam(model, model.conv2, x, cam.target, start=4.5, jump=2)
    assert cam.low.shape == (10, 10) and cam.map.shape == (28, 28)
    assert torch.allclose(cam.weights, w, atol=1e-6) and torch.allclose(cam.low, low, atol=1e-6)
    assert torch.allclose(cam.map, ref, atol=1e-6) and float(cam.map.max()) > 0
    assert cam.score == pytest.approx(float(logits[cam.target]), abs=1e-5)
    assert cam.prob == pytest.approx(float(torch.softmax(logits, 0)[cam.target]), abs=1e-6)
    model.train()
    other = gradcam(model, x, target=3, layer="conv1")
    ref1, low1, _ = reference_cam(model, model.conv1, x, 3)
    assert other.layer == "conv1" and other.target == 3 and torch.allclose(other.map, ref1, atol=1e-6)
    assert torch.allclose(other.map, low1, atol=1e-6)          # a 'same' conv's units are the pixels
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_default_layer_is_the_last_conv_called():
    torch.manual_seed(0)
    model = create_model("resnet20:shortcut=B", (3, 16, 16))
    cam = gradcam(model, torch.randn(3, 16, 16))
    assert cam.layer == "layer3.2.conv2" and cam.low.shape == (4, 4) and cam.map.shape == (16, 16)
    assert cam.start == (0.0, 0.0) and cam.jump == (4, 4)
    frozen = create_model("lenet-modern").requires_grad_(False)           # frozen weights still give the map
    live = copy.deepcopy(frozen).requires_grad_(True)
    x = torch.randn(1, 28, 28)
    ref, _, _ = reference_cam(live, live.conv2, x, 0, start=4.5, jump=2)
    assert torch.allclose(gradcam(frozen, x, target=0).map, ref, atol=1e-6)


def test_gradcam_bad_layer_and_class():
    model = create_model("lenet-modern")
    x = torch.randn(1, 28, 28)
    with pytest.raises(UsageError, match=r"'relu1' is a ReLU, not a conv layer.*conv1, conv2"):
        gradcam(model, x, layer="relu1")
    with pytest.raises(UsageError, match=r"no conv layer named 'conv3'.*did you mean.*conv1, conv2"):
        gradcam(model, x, layer="conv3")
    with pytest.raises(UsageError, match="outside the model's 10 classes"):
        gradcam(model, x, target=10)
    with pytest.raises(UsageError, match="no Conv2d"):
        gradcam(build("flatten fc(4)", (1, 3, 3)), torch.randn(1, 3, 3))


# ---------------------------------------------------------------------------------------------
# the fc head as convolutions


CASES = [
    ("lenet-modern", (1, 28, 28), (5, 5), 4),
    ("vgg-d2l:hidden=32", (1, 64, 64), (2, 2), 32),
    ("cifar-cnn", (3, 32, 32), (8, 8), 4),                                                  # two fc layers
    ("conv(6,3) relu maxpool(2) flatten fc(12) bn relu dropout(0.3) fc(12) relu fc(5)", (2, 10, 10), (4, 4), 2),
]


@pytest.mark.parametrize("model_name,shape,kernel,stride", CASES)
def test_fully_convolutional_reproduces_the_original_and_slides(model_name, shape, kernel, stride):
    torch.manual_seed(0)
    model = create_model(model_name, shape) if ":" in model_name or "(" not in model_name else build(model_name, shape)
    model.eval()
    if hasattr(model, "bn1"):            # statistics that are not the defaults, to see them copied
        model.bn1.running_mean.uniform_(-1, 1)
        model.bn1.running_var.uniform_(0.5, 2)
    fc = fully_convolutional(model, shape).eval()
    linears = [n for n, m in model.named_children() if isinstance(m, nn.Linear)]
    convs = [m for n, m in fc.named_children() if n in linears]
    assert all(isinstance(m, nn.Conv2d) for m in convs) and len(convs) == len(linears)
    assert convs[0].kernel_size == kernel and all(m.kernel_size == (1, 1) for m in convs[1:])
    assert sum(p.numel() for p in fc.parameters()) == sum(p.numel() for p in model.parameters())
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert (fc(x).flatten(1) - model(x)).abs().max() < 1e-5
        for extra in (1, stride, 3 * stride + 1):
            big = torch.randn(1, shape[0], shape[1] + extra, shape[2] + 2 * extra)
            out = fc(big)
            assert out.shape == (1, model(x).shape[1], extra // stride + 1, 2 * extra // stride + 1)


def test_every_window_of_a_model_without_padding_is_the_original_on_that_crop():
    torch.manual_seed(0)
    model = build("conv(6,5) relu maxpool(2) conv(8,3) relu maxpool(2) flatten fc(16) relu fc(7)", (1, 20, 20)).eval()
    fc = fully_convolutional(model, (1, 20, 20))
    image = torch.randn(1, 36, 44)
    grid = class_grid(fc, image)
    assert grid.stride == (4, 4) and grid.window == (20, 20) and grid.scores.shape == (7, 5, 7)
    assert grid.centre == (9.5, 9.5)                                    # the first window's middle pixel
    with torch.no_grad():
        for i in range(5):
            for j in range(7):
                crop = image[:, 4 * i:4 * i + 20, 4 * j:4 * j + 20]
                assert torch.allclose(grid.scores[:, i, j], model(crop[None])[0], atol=1e-5)
    assert torch.allclose(grid.probs.sum(0), torch.ones(5, 7))
    assert grid.cell_of(8, 24) == (2, 6) and grid.cell_of(9, 0) is None and grid.cell_of(40, 0) is None
    with pytest.raises(UsageError, match="smaller than the 20×20 window"):
        class_grid(fc, torch.randn(1, 19, 30))


def test_heads_that_cannot_be_converted_say_which_and_why():
    with pytest.raises(ConversionError, match=r"gap \(GlobalAvgPool\) pools every map to 1×1.*one vector"):
        fully_convolutional(create_model("resnet20", (3, 16, 16)), (3, 16, 16))
    with pytest.raises(ConversionError, match=r"bn1 \(BatchNorm1d\).*4·6·6 = 144.*position"):
        fully_convolutional(build("conv(4,3) flatten bn fc(10)", (1, 8, 8)), (1, 8, 8))
    odd = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), flatten=nn.Flatten(), fc=nn.Linear(72, 8),
                                    norm=nn.LayerNorm(8), out=nn.Linear(8, 3)))
    with pytest.raises(ConversionError, match=r"norm \(LayerNorm\)"):
        fully_convolutional(odd, (1, 8, 8))
    with pytest.raises(ConversionError, match="Functional has its own forward"):
        fully_convolutional(Functional(), (1, 8, 8))
    with pytest.raises(ConversionError, match="no flatten"):
        fully_convolutional(build("conv(4,3) relu conv(2,1)", (1, 8, 8)), (1, 8, 8))
    with pytest.raises(ConversionError, match="no fc"):
        fully_convolutional(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), (1, 8, 8))
    assert issubclass(ConversionError, ConvlabError)


# ---------------------------------------------------------------------------------------------
# image files


def test_load_image_converts_and_says_what_it_did(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png", 1, (0.3,), (0.4,), size=(28, 28))
    assert img.x.shape == (1, 28, 28) and torch.equal(img.shown[0], torch.from_numpy(grey))
    assert torch.allclose(img.x, (torch.from_numpy(grey).float()[None] / 255 - 0.3) / 0.4)
    assert not any("resized" in s for s in img.steps) and "mean 0.3000" in img.steps[-1]
    inv = load_image(tmp_path / "g.png", 1, (0.3,), (0.4,), size=(28, 28), invert=True)
    assert torch.equal(inv.shown, 255 - img.shown) and any("inverted" in s for s in inv.steps)

    rgb = rng.integers(0, 256, (30, 60, 3), dtype=np.uint8)
    rgb[:2], rgb[-2:], rgb[:, :2], rgb[:, -2:] = 250, 250, 250, 250      # a light border
    Image.fromarray(rgb).save(tmp_path / "c.png")
    c = load_image(tmp_path / "c.png", 1, (0.5,), (0.5,), size=(28, 28), reference=torch.zeros(5, 1, 28, 28,
                                                                                               dtype=torch.uint8))
    text = "; ".join(c.steps)
    assert c.x.shape == (1, 28, 28) and "greyscale" in text and "padded to 60 wide, 60 high" in text
    assert "resized to 28 wide, 28 high" in text and "pass --invert" in text
    assert load_image(tmp_path / "c.png", 3, (0.5,) * 3, (0.5,) * 3, size=(32, 32)).x.shape == (3, 32, 32)
    free = load_image(tmp_path / "c.png", 3, (0.5,) * 3, (0.5,) * 3, min_size=(40, 40))
    assert free.x.shape == (3, 40, 80) and any("enlarged to 80 wide, 40 high" in s for s in free.steps)

    rgba = np.zeros((10, 10, 4), dtype=np.uint8)                          # fully transparent: white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    t = load_image(tmp_path / "t.png", 1, (0.0,), (1.0,))
    assert int(t.shown.min()) == 255 and any("transparent" in s for s in t.steps)

    (tmp_path / "no.png").write_text("not an image")
    with pytest.raises(DataError, match=r"no.png: not an image Pillow can read.*PNG, JPEG"):
        load_image(tmp_path / "no.png", 1, (0.5,), (0.5,))
    with pytest.raises(UsageError, match="no such image file"):
        load_image(tmp_path / "missing.png", 1, (0.5,), (0.5,))
    with pytest.raises(UsageError, match="2-channel"):
        load_image(tmp_path / "g.png", 2, (0.5,) * 2, (0.5,) * 2)


def test_class_names_and_numbers():
    classes = ["T-shirt/top", "Trouser", "Sneaker"]
    assert class_index("sneaker", classes) == 2 and class_index("1", classes) == 1
    with pytest.raises(UsageError, match=r"no class 'Sneakr' — did you mean 'Sneaker'.*T-shirt/top, Trouser, Sneaker"):
        class_index("Sneakr", classes)
    with pytest.raises(UsageError, match="0..2"):
        class_index("7", classes)


# ---------------------------------------------------------------------------------------------
# the commands, on a tiny trained LeNet


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        make_idx_dataset(root / "fm", n_train=64, n_test=40, learnable=True)
        rc = main(["train", "lenet-modern", "--data", "fashion-mnist", "--data-dir", str(root / "fm"), "--epochs", "1",
                   "--batch-size", "16", "--out", str(root / "run"), "--no-progress", "--device", "cpu",
                   "--threads", "1"])
        assert rc == 0
        yield root


def test_cli_activations(run, capsys):
    capsys.readouterr()
    out_dir = run / "acts"
    assert main(["inspect", str(run / "run"), "--what", "activations", "--images", "20", "--out", str(out_dir),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_images"] == 20
    assert res["images"] == {"data": "fashion-mnist", "split": "test", "indices": "0..19", "count": 20}
    assert [layer["name"] for layer in res["layers"]] == ["relu1", "relu2", "relu3", "relu4"]
    assert res["verdict"].startswith("Deeper is sparser?")
    assert (out_dir / "activations-test.png").stat().st_size > 5000
    assert json.loads((out_dir / "activations-test.json").read_text())["layers"] == res["layers"]
    # the same numbers as the library on the same images
    from convlab.data import Batcher
    from convlab.training.report import load_run

    r = load_run(str(run / "run"))
    x = Batcher(r.ds.test_x, r.ds.test_y, r.ds.mean, r.ds.std, batch_size=20).make_batch(torch.arange(20))
    direct = activation_stats(r.model, [x])
    assert [s.zeros for s in direct.layers] == pytest.approx([layer["zeros"] for layer in res["layers"]], abs=1e-12)
    assert main(["inspect", str(run / "run"), "--what", "activations", "--images", "10", "--split", "train",
                 "--out", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert "10 train images (indices 0..9)" in text and "relu2" in text and "Deeper is sparser?" in text
    assert main(["inspect", str(run / "run"), "--what", "activations", "--images", "41"]) == 2   # 40 test images
    assert main(["inspect", str(run / "run"), "--what", "activations", "--class", "Trouser"]) == 2
    assert "--class is not for --what activations" in capsys.readouterr().err


def test_cli_gradcam(run, capsys, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    capsys.readouterr()
    rd, out = str(run / "run"), str(tmp_path)
    assert main(["inspect", rd, "--what", "gradcam", "--index", "0", "3", "--out", out, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["layer"] == "conv2" and len(res["images"]) == 2 and res["images"][0]["layer_map"] == [10, 10]
    assert (tmp_path / "gradcam-test-0-3.png").stat().st_size > 5000
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(tmp_path / "mine.jpg")
    assert main(["inspect", rd, "--what", "gradcam", "--image", str(tmp_path / "mine.jpg"), "--class", "trouser",
                 "--layer", "conv1", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "Grad-CAM at conv1 (the named conv layer" in text and "map of Trouser" in text and "greyscale" in text
    assert (tmp_path / "gradcam-mine.png").is_file()
    (tmp_path / "bad.png").write_text("no")
    for args, msg in [(["--class", "Trousers"], "did you mean 'Trouser'"), (["--layer", "relu2"], "not a conv layer"),
                      (["--image", str(tmp_path / "bad.png")], "not an image"), (["--index", "40"], "outside"),
                      (["--image", str(tmp_path / "mine.jpg"), "--index", "1"], "not both"),
                      (["--canvas", "2"], "--canvas is not for --what gradcam"),
                      (["--index", *map(str, range(13))], "at most 12")]:
        assert main(["inspect", rd, "--what", "gradcam", "--out", out, *args]) == 2, args
        assert msg in capsys.readouterr().err


def test_cli_sliding(run, capsys, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    capsys.readouterr()
    rd, out = str(run / "run"), str(tmp_path)
    assert main(["inspect", rd, "--what", "sliding", "--canvas", "2", "--out", out, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["input"] == [1, 56, 56] and res["grid"] == [8, 8] and res["stride"] == [4, 4]
    assert res["window"] == [28, 28] and res["aligned"] == 4 and len(res["tiles"]) == 4
    assert sorted(res["converted"]) == ["fc1", "fc2", "fc3"] and "kernel_size=(5, 5)" in res["converted"]["fc1"]
    assert sum(res["windows_per_class"].values()) == 64
    assert (tmp_path / "sliding-canvas-2.png").stat().st_size > 5000
    from convlab.data import load

    ds = load("fashion-mnist", str(run / "fm"), download=False)
    assert [t["true"] for t in res["tiles"]] == [ds.classes[int(v)] for v in ds.test_y[:4]]
    assert res["images"] == {"split": "test", "indices": "0..3", "count": 4}
    assert 0 <= res["aligned_agree_alone"] <= 4
    Image.fromarray(np.full((20, 50), 30, dtype=np.uint8)).save(tmp_path / "wide.png")
    assert main(["inspect", rd, "--what", "sliding", "--image", str(tmp_path / "wide.png"), "--out", out]) == 0
    text = capsys.readouterr().out
    assert "enlarged to 70 wide, 28 high" in text and "→ 1×11 grid" in text
    assert main(["inspect", rd, "--what", "sliding", "--canvas", "7", "--out", out]) == 2        # 49 > 40 images
    assert "needs 7×7 = 49 images" in capsys.readouterr().err
    assert main(["inspect", rd, "--what", "sliding", "--layer", "conv1"]) == 2


def test_cli_sliding_refuses_a_global_pool_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_idx_dataset(tmp_path / "fm", n_train=32, n_test=8, learnable=True)
    assert main(["train", "conv(4,3,p=1) relu gap flatten fc(10)", "--data", "fashion-mnist", "--data-dir",
                 str(tmp_path / "fm"), "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "g"),
                 "--no-progress", "--device", "cpu", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "g"), "--what", "sliding", "--canvas", "2"]) == 2
    assert "pools every map to 1×1" in capsys.readouterr().err


def test_cli_viz_own_image_after_activation(run, capsys, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    capsys.readouterr()
    rd, out = str(run / "run"), str(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 50), dtype=np.uint8)).save(tmp_path / "me.png")
    assert main(["viz", rd, "--image", str(tmp_path / "me.png"), "--after", "activation", "--what", "maps",
                 "--out", out]) == 0
    text = capsys.readouterr().out
    assert "resized to 28 wide, 28 high" in text and "normalised with the dataset's mean" in text
    assert "me.png: predicted " in text and "top: " in text and "relu1: 6 channels" in text
    assert (tmp_path / "maps-me-activation.png").stat().st_size > 5000
    assert main(["viz", rd, "--index", "2", "--after", "activation", "--layer", "relu2", "--what", "maps",
                 "--out", out]) == 0
    assert "relu2: 16 channels" in capsys.readouterr().out and (tmp_path / "maps-test-2-activation.png").is_file()
    assert main(["viz", rd, "--index", "2", "--after", "activation", "--layer", "relu9", "--out", out]) == 2
    assert "relu1, relu2, relu3, relu4" in capsys.readouterr().err
    assert main(["viz", rd, "--image", str(tmp_path / "me.png"), "--index", "1", "--out", out]) == 2
    assert main(["viz", rd, "--image", str(tmp_path / "nothing.png"), "--out", out]) == 2


def test_tour_fc_as_conv(capsys):
    assert main(["tour", "fc-as-conv"]) == 0
    text = capsys.readouterr().out
    assert text.count("102,764,544") == 3 and "equal:" in text and "10×8×8 grid" in text
    diff = float(text.split("max |difference| ")[1].split()[0])
    assert diff < 1e-5


def test_a_separable_net_is_measured_and_mapped_too():
    torch.manual_seed(0)
    model = build("conv(8,3,p=1) bn relu sepconv(16,3,p=1) bn relu maxpool(2) sepconv(16,3,p=1) relu gap flatten "
                  "fc(10)", (3, 16, 16))
    stats = activation_stats(model, [torch.randn(4, 3, 16, 16)])
    assert [(s.name, s.shape) for s in stats.layers] == [("relu1", (8, 16, 16)), ("relu2", (16, 16, 16)),
                                                        ("relu3", (16, 8, 8))]
    cam = gradcam(model, torch.randn(3, 16, 16))
    assert cam.layer == "sepconv2.pointwise" and cam.low.shape == (8, 8) and cam.jump == (2, 2)
