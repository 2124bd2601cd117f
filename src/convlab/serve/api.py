"""The playground's JSON API: the same functions the command line uses, so the page and the CLI can
never disagree.

Every call takes what a browser sends (strings) and returns a plain dict ready for ``json.dumps``.
A call never imports code and never reads a file: a MODEL is spec text or a zoo name, resolved with
``trusted=False`` (the rule for a MODEL that did not come from the user's own command line). Bad
input raises a ConvlabError; :func:`error_dict` turns it into the message plus, where convlab's
message points at the spec, its line, column and width, so the page can underline the token.
"""

from __future__ import annotations

import json
import re

from ..errors import ConvlabError, UsageError

from .. import limits

#: The longest spec text the playground accepts, and the largest input it plans for: convlab.limits.
MAX_SPEC_CHARS = limits.PLAYGROUND_SPEC_CHARS
MAX_INPUT_SIDE = limits.PLAYGROUND_INPUT_SIDE
MAX_INPUT_CHANNELS = limits.PLAYGROUND_INPUT_CHANNELS

_WHERE = re.compile(r"\(line (\d+), column (\d+)\)")
_CARET = re.compile(r"^\s*(\^+)\s*$", re.M)


def parse_input(text: str | None) -> tuple[int, int, int] | None:
    """``"3,32,32"`` (also ``3x32x32``, ``3×32×32``) → (3, 32, 32); empty → None (the model's own)."""
    if text is None or not text.strip():
        return None
    parts = [p for p in re.split(r"[,x×\s]+", text.strip()) if p]
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        raise UsageError(f"input shape: expected three positive integers C,H,W (e.g. 3,32,32), got {text[:40]!r}")
    c, h, w = (int(p) for p in parts)
    if min(c, h, w) < 1:
        raise UsageError(f"input shape: every size must be at least 1, got {c},{h},{w}")
    if c > MAX_INPUT_CHANNELS or max(h, w) > MAX_INPUT_SIDE:
        raise UsageError(f"input shape {c},{h},{w} is beyond the playground's limits ({MAX_INPUT_CHANNELS} channels, "
                         f"{MAX_INPUT_SIDE} pixels a side); use `convlab summary` for larger inputs")
    return c, h, w


def _ref(spec: str | None, fmt: str | None = None):
    from ..factory import resolve_model

    text = (spec or "").strip()
    if not text:
        raise UsageError("empty spec: type layers such as \"conv(16,3,p=1) relu maxpool(2) flatten fc(10)\" "
                         "or a zoo name such as resnet20")
    if len(text) > MAX_SPEC_CHARS:
        raise UsageError(f"the spec is {len(text):,} characters; the playground takes at most {MAX_SPEC_CHARS:,} "
                         f"(use `convlab summary FILE` for larger ones)")
    from ..factory import _IMPORT, _spec_suffixes

    if fmt in ("yaml", "json"):  # a dropped .yaml/.json spec file's text, parsed as convlab parses such files
        from pathlib import Path

        from ..spec import _load_structured

        return resolve_model(_load_structured(text, Path(f"spec.{fmt}")), trusted=False)
    if fmt not in (None, "", "text"):
        raise UsageError(f"format: expected text, yaml or json, got {fmt[:20]!r}")

    if _IMPORT.match(text):
        raise UsageError(f"{text[:60]!r} is a Python import; the playground takes spec text and zoo names only and "
                         f"never imports code — use `convlab summary {text[:60]}` on the command line")
    if "\n" not in text and (text.endswith(_spec_suffixes()) or "/" in text or "\\" in text):
        raise UsageError(f"{text[:60]!r} names a file; the playground reads no files — paste the spec text, or "
                         f"use `convlab summary FILE` on the command line")
    return resolve_model(text, trusted=False)


def _python_line(ref, shape) -> str:
    shape_text = "(" + ", ".join(str(v) for v in shape) + ")" if shape else "None"
    if _is_zoo(ref.label):
        return f"convlab.create_model({json.dumps(ref.label)}, {shape_text})"
    return f"convlab.build({json.dumps(ref.spec_text)}, {shape_text})"


def _is_zoo(label: str) -> bool:
    from .. import zoo

    return zoo.is_zoo_name(label)


def summary(spec: str | None, input_shape: str | None = None, fmt: str | None = None) -> dict:
    """The summary table as ``convlab summary --format json`` prints it, plus the totals' text lines,
    the spec text in convlab's own words and the Python line that builds the model."""
    from ..analyze import summary as summarise

    ref = _ref(spec, fmt)
    shape = parse_input(input_shape)
    s = summarise(ref, shape)
    out = s.to_dict()
    out["totals_text"] = s.totals_lines()
    out["spec_text"] = ref.spec_text
    out["zoo"] = _is_zoo(ref.label)
    out["python"] = _python_line(ref, tuple(out["input_shape"]))
    out["explainable"] = [r.name for r in s.rows if r.type in _WINDOWED]
    return out


_WINDOWED = {"Conv2d", "MaxPool2d", "AvgPool2d"}


def _built(ref, shape):
    from ..factory import make_model

    net, _, _ = make_model(ref, input_shape=shape, trusted=False)
    return net


def explain(spec: str | None, input_shape: str | None, layer: str | None, fmt: str | None = None) -> dict:
    """The output-size arithmetic of one conv or pool layer of the model, with its numbers
    (``explain_conv`` / ``explain_pool``), and the input size it reads."""
    import torch.nn as nn

    from ..analyze import summary as summarise
    from ..arith import explain_conv, explain_pool

    ref = _ref(spec, fmt)
    shape = parse_input(input_shape)
    s = summarise(ref, shape)
    rows = {r.name: r for r in s.rows}
    if not layer or layer not in rows:
        raise UsageError(f"no layer {layer!r} in this model; click a conv or pool row of the table")
    net = _built(ref, tuple(s.input_shape))
    module = dict(net.named_modules()).get(layer)
    row = rows[layer]
    size = tuple(row.input_shape[-2:])
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):
            padding = module.padding
        else:
            padding = tuple(module.padding)
        e = explain_conv(size, tuple(module.kernel_size), tuple(module.stride), padding, tuple(module.dilation))
        settings = {"kernel": list(module.kernel_size), "stride": list(module.stride),
                    "padding": padding if isinstance(padding, str) else list(padding),
                    "dilation": list(module.dilation)}
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        from ..arith import pair

        k, st, p = pair(module.kernel_size), pair(module.stride or module.kernel_size), pair(module.padding)
        d = pair(getattr(module, "dilation", 1))
        e = explain_pool(size, k, st, p, d, ceil_mode=bool(module.ceil_mode))
        settings = {"kernel": list(k), "stride": list(st), "padding": list(p), "dilation": list(d),
                    "ceil_mode": bool(module.ceil_mode)}
    else:
        raise UsageError(f"layer {layer!r} is a {row.type}; the arithmetic is shown for conv and pool layers")
    return {"layer": layer, "type": row.type, "input": list(size), "settings": settings,
            "text": str(e), **e.to_dict()}


def draw(spec: str | None, input_shape: str | None = None, view: str | None = None, fmt: str | None = None,
         depth: str | None = None) -> dict:
    """``convlab draw``'s picture as SVG text: the graph (laid out by Graphviz) or the volumes view, for
    the same model and input as the summary. ``depth`` folds blocks as ``--depth`` does."""
    from ..drawing import VIEWS
    from ..drawing import draw as draw_model

    view = view or "graph"
    if view not in VIEWS:
        raise UsageError(f"view: expected one of {', '.join(VIEWS)}, got {view[:20]!r}")
    levels = None
    if depth not in (None, ""):
        if not str(depth).isdigit() or len(str(depth)) > 3:
            raise UsageError(f"depth: expected 0 or more (at most 3 digits), got {str(depth)[:20]!r}")
        levels = int(depth)
    ref = _ref(spec, fmt)
    d = draw_model(ref, parse_input(input_shape), view=view, depth=levels)
    out = {"view": view, "model": d.label}
    if view == "graph":
        from ..drawing.dot import render

        n = len(d.graph.nodes)
        if n > limits.PLAYGROUND_GRAPH_NODES:
            raise UsageError(f"the graph has {n:,} boxes; the playground lays out at most "
                             f"{limits.PLAYGROUND_GRAPH_NODES:,} — fold blocks with a depth, or use "
                             f"`convlab draw` on the command line")
        out["nodes"], out["edges"] = n, len(d.graph.edges)
        from ..drawing.dot import GraphvizError

        try:
            out["svg"] = render(d.to_dot(), "svg", timeout=limits.PLAYGROUND_DRAW_SECONDS).decode("utf-8")
        except GraphvizError as e:
            raise GraphvizError(f"{e} (the volumes view needs no Graphviz)") from None
    else:
        out["svg"] = d.to_svg()
    return out


def solve(in_size: str | None, out_size: str | None, limit: int = 12) -> dict:
    """``convlab solve``: the (kernel, stride, padding, dilation) settings that map one size to another."""
    from ..arith import solve as solve_sizes

    def number(name, text):
        if text is None or not str(text).strip().isdigit() or len(str(text).strip()) > limits.MAX_DIGITS:
            raise UsageError(f"{name}: expected a positive integer (at most {limits.MAX_DIGITS} digits), got "
                             f"{str(text)[:20]!r}")
        v = limits.check_int(int(text), name, UsageError)
        if v < 1:
            raise UsageError(f"{name}: expected a positive integer, got {v}")
        return v

    a, b = number("input size", in_size), number("target size", out_size)
    found = solve_sizes(a, b)
    return {"in": a, "out": b, "count": len(found),
            "solutions": [{**s.to_dict(), "text": str(s)} for s in found[:limit]]}


def zoo_names() -> dict:
    from ..zoo import list_models

    return {"models": list_models()}


def error_dict(e: Exception, spec: str | None = None) -> dict:
    """A ConvlabError as the page shows it: kind, message and, when the message points into the
    spec, the line, column and width of the token to underline — in ``spec`` as the user typed it
    (convlab parses it without its leading blank lines and spaces)."""
    msg = str(e)
    out: dict = {"ok": False, "kind": type(e).__name__, "message": msg}
    m = _WHERE.search(msg)
    if m:
        line, col = int(m.group(1)), int(m.group(2))
        lead = (spec or "")[:len(spec or "") - len((spec or "").lstrip())]
        if line == 1:
            col += len(lead.rsplit("\n", 1)[-1])
        line += lead.count("\n")
        out["line"], out["column"] = line, col
        carets = _CARET.findall(msg)
        out["width"] = len(carets[-1]) if carets else 1
    return out


def handle(route: str, params: dict[str, str]) -> tuple[int, dict]:
    """(HTTP status, JSON body) for one API call; ConvlabErrors are 400 with :func:`error_dict`."""
    try:
        if route == "summary":
            return 200, {"ok": True, **summary(params.get("spec"), params.get("input"), params.get("format"))}
        if route == "explain":
            return 200, {"ok": True, **explain(params.get("spec"), params.get("input"), params.get("layer"),
                                               params.get("format"))}
        if route == "draw":
            return 200, {"ok": True, **draw(params.get("spec"), params.get("input"), params.get("view"),
                                            params.get("format"), params.get("depth"))}
        if route == "solve":
            return 200, {"ok": True, **solve(params.get("in"), params.get("out"))}
        if route == "zoo":
            return 200, {"ok": True, **zoo_names()}
    except ConvlabError as e:
        if params.get("format") in ("yaml", "json"):  # positions there are within one item, not the text
            return 400, {"ok": False, "kind": type(e).__name__, "message": str(e)}
        return 400, error_dict(e, params.get("spec"))
    except RecursionError:
        return 400, {"ok": False, "kind": "SpecError", "message": "the spec nests too deeply to plan"}
    return 404, {"ok": False, "kind": "UsageError", "message": f"no API call {route!r}; calls: " + ", ".join(ROUTES)}


ROUTES = ("summary", "draw", "explain", "solve", "zoo")

