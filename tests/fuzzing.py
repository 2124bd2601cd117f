"""The fuzz campaign: generated specs (text, YAML, JSON, files), command lines, playground calls and corrupted
dataset and run files, each run under a time limit, in a process with an address-space limit.

Every call may fail only with a ConvlabError (the command line: exit 1 or 2, one ``convlab: error:`` line, no
traceback). A foreign exception, a call over the time limit (a hang), a file created outside the campaign's
own folder, or the marker file that a payload would create if convlab executed it, is a finding.

    python tests/fuzzing.py --examples 50000 --seed 1 --json out.json   # a campaign (run it under nice -n 19)

``tests/test_fuzz.py`` runs a small fixed budget of the same targets in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

# A hang is a call over TIME_LIMIT_S of CPU time (so a loaded machine does not fake one), or over WALL_LIMIT_S of
# wall time (a call blocked on something, burning no CPU).
TIME_LIMIT_S = float(os.environ.get("CONVLAB_FUZZ_TIME_LIMIT", "2.0"))
WALL_LIMIT_S = float(os.environ.get("CONVLAB_FUZZ_WALL_LIMIT", "60.0"))
MEMORY_LIMIT = int(os.environ.get("CONVLAB_FUZZ_MEMORY", str(3 << 30)))  # address space of the worker, bytes


class Hang(BaseException):
    """Raised by the alarm when one call runs past the time limit (a BaseException: no handler swallows it)."""


def _alarm(signum, frame):
    raise Hang()


# ---------------------------------------------------------------------------------------------------
# generators (plain random.Random, so a campaign of any size is one loop and a seed replays it exactly)

VOCAB = ["conv", "dwconv", "sepconv", "bn", "relu", "sigmoid", "tanh", "gelu", "silu", "relu6", "maxpool", "avgpool",
         "gap", "flatten", "fc", "linear", "dropout", "res", "bottleneck", "residual", "input", "dense", "pool",
         "conv2d", "stage", "x", "auto"]
KEYS = ["k", "s", "p", "d", "groups", "bias", "out", "in", "mult", "shortcut", "proj", "ceil", "dw_bias", "kernel",
        "stride", "padding", "dilation", "g", "in_features", "x", "body"]
WORDS = ["same", "valid", "true", "false", "auto", "A", "B", "none", "proj", "yes", "nan", "inf"]
ZOO_SPECS = [
    "conv(16,3,p=1) relu maxpool(2) conv(32,3,p=1) relu maxpool(2) flatten fc(128) relu fc(10)",
    "conv(16,3,p=1,bias=false) bn relu res(16)x3 res(32,s=2) res(32)x2 res(64,s=2) res(64)x2 gap flatten fc(10)",
    "input(1,28,28) conv(6,5,p=2) sigmoid avgpool(2) conv(16,5) sigmoid avgpool(2) flatten fc(120) fc(84) fc(10)",
    "conv(32,3,s=2,p=1) bn relu dwconv(3,p=1) sepconv(64,3,p=1) residual[conv(64,3,p=1) bn] gap flatten fc(10)",
    "conv(8,3x5,s=1x2,p=same,d=2) residual(proj)[conv(16,3,s=2,p=1) bn relu] bottleneck(4,2) gap flatten dropout(0.2) fc(5)",
]


def _int(r: random.Random):
    roll = r.random()
    if roll < 0.55:
        return r.randint(0, 12)
    if roll < 0.7:
        return r.randint(-5, 300)
    if roll < 0.8:
        return r.choice([2**31 - 1, 2**31, 2**63, 2**64, 10**12, 999999999, 100000000])
    if roll < 0.9:
        return int("9" * r.choice([11, 20, 400, 4300]))  # str() of longer ones is refused by Python itself
    return r.randint(-(10**6), 10**6)


def _value(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.6:
        return str(_int(r))
    if roll < 0.7:
        return f"{_int(r)}x{_int(r)}"
    if roll < 0.8:
        return r.choice(["0.5", "1e999", "-0.1", ".3", "1.", "2e5", "nan", "1e-9", "9" * 4301, "9" * 6000])
    return r.choice(WORDS + KEYS)


# Each sequence nests ~1.1 others on average (a supercritical branching process), so nesting is capped here: past
# a few levels a generated spec grows to megabytes and the campaign measures its own generator. spec_text's
# explicit deep-nesting inputs (40 to 3000 levels) test the parser's depth limits instead.
MAX_NEST = 5


def _layer(r: random.Random, depth: int) -> str:
    name = r.choice(VOCAB) if r.random() < 0.9 else "".join(r.choice("abcxyz_09") for _ in range(r.randint(1, 300)))
    text = name
    if r.random() < 0.6:
        args = []
        for _ in range(r.randint(0, 5)):
            args.append(f"{r.choice(KEYS)}={_value(r)}" if r.random() < 0.4 else _value(r))
        text += "(" + ",".join(args) + ")"
    if r.random() < 0.15 and depth < MAX_NEST:
        text += "[" + _seq(r, depth + 1) + "]"
    return text


def _seq(r: random.Random, depth: int = 0) -> str:
    items = []
    for _ in range(r.randint(1, 6)):
        roll = r.random()
        if roll < 0.12 and depth < MAX_NEST:
            item = "(" + _seq(r, depth + 1) + ")"
        elif roll < 0.2 and depth < MAX_NEST:
            item = "[" + _seq(r, depth + 1) + "]"
        else:
            item = _layer(r, depth)
        if r.random() < 0.2:
            item += r.choice([" x", "x", "×", " x "]) + str(abs(_int(r)))
        items.append(item)
    return r.choice([" ", " -> ", ", ", "\n", " → "]).join(items)


def _mutate(r: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(r.randint(1, 6)):
        op = r.random()
        i = r.randint(0, max(0, len(chars) - 1))
        if op < 0.35 and chars:
            del chars[i]
        elif op < 0.7:
            chars.insert(i, r.choice("()[],=x×→-0123456789 \n#.\\/\0é" + "\x1f\x8b"))
        elif chars:
            chars[i] = r.choice("()[]0987abcx,")
    return "".join(chars)


def spec_text(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.45:
        return _seq(r)
    if roll < 0.75:
        return _mutate(r, r.choice(ZOO_SPECS))
    if roll < 0.85:
        deep = r.choice([40, 51, 200, 3000])
        open_, close = r.choice([("(", ")"), ("[", "]"), ("residual[", "]")])
        return open_ * deep + "relu" + close * deep
    if roll < 0.92:
        return "".join(chr(r.randint(0, 0x2FFF)) for _ in range(r.randint(0, 60)))
    return r.choice(["relu x 1000000000", "(relu x 10000) x 10000", "relu x" + "9" * 5000, "conv(" + "9" * 5000 + ",3)",
                     "x" * 300 + ".spec", "a" * 300 + ":b", "fc(10,in=auto)", "input(1,100000000,100000000) "
                     "residual[conv(1,3)]", "input(1,1000,1000) flatten fc(1000000)", "", " ", "#", "->", "x3"])


def _json_value(r: random.Random, depth: int = 0):
    roll = r.random()
    if depth > 8 or roll < 0.3:
        return r.choice([_int(r), 0.5, -1.0, float("inf"), True, False, None, r.choice(WORDS + KEYS + VOCAB),
                         [1, 2], "3x5", {}])
    if roll < 0.6:
        return [_json_value(r, depth + 1) for _ in range(r.randint(0, 4))]
    keys = [r.choice(VOCAB + KEYS)] + ([r.choice(KEYS)] if r.random() < 0.3 else [])
    if r.random() < 0.1:
        keys.append(r.choice([1, 2.5, None, True]))  # non-string keys (YAML allows them)
    return {k: _json_value(r, depth + 1) for k in keys}


def structure(r: random.Random):
    roll = r.random()
    if roll < 0.5:
        return [_json_value(r) if r.random() < 0.5 else {r.choice(VOCAB): _json_value(r, 4)}
                for _ in range(r.randint(0, 5))]
    if roll < 0.6:
        deep: object = ["relu"]
        for _ in range(r.choice([10, 60, 300])):
            deep = [{"stage": deep}] if r.random() < 0.5 else [{"residual": {"body": deep}}]
        return deep
    if roll < 0.7:
        return {"layers": _json_value(r)}
    return _json_value(r)


def _size_text(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.6:
        return str(_int(r))
    if roll < 0.8:
        return f"{_int(r)},{_int(r)}"
    return r.choice(["same", "valid", "abc", "", "3,", ",", "1,2,3", "1.5", "-0", "+3", "٣", "3x4"])


def cli_argv(r: random.Random) -> list[str]:
    cmd = r.choice(["size", "solve", "chain", "summary", "check", "draw", "zoo", "data", "tour", "bogus", None])
    if cmd is None:
        return [r.choice(["--help", "--version", "-x", ""])][: r.randint(0, 1)]
    argv = [cmd]
    if cmd == "size":
        argv.append(r.choice(["conv", "pool", "convT", "x"]))
        for flag in r.sample(["--in", "--kernel", "--stride", "--padding", "--dilation", "--output-padding"],
                             r.randint(1, 6)):
            argv += [flag, _size_text(r)]
        argv += r.sample(["--ceil", "--json"], r.randint(0, 2))
    elif cmd == "solve":
        for flag in r.sample(["--in", "--out", "--kernel", "--stride", "--padding", "--dilation", "--limit"],
                             r.randint(1, 7)):
            argv += [flag] + [str(_int(r)) for _ in range(r.randint(1, 3) if flag not in ("--in", "--out", "--limit")
                                                           else 1)]
        argv += r.sample(["--all", "--json"], r.randint(0, 2))
    elif cmd == "chain":
        argv += ["--in", _size_text(r)]
        steps = []
        for _ in range(r.randint(1, 5)):
            step = r.choice(["", "conv:", "pool:", "convT:", "maxpool", "deconv:"]) + f"k{abs(_int(r))}"
            for part in ("s", "p", "d", "op"):
                if r.random() < 0.3:
                    step += f"{part}{abs(_int(r))}"
            if r.random() < 0.2:
                step += "c"
            steps.append(step)
            if r.random() < 0.2:
                steps.append(f"x{abs(_int(r))}")
        argv += steps + r.sample(["--verbose", "--json"], r.randint(0, 2))
    elif cmd in ("summary", "check"):
        text = spec_text(r)
        argv.append(text)
        if r.random() < 0.8:
            argv += ["--input", r.choice([f"{r.randint(1, 4)},{r.randint(1, 40)},{r.randint(1, 40)}",
                                          f"{_int(r)},{_int(r)},{_int(r)}", "3,32", "a,b,c", "1x28x28"])]
        for flag in r.sample(["--batch", "--depth", "--num-classes"], r.randint(0, 3)):
            argv += [flag, str(_int(r))]
        if cmd == "summary" and r.random() < 0.5:
            argv += ["--format", r.choice(["table", "markdown", "csv", "json", "html", "xml"])]
        if r.random() < 0.3:
            argv.append("--json")
    elif cmd == "draw":
        argv.append(spec_text(r) if r.random() < 0.8 else r.choice(["resnet20", "lenet", "mobilenet", "nothing"]))
        argv += ["--out", "-", "--format", r.choice(["json", "dot", "svg", "svg", "png", "xml"])]
        argv += ["--view", r.choice(["graph", "volumes", "volumes", "cubes"])]
        for flag in r.sample(["--input", "--depth", "--num-classes", "--block"], r.randint(0, 3)):
            argv += [flag, r.choice([f"{r.randint(1, 4)},{r.randint(1, 40)},{r.randint(1, 40)}", str(_int(r)),
                                     "conv1", "layer1,fc", ""])]
    elif cmd == "zoo":
        argv += [r.choice(["*", "resnet*", "nothing*", "[", "lenet"])][: r.randint(0, 1)]
    elif cmd == "data":
        argv += [r.choice(["list", "info"]), r.choice(["fashion-mnist", "mnist", "cifar10", "cifar100", "folder:nowhere",
                                                       "bogus"])]
        argv += ["--data-dir", "fuzzdata"]
    elif cmd == "tour":
        argv += [r.choice(["edges", "parameters", "bogus", ""])][: r.randint(0, 1)]
    return argv


def _is_import(text: str) -> bool:
    """``package.module:attr`` on a trusted command line is imported by design; the CLI fuzz leaves those out."""
    from convlab.factory import _IMPORT

    return bool(_IMPORT.match(text.strip()))


# ---------------------------------------------------------------------------------------------------
# corrupted files


def _mutate_bytes(r: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    roll = r.random()
    if roll < 0.3 and b:
        del b[r.randint(0, len(b) - 1):]  # truncated
    elif roll < 0.6:
        for _ in range(r.randint(1, 8)):
            if b:
                b[r.randint(0, len(b) - 1)] = r.randint(0, 255)
    elif roll < 0.8:
        b[r.randint(0, len(b)):r.randint(0, len(b))] = bytes(r.randint(0, 255) for _ in range(r.randint(1, 20)))
    else:
        b = bytearray(r.randbytes(r.randint(0, 200)))
    return bytes(b)


class _Payload:
    """A pickle that would create the marker file if anything unpickled it without restriction."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def idx_files(r: random.Random, folder: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from minidata import make_idx_dataset

    make_idx_dataset(folder, n_train=8, n_test=4, compress=r.random() < 0.5, seed=r.randint(0, 9))
    victim = r.choice(sorted(folder.iterdir()))
    roll = r.random()
    if roll < 0.6:
        victim.write_bytes(_mutate_bytes(r, victim.read_bytes()))
    elif roll < 0.8:  # a header promising a huge array
        dims = [r.choice([0, 1, 28, 2**31, 2**32 - 1]) for _ in range(r.randint(0, 6))]
        victim.write_bytes(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + b"\0" * 16)
    else:
        import gzip

        victim.write_bytes(b"\x1f\x8b" + _mutate_bytes(r, gzip.compress(np.zeros(64, np.uint8).tobytes()))[2:])


def cifar_files(r: random.Random, folder: Path, marker: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from minidata import make_cifar10

    make_cifar10(folder, per_batch=2)
    name = r.choice(["data_batch_1", "test_batch", "batches.meta"])
    roll = r.random()
    p = folder / name
    if roll < 0.3:
        p.write_bytes(_mutate_bytes(r, p.read_bytes()))
    elif roll < 0.45:
        p.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    else:
        value = r.choice([_json_value(r), np.zeros((2, 3072), np.float32), np.zeros((2, 3071), np.uint8),
                          [[1, 2], [3]], 5, "labels", np.array([0.5, 1.0]), [0.5, 1.0], [10**30, 1], None])
        key = r.choice([b"labels", b"data", b"label_names", b"batch_label"])
        d = {b"labels": [0, 1], b"data": np.zeros((2, 3072), np.uint8), b"label_names": [b"a"] * 10}
        d[key] = value
        p.write_bytes(pickle.dumps(d, protocol=2))


def image_folder(r: random.Random, folder: Path) -> None:
    from PIL import Image

    for c in r.sample(["a", "b", ".ipynb_checkpoints", "c d", ".hidden"], r.randint(1, 4)):
        for i in range(r.randint(0, 3)):
            path = folder / c / f"{i}.{r.choice(['png', 'jpg', 'bmp', 'txt'])}"
            path.parent.mkdir(parents=True, exist_ok=True)
            size = r.choice([(8, 8), (8, 8), (9, 7), (1, 1)])
            buf = io.BytesIO()
            Image.new(r.choice(["L", "RGB", "RGBA", "1"]), size).save(buf, format="PNG")
            data = buf.getvalue()
            path.write_bytes(_mutate_bytes(r, data) if r.random() < 0.3 else data)


def run_files(r: random.Random, folder: Path, marker: Path) -> None:
    """A run directory whose files are garbage: what eval/compare/report read."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"epoch": 1, "train_loss": 0.5, "train_acc": 0.5, "test_loss": 0.5, "test_acc": 0.5,
                         "lr": 0.1, "images_per_s": 1.0, "epoch_s": 1.0, "wall_s": 1.0})]
    if r.random() < 0.5:
        lines.append(r.choice(["{", "null", "[1,2]", '{"epoch": "three"}', "\0\0", json.dumps(_json_value(r))]))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    import yaml

    cfg = r.choice([{"model": "relu", "data": "fashion-mnist", "epochs": "three"}, ["a", "b"], "model: [",
                    {"model": "tempfile:mkdtemp"}, _json_value(r), "!!python/object/apply:os.system ['touch x']"])
    (folder / "config.yaml").write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    roll = r.random()
    if roll < 0.3:
        (folder / "last.pt").write_bytes(r.randbytes(r.randint(0, 100)))
    elif roll < 0.5:
        (folder / "last.pt").write_bytes(pickle.dumps(_Payload(marker)))
    else:
        buf = io.BytesIO()
        torch.save(r.choice([{"model": {}}, {"config": "x"}, {"config": {"model": "tempfile:mkdtemp"}}, [1, 2],
                             {"w": torch.zeros(2)}]), buf)
        (folder / "last.pt").write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------------
# the targets


class Campaign:
    """Runs targets, each under the time limit; counts inputs and keeps every finding."""

    def __init__(self, root: Path):
        self.root = root
        self.marker = root / "MARKER"
        self.inputs = Counter()
        self.findings: list[dict] = []
        self.slowest = 0.0
        signal.signal(signal.SIGALRM, _alarm)
        signal.signal(signal.SIGPROF, _alarm)

    def call(self, target: str, what, fn, *args):
        from convlab.errors import ConvlabError

        self.inputs[target] += 1
        signal.setitimer(signal.ITIMER_PROF, TIME_LIMIT_S)
        signal.setitimer(signal.ITIMER_REAL, WALL_LIMIT_S)
        c0 = time.process_time()
        try:
            fn(*args)
        except ConvlabError:
            pass
        except Hang:
            self._found(target, "hang", what, f"over {TIME_LIMIT_S} s of CPU or {WALL_LIMIT_S} s of wall time "
                                              f"({time.process_time() - c0:.1f} s CPU)")
        except (Exception, RecursionError, MemoryError) as e:  # a foreign exception: the finding
            self._found(target, type(e).__name__, what, traceback.format_exc(limit=-4))
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.slowest = max(self.slowest, time.process_time() - c0)
        if self.marker.exists():
            self._found(target, "marker", what, "a payload was executed")
            self.marker.unlink()

    def _found(self, target, kind, what, detail):
        shown = repr(what)
        self.findings.append({"target": target, "kind": kind, "input": shown[:400] + ("…" if len(shown) > 400 else ""),
                              "detail": detail[-1500:]})

    # -- one input per target --------------------------------------------------------------------

    def spec(self, r: random.Random):
        from convlab.analyze.checks import check

        text = spec_text(r)
        shape = r.choice([None, (1, 28, 28), (3, 32, 32), (r.randint(1, 8), r.randint(1, 64), r.randint(1, 64)),
                          (1, _int(r), _int(r))])
        self.call("spec", (text, shape), self._check_and_build, check, text, shape)

    @staticmethod
    def _check_and_build(check, spec, shape):
        findings, s = check(spec, shape)
        if s is not None and not any(f.level == "error" for f in findings) and s.params <= 200_000 and \
                s.activation_bytes <= 64 << 20:
            from convlab import build

            net = build(spec, shape)
            got = sum(p.numel() for p in net.parameters()) + sum(b.numel() for n, b in net.named_buffers()
                                                                  if not n.endswith("num_batches_tracked"))
            assert got == s.params, (got, s.params)  # torch counts what the plan promised

    def structure(self, r: random.Random):
        from convlab import parse

        data = structure(r)
        self.call("yaml-json", data, parse, data)

    def spec_file(self, r: random.Random):
        from convlab import parse

        suffix = r.choice([".yaml", ".yml", ".json", ".spec", ".txt"])
        path = self.root / f"model{suffix}"
        roll = r.random()
        if roll < 0.3:
            data = r.randbytes(r.randint(0, 300))
        elif roll < 0.6:
            data = json.dumps(structure(r), default=str).encode()
            if r.random() < 0.5:
                data = _mutate_bytes(r, data)
        elif roll < 0.7:
            data = b"- !!python/object/apply:os.system ['touch " + str(self.marker).encode() + b"']\n"
        elif roll < 0.8:
            data = ("[" * 100000 + "]" * 100000).encode()
        else:
            data = spec_text(r).encode("utf-8", "surrogatepass")
        path.write_bytes(data)
        self.call("spec-file", (suffix, data[:200]), parse, path)

    def cli(self, r: random.Random):
        argv = cli_argv(r)
        if any(_is_import(a) for a in argv):
            return
        self.call("cli", argv, self._main, argv)

    @staticmethod
    def _main(argv):
        from convlab.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's --help and --version
                code = e.code if isinstance(e.code, int) else 0
                assert code == 0, f"SystemExit({e.code!r})"
        text = err.getvalue()
        assert code in (0, 1, 2), f"exit code {code}"
        assert "Traceback" not in text and "Traceback" not in out.getvalue(), text[-500:]
        if code == 2 and argv and argv[0] not in ("--help",):
            assert text.startswith("convlab: error: ") or "usage:" in out.getvalue() + text, text[:300]

    def api(self, r: random.Random):
        from convlab.serve import api

        route = r.choice(["summary", "draw", "explain", "solve", "zoo", "nothing"])
        params = {"spec": spec_text(r) if r.random() < 0.8 else json.dumps(structure(r), default=str),
                  "input": r.choice(["", "3,32,32", "1,28,28", f"{_int(r)},{_int(r)},{_int(r)}", "a"]),
                  "format": r.choice([None, "text", "yaml", "json", "xml"]), "layer": r.choice(["conv1", "", "fc"]),
                  "in": str(_int(r)), "out": str(_int(r)), "view": r.choice(["graph", "volumes", "", "x"]),
                  "depth": r.choice(["", "0", "1", "2", str(_int(r)), "a"])}
        self.call("api", (route, params), self._api, api, route, params)

    @staticmethod
    def _api(api, route, params):
        status, body = api.handle(route, params)
        assert status in (200, 400, 404) and isinstance(body, dict)
        json.dumps(body)

    def data(self, r: random.Random):
        import shutil

        from convlab.data.registry import load

        folder = self.root / "fuzzdata"
        shutil.rmtree(folder, ignore_errors=True)
        kind = r.choice(["idx", "cifar", "folder"])
        if kind == "idx":
            idx_files(r, folder)
            self.call("data", kind, load, "fashion-mnist", folder, False)
        elif kind == "cifar":
            cifar_files(r, folder, self.marker)
            self.call("data", kind, load, "cifar10", folder, False)
        else:
            image_folder(r, folder)
            self.call("data", kind, load, f"folder:{folder}")

    def runs(self, r: random.Random):
        import shutil

        folder = self.root / "fuzzrun"
        shutil.rmtree(folder, ignore_errors=True)
        run_files(r, folder, self.marker)
        argv = r.choice([["report", str(folder)], ["compare", str(folder)], ["eval", str(folder), "--device", "cpu"],
                         ["eval", str(folder / "last.pt"), "--device", "cpu"]])
        self.call("run-files", argv, self._main, argv)


TARGETS = ("spec", "structure", "spec_file", "cli", "api", "data", "runs")
WEIGHTS = (30, 15, 8, 25, 12, 6, 4)


def campaign(examples: int, seed: int, targets=TARGETS, progress: bool = False) -> dict:
    """Run ``examples`` generated inputs over ``targets`` in a temporary folder (the current folder meanwhile)."""
    r = random.Random(seed)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="convlab-fuzz-") as tmp:
        root = Path(tmp)
        old = os.getcwd()
        os.chdir(root)
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        os.environ.pop("CONVLAB_DATA", None)
        c = Campaign(root)
        weights = [w for t, w in zip(TARGETS, WEIGHTS) if t in targets]
        try:
            for i in range(examples):
                target = r.choices([t for t in TARGETS if t in targets], weights)[0]
                getattr(c, target)(r)
                if progress and i and i % 1000 == 0:
                    print(f"{i} inputs, {len(c.findings)} findings, {time.time() - start:.0f} s", file=sys.stderr,
                          flush=True)
        finally:
            os.chdir(old)
        stray = sorted(str(p.relative_to(root)) for p in root.iterdir()
                       if p.name not in ("fuzzdata", "fuzzrun", "cache", "MARKER") and not p.name.startswith("model."))
    return {"inputs": sum(c.inputs.values()), "by_target": dict(c.inputs), "findings": c.findings,
            "kinds": dict(Counter(f"{f['target']}:{f['kind']}" for f in c.findings)), "stray_files": stray,
            "seconds": round(time.time() - start, 1), "slowest_call_cpu_s": round(c.slowest, 3), "seed": seed,
            "time_limit_s": TIME_LIMIT_S, "wall_limit_s": WALL_LIMIT_S, "memory_limit": MEMORY_LIMIT}


def limit_memory(limit: int = MEMORY_LIMIT) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--json", metavar="FILE", help="write the result here (default: print it)")
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    limit_memory()
    result = campaign(a.examples, a.seed, tuple(a.targets.split(",")), a.progress)
    text = json.dumps(result, indent=1)
    if a.json:
        Path(a.json).write_text(text)
    print(json.dumps({k: v for k, v in result.items() if k != "findings"}, indent=1))
    for f in result["findings"][:30]:
        print(f"--- {f['target']} {f['kind']}: {f['input'][:300]}\n{f['detail'][-600:]}")
