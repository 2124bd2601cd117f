"""The ``convlab`` command.

Every sub-command has ``--help`` with examples, prints data as JSON on request, exits 0 on success,
1 on a finding (``check``), and 2 on bad usage with a one-line reason. Heavy modules (torch) are
imported inside the commands that need them, so ``convlab --help`` and ``convlab size`` start fast.
"""

from __future__ import annotations

import argparse
import json
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


def _size_arg(text: str):
    """'7' -> 7; '8,8' or '8x8' -> (8, 8); 'same'/'valid' pass through."""
    t = text.strip().lower()
    if t in ("same", "valid"):
        return t
    parts = [p for p in t.replace("×", "x").replace("x", ",").split(",") if p != ""]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or H,W pair, got {text!r}") from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 2:
        return tuple(nums)
    raise argparse.ArgumentTypeError(f"expected an integer or H,W pair, got {text!r}")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ------------------------------------------------------------------------------------------
# size / solve / chain


def cmd_size(args) -> int:
    from . import arith

    if args.op == "conv":
        if args.output_padding or args.ceil:
            raise UsageError("--output-padding is for convT and --ceil for pool, not conv")
        e = arith.explain_conv(args.input, args.kernel, args.stride or 1, args.padding, args.dilation)
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
        e = arith.explain_conv_transpose(args.input, args.kernel, args.stride or 1, args.padding, args.dilation,
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
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 3,32,32), got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers C,H,W (e.g. 3,32,32), got {text!r}")
    return shape


def _summarise(args):
    from .analyze import summary
    from .resolve import resolve_model

    kind, obj, *rest = resolve_model(args.model)
    if kind == "module":
        if args.input is None:
            raise UsageError(f"--input C,H,W is needed for {args.model}")
        return summary(obj, args.input, batch_size=args.batch, depth=args.depth)
    default_shape, label = rest
    shape = args.input or default_shape
    if shape is None and not getattr(obj, "input_shape", None):
        from .spec import parse

        if parse(obj).input_shape is None:
            raise UsageError("--input C,H,W is needed (or begin the spec with input(C,H,W))")
    s = summary(obj, shape, batch_size=args.batch, depth=args.depth, num_classes=args.num_classes)
    s.model = label if label != "spec" else args.model
    return s


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
    from .training import TrainConfig, train

    base = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    fields = ["data", "data_dir", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule",
              "warmup", "label_smoothing", "augment", "resize", "device", "precision", "channels_last", "seed",
              "max_steps", "threads", "out", "eval_every"]
    over = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    if args.compile:
        over["compile"] = True
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
        raise UsageError("MODEL is required (e.g. convlab train lenet-modern --data fashion-mnist)")
    run = train(config=cfg, resume=args.resume, progress=False if args.no_progress else None)
    return 130 if run.interrupted else EXIT_OK


def cmd_eval(args) -> int:
    from .training.evaluate import evaluate_run

    result = evaluate_run(args.run, data=args.data, data_dir=args.data_dir, split=args.split, device=args.device,
                          out=args.out)
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
    import torch

    from .data import Batcher
    from .training.evaluate import load_run
    from .viz import check_layers, conv_layers, plot_feature_maps, plot_filters

    if args.channels < 1:
        raise UsageError(f"--channels must be >= 1, got {args.channels}")
    r = load_run(args.run, data=args.data, data_dir=args.data_dir, device=args.device)
    target = Path(args.out) if args.out else r.run_dir
    target.mkdir(parents=True, exist_ok=True)
    saved = []
    check_layers(r.model, args.layer or [])
    if args.what in ("filters", "both"):
        layer = next((n for n in args.layer or [] if n in conv_layers(r.model)), None)  # else the first conv
        name = layer or next(iter(conv_layers(r.model)), "conv")
        saved.append(plot_filters(r.model, target / f"filters-{name}.png", layer=layer))
    if args.what in ("maps", "both"):
        x, y = (r.ds.test_x, r.ds.test_y) if args.split == "test" else (r.ds.train_x, r.ds.train_y)
        if not 0 <= args.index < len(x):
            raise UsageError(f"--index {args.index} is outside the {args.split} split (0..{len(x) - 1})")
        one = Batcher(x, y, r.ds.mean, r.ds.std, batch_size=1, resize=r.cfg.resize).make_batch(
            torch.tensor([args.index]))[0]
        with torch.no_grad():
            probs = torch.softmax(r.model(one.unsqueeze(0).to(r.device)).float(), 1)[0].cpu()
        label, pred = int(y[args.index]), int(probs.argmax())
        classes = r.ds.classes
        print(f"{args.split} image {args.index}: {classes[label]}, predicted {classes[pred]} "
              f"({100 * float(probs[pred]):.1f}%)")
        saved.append(plot_feature_maps(
            r.model, one, target / f"maps-{args.split}-{args.index}.png", layers=args.layer,
            max_channels=args.channels, shown_image=x[args.index].float(),
            title=f"{r.cfg.model}: {args.split} image {args.index} ({classes[label]}, predicted {classes[pred]})"))
    print("saved: " + ", ".join(str(p) for p in saved))
    return EXIT_OK


def cmd_compare(args) -> int:
    from .report import compare

    rows = compare(args.runs, plot=args.plot)
    if args.json:
        _print_json([{k: v for k, v in r.items() if k not in ("metrics", "config")} for r in rows])
        return EXIT_OK

    def pct(v):
        return f"{100 * v:.2f}%" if v is not None else "-"

    print(f"{'run':<34} {'model':<22} {'params':>11} {'epochs':>6} {'final acc':>9} {'best acc':>9} {'time':>8}")
    for r in rows:
        model = (r["model"] or "?")[:22]
        params = f"{r['params']:,}" if r["params"] is not None else "-"
        wall = f"{r['wall_s']:.0f} s" if r["wall_s"] is not None else "-"
        print(f"{r['name'][:34]:<34} {model:<22} {params:>11} {r['epochs']:>6} {pct(r['final_test_acc']):>9} "
              f"{pct(r['best_test_acc']):>9} {wall:>8}")
    if args.plot:
        print(f"curves: {args.plot}")
    return EXIT_OK


def cmd_report(args) -> int:
    from .report import report

    print(report(args.run, args.out))
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


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="convlab", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Design, check, inspect and train convolutional neural networks.",
                epilog=_examples(
                    "convlab size conv --in 28 --kernel 3 --stride 2 --padding 1",
                    "convlab solve --in 28 --out 14",
                    "convlab chain --in 28 k3s2p1 x5",
                    "convlab <command> --help      # more on each command"))
    p.add_argument("--version", action="version", version=f"convlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
    sp.add_argument("--in", dest="input", type=_size_arg, required=True, metavar="SIZE", help="input size: N or H,W")
    sp.add_argument("--kernel", "-k", type=_size_arg, required=True, metavar="K", help="kernel size: K or KH,KW")
    sp.add_argument("--stride", "-s", type=_size_arg, default=None, metavar="S",
                    help="stride (default 1; for pool: the kernel)")
    sp.add_argument("--padding", "-p", type=_size_arg, default=0, metavar="P",
                    help="padding on each side (conv also takes 'same' or 'valid')")
    sp.add_argument("--dilation", "-d", type=_size_arg, default=1, metavar="D", help="dilation (default 1)")
    sp.add_argument("--ceil", action="store_true", help="pool: ceil_mode=True")
    sp.add_argument("--output-padding", type=_size_arg, default=0, metavar="N", help="convT: output_padding")
    sp.add_argument("--json", action="store_true", help="print JSON (output, formula, steps, dropped, dims)")

    sp = add("solve", cmd_solve, "Every kernel/stride/padding/dilation that maps one size to another.",
             ["convlab solve --in 28 --out 14",
              "convlab solve --in 224 --out 112 --kernel 7 --json",
              "convlab solve --in 32 --out 32 --dilation 1 2"])
    sp.add_argument("--in", dest="input", type=int, required=True, metavar="N", help="input size")
    sp.add_argument("--out", dest="output", type=int, required=True, metavar="N", help="wanted output size")
    sp.add_argument("--kernel", "-k", type=int, nargs="+", metavar="K", help="kernels to try (default 1..7)")
    sp.add_argument("--stride", "-s", type=int, nargs="+", metavar="S", help="strides to try (default 1..4)")
    sp.add_argument("--dilation", "-d", type=int, nargs="+", metavar="D", help="dilations to try (default 1..3)")
    sp.add_argument("--padding", "-p", type=int, nargs="+", metavar="P", help="paddings to try (default 0..k/2+1)")
    sp.add_argument("--limit", type=int, default=12, help="rows to show (default 12)")
    sp.add_argument("--all", action="store_true", help="show every solution")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("chain", cmd_chain, "A whole size sequence through several conv/pool steps, each explained.",
             ["convlab chain --in 28 k3s2p1 x5            # seed 000: 28 → 14 → 7 → 4 → 2 → 1",
              "convlab chain --in 28 conv:k5p2 pool:k2 conv:k5 pool:k2   # LeNet: 28 → 28 → 14 → 10 → 5",
              "convlab chain --in 224,224 k7s2p3 pool:k3s2p1 --verbose",
              "convlab chain --in 7 convT:k3s2p1op1 --json"])
    sp.add_argument("--in", dest="input", type=_size_arg, required=True, metavar="SIZE", help="input size: N or H,W")
    sp.add_argument("steps", nargs="+", help="steps like k3s2p1, pool:k2, convT:k4s2p1; xN repeats the step before")
    sp.add_argument("--verbose", "-v", action="store_true", help="print each step's full explanation")
    sp.add_argument("--json", action="store_true", help="print JSON")

    model_help = ("a zoo name (resnet20, resnet20:shortcut=B), a spec in quotes, a spec file (.yaml/.json/.spec) "
                  "or package.module:attr")

    def model_args(sp):
        sp.add_argument("model", metavar="MODEL", help=model_help)
        sp.add_argument("--input", "-i", type=_shape_arg, metavar="C,H,W",
                        help="input shape (default: the zoo model's own, or the spec's input(...))")
        sp.add_argument("--batch", type=int, default=1, metavar="N", help="batch size for MACs and memory (default 1)")
        sp.add_argument("--depth", type=int, default=None, metavar="N", help="fold rows nested deeper than N")
        sp.add_argument("--num-classes", type=int, default=None, metavar="K", help="resize the last fc to K classes")

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
    sp.add_argument("name", nargs="?", help="dataset name")
    sp.add_argument("--data-dir", metavar="DIR", help="look here first (and fetch into it)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("train", cmd_train, "Train a model on a dataset: fast, reproducible, resumable runs.",
             ["convlab train lenet-modern --data fashion-mnist           # 91% in 25-35 s on 2 cores",
              "convlab train resnet20 --data cifar10 --epochs 30 --device cuda --precision bf16",
              "convlab train \"conv(32,3,p=1) bn relu maxpool(2) flatten fc(10)\" --data mnist --epochs 3",
              "convlab train vgg-d2l --data fashion-mnist --resize 224 --epochs 10",
              "convlab train resnet20 --data fashion-mnist --option shortcut=B --out runs/r20b",
              "convlab train --out runs/r20b --resume                      # continue an interrupted run",
              "torchrun --nproc-per-node 2 -m convlab train resnet20 --data cifar10   # DDP"])
    sp.add_argument("model", metavar="MODEL", nargs="?", help=model_help)
    g = sp.add_argument_group("data")
    g.add_argument("--data", metavar="NAME", help="dataset: fashion-mnist (default), mnist, cifar10, cifar100, folder:PATH")
    g.add_argument("--data-dir", metavar="DIR", help="look for the dataset here first")
    g.add_argument("--augment", metavar="SPEC", help="crop=N,flip,cutout=N or none (default: per dataset)")
    g.add_argument("--resize", type=int, metavar="H", help="train and test at H×H (e.g. 96, 224)")
    g = sp.add_argument_group("optimisation", textwrap.fill(
        "Defaults follow the model family. Small CNNs (LeNet, cifar-cnn, sepnet): 8 epochs, batch 256, "
        "SGD-Nesterov lr 0.2, wd 5e-4, one-cycle, label smoothing 0.1. CIFAR ResNets and plain nets: the ResNet "
        "paper's lr 0.1, momentum 0.9, wd 1e-4, lr/10 at 50% and 75%, batch 128, 30 epochs. ImageNet-style "
        "nets: 10 epochs, batch 128, lr 0.05, one-cycle. The resolved values are saved in the run's config.yaml.", 78))
    g.add_argument("--epochs", type=int, help="passes over the training set")
    g.add_argument("--batch-size", type=int, help="global batch size (split across torchrun processes)")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], help="SGD with Nesterov momentum, or AdamW")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--momentum", type=float, help="SGD momentum (AdamW: beta1)")
    g.add_argument("--weight-decay", type=float, help="on conv/linear weights; biases and norms are not decayed")
    g.add_argument("--schedule", choices=["onecycle", "cosine", "step", "paper", "constant"],
                   help="onecycle: linear up then down to 0; step/paper: lr/10 at 50%% and 75%%")
    g.add_argument("--warmup", type=float, help="fraction of the steps spent warming up")
    g.add_argument("--label-smoothing", type=float, help="e.g. 0.1; 0 turns it off")
    g.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    g.add_argument("--eval-every", type=int, metavar="N", help="evaluate every N epochs (default 1)")
    g = sp.add_argument_group("hardware")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="auto: CUDA, then MPS, then CPU")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast dtype for the forward pass (bf16 on recent GPUs; fp16 adds loss scaling)")
    g.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                   help="NHWC memory layout (the default; faster on CPU and tensor-core GPUs)")
    g.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, help="CPU threads for torch")
    g = sp.add_argument_group("run")
    g.add_argument("--seed", type=int, help="same seed, same machine: the same metrics, bit for bit (default 0)")
    g.add_argument("--out", metavar="DIR", help="run directory (default: runs/NNN-model-data)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    g.add_argument("--config", metavar="FILE.yaml", help="read the config from YAML (flags override it)")
    g.add_argument("--option", action="append", metavar="KEY=VALUE", help="zoo model option, e.g. shortcut=B")
    g.add_argument("--no-progress", action="store_true", help="plain lines instead of a progress bar")

    sp = add("eval", cmd_eval, "Evaluate a run or checkpoint: accuracy, per-class accuracy, confusion matrix.",
             ["convlab eval runs/001-lenet-modern-fashion-mnist",
              "convlab eval runs/001-lenet-modern-fashion-mnist/last.pt --split train --json"])
    sp.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the one it was trained on)")
    sp.add_argument("--data-dir", metavar="DIR")
    sp.add_argument("--split", choices=["test", "train"], default="test")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    sp.add_argument("--out", metavar="DIR", help="where to write confusion.png/eval.json (default: the run)")
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
    sp.add_argument("--index", type=int, default=0, metavar="N", help="which image of the split (default 0)")
    sp.add_argument("--split", choices=["test", "train"], default="test")
    sp.add_argument("--channels", type=int, default=16, metavar="K", help="maps drawn per layer (default 16)")
    sp.add_argument("--data", metavar="NAME", help="dataset (default: the one it was trained on)")
    sp.add_argument("--data-dir", metavar="DIR")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    sp.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: the run directory)")

    sp = add("compare", cmd_compare, "Compare finished runs: a table of results and their curves on shared axes.",
             ["convlab compare runs/001-resnet20-cifar10 runs/002-plain20-cifar10 --plot compare.png",
              "convlab compare runs/* --json"])
    sp.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    sp.add_argument("--plot", metavar="FILE.png", help="write test accuracy and train loss curves here")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("report", cmd_report, "Write one self-contained HTML page for a run: curves, metrics, model, config.",
             ["convlab report runs/001-lenet-modern-fashion-mnist"])
    sp.add_argument("run", metavar="RUN", help="a run directory")
    sp.add_argument("--out", metavar="FILE.html", help="where to write it (default: RUN/report.html)")

    sp = add("tour", cmd_tour, "The course notes' concepts, each with its numbers computed live.",
             ["convlab tour", "convlab tour edges", "convlab tour parameters"])
    sp.add_argument("topic", nargs="?", help="cross-correlation, edges, learning, padding, channels, 1x1, pooling, "
                                              "parameters, receptive-field (default: all)")

    sp = add("zoo", cmd_zoo, "The registered models, with parameters and MACs at their default input.",
             ["convlab zoo", "convlab zoo 'resnet*'", "convlab zoo --json"])
    sp.add_argument("pattern", nargs="?", default="*", help="glob pattern (default: all)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    return p


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
    except UsageError as e:
        print(f"convlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConvlabError as e:
        print(f"convlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("convlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
