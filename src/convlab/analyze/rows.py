"""What a summary is: :class:`Row` per layer, :class:`Summary` with the totals, and the counting
rules stated in every one of them.

Both paths fill the same rows: the spec path from a plan (:func:`from_plan`), the nn.Module path from
the tracer (``convlab.analyze.trace``). Rendering lives in ``convlab.analyze.render``; the
``to_markdown()``/``to_html()``/... methods here only call it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import render as _render

RULES = (
    "non-trainable = frozen parameters + running statistics (BatchNorm running_mean/running_var; "
    "Keras convention: BN over 32 channels = 64 trainable + 64 non-trainable); integer counters are not parameters",
    "shared parameters are counted once, at their first use",
    "MACs = multiply-accumulates of conv and linear layers (C_out·C_in/groups·k_h·k_w·H_out·W_out; in·out), "
    "for the whole batch; FLOPs = 2·MACs; bias, norms, activations and additions are not counted",
    "receptive field: size and jump (cumulative stride) in input pixels, through every branch; "
    "'global' after global pooling, flatten or fc",
    "containers show the totals of the layers inside them",
)

GLOBAL = "global"  # receptive field after global pooling, flatten or fc; None means unknown


@dataclass
class Row:
    """One layer: shapes, totals over its subtree, receptive field ({size, jump, start}, GLOBAL or None)."""

    name: str
    type: str
    depth: int
    input_shape: Optional[list]
    output_shape: Optional[list]
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    receptive_field: Optional[dict] = None
    leaf: bool = True
    # own counts (children excluded); the public fields above are totals over the row's subtree
    own: tuple = field(default=(0, 0, 0), repr=False)
    info: dict = field(default_factory=dict, repr=False)  # layer settings, for the checks

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("own")
        d.pop("info")
        return d


@dataclass(repr=False)
class Summary:
    """What :func:`summary` returns: rows in call order and totals; renders as table/markdown/csv/json."""

    model: str
    input_shape: tuple
    batch_size: int
    rows: list[Row]
    trainable_params: int
    non_trainable_params: int
    macs: int
    param_bytes: int
    activation_bytes: int
    output_shape: Optional[list] = None
    rules: tuple = RULES
    # ops convlab saw but does not count, as footnotes: "3 einsum calls in blocks.2.attn"
    uncounted: tuple = ()

    HEAD = _render.HEAD

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "output_shape": self.output_shape,
            "rows": [r.to_dict() for r in self.rows],
            "totals": {"trainable_params": self.trainable_params, "non_trainable_params": self.non_trainable_params,
                       "params": self.params, "macs": self.macs, "flops": self.flops,
                       "param_bytes": self.param_bytes, "activation_bytes": self.activation_bytes},
            "rules": list(self.rules),
            **({"macs_not_counted": list(self.uncounted)} if self.uncounted else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def fold(self, depth: int | None) -> "Summary":
        """Rows deeper than ``depth`` folded into their parents (whose numbers already include them)."""
        if depth is None:
            return self
        rows = []
        for r in self.rows:
            if r.depth <= depth:
                rows.append(Row(**{**r.__dict__, "leaf": r.leaf or r.depth == depth}))
        return Summary(**{**self.__dict__, "rows": rows})

    # -- renderers: see convlab.analyze.render ----------------------------------------------

    def totals_lines(self) -> list[str]:
        return _render.totals_lines(self)

    def to_markdown(self) -> str:
        return _render.markdown(self)

    def to_html(self) -> str:
        return _render.html(self)

    def to_csv(self) -> str:
        return _render.csv_text(self)

    def to_table(self):
        return _render.table(self)

    def render(self, console=None) -> None:
        _render.render(self, console)

    def __str__(self) -> str:
        return _render.text(self)

    def __repr__(self) -> str:
        """The table, as ``print`` shows it: what a REPL echoes."""
        return _render.text(self)

    def _repr_html_(self) -> str:
        """The HTML table, for Jupyter."""
        return _render.html(self)


def rf_dict(rf) -> Optional[dict]:
    """A receptive field ((size, jump, start) per axis) as a row's dict; None stays None."""
    if rf is None:
        return None
    return {"size": [rf[0][0], rf[1][0]], "jump": [rf[0][1], rf[1][1]], "start": [rf[0][2], rf[1][2]]}


def aggregate(rows: list[Row]) -> None:
    """Fill each row's totals from its own counts and those of the rows nested under it.

    One pass: a row's totals are complete when the next row at its depth or above arrives, and are then
    added to its parent's (the row under it on the stack)."""
    stack: list[Row] = []

    def pop() -> None:  # the finished row's totals go to its parent
        done = stack.pop()
        if stack:
            parent = stack[-1]
            parent.trainable_params += done.trainable_params
            parent.non_trainable_params += done.non_trainable_params
            parent.macs += done.macs

    for r in rows:
        depth = r.depth
        while stack and stack[-1].depth >= depth:
            pop()
        if stack:
            stack[-1].leaf = False
        r.trainable_params, r.non_trainable_params, r.macs = r.own
        stack.append(r)
    while stack:
        pop()


def from_plan(p, batch_size: int, label: str) -> Summary:
    """The spec path: a :class:`convlab.plan.Plan`'s nodes as rows (reused nodes count nothing), in call
    order, each row's totals summed over its subtree in the same walk."""
    rows: list[Row] = []
    totals = [0, 0, 0, 0]  # trainable, non-trainable, MACs (reused nodes excluded), activation bytes
    append = rows.append

    def visit(node, depth):
        if node.reuse:
            own = (0, 0, 0)
        else:
            own = (node.trainable, node.non_trainable, node.macs * batch_size)
            totals[0] += own[0]
            totals[1] += own[1]
            totals[2] += own[2]
        rf = node.rf
        row = Row(node.name, node.type, depth, [batch_size, *node.in_shape], [batch_size, *node.out_shape],
                  own[0], own[1], own[2],
                  GLOBAL if rf is None else {"size": [rf[0][0], rf[1][0]], "jump": [rf[0][1], rf[1][1]],
                                             "start": [rf[0][2], rf[1][2]]},
                  not node.children, own, dict(node.info))
        append(row)
        if node.children:
            t = nt = m = 0
            for c in node.children:
                ct, cnt, cm = visit(c, depth + 1)
                t += ct
                nt += cnt
                m += cm
            row.trainable_params += t
            row.non_trainable_params += nt
            row.macs += m
        else:
            totals[3] += math.prod(node.out_shape) * batch_size * 4
        return row.trainable_params, row.non_trainable_params, row.macs

    for node in p.nodes:
        visit(node, 0)
    t, nt, macs, act = totals
    return Summary(label, tuple(p.input_shape), batch_size, rows, t, nt, macs, (t + nt) * 4, act,
                   [batch_size, *p.output_shape])
