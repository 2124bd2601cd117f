"""Inside a trained model: how sparse each activation is, where the evidence for a class lies, and the
fc head turned into convolutions that slide over larger images.

* :func:`activation_stats` — per activation layer, in depth order: exact zeros, blank channels per
  image, dead channels, mean and std, over a stream of batches. It checks the course notes' claim
  that deeper activations are sparser ("more and more filters are blank").
* :func:`gradcam` — Grad-CAM (Selvaraju et al. 2017) of one image at a conv layer.
* :func:`fully_convolutional` — a copy whose ``flatten → fc …`` head is convolutions, so a larger
  input gives a grid of class scores; :func:`class_grid` runs it and places each score on the image.
* :func:`load_image` — a PNG/JPEG file converted to a model's input, saying what was done.

The package: ``activations``, ``gradcam``, ``fullconv``, ``images``, and ``common`` (evaluation mode,
class probabilities).

Activations are found in two ways, because a model's forward may call them either way: a forward
hook on every activation module (``nn.ReLU``, ``nn.GELU``, …), and a ``TorchFunctionMode`` that sees
each functional call (``F.relu(x)``, ``x.relu()``, ``torch.sigmoid(x)``) made outside such a module.
Measuring "the input of the next module" instead would miss an activation whose output goes to an
addition (a residual block's last ReLU), to ``return`` or to another functional op, and would
wrongly attribute in-place ones; the mode sees the call itself, wherever it is made.
"""

from __future__ import annotations

from ..errors import ConversionError
from .common import predict, predict_batch
from .activations import (ACTIVATION_FUNCTIONS, ACTIVATION_MODULES, RARE, ZEROING, ActivationStats, LayerStats,
                          activation_maps, activation_stats, conv_layers_in_order, sparsity_verdict)
from .gradcam import GradCAM, gradcam, place_map
from .fullconv import ClassGrid, class_grid, fully_convolutional, grid_geometry
from .images import IMAGE_SUFFIXES, LoadedImage, class_index, load_image

__all__ = ["activation_stats", "activation_maps", "ActivationStats", "LayerStats", "sparsity_verdict", "gradcam",
           "GradCAM", "fully_convolutional", "ConversionError", "class_grid", "ClassGrid", "load_image", "LoadedImage",
           "class_index", "predict", "predict_batch"]
