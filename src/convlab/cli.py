"""The ``convlab`` command.

Every sub-command has ``--help`` with examples, prints data as JSON on request, exits 0 on success,
1 on a finding (``check``), and 2 on bad usage with a one-line reason. Heavy modules (torch) are
imported inside the commands that need them, so ``convlab --help`` and ``convlab size`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Callable, Sequence

from .errors import ConvlabError, UsageError

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage on one line and exits 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


# ------------------------------------------------------------------------------------------
# argument types: every integer option is read by one of these, so 0, negatives, 400-digit numbers and
# words are refused by argparse with one line (exit 2) before any command runs


def _integer(text: str, minimum: int) -> int:
    from .limits import MAX_DIGITS, MAX_INT

    t = text.strip()
    digits = t.lstrip("+-")
    if not digits.isdigit() or not digits.isascii():
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text[:30]!r}")
    if len(digits) > MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"{text[:20]!r}… has {len(digits):,} digits; convlab takes integers up to "
                                         f"{MAX_INT:,} ({MAX_DIGITS} digits)")
    value = int(t)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"{value:,} is beyond convlab's limit of {MAX_INT:,}")
    return value


def positive_int(text: str) -> int:
    """An option that counts something: an integer >= 1 (at most ``convlab.limits.MAX_INT``)."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """An option that may be zero (padding, an index, a seed): an integer >= 0."""
    return _integer(text, 0)


def _sizes(minimum: int, words: tuple[str, ...] = ()):
    """'7' -> 7; '8,8' or '8x8' -> (8, 8), each an integer >= ``minimum``; ``words`` ('same', 'valid') pass through."""

    def read(text: str):
        t = text.strip().lower()
        if t in words:
            return t
        parts = [p for p in t.replace("×", "x").replace("x", ",").split(",") if p != ""]
        if len(parts) not in (1, 2):
            raise argparse.ArgumentTypeError(f"expected an integer or H,W pair, got {text[:30]!r}")
        try:
            nums = [_integer(p, minimum) for p in parts]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e}" + (f" (in {text[:30]!r})" if len(parts) > 1 else "")) from None
        return nums[0] if len(nums) == 1 else tuple(nums)

    return read


_size_arg = _sizes(1)  # sizes, kernels, strides, dilations
_pad_arg = _sizes(0, ("same", "valid"))  # paddings: 0 allowed, 'same'/'valid' for conv
_nonneg_size_arg = _sizes(0)  # output_padding


def _out_dir(text: str) -> str:
    """An output folder: it may not exist yet, but it may not be a file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is a file, not a folder; give a folder for the output")
    return text


def _suffixed(*suffixes: str):
    def read(text: str) -> str:
        if not text.lower().endswith(suffixes):
            raise argparse.ArgumentTypeError(f"{text[:80]!r}: convlab writes {' or '.join(suffixes)} here; "
                                             f"name the file e.g. out{suffixes[0]}")
        if Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"{text[:80]!r} is a folder; give a file name")
        return text

    return read


DATA_DIR_HELP = ("look for the dataset here first (default: $CONVLAB_DATA, ~/.cache/convlab, ./data, then the "
                 "system location)")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------------------------------
# size / solve / chain


def cmd_size(args) -> int:
    from . import arith

    if args.op == "conv":
        if args.output_padding or args.ceil:
            raise UsageError("--output-padding is for convT and --ceil for pool, not conv")
        e = arith.explain_conv(args.input, args.kernel, 1 if args.stride is None else args.stride, args.padding,
                               args.dilation)
    elif args.op == "pool":
        if args.output_padding:
            raise UsageError("--output-padding is for convT, not pool")
        if isinstance(args.padding, str):
            raise UsageError("pool padding must be a number")
        e = arith.explain_pool(args.input, args.kernel, args.stride, args.padding, args.dilation, args.ceil)
    else:
        if isinstance(args.padding, str):
            raise UsageError("convT padding must be a number")
        if args.ceil:
            raise UsageError("--ceil is for pool, not convT")
        e = arith.explain_conv_transpose(args.input, args.kernel, 1 if args.stride is None else args.stride,
                                         args.padding, args.dilation,
                                         args.output_padding)
    if args.json:
        _print_json(e.to_dict())
    else:
        print(e)
    return EXIT_OK


def cmd_solve(args) -> int:
    from . import arith

    kw = {}
    if args.kernel:
        kw["kernels"] = args.kernel
    if args.stride:
        kw["strides"] = args.stride
    if args.dilation:
        kw["dilations"] = args.dilation
    if args.padding is not None:
        kw["paddings"] = args.padding
    sols = arith.solve(args.input, args.output, **kw)
    if args.json:
        _print_json([s.to_dict() for s in sols])
        return EXIT_OK
    if not sols:
        print(f"no (kernel, stride, padding, dilation) within the bounds maps {args.input} to {args.output}; "
              f"widen them with --kernel/--stride/--dilation, or go there in two steps")
        return EXIT_OK
    shown = sols if args.all else sols[: args.limit]
    print(f"{args.input} → {args.output}: {len(sols)} settings"
          + (f" (showing {len(shown)}; --all for every one)" if len(shown) < len(sols) else ""))
    print(f"  {'kernel':>6} {'stride':>6} {'padding':>7} {'dilation':>8}  note")
    for s in shown:
        if s.dropped:
            note = f"drops {s.dropped} input row(s)"
        elif s.remainder:
            note = f"exact (last {s.remainder} padding row(s) unread)"
        else:
            note = "exact"
        if s.same_style:
            note += ", centred padding"
        print(f"  {s.kernel:>6} {s.stride:>6} {s.padding:>7} {s.dilation:>8}  {note}")
    return EXIT_OK


def cmd_chain(args) -> int:
    from . import arith

    steps = arith.parse_chain(" ".join(args.steps))
    exps = arith.explain_chain(args.input, steps)
    if args.json:
        _print_json([e.to_dict() for e in exps])
        return EXIT_OK
    fmt = lambda v: f"{v[0]}×{v[1]}" if isinstance(v, tuple) else str(v)  # noqa: E731
    sizes = [args.input] + [e.output for e in exps]
    print("sizes: " + " → ".join(fmt(s) for s in sizes))
    for i, (st, e) in enumerate(zip(steps, exps), 1):
        if args.verbose:
            print(f"\nstep {i}: {st.text}")
            print(e)
            continue
        d = e.dims[0]
        warn = ""
        if any(x.dropped for x in e.dims):
            warn = "  ! " + "; ".join(f"{x.dropped} row(s) unread" + (f" ({x.fix})" if x.fix else "")
                                      for x in e.dims if x.dropped)
        print(f"  {i:>2}. {st.text:<12} {d.substituted} = {fmt(e.output)}{warn}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------
# summary / check / zoo


def _shape_arg(text: str) -> tuple[int, int, int]:
    parts = [p for p in text.replace("×", ",").replace("x", ",").split(",") if p.strip()]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three positive integers C,H,W (e.g. 3,32,32), got {text[:40]!r}")
    try:
        shape = tuple(_integer(p, 1) for p in parts)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 3,32,32): {e}") from None
    return shape


def _summarise(args):
    from .analyze import summary
    from .factory import resolve_model

    ref = resolve_model(args.model)  # resolved once: the summary reads the ModelRef
    return summary(ref, args.input, batch_size=args.batch, depth=args.depth, num_classes=args.num_classes)


def cmd_summary(args) -> int:
    s = _summarise(args)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(s.to_json())
    elif fmt == "markdown":
        print(s.to_markdown())
    elif fmt == "csv":
        print(s.to_csv(), end="")
    elif fmt == "html":
        print(s.to_html())
    else:
        s.render()
    return EXIT_OK


def cmd_draw(args) -> int:
    import re

    from .drawing import FORMATS, draw
    from .errors import UsageError

    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lstrip(".").lower() if args.out else ""
        fmt = suffix if suffix in FORMATS else "svg"
    if args.out == "-":
        if fmt in ("png", "pdf"):
            raise UsageError(f"--out - writes text to the terminal; --format {fmt} needs a file name")
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth must be 0 or more, got {args.depth}")
    d = draw(args.model, args.input, view=args.view, depth=args.depth, blocks=args.block,
             num_classes=args.num_classes)
    d.note = lambda text: print(f"convlab: {text}", file=sys.stderr, flush=True)
    if args.out == "-":
        sys.stdout.write(d.render(fmt).decode("utf-8"))
        return EXIT_OK
    if args.out:
        out = Path(args.out)
    else:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", d.label).strip("-.")[:60] or "model"
        part = "-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", args.block).strip("-.")[:40] if args.block else ""
        out = Path(f"{stem}{part}-{args.view}.{fmt}")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; convlab does not overwrite it — give another --out or add --force")
    d.save(out, fmt)
    print(f"wrote {out} ({fmt}, {args.view} view)")
    return EXIT_OK


def cmd_check(args) -> int:
    from .analyze.checks import Finding, warnings_for
    from .errors import ShapeError

    try:
        s = _summarise(args)
        findings = warnings_for(s)
    except ShapeError as e:
        s = None
        findings = [Finding("error", "shape", "", str(e), "")]
    errors = [f for f in findings if f.level == "error"]
    if args.json:
        _print_json({"ok": not errors, "findings": [f.to_dict() for f in findings],
                     "params": s.params if s else None, "macs": s.macs if s else None})
    else:
        for f in findings:
            print(f)
        if not findings:
            print(f"ok: {args.model} runs on input {','.join(map(str, s.input_shape))} → output "
                  f"{s.output_shape}; {s.params:,} params, {s.macs:,} MACs; no warnings")
        elif not errors:
            print(f"ok with {len(findings)} warning(s): the model runs; output {s.output_shape}")
    return EXIT_FINDING if errors else EXIT_OK


def cmd_zoo(args) -> int:
    from . import zoo
    from .analyze import render, summary

    names = zoo.list_models(args.pattern)
    if not names:
        raise UsageError(f"no zoo model matches {args.pattern!r}; 'convlab zoo' lists them all")
    rows = []
    for n in names:
        e = zoo.get(n)
        s = summary(n)
        rows.append({"name": n, "family": e.family, "input": list(e.input_shape), "classes": e.num_classes,
                     "params": s.trainable_params, "non_trainable": s.non_trainable_params, "macs": s.macs,
                     "published_params": e.params, "source": e.source, "note": e.note,
                     "options": {k: v[1] for k, v in e.overrides.items()}})
    if args.json:
        _print_json(rows)
        return EXIT_OK
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAVY)
    for h in ("model", "family", "input", "params", "MACs", "options", "source"):
        t.add_column(h, justify="right" if h in ("params", "MACs") else "left", no_wrap=h != "source",
                     overflow="ellipsis", max_width=None if h != "source" else 60)
    for r in rows:
        mark = "" if r["published_params"] in (None, r["params"]) else " (!)"
        t.add_row(r["name"], r["family"], "×".join(map(str, r["input"])), f"{r['params']:,}{mark}",
                  render.si(r["macs"], digits=2), ", ".join(f"{k}={v}" for k, v in r["options"].items()), r["source"])
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(t)
    print("params: trainable parameters at the default input and class count (BatchNorm statistics not included); "
          "options: convlab summary resnet20:shortcut=B")
    return EXIT_OK


def cmd_data(args) -> int:
    from .data import registry

    if args.action == "list":
        rows = []
        for name, src in registry.SOURCES.items():
            where = registry.find(name, args.data_dir)
            rows.append({"name": name, "found": str(where) if where else None, "classes": len(src.classes) or None,
                         "get": src.install_hint})
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                state = f"found at {r['found']}" if r["found"] else f"not found ({r['get']})"
                print(f"{r['name']:<14} {state}")
            print("folder:PATH    a folder with one sub-folder of images per class (needs Pillow)")
        return EXIT_OK
    if not args.name:
        raise UsageError(f"convlab data {args.action} needs a dataset NAME (see 'convlab data list')")
    if args.action == "fetch":
        folder = registry.fetch(args.name, args.data_dir, progress=not args.json)
        if args.json:
            _print_json({"name": args.name, "folder": str(folder)})
        else:
            print(f"{args.name}: {folder}")
        return EXIT_OK
    ds = registry.load(args.name, args.data_dir, download=False)
    info = ds.describe()
    if not args.name.startswith("folder:"):
        info["files"] = registry.verify(args.name, args.data_dir)
    if args.json:
        _print_json(info)
        return EXIT_OK
    print(f"{info['name']}: {info['root']}")
    print(f"  images: {info['train']:,} train + {info['test']:,} test, each {'×'.join(map(str, info['shape']))} uint8")
    print(f"  classes ({len(info['classes'])}): {', '.join(info['classes'][:12])}"
          + (" ..." if len(info["classes"]) > 12 else ""))
    print(f"  mean {info['mean']}  std {info['std']}  (per channel, [0, 1] units, training split)")
    for f, st in info.get("files", {}).items():
        ok = {True: "md5 ok", False: "MD5 MISMATCH", None: "no reference checksum"}[st["md5_ok"]]
        print(f"  {f:<26} {st['bytes']:>12,} bytes  {ok}")
    return EXIT_OK


def cmd_train(args) -> int:
    from dataclasses import fields

    from .training import TrainConfig, train

    base = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    # every TrainConfig field that has a flag of the same name and was given (flags left out are None)
    over = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
            if f.name != "model" and getattr(args, f.name, None) is not None}
    if args.model:
        over["model"] = args.model
    if args.option:
        from . import zoo

        items = {}
        for o in args.option:
            if "=" not in o:
                raise UsageError(f"--option {o!r}: write key=value (e.g. --option shortcut=B)")
            k, v = o.split("=", 1)
            items[k] = v
        name = (over.get("model") or base.model).partition(":")[0]
        if not zoo.is_zoo_name(name):
            raise UsageError("--option applies to zoo models only")
        over["overrides"] = zoo.parse_overrides(zoo.get(name), items)
    cfg = TrainConfig.from_dict({**base.to_dict(), **over})
    if not args.resume and not args.model and not args.config:
        raise UsageError("MODEL is required (e.g. convlab train fastcnn --data fashion-mnist)")
    run = train(config=cfg, resume=args.resume, progress=False if args.no_progress else None)
    return 130 if run.interrupted else EXIT_OK


def cmd_eval(args) -> int:
    from .training.report import evaluate_run

    result = evaluate_run(args.run, data=args.data, data_dir=args.data_dir, split=args.split, device=args.device,
                          out=args.out, model=args.model)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{result['model']} on {result['data']} ({result['split']}, {result['n']:,} images): "
          f"accuracy {100 * result['accuracy']:.2f}%  (checkpoint {result['checkpoint']})")
    width = max(len(c) for c in result["classes"])
    for c, acc in zip(result["classes"], result["per_class_accuracy"]):
        print(f"  {c:<{width}}  {100 * acc:6.2f}%  {'█' * int(round(acc * 30))}")
    print("confusion matrix (rows: true, columns: predicted):")
    for c, row in zip(result["classes"], result["confusion"]):
        print(f"  {c[:width]:<{width}} " + " ".join(f"{v:5d}" for v in row))
    print(f"saved: {result['confusion_png']} and {result['json']}")
    return EXIT_OK


def cmd_viz(args) -> int:
    from .training.report import load_run, predict
    from .training.rundir import RunDir
    from .viz import check_layers, conv_layers, plot_feature_maps, plot_filters

    if args.channels < 1:
        raise UsageError(f"--channels must be >= 1, got {args.channels}")
    if args.image and args.index is not None:
        raise UsageError("give --image FILE or --index N, not both")
    r = load_run(args.run, data=args.data, data_dir=args.data_dir, device=args.device, model=args.model)
    target = RunDir(Path(args.out) if args.out else r.run_dir)
    target.path.mkdir(parents=True, exist_ok=True)
    saved = []
    after_act = args.after == "activation"
    if not after_act:
        check_layers(r.model, args.layer or [])
    if args.what in ("filters", "both"):
        layer = next((n for n in args.layer or [] if n in conv_layers(r.model)), None)  # else the first conv
        name = layer or next(iter(conv_layers(r.model)), "conv")
        saved.append(plot_filters(r.model, target.filters_png(name), layer=layer))
    if args.what in ("maps", "both"):
        from . import inspect as ins

        classes = r.ds.classes
        if args.image:
            c, h, w = r.ds.input_shape(r.cfg.resize)
            img = ins.load_image(args.image, c, r.ds.mean, r.ds.std, size=(h, w), invert=args.invert,
                                 reference=r.ds.train_x[:1000])
            print("; ".join(img.steps))
            one, shown, stem, label = img.x, img.shown, Path(args.image).stem, None
            probs = ins.predict(r.model, one)
        else:
            index = args.index or 0
            p = predict(r, index, args.split)
            one, shown, stem, label, probs = p.input, p.image, f"{args.split}-{index}", p.label, p.probs
        pred = int(probs.argmax())
        top = probs.topk(min(3, len(probs)))
        if label is None:
            print(f"{Path(args.image).name}: predicted {classes[pred]} ({100 * float(probs[pred]):.1f}%); top: "
                  + ", ".join(f"{classes[int(i)]} {100 * float(v):.1f}%" for v, i in zip(top.values, top.indices)))
            what = f"{Path(args.image).name}, predicted {classes[pred]} {100 * float(probs[pred]):.0f}%"
        else:
            print(f"{args.split} image {index}: {classes[label]}, predicted {classes[pred]} "
                  f"({100 * float(probs[pred]):.1f}%)")
            what = f"{args.split} image {index} ({classes[label]}, predicted {classes[pred]})"
        maps = None
        if after_act:
            acts = ins.activation_maps(r.model, one)
            if args.layer:
                missing = [n for n in args.layer if n not in acts]
                if missing:
                    from .errors import did_you_mean

                    raise UsageError(f"no activation layer {missing[0]!r}{did_you_mean(missing[0], acts)}; the model's "
                                     f"activation layers: {', '.join(acts)}")
                acts = {n: acts[n] for n in args.layer}
            maps = {n: m for n, m in acts.items() if m.dim() == 3} or acts
            for n, m in maps.items():
                if m.dim() == 3:
                    blank = sum(not bool(m[k].any()) for k in range(m.shape[0]))
                    print(f"  {n}: {m.shape[0]} channels, {blank} blank ({100 * blank / m.shape[0]:.0f}%), "
                          f"{100 * float((m == 0).float().mean()):.1f}% zeros")
            stem += "-activation"
        saved.append(plot_feature_maps(
            r.model, one, target.path / f"maps-{stem}.png", layers=args.layer, max_channels=args.channels,
            shown_image=shown, maps=maps,
            title=f"{r.cfg.model}: {what}" + (", after each activation" if after_act else "")))
    print("saved: " + ", ".join(str(p) for p in saved))
    return EXIT_OK


def cmd_inspect(args) -> int:
    """``convlab inspect``: activation sparsity by depth, Grad-CAM, and the fc head sliding over larger images."""
    import torch

    from . import inspect as ins
    from .data import Batcher
    from .training.report import load_run
    from .viz import plot_class_map, plot_gradcam, plot_sparsity

    def _pct(v: float) -> str:
        return f"{100 * v:.1f}%"

    what = args.what
    allowed = {"activations": {"images", "split"}, "gradcam": {"index", "image", "cls", "layer", "split", "invert"},
               "sliding": {"image", "canvas", "split", "invert"}}[what]
    flags = {"images": "--images", "index": "--index", "image": "--image", "cls": "--class", "layer": "--layer",
             "canvas": "--canvas", "invert": "--invert"}
    for key, flag in flags.items():
        if key not in allowed and getattr(args, key) not in (None, False):
            raise UsageError(f"{flag} is not for --what {what} (it takes: "
                             f"{', '.join(flags[k] for k in flags if k in allowed) or 'no option'})")
    if args.image and (args.index is not None or args.canvas is not None):
        raise UsageError(f"give --image FILE or {'--index' if what == 'gradcam' else '--canvas'}, not both")
    r = load_run(args.run, data=args.data, data_dir=args.data_dir, device=args.device, model=args.model)
    ds, cfg = r.ds, r.cfg
    c, h, w = ds.input_shape(cfg.resize)
    x, y = r.split(args.split)
    target = Path(args.out) if args.out else r.run_dir
    target.mkdir(parents=True, exist_ok=True)

    def batches(indices: list[int], size: int = 256):
        b = Batcher(x, y, ds.mean, ds.std, batch_size=size, device=r.device, resize=cfg.resize)
        for i in range(0, len(indices), size):
            yield b.make_batch(torch.tensor(indices[i:i + size], device=r.device))

    def image_file(**kw):
        img = ins.load_image(args.image, c, ds.mean, ds.std, invert=args.invert, reference=ds.train_x[:1000], **kw)
        if not args.json:
            print("; ".join(img.steps))
        return img

    if what == "activations":
        n = args.images if args.images is not None else 1000
        if not 1 <= n <= len(x):
            raise UsageError(f"--images {n}: the {args.split} split has {len(x):,} images (1..{len(x)})")
        used = {"data": ds.name, "split": args.split, "indices": f"0..{n - 1}", "count": n}
        stats = ins.activation_stats(r.model, batches(list(range(n))), name=cfg.model, images=used)
        png = plot_sparsity(stats, target / f"activations-{args.split}.png")
        result = {**stats.to_dict(), "png": str(png), "json": str(target / f"activations-{args.split}.json")}
        from .fileio import write_text

        write_text(target / f"activations-{args.split}.json", json.dumps(result, indent=2))
        if args.json:
            _print_json(result)
            return EXIT_OK
        print(f"{cfg.model} on {ds.name}: activation outputs of {n:,} {args.split} images (indices 0..{n - 1}), "
              f"in depth order")
        width = max(len(s.name) for s in stats.layers)
        print(f"  {'layer':<{width}}  {'type':<8} {'output':>10} {'zeros':>7} {'blank/image':>12} {'dead':>9} "
              f"{'mean':>8} {'std':>8}")
        for s in stats.layers:
            print(f"  {s.name:<{width}}  {s.type:<8} {'×'.join(map(str, s.shape)):>10} {_pct(s.zeros):>7} "
                  f"{_pct(s.blank):>12} {f'{len(s.dead)}/{s.channels}':>9} {s.mean:8.3f} {s.std:8.3f}")
        print("  (zeros: exactly 0; blank: channels whose map is all 0, mean over images; dead: 0 for every image)")
        print(stats.verdict())
        print(f"saved: {png} and {result['json']}")
        return EXIT_OK

    classes = ds.classes
    if what == "gradcam":
        target_cls = ins.class_index(args.cls, classes) if args.cls else None
        if args.image:
            img = image_file(size=(h, w))
            inputs, labels, names = [img.x], [None], [Path(args.image).stem]
        else:
            idx = args.index if args.index is not None else [0]
            if len(idx) > 12:
                raise UsageError(f"--index takes at most 12 images (one column each), got {len(idx)}")
            bad = [i for i in idx if not 0 <= i < len(x)]
            if bad:
                raise UsageError(f"--index {bad[0]} is outside the {args.split} split (0..{len(x) - 1})")
            inputs = list(next(batches(idx, len(idx))).cpu())
            labels, names = [int(y[i]) for i in idx], [f"{args.split}-{'-'.join(map(str, idx))}"]
        cams, captions, rows = [], [], []
        for k, xi in enumerate(inputs):
            cam = ins.gradcam(r.model, xi, target=target_cls, layer=args.layer)
            probs = ins.predict(r.model, xi)
            pred = int(probs.argmax())
            cams.append(cam.map)
            head = f"{args.split} {idx[k]}: {classes[labels[k]]}" if labels[k] is not None else Path(args.image).name
            captions.append(f"{head}\npred. {classes[pred]} {100 * float(probs[pred]):.0f}%"
                            + (f"\nmap of {classes[cam.target]}" if cam.target != pred else ""))
            rows.append({"image": head, "true": classes[labels[k]] if labels[k] is not None else None,
                         "predicted": classes[pred], "probability": float(probs[pred]), "class": classes[cam.target],
                         "class_score": cam.score, "class_probability": cam.prob, "layer": cam.layer,
                         "layer_map": list(cam.low.shape), "unit_centres": None if cam.start is None else
                         [[cam.start[d], cam.start[d] + cam.jump[d] * (cam.low.shape[d] - 1)] for d in (0, 1)],
                         "peak_unit": [int(v) for v in divmod(int(cam.low.argmax()), cam.low.shape[1])]})
            if cam.start is not None:
                rows[-1]["peak_pixel"] = [cam.start[d] + cam.jump[d] * rows[-1]["peak_unit"][d] for d in (0, 1)]
        layer = rows[0]["layer"]
        lh, lw = rows[0]["layer_map"]
        title = (f"{cfg.model}: Grad-CAM at {layer} ({lh}×{lw} units, each at its receptive field's centre) of "
                 + (f"class {classes[target_cls]}" if target_cls is not None else "the predicted class"))
        png = plot_gradcam(inputs, cams, captions, target / f"gradcam-{names[0]}.png", title=title)
        if args.json:
            _print_json({"layer": layer, "images": rows, "png": str(png)})
            return EXIT_OK
        where = rows[0]["unit_centres"]
        placed = (f"its units centred on pixels {where[0][0]:g} … {where[0][1]:g} (rows), {where[1][0]:g} … "
                  f"{where[1][1]:g} (columns), interpolated between" if where else "resized to the image")
        print(f"Grad-CAM at {layer} (the {'named' if args.layer else 'last'} conv layer): gradients of the class "
              f"score before the softmax; its {lh}×{lw} map drawn on the {h}×{w} image with {placed}")
        for row in rows:
            print(f"  {row['image']}: predicted {row['predicted']} ({_pct(row['probability'])}); map of "
                  f"{row['class']} (score {row['class_score']:.2f}, p {_pct(row['class_probability'])}), "
                  f"strongest at unit ({row['peak_unit'][0]}, {row['peak_unit'][1]})"
                  + (f", centred on pixel ({row['peak_pixel'][0]:g}, {row['peak_pixel'][1]:g})"
                     if "peak_pixel" in row else ""))
        print(f"saved: {png}")
        return EXIT_OK

    # sliding: the fc head as convolutions over a larger image
    fc = ins.fully_convolutional(r.model, (c, h, w))
    tiles = None
    if args.image:
        img = image_file(min_size=(h, w), max_side=16 * max(h, w))
        canvas, stem, shown = img.x, Path(args.image).stem, img.shown
    else:
        n = args.canvas if args.canvas is not None else 4
        if n < 1 or n * n > len(x):
            raise UsageError(f"--canvas {n}: needs {n}×{n} = {n * n} images; the {args.split} split has {len(x):,}")
        t = next(batches(list(range(n * n)), n * n)).cpu()                   # (n², C, h, w)
        canvas = t.view(n, n, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, n * h, n * w)
        alone = [int(v) for v in ins.predict_batch(r.model, t).argmax(1)]
        tiles = [{"index": i, "box": ((i // n) * h, (i % n) * w, h, w), "true": int(y[i]), "alone": alone[i]}
                 for i in range(n * n)]
        stem, shown = f"canvas-{n}", canvas
    grid = ins.class_grid(fc, canvas)
    gh, gw = grid.scores.shape[1:]
    counts = torch.bincount(grid.classes.flatten(), minlength=len(classes))
    result = {"input": list(canvas.shape), "grid": [gh, gw], "window": list(grid.window), "stride": list(grid.stride),
              "first_window_centre": list(grid.centre),
              "converted": {n: str(m) for n, m in fc.named_children() if n in dict(r.model.named_children()) and
                            isinstance(dict(r.model.named_children())[n], torch.nn.Linear)},
              "windows_per_class": {classes[k]: int(v) for k, v in enumerate(counts) if v}}
    if tiles:
        aligned = []
        for t in tiles:
            cell = grid.cell_of(t["box"][0], t["box"][1])
            if cell is not None:
                aligned.append((t, int(grid.classes[cell])))
        result["tiles"] = [{"index": t["index"], "true": classes[t["true"]], "alone": classes[t["alone"]],
                            "window": classes[k]} for t, k in aligned]
        result["aligned_agree_alone"] = sum(k == t["alone"] for t, k in aligned)
        result["aligned_agree_true"] = sum(k == t["true"] for t, k in aligned)
        result["aligned"] = len(aligned)
        result["images"] = {"split": args.split, "indices": f"0..{len(tiles) - 1}", "count": len(tiles)}
    title = (f"{cfg.model}: its fc head as convolutions, sliding over "
             + (f"{args.canvas or 4}×{args.canvas or 4} {args.split} images 0..{len(tiles) - 1}" if tiles
                else Path(args.image).name))
    png = plot_class_map(shown, grid, classes, target / f"sliding-{stem}.png", title=title, tiles=tiles)
    result["png"] = str(png)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{cfg.model} made fully convolutional: " + ", ".join(f"{n} → {m}" for n, m in result["converted"].items()))
    print(f"input {canvas.shape[1]}×{canvas.shape[2]} (H×W) → {gh}×{gw} grid of class scores: one per {h}×{w} window, "
          f"{grid.stride[0]} px apart (the network's total stride)")
    share = sorted(result["windows_per_class"].items(), key=lambda kv: -kv[1])
    print("  windows per class: " + ", ".join(f"{k} {v}" for k, v in share))
    if tiles:
        print(f"  the {result['aligned']} windows that are exactly one tile: class = the model's prediction on that tile "
              f"alone for {result['aligned_agree_alone']}, = the true class for {result['aligned_agree_true']}")
    print(f"saved: {png}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from .training.report import compare

    rows = compare(args.runs, plot=args.plot, metric=args.metric)
    if args.json:
        _print_json([{k: v for k, v in r.items() if k not in ("metrics", "config")} for r in rows])
        return EXIT_OK

    def pct(v):
        return f"{100 * v:.2f}%" if v is not None else "-"

    print(f"{'run':<34} {'model':<22} {'params':>11} {'epochs':>6} {'train err':>9} {'final acc':>9} {'best acc':>9} "
          f"{'time':>8}")
    for r in rows:
        model = (r["model"] or "?")[:22]
        params = f"{r['params']:,}" if r["params"] is not None else "-"
        wall = f"{r['wall_s']:.0f} s" if r["wall_s"] is not None else "-"
        print(f"{r['name'][:34]:<34} {model:<22} {params:>11} {r['epochs']:>6} {pct(r['final_train_error']):>9} "
              f"{pct(r['final_test_acc']):>9} "
              f"{pct(r['best_test_acc']):>9} {wall:>8}")
    if args.plot:
        print(f"curves: {args.plot}")
    return EXIT_OK


def cmd_experiment(args) -> int:
    from . import experiment as E

    depths = E.parse_depths(args.depths)
    out = args.out or f"runs/degradation-{args.preset}-seed{args.seed}"
    res = E.degradation(out, depths=depths, preset=args.preset, data=args.data, data_dir=args.data_dir,
                        device=args.device, seed=args.seed, resume=args.resume, yes=args.yes, threads=args.threads,
                        progress=False if args.no_progress else None)
    print()
    print(E.table(res))
    print()
    for line in res["verdict"]:
        print(line)
    print(f"\nresults: {out}/results.json  pictures: {out}/degradation.png {out}/gradients.png")
    if res["interrupted"]:
        print(f"interrupted; continue with: convlab experiment degradation --out {out} --preset {args.preset} "
              f"--seed {args.seed} --depths {args.depths} --resume", file=sys.stderr)
        return 130
    return EXIT_OK


def cmd_report(args) -> int:
    from .training.report import report
    from .training.rundir import RunDir

    print(report(args.run, args.out))
    if not RunDir(args.run).pictures("confusion"):
        print(f"note: no evaluation in it yet; 'convlab eval {args.run}' adds per-class accuracy and the confusion "
              f"matrix, then run 'convlab report {args.run}' again")
    return EXIT_OK


def cmd_tour(args) -> int:
    from . import tour

    if args.topic and args.topic not in tour.TOPICS:
        from .errors import did_you_mean

        raise UsageError(f"unknown topic {args.topic!r}{did_you_mean(args.topic, tour.TOPICS, 1)}; "
                         f"topics: {', '.join(tour.TOPICS)}")
    print("\n".join(tour.run(args.topic)))
    return EXIT_OK


# ------------------------------------------------------------------------------------------
# parser


def cmd_serve(args) -> int:
    from .serve import serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    try:
        serve(args.host, args.port, open_browser=args.open, quiet=not args.log)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
                         f"try another --port, or --port 0 for a free one") from None
    except KeyboardInterrupt:
        print("convlab serve: stopped", file=sys.stderr)
    return EXIT_OK


RUN_MODEL_HELP = ("a run of a Python model: its package.module:attr, named again (convlab never imports code named "
                  "in a run); default: the model rebuilt from the spec the run recorded")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .training.config import DEVICES, FAMILY_DEFAULTS, INITS, OPTIMIZERS, PRECISIONS, RECIPES, SCHEDULES  # no torch: fast --help

    p = _Parser(prog="convlab", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Design, check, inspect and train convolutional neural networks.",
                epilog=_examples(
                    "convlab size conv --in 28 --kernel 3 --stride 2 --padding 1",
                    "convlab solve --in 28 --out 14",
                    "convlab chain --in 28 k3s2p1 x5",
                    "convlab <command> --help      # more on each command"))
    p.add_argument("--version", action="version", version=f"convlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def fam(key: str) -> str:
        """' (default by model family: ...)' from the family recipes, so help and training cannot disagree."""
        fast, small, cifar, large = (FAMILY_DEFAULTS[f][key] for f in ("fast", "small", "resnet-cifar", "large"))
        if fast == small == cifar == large:
            return f" (default {small})"
        lead = f"{small} small CNNs" if fast == small else f"{fast} fastcnn, {small} other small CNNs"
        return f" (default: {lead}, {cifar} CIFAR ResNets/plain nets, {large} ImageNet-style)"

    def add(name: str, func: Callable, help: str, examples: Sequence[str]) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=_examples(*examples))
        sp.set_defaults(func=func)
        return sp

    sp = add("size", cmd_size, "Output size of one conv, pool or transposed conv, with the arithmetic shown.",
             ["convlab size conv --in 7 --kernel 3 --stride 2 --padding 1",
              "convlab size conv --in 8,8 --kernel 3,5 --stride 3,4 --padding 0,1   # d2l 7.3: 2x2",
              "convlab size pool --in 7 --kernel 2 --ceil",
              "convlab size convT --in 7 --kernel 3 --stride 2 --padding 1 --output-padding 1 --json"])
    sp.add_argument("op", choices=["conv", "pool", "convT"], help="layer kind")
    sp.add_argument("--in", dest="input", type=_size_arg, required=True, metavar="SIZE", help="input size in pixels: N or H,W")
    sp.add_argument("--kernel", "-k", type=_size_arg, required=True, metavar="K", help="kernel size in pixels: K or KH,KW")
    sp.add_argument("--stride", "-s", type=_size_arg, default=None, metavar="S",
                    help="stride, in pixels (default 1; for pool: the kernel)")
    sp.add_argument("--padding", "-p", type=_pad_arg, default=0, metavar="P",
                    help="padding on each side, in pixels (default 0; conv also takes 'same' or 'valid')")
    sp.add_argument("--dilation", "-d", type=_size_arg, default=1, metavar="D", help="dilation: the gap between kernel taps (default 1)")
    sp.add_argument("--ceil", action="store_true", help="pool: ceil_mode=True, a partial last window counts (default: floor)")
    sp.add_argument("--output-padding", type=_nonneg_size_arg, default=0, metavar="N", help="convT: output_padding, pixels added on one side (default 0)")
    sp.add_argument("--json", action="store_true", help="print JSON (output, formula, steps, dropped, dims) instead of text")

    sp = add("solve", cmd_solve, "Every kernel/stride/padding/dilation that maps one size to another.",
             ["convlab solve --in 28 --out 14",
              "convlab solve --in 224 --out 112 --kernel 7 --json",
              "convlab solve --in 32 --out 32 --dilation 1 2"])
    sp.add_argument("--in", dest="input", type=positive_int, required=True, metavar="N", help="input size in pixels")
    sp.add_argument("--out", dest="output", type=positive_int, required=True, metavar="N", help="wanted output size in pixels")
    sp.add_argument("--kernel", "-k", type=positive_int, nargs="+", metavar="K", help="kernels to try (default 1..7)")
    sp.add_argument("--stride", "-s", type=positive_int, nargs="+", metavar="S", help="strides to try (default 1..4)")
    sp.add_argument("--dilation", "-d", type=positive_int, nargs="+", metavar="D", help="dilations to try (default 1..3)")
    sp.add_argument("--padding", "-p", type=non_negative_int, nargs="+", metavar="P", help="paddings to try (default 0..k/2+1)")
    sp.add_argument("--limit", type=positive_int, default=12, metavar="N", help="rows to show (default 12)")
    sp.add_argument("--all", action="store_true", help="show every solution (default: the first --limit)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("chain", cmd_chain, "A whole size sequence through several conv/pool steps, each explained.",
             ["convlab chain --in 28 k3s2p1 x5            # stride 2 halves: 28 → 14 → 7 → 4 → 2 → 1",
              "convlab chain --in 28 conv:k5p2 pool:k2 conv:k5 pool:k2   # LeNet: 28 → 28 → 14 → 10 → 5",
              "convlab chain --in 224,224 k7s2p3 pool:k3s2p1 --verbose",
              "convlab chain --in 7 convT:k3s2p1op1 --json"])
    sp.add_argument("--in", dest="input", type=_size_arg, required=True, metavar="SIZE", help="input size in pixels: N or H,W")
    sp.add_argument("steps", nargs="+", help="steps like k3s2p1, pool:k2, convT:k4s2p1; xN repeats the step before")
    sp.add_argument("--verbose", "-v", action="store_true", help="print each step's full explanation")
    sp.add_argument("--json", action="store_true", help="print JSON")

    model_help = ("a zoo name (resnet20, resnet20:shortcut=B), a spec in quotes, a spec file (.yaml/.json/.spec) "
                  "or package.module:attr")

    def model_args(sp):
        sp.add_argument("model", metavar="MODEL", help=model_help)
        sp.add_argument("--input", "-i", type=_shape_arg, metavar="C,H,W",
                        help="input shape (default: the zoo model's own, or the spec's input(...))")
        sp.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size for MACs and memory (default 1)")
        sp.add_argument("--depth", type=non_negative_int, default=None, metavar="N", help="fold rows nested deeper than N (default: show every depth)")
        sp.add_argument("--num-classes", type=positive_int, default=None, metavar="K", help="resize the last fc to K classes (default: the model's own)")

    sp = add("summary", cmd_summary, "Every layer's output shape, parameters, MACs and receptive field.",
             ["convlab summary resnet18",
              "convlab summary resnet20:shortcut=B --depth 1",
              "convlab summary \"conv(16,3,p=1) relu maxpool(2) flatten fc(10)\" --input 3,32,32",
              "convlab summary lenet --format markdown",
              "convlab summary mypackage.models:Net --input 3,224,224 --batch 32 --json"])
    model_args(sp)
    sp.add_argument("--format", "-f", choices=["table", "markdown", "csv", "json", "html"], default="table",
                    help="output format (default: table)")
    sp.add_argument("--json", action="store_true", help="same as --format json")

    sp = add("draw", cmd_draw, "A picture of a model: every layer, branch and shortcut with its output shape.",
             ["convlab draw resnet20                                # resnet20-graph.svg here",
              "convlab draw resnet20:shortcut=B --block layer2.0 --format png   # the strided block",
              "convlab draw resnet20 --block conv1,bn1,relu --out stem.png",
              "convlab draw resnet50 --depth 1 --format png",
              "convlab draw lenet --view volumes",
              "convlab draw mypackage.models:Net --input 3,64,64 --format json --out -"])
    sp.add_argument("model", metavar="MODEL", help=model_help)
    sp.add_argument("--input", "-i", type=_shape_arg, metavar="C,H,W",
                    help="input shape (default: the zoo model's own, or the spec's input(...))")
    sp.add_argument("--out", "-o", metavar="FILE",
                    help="where to write it, or - for the terminal (default: MODEL-VIEW.FORMAT in this folder)")
    sp.add_argument("--format", "-f", choices=["svg", "png", "pdf", "dot", "json"], default=None,
                    help="svg, png, pdf (need Graphviz for the graph view), dot or json (default: from --out's "
                         "suffix, else svg)")
    sp.add_argument("--view", choices=["graph", "volumes"], default="graph",
                    help="graph: boxes and arrows; volumes: feature maps as boxes (default: graph)")
    sp.add_argument("--depth", type=non_negative_int, default=None, metavar="N",
                    help="fold blocks nested deeper than N into one box; volumes: N at or above the blocks' own depth "
                         "draws every layer (default: every layer; volumes: long nets folded)")
    sp.add_argument("--block", metavar="NAMES", default=None,
                    help="draw only these layers or blocks, comma-separated, e.g. layer2.0 (default: the whole model)")
    sp.add_argument("--num-classes", type=positive_int, default=None, metavar="K",
                    help="resize the last fc to K classes (default: the model's own)")
    sp.add_argument("--force", action="store_true", help="overwrite --out if it exists (default: refuse)")

    sp = add("check", cmd_check, "Catch shape bugs and likely mistakes before anything runs (exit 1 on errors).",
             ["convlab check \"conv(16,3) maxpool(2) conv(64,7) flatten fc(10)\" --input 3,8,8",
              "convlab check \"conv(32,3,p=1) bn relu maxpool(2) flatten fc(512) fc(10)\" --input 3,64,64",
              "convlab check resnet50 --input 3,97,97 --json"])
    model_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("data", cmd_data, "Find, fetch and inspect datasets (fashion-mnist, mnist, cifar10, cifar100, folder:PATH).",
             ["convlab data list", "convlab data info fashion-mnist", "convlab data fetch cifar10",
              "convlab data info folder:./my_images --json"])
    sp.add_argument("action", choices=["list", "info", "fetch"], help="what to do")
    sp.add_argument("name", nargs="?", help="dataset name for info and fetch (default: none; list shows them all)")
    sp.add_argument("--data-dir", metavar="DIR", help="look here first and fetch into it (default: look in $CONVLAB_DATA, ~/.cache/convlab, ./data and the system location; fetch into ~/.cache/convlab)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("train", cmd_train, "Train a model on a dataset: fast, reproducible, resumable runs.",
             ["convlab train fastcnn --data fashion-mnist                # 91% in 3 epochs (make demo's run)",
              "convlab train lenet-modern --data fashion-mnist           # LeNet: 91% in 8 epochs",
              "convlab train lenet-modern --target-acc 0.90             # evaluate every epoch, stop at 90%",
              "convlab train resnet20 --data cifar10 --epochs 30 --device cuda --precision bf16",
              "convlab train \"conv(32,3,p=1) bn relu maxpool(2) flatten fc(10)\" --data mnist --epochs 3",
              "convlab train vgg-d2l --data fashion-mnist --resize 224 --epochs 10   # a GPU job (CPU: ~50 min an epoch)",
              "convlab train lenet --recipe d2l                          # d2l's Trainer: SGD 0.1, Xavier init",
              "convlab train lenet --recipe d2l --init default           # the sigmoid LeNet that stays at 10%",
              "convlab train resnet20 --data fashion-mnist --option shortcut=B --out runs/r20b",
              "convlab train --out runs/r20b --resume                      # continue an interrupted run",
              "torchrun --nproc-per-node 2 -m convlab train resnet20 --data cifar10   # DDP"])
    sp.add_argument("model", metavar="MODEL", nargs="?",
                    help=model_help + " (default: required, except with --resume or a --config that names one)")
    g = sp.add_argument_group("data")
    g.add_argument("--data", metavar="NAME", help="dataset: fashion-mnist (default), mnist, cifar10, cifar100, folder:PATH")
    g.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    g.add_argument("--augment", metavar="SPEC", help="crop=N,flip,cutout=N or none (default: per dataset)")
    g.add_argument("--resize", type=int, metavar="H", help="train and test at H×H pixels, e.g. 96, 224 (default: the dataset's own size)")
    g = sp.add_argument_group("optimisation", textwrap.fill(
        "Defaults follow the model family. Small CNNs (LeNet, cifar-cnn, sepnet): 8 epochs, batch 256, "
        "SGD-Nesterov lr 0.2, wd 5e-4, one-cycle, label smoothing 0.1, test-time flip; the zoo's fastcnn the "
        "same in 3 epochs at lr 0.4. CIFAR ResNets and plain nets: the ResNet "
        "paper's lr 0.1, momentum 0.9, wd 1e-4, lr/10 at 50% and 75%, batch 128, 30 epochs. ImageNet-style "
        "nets: 10 epochs, batch 128, lr 0.05, one-cycle. --recipe d2l instead: d2l's Trainer (plain SGD lr 0.1, "
        "constant, batch 128, 10 epochs, no augmentation, Xavier init). Flags override either. The resolved "
        "values are saved in the run's config.yaml.", 78))
    g.add_argument("--recipe", choices=list(RECIPES), help="a named recipe in place of the model family's (default: none, the family's)")
    g.add_argument("--init", choices=INITS,
                   help="conv/linear weights: torch's default, xavier (d2l's init_cnn) or kaiming (default: default; "
                        "--recipe d2l: xavier)")
    g.add_argument("--epochs", type=int, metavar="N", help="passes over the training set" + fam("epochs"))
    g.add_argument("--batch-size", type=int, metavar="N", help="global batch size in images, split across torchrun processes" + fam("batch_size"))
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="SGD with Nesterov momentum, or AdamW" + fam("optimizer"))
    g.add_argument("--lr", type=float, metavar="LR", help="peak learning rate for the global batch" + fam("lr"))
    g.add_argument("--momentum", type=float, metavar="M", help="SGD momentum (AdamW: beta1)" + fam("momentum"))
    g.add_argument("--weight-decay", type=float, metavar="WD", help="L2 on conv/linear weights; biases and norms are not decayed" + fam("weight_decay"))
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="onecycle: linear up then down to 0; step/paper: lr/10 at 50%% and 75%%" + fam("schedule"))
    g.add_argument("--warmup", type=float, metavar="F", help="fraction of the steps spent warming up, 0..1" + fam("warmup"))
    g.add_argument("--label-smoothing", type=float, metavar="F", help="0..1; 0 turns it off" + fam("label_smoothing"))
    g.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps (default: no limit)")
    g.add_argument("--eval-every", type=int, metavar="N", help="evaluate on the test split every N epochs and after "
                   "the last (default: after the last epoch only; with --target-acc after every epoch)")
    g.add_argument("--target-acc", type=float, metavar="F", help="stop after the first evaluation with a test accuracy "
                   "of at least F, a fraction, e.g. 0.91 (default: off, train every epoch)")
    g.add_argument("--test-flip", dest="test_flip", action="store_true", default=None,
                   help="score each test image as the mean of the scores of it and its mirror image (default: on "
                        "for small CNNs trained with flips, off otherwise and with --recipe d2l)")
    g.add_argument("--no-test-flip", dest="test_flip", action="store_false", help="score the test images as they are (default: see --test-flip)")
    g.add_argument("--log-every", type=int, metavar="K", help="every K steps, write the training loss, error and "
                   "gradient norms per layer to steps.jsonl (default: off)")
    g = sp.add_argument_group("hardware")
    g.add_argument("--device", choices=DEVICES, help="auto: CUDA, then MPS, then CPU (default auto)")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="autocast dtype for the forward pass (default fp32; bf16 on recent GPUs; fp16 adds loss scaling)")
    g.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                   help="NHWC memory layout (default: on; faster on CPU and tensor-core GPUs)")
    g.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW (default: channels-last)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (default: off)")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice, usually one per core); results are bit-for-bit reproducible for the same count")
    g = sp.add_argument_group("run")
    g.add_argument("--seed", type=int, metavar="N", help="same seed, machine, torch build and --threads: the same metrics, bit for bit (default 0)")
    g.add_argument("--out", metavar="DIR", help="run directory: a new or empty folder, never one holding other files "
                   "(default: runs/NNN-model-data)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt, exactly as it was configured: a "
                   "training flag with another value (--epochs, --lr, ...) is refused; --device, --threads (default: the "
                   "run's own) and --data-dir may be given; MODEL only for a Python model, named again (default: a new run)")
    g.add_argument("--config", metavar="FILE.yaml", help="read the config from YAML; flags override it (default: none)")
    g.add_argument("--option", action="append", metavar="KEY=VALUE", help="zoo model option, e.g. shortcut=B; repeatable (default: the model's own)")
    g.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar (default: a bar on a terminal or in Jupyter)")

    sp = add("eval", cmd_eval, "Evaluate a run or checkpoint: accuracy, per-class accuracy, confusion matrix.",
             ["convlab eval runs/001-lenet-modern-fashion-mnist",
              "convlab eval runs/001-lenet-modern-fashion-mnist/last.pt --split train --json"])
    sp.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the one it was trained on)")
    sp.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    sp.add_argument("--split", choices=["test", "train"], default="test", help="which split (default test)")
    sp.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA, then MPS, then CPU (default auto)")
    sp.add_argument("--model", metavar="PKG.MOD:ATTR", help=RUN_MODEL_HELP)
    sp.add_argument("--out", metavar="DIR", type=_out_dir, help="where to write confusion.png/eval.json (default: the run directory)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("viz", cmd_viz, "Look inside a trained model: its first conv's filters and the feature maps of "
             "every conv layer for one image.",
             ["convlab viz runs/001-lenet-modern-fashion-mnist                 # filters + maps of test image 0",
              "convlab viz runs/001-lenet-modern-fashion-mnist --what maps --index 42",
              "convlab viz runs/003-resnet20-cifar10 --layer conv1 --layer layer3.2.conv2 --channels 8"])
    sp.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    sp.add_argument("--what", choices=["filters", "maps", "both"], default="both", help="what to draw (default both)")
    sp.add_argument("--layer", action="append", metavar="NAME",
                    help="layer(s) whose maps to draw (default every conv); the first conv among them for filters")
    sp.add_argument("--index", type=non_negative_int, default=None, metavar="N", help="which image of the split (default 0)")
    sp.add_argument("--image", metavar="FILE", help="your own image (PNG/JPEG; needs Pillow), converted to the "
                    "model's input: channels, size, the dataset's normalisation (default: an image of --split)")
    sp.add_argument("--invert", action="store_true", help="with --image: invert it, dark object on light → light on dark (default: off)")
    sp.add_argument("--after", choices=["conv", "activation"], default="conv",
                    help="maps after each conv (default) or after each activation, with blank channels marked")
    sp.add_argument("--split", choices=["test", "train"], default="test", help="which split (default test)")
    sp.add_argument("--channels", type=positive_int, default=16, metavar="K", help="maps drawn per layer (default 16)")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the one it was trained on)")
    sp.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    sp.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA, then MPS, then CPU (default auto)")
    sp.add_argument("--model", metavar="PKG.MOD:ATTR", help=RUN_MODEL_HELP)
    sp.add_argument("--out", metavar="DIR", type=_out_dir, help="where to write the PNGs (default: the run directory)")

    sp = add("inspect", cmd_inspect, "Inside a trained model: activation sparsity by depth, Grad-CAM, and its fc head "
             "as convolutions sliding over a larger image.",
             ["convlab inspect runs/001-lenet-modern-fashion-mnist --what activations       # zeros/blank/dead by depth",
              "convlab inspect runs/001-lenet-modern-fashion-mnist --what activations --images 5000 --json",
              "convlab inspect runs/001-lenet-modern-fashion-mnist --what gradcam --index 0 1 2 3 4 5",
              "convlab inspect runs/001-lenet-modern-fashion-mnist --what gradcam --image shoe.png --class Sneaker",
              "convlab inspect runs/001-lenet-modern-fashion-mnist --what sliding --canvas 4   # 4×4 test images",
              "convlab inspect runs/001-lenet-modern-fashion-mnist --what sliding --image street.jpg --invert"])
    sp.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    sp.add_argument("--what", choices=["activations", "gradcam", "sliding"], required=True,
                    help="activations: sparsity by depth; gradcam: where the class evidence is; sliding: the fc head "
                         "as convolutions over a larger image")
    sp.add_argument("--images", type=positive_int, metavar="N", help="activations: the first N images of the split (default 1000)")
    sp.add_argument("--index", type=non_negative_int, nargs="+", metavar="N", help="gradcam: image(s) of the split (default 0)")
    sp.add_argument("--image", metavar="FILE", help="gradcam, sliding: your own PNG/JPEG instead (needs Pillow; default: images of --split)")
    sp.add_argument("--invert", action="store_true", help="with --image: invert it, dark on light → light on dark (default: off)")
    sp.add_argument("--class", dest="cls", metavar="NAME", help="gradcam: the class whose evidence to map "
                    "(name or number; default: the predicted one)")
    sp.add_argument("--layer", metavar="NAME", help="gradcam: the conv layer (default: the last one)")
    sp.add_argument("--canvas", type=positive_int, metavar="N", help="sliding: tile N×N images of the split into one (default 4)")
    sp.add_argument("--split", choices=["test", "train"], default="test", help="which split (default test)")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the one it was trained on)")
    sp.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    sp.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA, then MPS, then CPU (default auto)")
    sp.add_argument("--model", metavar="PKG.MOD:ATTR", help=RUN_MODEL_HELP)
    sp.add_argument("--out", metavar="DIR", type=_out_dir, help="where to write the PNG/JSON (default: the run directory)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("compare", cmd_compare, "Compare finished runs: a table of results and their curves on shared axes.",
             ["convlab compare runs/001-resnet20-cifar10 runs/002-plain20-cifar10 --plot compare.png",
              "convlab compare runs/* --json",
              "convlab compare runs/deg/plain20 runs/deg/plain56 --metric train_error --plot train-error.png"])
    sp.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    sp.add_argument("--plot", metavar="FILE.png", type=_suffixed(".png"), help="write test accuracy and train loss curves here (default: no plot)")
    sp.add_argument("--metric", choices=["train_error", "test_error", "loss"],
                    help="plot this one, per iteration where the runs logged steps (--log-every) (default: train "
                    "loss and test accuracy per epoch)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("experiment", cmd_experiment, "Run a named experiment: 'degradation' trains plain and residual nets "
             "at two or more depths with one recipe, then draws He et al.'s Figure 6 and states what the numbers show.",
             ["convlab experiment degradation                       # quick preset: Fashion-MNIST, CPU minutes",
              "convlab experiment degradation --seed 1 --out runs/deg-seed1",
              "convlab experiment degradation --out runs/deg --resume   # continue an interrupted one",
              "convlab experiment degradation --preset paper --data cifar10 --device cuda",
              "convlab experiment degradation --depths 20,32,44,56,110 --preset paper --device cuda"])
    sp.add_argument("name", choices=["degradation"], help="the experiment (degradation)")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the preset's: fashion-mnist for quick, "
                    "cifar10 for paper)")
    sp.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    sp.add_argument("--depths", default="20,56", help="depths of the plain-N and resnet-N pairs, comma-separated "
                    "(any of the zoo's 20,32,44,56,110; default 20,56)")
    sp.add_argument("--preset", default="quick", choices=["quick", "paper"],
                    help="quick: narrow nets, 14x14 Fashion-MNIST, 900 steps (minutes on a CPU); paper: He et al.'s "
                    "CIFAR-10 recipe, 64k iterations (a GPU) (default quick)")
    sp.add_argument("--out", metavar="DIR", help="experiment directory (default runs/degradation-PRESET-seedN)")
    sp.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA, then MPS, then CPU (default auto)")
    sp.add_argument("--seed", type=int, default=0, help="one seed for every member: init and batch order (default 0)")
    sp.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    sp.add_argument("--resume", action="store_true", help="continue the experiment in --out; finished members are "
                    "read back, not retrained (default: off)")
    sp.add_argument("--yes", action="store_true", help="start the paper preset on a CPU without asking (default: ask)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")

    sp = add("report", cmd_report, "Write one self-contained HTML page for a run: curves, metrics, model, config.",
             ["convlab report runs/001-lenet-modern-fashion-mnist"])
    sp.add_argument("run", metavar="RUN", help="a run directory")
    sp.add_argument("--out", metavar="FILE.html", type=_suffixed(".html", ".htm"), help="where to write it (default: RUN/report.html)")

    sp = add("tour", cmd_tour, "The course notes' concepts, each with its numbers computed live.",
             ["convlab tour", "convlab tour edges", "convlab tour parameters"])
    from . import tour  # imports nothing heavy: the topics import torch when they run

    sp.add_argument("topic", nargs="?", help=", ".join(tour.TOPICS) + " (default: all, in this order)")

    sp = add("serve", cmd_serve, "A local playground in the browser: type a spec, see the table, the arithmetic and "
             "the errors change as you type.",
             ["convlab serve --open                 # http://127.0.0.1:8765/ in your browser",
              "convlab serve --port 9000",
              "open http://127.0.0.1:8765/?spec=resnet20            # a view can be shared by its URL",
              "open 'http://127.0.0.1:8765/?spec=conv(8,3)%20relu&input=1,28,28'"])
    sp.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: 127.0.0.1, this machine only; another prints a warning)")
    sp.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    sp.add_argument("--open", action="store_true", help="open the page in the default browser")
    sp.add_argument("--log", action="store_true", help="print a line per request (default: quiet)")

    sp = add("zoo", cmd_zoo, "The registered models, with parameters and MACs at their default input.",
             ["convlab zoo", "convlab zoo 'resnet*'", "convlab zoo --json"])
    sp.add_argument("pattern", nargs="?", default="*", help="glob pattern (default: all)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    return p


def _say(message: str) -> None:
    """Print an error on stderr, once under torchrun: every rank runs the same command on the same
    arguments and data and fails the same way, so rank 0 speaks for all of them. Another rank waits
    a few seconds first — torchrun stops it when rank 0 exits with the same failure — and speaks,
    naming itself, only if it is still running then (a failure of its own). Every rank exits non-zero."""
    rank = os.environ.get("RANK", "0")
    if rank != "0" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import time

        time.sleep(_OTHER_RANK_WAIT_S)
        message = f"[rank {rank}] {message}"
    print(message, file=sys.stderr)


_OTHER_RANK_WAIT_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE if argv else EXIT_OK
        return int(args.func(args) or 0)
    except ConvlabError as e:  # UsageError included
        _say(f"convlab: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("convlab: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
