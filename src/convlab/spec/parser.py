"""Text, YAML and JSON specs → frozen layer dataclasses, with compiler-grade errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from .. import limits
from ..errors import SpecError, did_you_mean
from .layers import (ACTIVATIONS, ALIASES, KINDS, REQUIRED, VOCABULARY, Act, Arg, Layer, Source, Stage,
                     caret_lines, field_name)

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<comment>\#[^\n]*)
  | (?P<arrow>->|→)
  | (?P<pair>\d+[x×]\d+(?![\w.]))
  | (?P<float>-?(?:\d+\.\d*|\.\d+)(?:e-?\d+)?|-?\d+e-?\d+)
  | (?P<int>-?\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<times>×)
  | (?P<punct>[()\[\],=])
""", re.VERBOSE)


@dataclass(frozen=True)
class Tok:
    kind: str  # name int float pair punct times end
    text: str
    line: int
    col: int
    space_before: bool


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")

    def tokens(self) -> list[Tok]:
        out: list[Tok] = []
        line, line_start, pos, space = 1, 0, 0, True
        depth, counted = 0, []  # brackets open as the parser counts them (an argument list is not nesting)
        while pos < len(self.text):
            m = _TOKEN.match(self.text, pos)
            if not m:
                col = pos - line_start + 1
                raise SpecError(f"unexpected character {self.text[pos]!r} at line {line}, column {col}"
                                + self.caret(line, col, 1))
            kind = m.lastgroup
            if kind == "nl":
                line, line_start, space = line + 1, m.end(), True
            elif kind in ("ws", "comment"):
                space = True
            elif kind == "arrow":
                out.append(Tok("sep", m.group(), line, pos - line_start + 1, True))
                space = True
            else:
                text = m.group()
                if kind == "punct" and text in "([":
                    nests = text == "[" or space or not out or out[-1].kind != "name"
                    counted.append(nests)
                    depth += nests
                    if depth > limits.MAX_NESTING:  # refused here, before the rest of a huge text is read
                        col = pos - line_start + 1
                        raise SpecError(f"brackets nested {depth} deep, beyond convlab's limit of "
                                        f"{limits.MAX_NESTING} (line {line}, column {col})" + self.caret(line, col, 1))
                elif kind == "punct" and text in ")]" and counted:
                    depth -= counted.pop()
                out.append(Tok(kind, text, line, pos - line_start + 1, space))
                space = False
            pos = m.end()
        out.append(Tok("end", "", line, pos - line_start + 1, True))
        return out

    def caret(self, line: int, col: int, width: int) -> str:
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return caret_lines(src, col, width)


_close = did_you_mean


def signature(cls: type[Layer]) -> str:
    parts = []
    for a in cls.args:
        if a.type == "flag":
            parts.append(f"{a.name}")
        elif a.default is REQUIRED:
            parts.append(a.name)
        else:
            d = a.default
            d = "true" if d is True else "false" if d is False else "auto" if d is None and a.name == "in" else d
            parts.append(f"{a.name}={d}")
    body = "[ body ]" if cls.has_body else ""
    return f"{cls.kind}({', '.join(parts)}){body}" if parts else f"{cls.kind}{body}"


class _Ctx:
    """Where an error points: a caret under a token in the text, or a path in YAML."""

    def __init__(self, lexer: _Lexer | None = None, where: str = ""):
        self.lexer = lexer
        self.where = where

    def error(self, msg: str, tok: Tok | None = None, width: int | None = None) -> SpecError:
        if tok is not None and self.lexer is not None:
            return SpecError(msg + Source(tok.line, tok.col, tok.text).where()
                             + self.lexer.caret(tok.line, tok.col, width or len(tok.text)))
        return SpecError(f"{msg}" + (f" (at {self.where})" if self.where else ""))

    def source(self, tok: Tok | None, width: int) -> Source | None:
        if tok is None or self.lexer is None:
            return None
        line = self.lexer.lines[tok.line - 1]
        return Source(tok.line, tok.col, line[tok.col - 1: tok.col - 1 + width], line)


def _convert(cls: type[Layer], arg: Arg, value: Any, ctx: _Ctx, tok: Tok | None):
    """Check one argument value against its declared type; return the normalised value."""
    where = f"{cls.kind}: {arg.name}"

    def bad(expect: str):
        shown = repr(value) if not isinstance(value, (list, dict, tuple)) else type(value).__name__
        return ctx.error(f"{where} must be {expect}, got {shown[:60]}", tok)

    def positive(v, minimum=1):
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("an integer" + (" >= 1" if minimum else " >= 0"))
        if v < minimum:
            raise ctx.error(f"{where} must be >= {minimum}, got {v}", tok)
        if v > limits.MAX_INT:
            raise ctx.error(f"{where} is {limits._short(v)}, beyond convlab's limit of {limits.MAX_INT:,} (2**31 - 1) "
                            f"for any size or count", tok)
        return v

    t = arg.type
    if t == "pos":
        if arg.name == "in" and isinstance(value, str) and value.lower() == "auto":
            return None  # in=auto: in_features from the shape, as when it is left out
        return positive(value, 0 if arg.name == "in" else 1)
    if t in ("pair", "pad"):
        if t == "pad" and isinstance(value, str) and value.lower() in ("same", "valid"):
            return value.lower()
        minimum = 0 if arg.name == "p" else 1
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise bad("an integer or a pair like 3x5")
            a, b = (positive(v, minimum) for v in value)
            return a if a == b else (a, b)
        if isinstance(value, str):
            m = re.fullmatch(r"(\d+)[x×](\d+)", value)
            if m:
                return _convert(cls, arg, (int(m[1]), int(m[2])), ctx, tok)
        return positive(value, minimum)
    if t in ("bool", "flag"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad("true or false")
    if t == "prob":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a probability between 0 and 1")
        if not 0 <= value < 1:
            raise ctx.error(f"{where} must be in [0, 1), got {value}", tok)
        return float(value)
    if t.startswith("choice:"):
        choices = t.split(":", 1)[1].split("|")
        if isinstance(value, str) and value.upper() in choices:
            return value.upper()
        raise bad(" or ".join(choices))
    raise AssertionError(t)


def make_layer(kind: str, positional: Sequence[tuple[Any, Tok | None]], keywords: Sequence[tuple[str, Any, Tok | None]],
               ctx: _Ctx, name_tok: Tok | None = None, body: tuple[Layer, ...] | None = None,
               src: Source | None = None) -> Layer:
    """Build one layer dataclass from its kind and arguments, checking every one."""
    key = kind.lower()
    key = ALIASES.get(key, key)
    if key in ACTIVATIONS:
        if positional or keywords:
            raise ctx.error(f"{key} takes no arguments", name_tok)
        return Act(name=key, src=src)
    if key not in KINDS or key == "stage":
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise ctx.error(f"unknown layer '{shown}'{_close(key, VOCABULARY)}", name_tok)
    cls = KINDS[key]
    sig = signature(cls)
    values: dict[str, Any] = {}
    pos_args = [a for a in cls.args if a.positional]
    if len(positional) > len(pos_args):
        v, t = positional[len(pos_args)]
        raise ctx.error(f"{key} takes at most {len(pos_args)} positional argument(s), got {len(positional)}: "
                        f"{sig}", t or name_tok)
    for (v, t), a in zip(positional, pos_args):
        if a.type == "flag" and isinstance(v, str) and v == a.name:
            v = True
        values[a.name] = (_convert(cls, a, v, ctx, t), t)
    names = {a.name: a for a in cls.args}
    for a in cls.args:
        for al in a.aliases:
            names[al] = a
    for kname, v, t, *ktok in keywords:
        kt = ktok[0] if ktok else t
        a = names.get(kname)
        if a is None:
            shown = kname if len(kname) <= 40 else kname[:40] + "…"
            raise ctx.error(f"{key} has no argument '{shown}'{_close(kname, list(names))}; it takes {sig}", kt)
        if a.name in values:
            raise ctx.error(f"{key}: argument '{a.name}' given twice", kt)
        values[a.name] = (_convert(cls, a, v, ctx, t), t)
    missing = [a.name for a in cls.args if a.default is REQUIRED and a.name not in values]
    if missing:
        raise ctx.error(f"{key} needs {' and '.join(repr(m) for m in missing)}: {sig}", name_tok)
    kwargs = {field_name(cls.args[[x.name for x in cls.args].index(n)]): v for n, (v, _) in values.items()}
    if cls.has_body:
        if body is None:
            raise ctx.error(f"{key} needs a body in brackets: e.g. {key}[conv(16,3,p=1) bn relu conv(16,3,p=1) bn]",
                            name_tok)
        if not body:
            raise ctx.error(f"{key}[...] has an empty body", name_tok)
        kwargs["body"] = body
    elif body is not None:
        raise ctx.error(f"{key} takes no [ body ]", name_tok)
    return cls(**kwargs, src=src)


def weight(layers: Sequence[Layer]) -> int:
    """Layers in ``layers``, counting those inside blocks and stages (what :data:`limits.MAX_LAYERS` bounds)."""
    total, todo = 0, list(layers)
    while todo:
        layer = todo.pop()
        total += 1
        todo.extend(getattr(layer, "body", ()) or ())
    return total


def _too_many(n: int) -> str:
    return (f"the spec expands to {n:,} layers, beyond convlab's limit of {limits.MAX_LAYERS:,} "
            f"(repeats expanded, layers inside blocks counted)")


class _Parser:
    def __init__(self, text: str):
        self.lexer = _Lexer(text)
        self.toks = self.lexer.tokens()
        self.i = 0
        self.ctx = _Ctx(self.lexer)
        self.depth = 0  # brackets open around the current token

    def int_of(self, tok: Tok, text: str | None = None) -> int:
        """The integer a token spells, refused before conversion when it has too many digits."""
        digits = (text if text is not None else tok.text).lstrip("-")
        if len(digits) > limits.MAX_DIGITS:
            raise self.ctx.error(f"a number of {len(digits):,} digits; convlab takes at most {limits.MAX_DIGITS} "
                                 f"(numbers up to {limits.MAX_INT:,})", tok, min(len(tok.text), 20))
        return int(text if text is not None else tok.text)

    def open(self, tok: Tok) -> None:
        self.depth += 1
        if self.depth > limits.MAX_NESTING:
            raise self.ctx.error(f"brackets nested {self.depth} deep, beyond convlab's limit of {limits.MAX_NESTING}",
                                 tok)

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str, opened: Tok) -> Tok:
        if self.tok.text != text:
            found = "the end of the spec" if self.tok.kind == "end" else f"'{self.tok.text}'"
            raise self.ctx.error(f"expected '{text}' to close the '{opened.text}' opened at column {opened.col}, "
                                 f"found {found}", self.tok)
        return self.next()

    def parse(self) -> list[Layer]:
        layers = self.seq(closing=None)
        if self.tok.kind != "end":
            raise self.ctx.error(f"unexpected '{self.tok.text}' (no bracket is open here)", self.tok)
        return layers

    def seq(self, closing: str | None) -> list[Layer]:
        out: list[Layer] = []
        total = 0  # weight(out), kept as it grows
        while True:
            while self.tok.kind == "sep" or self.tok.text == ",":
                self.next()
            if self.tok.kind == "end" or (self.tok.kind == "punct" and self.tok.text in ")]"):
                if closing is None and self.tok.kind == "punct":
                    raise self.ctx.error(f"unexpected '{self.tok.text}' (no bracket is open here)", self.tok)
                return out
            start = self.tok
            items = self.atom()
            w = weight(items)
            n = self.repeat()
            if n is not None:
                if n < 1:
                    raise self.ctx.error(f"repeat count must be >= 1, got {n}", start)
                if n > limits.MAX_REPEAT:
                    raise self.ctx.error(f"repeat count {n:,} is beyond convlab's limit of {limits.MAX_REPEAT:,}",
                                         start)
            total += w * (n or 1)
            if total > limits.MAX_LAYERS:
                raise self.ctx.error(_too_many(total), start)
            if n is not None:
                items = items * n
            out.extend(items)

    def repeat(self) -> int | None:
        t = self.tok
        if t.kind == "name":
            m = re.fullmatch(r"x(\d+)", t.text)
            if m:
                self.next()
                return self.int_of(t, m[1])
            if t.text == "x" and self.toks[self.i + 1].kind == "int":
                self.next()
                return self.int_of(self.next())
        if t.kind == "times":
            self.next()
            if self.tok.kind != "int":
                raise self.ctx.error("expected a repeat count after '×'", self.tok)
            return self.int_of(self.next())
        return None

    def atom(self) -> list[Layer]:
        t = self.tok
        if t.text == "(":
            self.open(t)
            self.next()
            body = self.seq(closing=")")
            self.expect(")", t)
            self.depth -= 1
            if not body:
                raise self.ctx.error("empty group '()'", t)
            return body
        if t.text == "[":
            self.open(t)
            self.next()
            body = self.seq(closing="]")
            self.expect("]", t)
            self.depth -= 1
            if not body:
                raise self.ctx.error("empty stage '[]'", t)
            return [Stage(body=tuple(body), src=self.ctx.source(t, 1))]
        if t.kind != "name":
            what = "the end of the spec" if t.kind == "end" else f"'{t.text}'"
            raise self.ctx.error(f"expected a layer name, found {what}", t)
        return [self.layer()]

    def value(self) -> tuple[Any, Tok]:
        t = self.next()
        if t.kind == "int":
            return self.int_of(t), t
        if t.kind == "float":
            return float(t.text), t
        if t.kind == "pair":
            a, b = re.split("[x×]", t.text)
            return (self.int_of(t, a), self.int_of(t, b)), t
        if t.kind == "name":
            return t.text, t
        what = "the end of the spec" if t.kind == "end" else f"'{t.text}'"
        raise self.ctx.error(f"expected a value, found {what}", t)

    def layer(self) -> Layer:
        name = self.next()
        positional: list[tuple[Any, Tok]] = []
        keywords: list[tuple[str, Any, Tok, Tok]] = []
        end_col = name.col + len(name.text)
        if self.tok.text == "(" and not self.tok.space_before:
            opened = self.next()
            while self.tok.text != ")":
                if self.tok.kind == "end":
                    raise self.ctx.error(f"'(' opened at column {opened.col} is never closed", opened)
                if self.tok.kind == "name" and self.toks[self.i + 1].text == "=":
                    k = self.next()
                    self.next()
                    v, vt = self.value()
                    keywords.append((k.text, v, vt, k))
                else:
                    if keywords:
                        raise self.ctx.error("positional argument after a keyword argument", self.tok)
                    positional.append(self.value())
                if self.tok.text == ",":
                    self.next()
                elif self.tok.kind == "end":
                    raise self.ctx.error(f"'(' opened at column {opened.col} is never closed", opened)
                elif self.tok.text != ")":
                    raise self.ctx.error(f"expected ',' or ')' in the arguments of {name.text}, found "
                                         f"'{self.tok.text or 'the end'}'", self.tok)
            close = self.next()
            end_col = close.col + 1
        body = None
        key = ALIASES.get(name.text.lower(), name.text.lower())
        if self.tok.text == "[" and key in KINDS and KINDS[key].has_body:
            self.open(self.tok)
            opened = self.next()
            body = tuple(self.seq(closing="]"))
            self.expect("]", opened)
            self.depth -= 1
        src = self.ctx.source(name, end_col - name.col)
        return make_layer(name.text, positional, keywords, self.ctx, name, body, src)


def parse_text(text: str) -> list[Layer]:
    """Parse one spec line (or several lines of a spec file) into layer dataclasses."""
    if len(text) > limits.MAX_SPEC_CHARS:
        raise SpecError(f"the spec is {len(text):,} characters, beyond convlab's limit of {limits.MAX_SPEC_CHARS:,}")
    if not text.strip():
        raise SpecError("empty spec: write layers such as \"conv(16,3,p=1) relu maxpool(2) flatten fc(10)\"")
    return _Parser(text).parse()


# ------------------------------------------------------------------------------------------
# YAML / JSON form: a list of layers, each a string ("relu", "res(16)x3") or a one-key mapping
#   - conv: {out: 16, k: 3, p: 1}       keyword arguments (x: N repeats; body: [...] for blocks)
#   - res: [32, 2]                      positional arguments
#   - dropout: 0.5                      a single positional argument
#   - residual: {proj: true, body: [...]}
#   - stage: [...]                      a named stage, as [ ... ] in text


def parse_structure(data: Any, where: str = "spec", _depth: int = 0) -> list[Layer]:
    """The YAML/JSON form (a list of layers, or a mapping with ``layers:``) → layer dataclasses."""
    if _depth > limits.MAX_NESTING:
        raise SpecError(f"{where}: bodies nested {_depth} deep, beyond convlab's limit of {limits.MAX_NESTING}")
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if not isinstance(data, list):
        raise SpecError(f"{where}: expected a list of layers, got {type(data).__name__}")
    out: list[Layer] = []
    total = 0
    for i, item in enumerate(data):
        here = f"{where}[{i}]"
        ctx = _Ctx(where=here)
        if isinstance(item, str):
            try:
                layers = parse_text(item)
            except SpecError as e:
                raise SpecError(f"{here}: {e}") from None
            total += weight(layers)
            if total > limits.MAX_LAYERS:
                raise SpecError(f"{here}: {_too_many(total)}")
            out.extend(layers)
            continue
        if not isinstance(item, dict) or len([k for k in item if k not in ("x",)]) != 1:
            shown = (f"a {type(item).__name__} of {len(item)} item(s)" if isinstance(item, (dict, list))
                     else repr(item)[:60])
            raise SpecError(f"{here}: each layer is a string or a mapping with one layer name, got {shown}")
        repeat = item.get("x", 1)
        kind = next(k for k in item if k != "x")
        if not isinstance(kind, str):
            raise SpecError(f"{here}: a layer name is text, got {type(kind).__name__} {str(kind)[:40]!r}")
        args = item[kind]
        positional: list = []
        keywords: list = []
        body = None
        if isinstance(args, dict):
            args = dict(args)
            repeat = args.pop("x", repeat)
            bad = next((k for k in args if not isinstance(k, str)), None)
            if bad is not None:
                raise SpecError(f"{here}: {kind}: argument names are text, got {type(bad).__name__} {str(bad)[:40]!r}")
            if "body" in args:
                body = tuple(parse_structure(args.pop("body"), f"{here}.body", _depth + 1))
            keywords = [(k, v, None) for k, v in args.items()]
        elif isinstance(args, list):
            if kind == "stage":
                body = tuple(parse_structure(args, f"{here}.stage", _depth + 1))
            else:
                positional = [(v, None) for v in args]
        elif args is not None:
            positional = [(args, None)]
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise SpecError(f"{here}: repeat x must be an integer >= 1, got {str(repeat)[:40]!r}")
        if repeat > limits.MAX_REPEAT:
            raise SpecError(f"{here}: repeat x: {limits._short(repeat)} is beyond convlab's limit of "
                            f"{limits.MAX_REPEAT:,}")
        if kind == "stage":
            if not body:
                raise SpecError(f"{here}: a stage needs a non-empty list of layers")
            layer = Stage(body=body)
        else:
            layer = make_layer(kind, positional, keywords, ctx, None, body)
        total += weight([layer]) * repeat
        if total > limits.MAX_LAYERS:
            raise SpecError(f"{here}: {_too_many(total)}")
        out.extend([layer] * repeat)
    return out
