"""Graphviz DOT for a :class:`~convlab.drawing.graph.Graph`, and the ``dot`` binary that lays it out.

Graphviz's ``dot`` is the field's layout engine for layered graphs (Keras' plot_model, torchview and
Netron's exports use it); convlab writes the DOT text itself and runs the binary, so no Python
binding is needed. ``--format dot`` and ``--format json`` work without Graphviz installed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

from ..errors import ConvlabError
from .graph import Graph, dims


class GraphvizError(ConvlabError):
    """Graphviz's ``dot`` is missing or failed."""


INSTALL = ("install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
           "conda: conda install graphviz), or use --format dot or --format json, which need no Graphviz")

_FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"
_FILL = {"layer": "#eef3fb", "block": "#dfe9f7", "projection": "#fdf0d5", "op": "#f2f2f2", "add": "#ffffff",
         "concat": "#e8f5e9", "input": "#ffffff", "output": "#ffffff"}


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _id(name: str) -> str:
    return _q("n:" + name)


def to_dot(g: Graph, title: str | None = None) -> str:
    out = ["digraph convlab {",
           f"  graph [rankdir=TB, nodesep=0.25, ranksep=0.28, fontname={_q(_FONT)}, fontsize=12, "
           f"label={_q(title or g.model)}, labelloc=t, newrank=true];",
           f"  node [shape=box, style=\"rounded,filled\", fontname={_q(_FONT)}, fontsize=11, margin=\"0.12,0.04\", "
           f"height=0.3, color=\"#5b6b82\"];",
           f"  edge [fontname={_q(_FONT)}, fontsize=9, color=\"#5b6b82\", arrowsize=0.6];"]
    shape_of = {n.name: n.output_shape for n in g.nodes}
    in_of = {n.name: n.input_shape for n in g.nodes}

    def node_line(n, indent):
        fill = _FILL.get(n.kind, "#eef3fb")
        if n.kind == "add":
            return f'{indent}{_id(n.name)} [label="+", shape=circle, width=0.3, height=0.3, fixedsize=true, ' \
                   f'fontsize=14, fillcolor="{fill}", tooltip={_q(n.name + " → " + dims(n.output_shape))}];'
        if n.kind in ("input", "output"):
            label = f"{n.name}\n{dims(n.output_shape)}"
            return f'{indent}{_id(n.name)} [label={_q(label)}, shape=box, style="filled", fillcolor="{fill}"];'
        mod = n.module or n.name
        short = mod.rsplit(".", 1)[-1] if n.cluster else mod
        if n.kind == "projection":
            label = f"{short}: {n.settings}"
        elif n.kind == "concat" or n.kind == "op":
            label = f"{n.settings} → {dims(n.output_shape)}"
        elif n.kind == "block":
            label = f"{mod}  {n.settings}\n{dims(n.output_shape)}"
        elif n.settings.split(" ")[0] == short:
            label = f"{n.settings}\n{dims(n.output_shape)}"
        elif n.settings.lower() == short.lower() or n.settings == n.type:
            label = f"{short}  {n.settings}\n{dims(n.output_shape)}" if n.settings != short else \
                f"{short}\n{dims(n.output_shape)}"
        else:
            label = f"{short}  {n.settings}\n{dims(n.output_shape)}"
        return f'{indent}{_id(n.name)} [label={_q(label)}, fillcolor="{fill}", tooltip={_q(n.name)}];'

    # nodes, nested into clusters (stages, blocks)
    tree: dict = {}
    for n in g.nodes:
        level = tree
        for c in n.cluster:
            level = level.setdefault(c, {})
        level.setdefault(None, []).append(n)

    def emit(level, indent, depth):
        for n in level.get(None, []):
            out.append(node_line(n, indent))
        for name, sub in level.items():
            if name is None:
                continue
            typ, shape = g.clusters.get(name, ("", None))
            label = f"{name} ({typ}) → {dims(shape)}" if typ else name
            out.append(f"{indent}subgraph {_q('cluster_' + name)} {{")
            # the label padded: dot sizes a cluster by its nodes, and a long label would touch its border
            out.append(f'{indent}  label={_q(label + "    ")}; labeljust=l; fontsize=11; style="rounded"; margin=10; '
                       f'color="{"#8da0bb" if depth == 0 else "#c4cfdd"}"; '
                       f'bgcolor="{"#fbfcfe" if depth == 0 else "#ffffff"}";')
            emit(sub, indent + "  ", depth + 1)
            out.append(f"{indent}}}")

    emit(tree, "  ", 0)
    written: set = set()  # (producer, shape) already written on one of its edges
    for e in g.edges:
        attrs = []
        # the shape is written on an edge out of the input or where it changes (the producer turned its input
        # into another one), once per producer and shape: a tensor fed to six layers (a dense block's) is
        # labelled on one of its edges, not six
        src_in, src_out = in_of.get(e.src), shape_of.get(e.src)
        changed = e.src == "input" or src_in is not None and list(src_in) != list(e.shape or ()) or src_out != e.shape
        if e.shape is not None and changed and (e.src, tuple(e.shape)) not in written:
            written.add((e.src, tuple(e.shape)))
            attrs.append(f"label={_q(' ' + dims(e.shape))}")
        out.append(f"  {_id(e.src)} -> {_id(e.dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_binary() -> str:
    path = shutil.which("dot")
    if path is None:
        raise GraphvizError(f"drawing needs Graphviz's 'dot' program, which is not on PATH: {INSTALL}")
    return path


SLOW_NOTE_S = 5.0  # after this long, render() calls its ``note`` with what is going on


def render(dot_text: str, fmt: str, *, dpi: int = 96, timeout: float = 120, note=None) -> bytes:
    """Lay out and render DOT text with Graphviz (svg, png or pdf), within ``timeout`` seconds.
    ``note(text)``, if given, hears once when the layout has taken :data:`SLOW_NOTE_S` seconds (the
    command line prints it, so a dense graph does not look like a hang)."""
    args = [dot_binary(), f"-T{fmt}"]
    if fmt == "png":
        args.append(f"-Gdpi={dpi}")
    # dot reads the text from an unnamed temporary file, not a pipe: communicate() retried after a timeout
    # stops feeding a pipe, and a pipe fed from here would need a writer thread
    with tempfile.TemporaryFile() as source:
        source.write(dot_text.encode("utf-8"))
        source.seek(0)
        proc = subprocess.Popen(args, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = min(SLOW_NOTE_S, timeout) if note is not None else timeout
        try:
            stdout, stderr = proc.communicate(timeout=first)
        except subprocess.TimeoutExpired:
            if first >= timeout:
                raise
            nodes = dot_text.count(" [label=")
            edges = dot_text.count(" -> ")
            note(f"Graphviz is still laying out {nodes} boxes and {edges} arrows after {first:g} s (it stops at "
                 f"{timeout:g} s); Ctrl-C and draw less with --depth N or --block NAME")
            stdout, stderr = proc.communicate(timeout=timeout - first)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise GraphvizError(f"Graphviz's dot took over {timeout:g} s to lay the graph out; draw less of it with "
                            "--depth N or --block NAME") from None
    except BaseException:  # Ctrl-C: no dot left running
        proc.kill()
        proc.communicate()
        raise
    res = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    if res.returncode != 0:
        msg = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GraphvizError(f"Graphviz's dot failed (exit {res.returncode}): {msg[0] if msg else 'no message'}")
    return res.stdout
