"""What a CNN learned, drawn: filter tiles and feature maps agree with the model's own tensors."""

import pytest
import torch
import torch.nn as nn

from convlab import build
from convlab.errors import UsageError
from convlab.viz import feature_maps, filter_tiles, plot_feature_maps, plot_filters


def test_filter_tiles_are_the_kernels():
    torch.manual_seed(0)
    gray = nn.Conv2d(2, 3, 5)
    tiles = filter_tiles(gray.weight)
    assert tiles.shape == (6, 5, 5)                          # one tile per (output, input) pair
    assert torch.equal(torch.from_numpy(tiles[4]), gray.weight.detach()[2, 0])
    rgb = nn.Conv2d(3, 4, 3)
    tiles = filter_tiles(rgb.weight)
    assert tiles.shape == (4, 3, 3, 3)                       # one colour image per output channel
    for k in range(4):
        t, w = torch.from_numpy(tiles[k]), rgb.weight.detach()[k].permute(1, 2, 0)
        assert t.min() == 0 and t.max() == pytest.approx(1)
        assert torch.allclose(t, (w - w.min()) / (w.max() - w.min()), atol=1e-6)
    assert filter_tiles(nn.Conv2d(16, 32, 3).weight, max_tiles=64).shape == (64, 3, 3)


def test_feature_maps_are_the_layer_outputs_and_leave_the_model_as_it_was():
    torch.manual_seed(0)
    model = build("conv(4,3,p=1) bn relu maxpool(2) conv(8,3) relu gap flatten fc(10)", (1, 12, 12))
    model.train()
    x = torch.randn(1, 12, 12)
    maps = feature_maps(model, x)
    assert list(maps) == ["conv1", "conv2"]
    model.eval()
    with torch.no_grad():
        c1 = model.conv1(x[None])
        expected = model.conv2(model.maxpool(model.relu1(model.bn1(c1))))
    assert torch.allclose(maps["conv1"], c1[0]) and torch.allclose(maps["conv2"], expected[0])
    model.train()
    maps = feature_maps(model, x, layers=["relu1", "fc"])
    assert maps["relu1"].shape == (4, 12, 12) and maps["fc"].shape == (10,)
    assert model.training and not any(m._forward_hooks for m in model.modules())


def test_plots_and_bad_layer_names(tmp_path):
    model = build("conv(6,5,p=2) relu maxpool(2) conv(16,5) relu flatten fc(10)", (3, 16, 16))
    assert plot_filters(model, tmp_path / "f.png").stat().st_size > 2000
    assert plot_filters(model, tmp_path / "f2.png", layer="conv2").stat().st_size > 2000
    assert plot_feature_maps(model, torch.randn(3, 16, 16), tmp_path / "m.png").stat().st_size > 2000
    with pytest.raises(UsageError, match="conv2"):
        plot_filters(model, tmp_path / "x.png", layer="cnv2")
    with pytest.raises(UsageError, match="relu"):
        feature_maps(model, torch.randn(3, 16, 16), layers=["rleu"])


def test_a_model_without_convs_says_so():
    mlp = build("flatten fc(32) relu fc(10)", (1, 8, 8))
    with pytest.raises(UsageError, match="no conv layer"):
        plot_filters(mlp, "unused.png")
    with pytest.raises(UsageError, match="--layer"):
        feature_maps(mlp, torch.randn(1, 8, 8))
    assert feature_maps(mlp, torch.randn(1, 8, 8), layers=["fc1"])["fc1"].shape == (32,)


@pytest.mark.parametrize("epochs", [1, 2, 3, 30])
def test_curve_axes_tick_whole_epochs_only(epochs):
    """A one-epoch run's curves once showed epoch ticks 0.945 ... 1.050."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convlab.viz import _style

    fig, ax = plt.subplots()
    ax.plot(range(1, epochs + 1), [1.0 / e for e in range(1, epochs + 1)], "o-", label="train")
    _style(ax, "loss", "t")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    plt.close(fig)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    assert lo < 1 and hi > epochs
