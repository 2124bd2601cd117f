"""A :class:`~convlab.analyze.rows.Summary` as text: a rich table, markdown, csv or standalone HTML,
and the one formatter of numbers (SI, thousands, bytes) and shapes that every command prints with.

The renderers are functions of a summary; ``Summary.to_markdown()`` and friends call them. Nothing
here imports from the rest of the package, so any module may use the formatters.
"""

from __future__ import annotations

import csv
import io

HEAD = ["layer", "type", "output shape", "params", "non-trainable", "MACs", "RF size/jump"]


# -- numbers and shapes ----------------------------------------------------------------------

def si(v: float, digits: int = 3) -> str:
    """``v`` with an SI prefix (K, M, G) and ``digits`` decimals: 1814073344 → '1.814 G';
    below 1000 as is. ``convlab summary`` prints 3 digits, ``convlab zoo`` 2."""
    for unit, f in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= f:
            return f"{v / f:.{digits}f} {unit}"
    return str(v)


def integer(v: int) -> str:
    """An integer with thousands separators: 11,689,512."""
    return f"{v:,}"


def nbytes(v: int) -> str:
    """A byte count in binary units with 2 decimals (KiB, MiB, GiB), or 'N B'."""
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= f:
            return f"{v / f:.2f} {unit}"
    return f"{v} B"


def shape(s) -> str:
    """'[1, 64, 56, 56]'; several outputs comma-separated; '-' when unknown."""
    if s is None:
        return "-"
    if s and isinstance(s[0], list):
        return ", ".join(shape(x) for x in s)
    return "[" + ", ".join(map(str, s)) + "]"


def _pair_text(v) -> str:
    if v is None:
        return ""
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def rf_text(rf) -> str:
    """A row's receptive field as 'size/jump' ('3/1', '7x5/2'); a marker ('global') as is; '' unknown."""
    if rf is None:
        return ""
    if isinstance(rf, str):
        return rf
    return f"{_pair_text(rf['size'])}/{_pair_text(rf['jump'])}"


# -- one summary, several formats ------------------------------------------------------------

def cells(r) -> list[str]:
    """One row's cells under :data:`HEAD`."""
    return [r.name, r.type, shape(r.output_shape), integer(r.trainable_params), integer(r.non_trainable_params),
            integer(r.macs), rf_text(r.receptive_field)]


def totals_lines(s) -> list[str]:
    """The lines printed under the table: shapes, parameter and MAC totals, memory."""
    return [
        f"input: {shape([s.batch_size, *s.input_shape])}  output: {shape(s.output_shape)}",
        f"params: {integer(s.params)} = {integer(s.trainable_params)} trainable + "
        f"{integer(s.non_trainable_params)} non-trainable",
        f"MACs: {integer(s.macs)} ({si(s.macs)}); FLOPs = 2·MACs = {si(s.flops)}",
        f"parameter memory: {nbytes(s.param_bytes)}; activations kept for backward "
        f"(leaf outputs, float32, batch {s.batch_size}): {nbytes(s.activation_bytes)}",
    ] + [f"MACs not counted: {t}" for t in getattr(s, "uncounted", ())]


def markdown(s) -> str:
    """A markdown table (nested layers indented with &nbsp;), the totals and the rules as lists."""
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * len(HEAD)) + "|"]
    for r in s.rows:
        c = cells(r)
        c[0] = "&nbsp;" * 2 * r.depth + c[0]
        lines.append("| " + " | ".join(c) + " |")
    lines.append("")
    lines.extend(f"- {t}" for t in totals_lines(s))
    lines.append("")
    lines.extend(f"- rule: {t}" for t in s.rules)
    return "\n".join(lines)


def html(s) -> str:
    """A standalone HTML table (nested layers indented), with the totals and the counting rules."""
    import html as h

    head = "".join(f"<th>{h.escape(c)}</th>" for c in HEAD)
    body = []
    for r in s.rows:
        c = cells(r)
        first = f'<td style="padding-left:{0.5 + 1.2 * r.depth}em">{h.escape(c[0])}</td>'
        rest = "".join(f"<td>{h.escape(x)}</td>" for x in c[1:])
        body.append(f"<tr{'' if r.leaf else ' style=font-weight:bold'}>{first}{rest}</tr>")
    notes = "".join(f"<li>{h.escape(t)}</li>" for t in totals_lines(s))
    rules = "".join(f"<li>{h.escape(t)}</li>" for t in s.rules)
    return (f"<table class=convlab-summary><caption>{h.escape(s.model)}</caption><tr>{head}</tr>"
            f"{''.join(body)}</table><ul>{notes}</ul><ul class=rules>{rules}</ul>")


def csv_text(s) -> str:
    """One csv line per row, numbers unformatted; the receptive field as size and jump columns."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "type", "depth", "output_shape", "trainable_params", "non_trainable_params", "macs",
                "rf_size", "rf_jump"])
    for r in s.rows:
        rf = r.receptive_field if isinstance(r.receptive_field, dict) else {}
        size = r.receptive_field if isinstance(r.receptive_field, str) else _pair_text(rf.get("size"))
        w.writerow([r.name, r.type, r.depth, "x".join(map(str, r.output_shape or [])), r.trainable_params,
                    r.non_trainable_params, r.macs, size, _pair_text(rf.get("jump"))])
    return buf.getvalue()


def table(s):
    """A ``rich.table.Table`` (containers in bold, nested layers indented)."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAVY, title=f"{s.model}", title_justify="left", show_footer=False)
    for i, h in enumerate(HEAD):
        t.add_column(h, justify="right" if i >= 3 else "left", no_wrap=True)
    for r in s.rows:
        c = cells(r)
        c[0] = "  " * r.depth + c[0]
        t.add_row(*c, style=None if r.leaf else "bold")
    return t


def render(s, console=None) -> None:
    """Print the table, the totals and the rules (dimmed) to ``console``, a 160-column one off a terminal."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    console.print(table(s))
    for line in totals_lines(s):
        console.print(line, highlight=False)
    console.print("[dim]" + "\n".join(f"rule: {t}" for t in s.rules) + "[/dim]", highlight=False)


def text(s) -> str:
    """What :func:`render` prints, as plain text 140 columns wide."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=140, color_system=None)
    render(s, console)
    return console.file.getvalue()
