"""Summary of any model for an input shape: per-layer output shapes, parameters, MACs and receptive
fields, without computing a single activation.

Two paths give the same rows:

* a spec (text, file, zoo name) is planned by convlab's own arithmetic (``convlab.plan``);
* any ``nn.Module`` runs its forward on meta tensors under a torch function mode in which the
  known operations (conv, linear, pooling, norms, activations, elementwise arithmetic, cat,
  flatten, view/reshape) are answered by shape rules, and everything else runs for real on the
  meta device. The user's model is never moved, modified or switched between train and eval:
  in-place updates of its own tensors (BatchNorm's ``num_batches_tracked``) are skipped.

Counting rules (stated in every summary): non-trainable = frozen parameters + running statistics
(the Keras convention: BatchNorm over C channels = 2C trainable + 2C non-trainable); integer
counters are not parameters; shared parameters count once; MACs are the multiply-accumulates of
conv and linear layers, FLOPs = 2·MACs.

The package: ``rows`` (:class:`Row`, :class:`Summary`, the counting rules, the spec path),
``render`` (table, markdown, csv, html; the number formatter), ``trace`` (the nn.Module path),
``rules`` (the shape rules, by op and by leaf module) and ``checks`` (``convlab check``).
"""

from __future__ import annotations

import contextlib
import gc

from ..errors import ShapeError

from .rows import GLOBAL, RULES, Row, Summary, from_plan
from .trace import summary_of_module

__all__ = ["summary", "Summary", "Row", "RULES", "GLOBAL"]


@contextlib.contextmanager
def _gc_paused():
    """The analysis allocates many small objects and frees none of them in cycles: pausing the
    cyclic garbage collector meanwhile halves its time (it rescans torch's large heap otherwise)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def summary(model, input_shape=None, *, batch_size: int = 1, depth: int | None = None,
            num_classes: int | None = None) -> Summary:
    """Summarise a spec (text/file/:class:`Spec`), a zoo name, any ``nn.Module`` or a resolved
    :class:`~convlab.factory.ModelRef` for an input shape (C, H, W). No activations are computed and the model is left exactly as it was.

    >>> s = summary("conv(32,3,p=1) bn relu", (3, 8, 8))
    >>> s.trainable_params, s.non_trainable_params
    (1024, 64)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ShapeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ShapeError(f"depth must be a non-negative integer, got {depth!r}")
    with _gc_paused():
        return _summary(model, input_shape, batch_size, depth, num_classes)


def _summary(model, input_shape, batch_size, depth, num_classes) -> Summary:
    from ..factory import resolve_model
    from ..plan import plan

    ref = resolve_model(model)
    shape = input_shape if input_shape is not None else ref.input_shape
    if ref.kind == "module":
        if shape is None:
            raise ShapeError("the input shape is unknown: an nn.Module needs it (--input C,H,W on the command "
                             "line, input_shape=(C, H, W) in Python)")
        return summary_of_module(ref.module, shape, batch_size).fold(depth)
    return from_plan(plan(ref.spec, shape, num_classes), batch_size, ref.label).fold(depth)
