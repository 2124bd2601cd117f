"""The model a training config names: a zoo entry, a spec, or a ``package.module:attr``."""

from __future__ import annotations

from .config import TrainConfig


def make_model(cfg: TrainConfig, input_shape, num_classes: int):
    """(model, spec text or None, family) for the config's MODEL."""
    from .. import zoo
    from ..builder import build
    from ..resolve import resolve_model

    if zoo.is_zoo_name(cfg.model):
        text, entry = zoo.spec_for(cfg.model, **cfg.overrides)
        return build(text, input_shape, num_classes), text, entry.family
    kind, obj, *rest = resolve_model(cfg.model)
    if kind == "module":
        return obj, None, None
    model = build(obj, input_shape, num_classes)
    return model, model.spec, None
