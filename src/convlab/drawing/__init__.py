"""Pictures of architectures: ``convlab.draw(model, input_shape)`` -> :class:`Diagram`.

Two views: ``graph`` (one box per layer or folded block, ⊕ for every residual addition, one edge per
branch of a concatenation, shortcuts with their projection, stages as clusters; laid out by
Graphviz's ``dot``) and ``volumes`` (the textbook picture of feature maps as boxes). MODEL is
anything ``convlab summary`` takes; the graph comes from the same meta-device trace as the summary,
so no activation is computed and bad input gives the same errors.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError

__all__ = ["draw", "Diagram", "FORMATS", "VIEWS"]

FORMATS = ("svg", "png", "pdf", "dot", "json")
VIEWS = ("graph", "volumes")


class Diagram:
    """A drawn model: ``.to_svg()``, ``.to_dot()``, ``.to_json()``, ``.save(path)``; shows in notebooks."""

    def __init__(self, view: str, label: str, graph=None, summary=None, title: str | None = None,
                 fold_blocks: bool | None = None):
        self.view = view
        self.fold_blocks = fold_blocks
        self.label = label
        self.graph = graph
        self.summary = summary
        self.title = title or label
        self._svg = None
        self.note = None  # note(text): told when Graphviz's layout is slow (the command line prints it)

    # -- data --------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        if self.graph is None:
            return {"model": self.label, "view": self.view, "summary": self.summary.to_dict()}
        g = self.graph
        return {"model": self.label, "view": self.view, "input_shape": list(g.input_shape),
                "nodes": [n.to_dict() for n in g.nodes], "edges": [e.to_dict() for e in g.edges],
                "clusters": [{"name": k, "type": t, "output_shape": s} for k, (t, s) in g.clusters.items()]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_dot(self) -> str:
        if self.graph is None:
            raise UsageError("the volumes view is drawn by convlab itself and has no DOT text; use --view graph "
                             "for --format dot, or --format svg")
        from .dot import to_dot

        return to_dot(self.graph, self.title)

    # -- pictures ----------------------------------------------------------------------------

    def to_svg(self) -> str:
        if self._svg is None:
            if self.graph is None:
                self._svg = _volumes(self.summary, self.title, self.fold_blocks)
            else:
                from .dot import render

                self._svg = render(self.to_dot(), "svg", note=self.note).decode("utf-8")
        return self._svg

    def render(self, fmt: str) -> bytes:
        """The picture (svg, png, pdf) or the data (dot, json) as bytes."""
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        if fmt == "json":
            return self.to_json().encode("utf-8")
        if fmt == "dot":
            return self.to_dot().encode("utf-8")
        if fmt == "svg":
            return self.to_svg().encode("utf-8")
        if self.graph is None:  # the volumes view: the same layout drawn by matplotlib
            from .volumes import render_volumes_image

            return render_volumes_image(self.summary, fmt, title=self.title, fold_blocks=self.fold_blocks)
        from .dot import render

        return render(self.to_dot(), fmt, note=self.note)

    def save(self, path, fmt: str | None = None) -> Path:
        """Write the picture to ``path`` (format from the suffix unless given), atomically."""
        from ..fileio import write_bytes

        path = Path(path)
        fmt = fmt or (path.suffix.lstrip(".").lower() or "svg")
        if fmt not in FORMATS:
            raise UsageError(f"cannot tell the format from {path.name!r}; use a suffix among "
                             f"{', '.join('.' + f for f in FORMATS)}")
        return write_bytes(path, self.render(fmt))

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def __repr__(self) -> str:
        if self.graph is None:
            return f"Diagram({self.label!r}, view='volumes')"
        return f"Diagram({self.label!r}, view='graph', {len(self.graph.nodes)} nodes, {len(self.graph.edges)} edges)"


def _volumes(summary, title, fold_blocks=None):
    from .volumes import render_volumes

    return render_volumes(summary, title=title, fold_blocks=fold_blocks)


def draw(model, input_shape=None, *, view: str = "graph", depth: int | None = None, blocks=None,
         num_classes: int | None = None, title: str | None = None) -> Diagram:
    """Draw ``model`` (anything :func:`convlab.summary` takes) for ``input_shape`` (C, H, W).

    ``depth`` folds blocks nested deeper than N into one box; ``blocks`` (names, or one comma-separated
    string) draws just those parts with the shapes entering and leaving them.

    >>> d = draw("resnet20")
    >>> sum(n["kind"] == "add" for n in d.to_dict()["nodes"])
    9
    """
    from ..analyze import summary
    from ..factory import resolve_model

    if view not in VIEWS:
        raise UsageError(f"unknown view {view!r}; one of {', '.join(VIEWS)}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise UsageError(f"depth must be a non-negative integer, got {depth!r}")
    if isinstance(blocks, str):
        blocks = [b.strip() for b in blocks.split(",") if b.strip()]
    ref = resolve_model(model)
    shape = input_shape if input_shape is not None else ref.input_shape
    # the summary first: the same checks and errors as 'convlab summary' (and the volumes view's data)
    label = ref.label
    if view == "volumes":  # every row: the view folds residual blocks itself (--depth says whether)
        if blocks:
            raise UsageError("--block is for the graph view")
        from .volumes import fold_for_depth

        s = summary(ref, shape, num_classes=num_classes)
        return Diagram("volumes", label, summary=s, title=title, fold_blocks=fold_for_depth(s, depth))
    s = summary(ref, shape, depth=depth, num_classes=num_classes)
    from .graph import graph_of_module, select

    if ref.kind == "module":
        module = ref.module
    else:
        import torch

        from ..builder import build

        with torch.device("meta"):  # the structure only: no weights are made (a VGG's 138M stay unallocated)
            module = build(ref.spec, shape, num_classes)
    g = graph_of_module(module, tuple(s.input_shape), depth, label)
    if blocks:
        g = select(g, list(blocks))
        title = title or f"{label}: {', '.join(blocks)}"
    return Diagram("graph", label, graph=g, summary=s, title=title)
