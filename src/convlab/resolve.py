"""What a MODEL argument names: a zoo name (with overrides), a spec (text or file), a ``Spec``, or
``package.module:attr`` (an nn.Module, or a callable returning one)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from .errors import ConvlabError, SpecError
from .spec import Spec

_IMPORT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def resolve_spec(model) -> tuple[object, tuple | None, str]:
    """(spec, default input shape or None, label) for a spec-like model description."""
    from . import zoo

    if isinstance(model, Spec):
        return model, model.input_shape, "spec"
    if isinstance(model, (list, dict)):
        return model, None, "spec"
    if isinstance(model, Path):
        return model, None, model.name
    if not isinstance(model, str):
        raise SpecError(f"expected a spec, a zoo name or an nn.Module, got {type(model).__name__}")
    if zoo.is_zoo_name(model):
        text, entry = zoo.spec_for(model)
        return text, entry.input_shape, model
    return model, None, "spec"


def resolve_model(text: str):
    """For the command line: ('module', nn.Module, label) or ('spec', spec, default shape, label)."""
    from . import zoo

    if not zoo.is_zoo_name(text) and _IMPORT.match(text) and not Path(text).exists():
        mod_name, attr = text.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise ConvlabError(f"cannot import {mod_name!r} for {text!r}: {e}") from None
        if not hasattr(mod, attr):
            raise ConvlabError(f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(mod, attr)
        import torch.nn as nn

        if not isinstance(obj, nn.Module):
            if callable(obj):
                obj = obj()
            if not isinstance(obj, nn.Module):
                raise ConvlabError(f"{text} is not an nn.Module nor a function returning one")
        return ("module", obj, text)
    spec, shape, label = resolve_spec(text)
    return ("spec", spec, shape, label)
