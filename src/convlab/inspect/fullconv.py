"""The fc head as convolutions: a copy of the model that slides over larger images and gives a grid of class scores."""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import ConversionError, UsageError
from .activations import ACTIVATION_MODULES
from .common import _eval_mode, _to_model


_ELEMENTWISE = ACTIVATION_MODULES + (nn.Dropout, nn.Identity)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _pool_size(m) -> str:
    s = m.output_size
    s = (s, s) if isinstance(s, int) or s is None else tuple(s)
    return "×".join(str(v) for v in s)


def fully_convolutional(model: nn.Module, input_shape) -> nn.Sequential:
    """A copy of ``model`` whose fc head is convolutions, so it slides over larger images.

    The first fc after the flatten reads a C×h×w map (16×5×5 in LeNet, 512×7×7 in VGG-16); it
    becomes a conv with C input channels, out_features filters and an h×w kernel, its weight the fc's
    weight viewed as (out, C, h, w) — the same numbers, since flatten orders features channel, row,
    column. Later fc layers become 1×1 convs. Activations and dropout stay as they are (element-wise,
    they act the same on a map), a BatchNorm1d after an fc becomes a BatchNorm2d with the same
    statistics. At ``input_shape`` (C, H, W) the copy's output (N, K, 1, 1) is the original's (N, K);
    a larger input gives (N, K, H', W'): the class scores of every H×W window, one step of the
    network's total stride apart.

    Raises :class:`ConversionError` for a model that is not a sequence of layers, one whose global or
    adaptive pooling already makes it take any input size (a larger image then gives one vector, not a
    grid), or one with a layer after the flatten that is not an fc, an element-wise layer or a bn after
    an fc.
    """
    if not isinstance(model, nn.Sequential):
        raise ConversionError(f"fully_convolutional converts a sequence of layers (what convlab's specs and zoo build); "
                              f"a {type(model).__name__} has its own forward, so where its flatten and fc layers sit "
                              f"cannot be read from it")
    children = list(model.named_children())
    flat = next((i for i, (_, m) in enumerate(children) if isinstance(m, nn.Flatten)), None)
    if flat is None:
        raise ConversionError(f"the model has no flatten layer, so no flatten → fc head to convert: "
                              f"{' '.join(n for n, _ in children)}")
    for top, child in children[:flat]:
        for sub, m in child.named_modules():
            n = f"{top}.{sub}" if sub else top
            if isinstance(m, _GLOBAL_POOLS):
                raise ConversionError(
                    f"{n} ({type(m).__name__}) pools every map to {_pool_size(m)} whatever the input size, so the fc "
                    f"after it always reads the same number of features: the model already takes any image size, "
                    f"and a larger image gives one vector of class scores, not a grid. Sliding needs a model whose "
                    f"first fc reads a map of fixed size (lenet-modern, vgg*, cifar-cnn)")
            if isinstance(m, nn.Linear):
                raise ConversionError(f"{n} (Linear) comes before the flatten; only fc layers after it can be "
                                      f"converted")
    prefix = nn.Sequential(OrderedDict(children[:flat]))
    try:
        with _eval_mode(model), torch.no_grad():
            probe = prefix(_to_model(model, torch.zeros(1, *input_shape)))
    except RuntimeError as e:
        raise ConversionError(f"the model does not run on input {tuple(input_shape)}: {str(e).splitlines()[0]}") from None
    if probe.dim() != 4:
        raise ConversionError(f"the flatten reads a tensor of shape {list(probe.shape)}, not a (N, C, H, W) map")
    c, h, w = probe.shape[1:]
    layers: list[tuple[str, nn.Module]] = [(n, copy.deepcopy(m)) for n, m in children[:flat]]
    seen_fc, features = False, c * h * w
    for n, m in children[flat + 1:]:
        if isinstance(m, nn.Linear):
            if m.in_features != features:
                raise ConversionError(f"{n} reads {m.in_features} features but gets {features}")
            kernel = (h, w) if not seen_fc else (1, 1)
            cin = c if not seen_fc else m.in_features
            conv = nn.Conv2d(cin, m.out_features, kernel, bias=m.bias is not None, device=m.weight.device,
                             dtype=m.weight.dtype)
            with torch.no_grad():
                conv.weight.copy_(m.weight.view(m.out_features, cin, *kernel))   # (out, C·h·w) -> (out, C, h, w)
                if m.bias is not None:
                    conv.bias.copy_(m.bias)
            layers.append((n, conv))
            seen_fc, features = True, m.out_features
        elif isinstance(m, nn.PReLU) and m.num_parameters > 1 and not seen_fc:
            raise ConversionError(f"{n} (PReLU) has one slope per flattened feature ({m.num_parameters}), tied to a "
                                  f"position of the {c}×{h}×{w} map; a sliding window has no fixed position")
        elif isinstance(m, _ELEMENTWISE):
            layers.append((n, copy.deepcopy(m)))
        elif isinstance(m, nn.BatchNorm1d):
            if not seen_fc:
                raise ConversionError(
                    f"{n} (BatchNorm1d) sits between the flatten and the first fc and normalises each of the "
                    f"{c}·{h}·{w} = {features:,} flattened features with its own statistics, one per position of the "
                    f"{c}×{h}×{w} map; a convolution applies the same weights at every position, so it cannot hold "
                    f"them. Put the bn before the flatten (a BatchNorm2d) or after the first fc")
            bn = nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                device=m.weight.device if m.affine else None)
            bn.load_state_dict(m.state_dict())
            layers.append((n, bn))
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)) and m.dim in (1, -1):
            layers.append((n, type(m)(dim=1)))
        else:
            raise ConversionError(
                f"{n} ({type(m).__name__}) sits in the head after the flatten; convlab converts fc layers and "
                f"element-wise layers (activations, dropout, a bn after an fc) there, and cannot tell how a "
                f"{type(m).__name__} would act on a grid of windows")
    if not seen_fc:
        raise ConversionError("the model has no fc (Linear) layer after its flatten: nothing to convert")
    if features == 1 and isinstance(layers[-1][1], nn.Sigmoid):
        layers.pop()  # a binary head: its logit is the score (class_grid reads it as two classes)
    fc = nn.Sequential(OrderedDict(layers))
    fc.train(model.training)
    fc.input_shape = tuple(input_shape)   # the size the original reads: one window
    fc.map_read = (c, h, w)               # the map its first fc read
    return fc


@dataclass
class ClassGrid:
    """Class scores of every window of a larger image, and where each window lies.

    ``scores``: (K, gh, gw) before the softmax; ``probs`` after it (over K). Window (i, j) covers rows
    ``i·stride[0] … i·stride[0] + window[0] − 1`` (and the same for columns); ``centre`` is where the
    receptive field of cell (0, 0) is centred, in input pixels (from convlab's receptive-field trace).
    """

    scores: torch.Tensor
    probs: torch.Tensor
    stride: tuple[int, int]
    window: tuple[int, int]
    centre: tuple[float, float]

    @property
    def classes(self) -> torch.Tensor:
        return self.probs.argmax(0)

    def cell_of(self, row: int, col: int) -> tuple[int, int] | None:
        """The cell whose window starts at input pixel (row, col), if one does."""
        (sh, sw), (gh, gw) = self.stride, self.scores.shape[1:]
        if row % sh or col % sw or row // sh >= gh or col // sw >= gw:
            return None
        return row // sh, col // sw


def grid_geometry(fc: nn.Sequential, input_shape) -> tuple[tuple[int, int], tuple[float, float]]:
    """(stride, centre of cell (0, 0)) of the converted model, from the receptive-field trace."""
    from ..analyze import summary

    rows = summary(fc, tuple(input_shape)).rows
    rf = next((r.receptive_field for r in reversed(rows) if isinstance(r.receptive_field, dict)), None)
    if rf is None:
        raise ConversionError("cannot trace the converted model's receptive field")
    jump, start = rf["jump"], rf["start"]
    return (int(jump[0]), int(jump[1])), (float(start[0]), float(start[1]))


def class_grid(fc: nn.Sequential, x: torch.Tensor) -> ClassGrid:
    """Run a :func:`fully_convolutional` model on one image (C, H, W) at least as large as the window."""
    c, h0, w0 = fc.input_shape
    if x.dim() != 3 or x.shape[0] != c:
        raise UsageError(f"expected one image {c}×H×W, got {list(x.shape)}")
    if x.shape[1] < h0 or x.shape[2] < w0:
        raise UsageError(f"the image is {x.shape[1]}×{x.shape[2]}, smaller than the {h0}×{w0} window the model reads")
    with _eval_mode(fc), torch.no_grad():
        scores = fc(_to_model(fc, x.unsqueeze(0)))[0].float().cpu()        # (K, gh, gw)
    if scores.shape[0] == 1:  # a binary logit z: the scores (−z/2, z/2), whose softmax is (1 − σ(z), σ(z))
        scores = torch.cat([-scores / 2, scores / 2], 0)
    stride, centre = grid_geometry(fc, fc.input_shape)
    return ClassGrid(scores, torch.softmax(scores, 0), stride, (h0, w0), centre)


# ---------------------------------------------------------------------------------------------
# images from files
