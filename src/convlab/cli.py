"""The ``convlab`` command.

Every sub-command has ``--help`` with examples, prints data as JSON on request, exits 0 on success,
1 on a finding (``check``), and 2 on bad usage with a one-line reason. Heavy modules (torch) are
imported inside the commands that need them, so ``convlab --help`` and ``convlab size`` start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
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
