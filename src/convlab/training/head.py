"""How a model's output reads as classes: K scores under softmax cross-entropy, or one logit under binary
cross-entropy (the Keras binary head, ``Dense(1, sigmoid)``).

A model whose output is one unit per image is a binary classifier of classes 0 and 1: its logit z says
class 1 with probability σ(z), and it predicts class 1 when σ(z) > 0.5 (z > 0). It trains with
``binary_cross_entropy_with_logits`` on z — the numerically stable form, log σ computed from z and
not from a rounded σ(z). When the model ends in an ``nn.Sigmoid`` (a spec's ``fc(1) sigmoid``), z is
that sigmoid's input: the loss runs on the model without it (:func:`trunk`), and the saved model, spec
and weights are the whole model, sigmoid included. Everything that shows classes (training accuracy,
``eval``, ``viz``, ``inspect``, the report) reads z through :func:`class_scores`: the two scores
(−z/2, z/2), whose softmax is exactly (1 − σ(z), σ(z)) and whose argmax is the 0.5 threshold.

A module given as Python (not a spec) is read the same way: a one-unit output is a logit, unless the
module is an ``nn.Sequential`` ending in ``nn.Sigmoid``; a sigmoid applied inside ``forward`` cannot be
seen and must not be there (return the logit).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def ends_in_sigmoid(model: nn.Module) -> bool:
    """The model is a Sequential whose last module is an ``nn.Sigmoid``."""
    return isinstance(model, nn.Sequential) and len(model) > 0 and isinstance(model[-1], nn.Sigmoid)


def trunk(model: nn.Module) -> nn.Module:
    """What computes the model's scores: the model without a trailing ``nn.Sigmoid`` (the same modules,
    so the same parameters), else the model itself."""
    if not ends_in_sigmoid(model):
        return model
    return nn.Sequential(*list(model.children())[:-1])


def is_binary(out: torch.Tensor) -> bool:
    """One unit per image: a binary logit."""
    return out.dim() == 2 and out.shape[1] == 1


def class_scores(out: torch.Tensor) -> torch.Tensor:
    """(N, K) scores whose softmax is the class probabilities and whose argmax is the prediction: the
    model's scores as they are, or for a binary logit z (N, 1) the pair (−z/2, z/2)."""
    return torch.cat([-out / 2, out / 2], 1) if is_binary(out) else out


def loss(out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of the scores ``out`` for labels ``y``: softmax cross-entropy over K scores, or
    binary cross-entropy with logits for one unit (labels 0/1; label smoothing ε moves the targets to
    ε/2 and 1 − ε/2, as softmax smoothing does over two classes)."""
    out = out.float()
    if is_binary(out):
        target = y.to(out.dtype) * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(out[:, 0], target)
    return F.cross_entropy(out, y, label_smoothing=label_smoothing)


def probabilities(out: torch.Tensor) -> torch.Tensor:
    """(N, K) class probabilities: softmax of the scores; (1 − σ(z), σ(z)) for a binary logit."""
    return torch.softmax(class_scores(out.float()), 1)


def predictions(out: torch.Tensor) -> torch.Tensor:
    """(N,) predicted classes: the argmax of the scores; for a binary logit z, of (−z/2, z/2): class 1 when
    z > 0, i.e. σ(z) > 0.5."""
    return class_scores(out).argmax(1)


@torch.no_grad()
def scores_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's scores for a batch (before a trailing sigmoid), in the mode the model is in."""
    return trunk(model)(x).float()
