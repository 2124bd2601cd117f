"""What a MODEL argument names, resolved once into a :class:`ModelRef`, and the models made from it.

A MODEL is a zoo name (``resnet20``, ``resnet20:shortcut=B``), spec text, a spec file (``.yaml``,
``.json``, ``.spec``, ``.txt``), a parsed :class:`~convlab.spec.Spec` or its YAML/JSON list, a live
``nn.Module``, or ``package.module:attr`` (an ``nn.Module``, or a callable returning one). The command
line resolves what the user typed once and hands the ``ModelRef`` on; the summary, the checks, the
builder and training read it, so nothing is resolved or parsed twice.

Only what the user names may make convlab import code: ``resolve_model(..., trusted=False)`` (used for
anything read back from a run directory) accepts zoo names and spec text only — no import, no file.
"""

from __future__ import annotations

import importlib
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConvlabError, SpecError, UsageError, ZooError, did_you_mean
from .spec import Spec, parse

_IMPORT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_BARE_WORD = re.compile(r"^[A-Za-z_][\w.-]*$")


@dataclass(frozen=True)
class ModelRef:
    """One resolved MODEL: a spec (zoo entries expanded, options applied) or a module, with what it brings."""

    kind: str                                   # "spec" or "module"
    label: str                                  # its name in summaries and runs: what the user typed, or the class
    spec: Spec | None = None                    # kind "spec": the parsed layers
    module: Any = None                          # kind "module": the nn.Module
    input_shape: tuple[int, int, int] | None = None  # default input: the zoo entry's or the spec's input(...)
    family: str | None = None                   # the zoo family (it picks the training recipe); None otherwise
    import_path: str | None = None              # kind "module" from package.module:attr

    @property
    def spec_text(self) -> str | None:
        return self.spec.to_text() if self.spec is not None else None


def resolve_model(model, *, overrides: dict | None = None, trusted: bool = True) -> ModelRef:
    """Resolve a MODEL once (see the module docstring). ``overrides`` are zoo options (``{"shortcut": "B"}``).

    ``trusted=False`` is for a MODEL read back from a file convlab did not write itself in this call
    (a run's config or checkpoint): only zoo names and inline spec text are accepted.
    """
    from . import zoo

    if isinstance(model, ModelRef):
        return model
    if isinstance(model, Spec):
        return ModelRef("spec", "spec", spec=model, input_shape=model.input_shape)
    if isinstance(model, (list, dict)):
        spec = parse(model)
        return ModelRef("spec", "spec", spec=spec, input_shape=spec.input_shape)
    if _is_module(model):
        return ModelRef("module", type(model).__name__, module=model, input_shape=_module_shape(model))
    if isinstance(model, Path):
        if not trusted:
            raise UsageError(f"a model file ({model}) named inside a run is not read; name it on the command line")
        spec = parse(model)
        return ModelRef("spec", model.name, spec=spec, input_shape=spec.input_shape)
    if not isinstance(model, str):
        raise SpecError(f"expected a spec, a zoo name or an nn.Module, got {type(model).__name__}")
    text = model.strip()
    if zoo.is_zoo_name(text):
        spec_text, entry = zoo.spec_for(text, **(overrides or {}))
        return ModelRef("spec", text, spec=parse(spec_text), input_shape=entry.input_shape, family=entry.family)
    if overrides:
        raise UsageError("zoo options (--option) apply to zoo models only")
    if _IMPORT.match(text) and not _exists(text):
        if not trusted:
            raise UsageError(f"the model {text!r} is a Python import; convlab never imports code named inside a run "
                             f"directory — name it again on the command line to use it")
        module = _import_module_attr(text)
        return ModelRef("module", text, module=module, input_shape=_module_shape(module), import_path=text)
    if not trusted and (text.endswith(_spec_suffixes()) or "/" in text or "\\" in text):
        raise UsageError(f"the model {text[:60]!r} names a file; convlab does not read files named inside a run "
                         f"directory — name it on the command line to use it")
    try:
        spec = parse(text)
    except SpecError:
        _suggest_zoo(text)
        raise
    return ModelRef("spec", text, spec=spec, input_shape=spec.input_shape)


def _exists(text: str) -> bool:
    """Whether a file of that name exists; False for a name the file system cannot hold (too long)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def _spec_suffixes() -> tuple[str, ...]:
    from .spec import SPEC_SUFFIXES

    return SPEC_SUFFIXES


def _suggest_zoo(text: str) -> None:
    """A single bare word that is no spec is most likely a misspelled zoo name: say so, with the close ones."""
    from . import zoo

    name = text.partition(":")[0].strip()
    if not _BARE_WORD.match(name):
        return
    hint = did_you_mean(name, zoo.list_models())
    if hint or "-" in name or any(ch.isdigit() for ch in name):
        raise ZooError(f"no zoo model {name!r}, and it is no spec either{hint} ('convlab zoo' lists the models)")


def _is_module(obj) -> bool:
    if "torch" not in sys.modules:  # nothing can be an nn.Module before torch is imported
        return False
    import torch.nn as nn

    return isinstance(obj, nn.Module)


def _module_shape(module) -> tuple | None:
    shape = getattr(module, "input_shape", None)
    return tuple(shape) if shape is not None else None


@contextmanager
def _cwd_on_path():
    """The current folder first on sys.path for the import, as ``python -m`` has it (the user typed the name)."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import_module_attr(text: str):
    import torch.nn as nn

    mod_name, attr = text.split(":")
    try:
        with _cwd_on_path():
            mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConvlabError(f"cannot import {mod_name!r} for {text!r}: {e}") from None
    if not hasattr(mod, attr):
        raise ConvlabError(f"module {mod_name!r} has no attribute {attr!r}")
    obj = getattr(mod, attr)
    if not isinstance(obj, nn.Module):
        if callable(obj):
            obj = obj()
        if not isinstance(obj, nn.Module):
            raise ConvlabError(f"{text} is not an nn.Module nor a function returning one")
    return obj


def make_model(model, overrides: dict | None = None, input_shape=None, num_classes: int | None = None, *,
               trusted: bool = True):
    """(nn.Module, spec text or None, family) for a MODEL, built for ``input_shape`` and ``num_classes``.

    A spec (or zoo entry) is built afresh; a module MODEL is returned as it is (its spec attribute, if any,
    as the text).
    """
    from .builder import build_plan
    from .plan import plan

    ref = resolve_model(model, overrides=overrides, trusted=trusted)
    if ref.kind == "module":
        return ref.module, getattr(ref.module, "spec", None), None
    net = build_plan(plan(ref.spec, input_shape if input_shape is not None else ref.input_shape, num_classes))
    return net, net.spec, ref.family


def create_model(name: str, input_shape=None, num_classes: int | None = None, **overrides):
    """Build a zoo model (or any spec) for an input shape (default: the model's own) and class count.

    >>> create_model("resnet20", num_classes=7).fc.out_features  # doctest: +SKIP
    7
    """
    net, _, _ = make_model(name, overrides or None, input_shape, num_classes)
    return net
