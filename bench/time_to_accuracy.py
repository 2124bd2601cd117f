"""Time to accuracy: how long each training recipe takes to first reach a test accuracy on Fashion-MNIST.

Candidates, trained side by side in this one process on the same threads, interleaved epoch by epoch
(epoch 1 of each, then epoch 2 of each, ...), so the machine's drift falls on all of them alike:

  today    convlab's default before the time-to-accuracy work: lenet-modern, 8 epochs, batch 256,
           SGD-Nesterov lr 0.2, one-cycle, label smoothing 0.1, flips, no test-time flip (spelled out here)
  d2l      lenet-modern with ``--recipe d2l``: d2l's Trainer (plain SGD lr 0.1, batch 128, 10 epochs)
  default  what ``convlab train MODEL`` runs now, MODEL being ``DEMO_MODEL`` of the zoo (what
           ``make demo`` trains: fastcnn, 3 epochs at lr 0.4, test-time flip), with every setting
           resolved by convlab itself

Each candidate trains through ``convlab.training.loop.train_step``, the step ``convlab train`` takes,
on a run set up by the same code. After every epoch the bench evaluates on the full test set (the
evaluation timed apart from the training), so it sees the first epoch at which the target is
reached, even for a recipe that itself only evaluates at the end. Per seed it prints the training
seconds and the evaluation seconds up to that epoch, the final accuracy and the ratio
today / candidate of the training seconds to the target (above 1: faster than today; ">" where
today itself missed the target and its whole run is the bound). The last rows are medians over the
seeds.

``--flip`` scores every candidate that does not flip at test time a second time with the test-time
flip (the mean of the scores of each test image and its mirror image): rows NAME+tf, from the same
training, so a flip's gain is paired with its candidate's own weights.

More candidates for a comparison: ``--try NAME=MODEL`` or ``--try "NAME=MODEL|key=value,..."``
(TrainConfig keys: epochs, batch_size, lr, schedule, warmup, label_smoothing, augment, ...; MODEL
``default`` is DEMO_MODEL), e.g. ``--try "bs512=default|batch_size=512,lr=0.4"``.

Run: .venv/bin/python bench/time_to_accuracy.py [--target 0.91] [--seeds 0 1 2 3 4] [--quick]
     [--candidates today d2l default] [--try ...] [--threads N] [--flip] [--verbose]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

# the recipe convlab's lenet-modern trained with before this bench (README, "Training speed")
TODAY = dict(epochs=8, batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4,
             schedule="onecycle", warmup=0.25, label_smoothing=0.1, augment="flip", init="default", test_flip=False)
QUICK_TRAIN, QUICK_TEST, QUICK_TARGET, QUICK_STEPS = 2048, 1024, 0.60, 24  # --quick: steps per candidate


@dataclass
class Candidate:
    name: str
    model: str
    settings: dict
    # filled as it trains
    setup: object = None
    step: int = 0
    epochs: int = 0
    accs: list = field(default_factory=list)      # test accuracy after each epoch
    flip_accs: list = field(default_factory=list)  # the same with a test-time flip (--flip), and its seconds
    flip_s: list = field(default_factory=list)
    train_s: list = field(default_factory=list)   # training seconds of each epoch
    eval_s: list = field(default_factory=list)    # evaluation seconds after each epoch


def candidates(names, tries) -> list[tuple[str, str, dict]]:
    from convlab.zoo import DEMO_MODEL

    known = {"today": ("lenet-modern", dict(TODAY)), "d2l": ("lenet-modern", dict(recipe="d2l")),
             "default": (DEMO_MODEL, {})}
    out = []
    for n in names:
        if n not in known:
            raise SystemExit(f"--candidates: unknown {n!r} (known: {', '.join(known)}; --try adds others)")
        out.append((n, *known[n]))
    for t in tries:
        name, _, rest = t.partition("=")
        model, _, kv = rest.partition("|")
        settings = {}
        for item in filter(None, kv.split(",")):
            k, _, v = item.partition("=")
            settings[k.strip()] = _value(v.strip())
        out.append((name.strip(), DEMO_MODEL if model.strip() in ("", "default") else model.strip(), settings))
    return out


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    # "none" stays text (augment=none means no augmentation); "null" is YAML's nothing, the family's default
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def dataset(quick: bool):
    """Fashion-MNIST (a subset with --quick), or random images of its shape when it is not installed
    (the timings hold, the accuracies are chance)."""
    import torch

    from convlab.data import load
    from convlab.data.registry import Dataset
    from convlab.errors import DataError

    try:
        ds, what = load("fashion-mnist", download=False, progress=False), "Fashion-MNIST"
    except DataError:
        g = torch.Generator().manual_seed(0)
        ds = Dataset("fashion-mnist", torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (60000,), generator=g),
                     torch.randint(0, 256, (10000, 1, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (10000,), generator=g), [str(i) for i in range(10)], (0.5,), (0.29,))
        what = "random images (Fashion-MNIST not installed: accuracies are chance)"
    if quick:
        ds = replace(ds, train_x=ds.train_x[:QUICK_TRAIN], train_y=ds.train_y[:QUICK_TRAIN],
                     test_x=ds.test_x[:QUICK_TEST], test_y=ds.test_y[:QUICK_TEST])
        what += f", --quick subset ({QUICK_TRAIN} training, {QUICK_TEST} test images)"
    return ds, what


def prepare(c: Candidate, ds, seed: int, threads: int, root: Path, max_steps: int | None = None) -> None:
    from convlab.training import TrainConfig
    from convlab.training.loop import _prepare

    cfg = TrainConfig(model=c.model, data=ds.name, seed=seed, device="cpu", threads=threads,
                      out=str(root / f"{c.name}-{seed}"), **{**c.settings, **({"max_steps": max_steps} if max_steps else {})})
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # the notes a run prints
        c.setup = _prepare(c.model, ds, cfg, False, {})
    c.epochs = min(c.setup.cfg.epochs, -(-c.setup.total_steps // c.setup.steps_per_epoch))  # --quick: its steps


def train_epoch(c: Candidate) -> float:
    from convlab.training.loop import train_step
    from convlab.training.progress import _Tally

    s = c.setup
    s.train_batches.set_epoch(len(c.accs))
    s.model.train()
    tally = _Tally(s.device)  # what the loop sums and reads every step on a CPU
    t = time.perf_counter()
    for x, y in s.train_batches:
        if c.step >= s.total_steps:
            break
        loss, logits = train_step(s, x, y, c.step)
        c.step += 1
        tally.add(loss, logits, y)
        tally.read()
    return time.perf_counter() - t


def evaluate(c: Candidate, flip: bool | None = None) -> tuple[float, float]:
    """Test accuracy and seconds, scored as the candidate's run scores it (``flip`` None: its test_flip)."""
    from convlab.training.loop import evaluate as ev

    s = c.setup
    t = time.perf_counter()
    _, acc = ev(s.model, s.test_batches, s.d, s.device, s.autocast,
                flip=s.cfg.test_flip if flip is None else flip)
    return acc, time.perf_counter() - t


def reached(c: Candidate, target: float):
    """(epoch, training s, evaluation s) up to the first epoch at the target, or None."""
    for i, a in enumerate(c.accs):
        if a >= target:
            return i + 1, sum(c.train_s[:i + 1]), sum(c.eval_s[:i + 1])
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=float, default=None,
                    help=f"test accuracy to reach, 0..1 (default 0.91; --quick: {QUICK_TARGET})")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2 3 4; --quick: 0)")
    ap.add_argument("--candidates", nargs="*", default=["today", "d2l", "default"],
                    help="which built-in candidates (default: today d2l default)")
    ap.add_argument("--try", dest="tries", action="append", default=[], metavar="NAME=MODEL|k=v,...",
                    help="another candidate (repeatable; default: none)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a {QUICK_TRAIN}-image training subset, {QUICK_TEST} test images, {QUICK_STEPS} steps "
                         "per candidate, one seed: seconds, to keep the bench working (default: off)")
    ap.add_argument("--flip", action="store_true",
                    help="also score every candidate with a test-time flip (the mean of the scores of each test "
                         "image and its mirror image): rows NAME+tf, from the same training (default: off)")
    ap.add_argument("--verbose", action="store_true", help="print each epoch's accuracy as it comes (default: off)")
    args = ap.parse_args(argv)
    target = args.target if args.target is not None else (QUICK_TARGET if args.quick else 0.91)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2, 3, 4])

    import torch

    from convlab.training.device import tune_cpu_allocator

    tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    ds, what = dataset(args.quick)
    specs = candidates(args.candidates, args.tries)
    results: dict[str, list[Candidate]] = {name: [] for name, _, _ in specs}
    with tempfile.TemporaryDirectory(prefix="convlab-tta-") as tmp:
        for seed in seeds:
            cands = [Candidate(name, model, settings) for name, model, settings in specs]
            for c in cands:
                prepare(c, ds, seed, threads, Path(tmp), QUICK_STEPS if args.quick else None)
            for epoch in range(max(c.epochs for c in cands)):  # interleaved: epoch e of every candidate
                for c in cands:
                    if epoch < c.epochs:
                        c.train_s.append(train_epoch(c))
                        acc, es = evaluate(c)
                        c.accs.append(acc)
                        c.eval_s.append(es)
                        if args.flip and not c.setup.cfg.test_flip:
                            fa, fs = evaluate(c, flip=True)
                            c.flip_accs.append(fa)
                            c.flip_s.append(fs)
                        if args.verbose:
                            print(f"  seed {seed} {c.name:<10} epoch {epoch + 1:>2}/{c.epochs}: {100 * acc:.2f}% "
                                  + (f"(test-time flip {100 * c.flip_accs[-1]:.2f}%) " if c.flip_accs else "")
                                  + f"train {c.train_s[-1]:.1f}s eval {es:.2f}s", file=sys.stderr, flush=True)
            for c in cands:
                c.setup.rundir.release()
                c.setup = None
                results[c.name].append(c)
                if c.flip_accs:  # the same training, scored with the test-time flip: a row of its own
                    results.setdefault(c.name + "+tf", []).append(
                        replace(c, accs=c.flip_accs, eval_s=c.flip_s, name=c.name + "+tf"))
            print(f"seed {seed} done", file=sys.stderr, flush=True)

    print(f"data: {what}; target {100 * target:.1f}% test accuracy on the {len(ds.test_x):,} test images; "
          f"torch {torch.__version__}, {threads} thread(s); seeds {' '.join(map(str, seeds))}")
    print("candidates, trained interleaved epoch by epoch in one process:")
    for name, model, settings in specs:
        c0 = results[name][0]
        print(f"  {name:<10} {model}  epochs {c0.epochs}" + (f"  {settings}" if settings else ""))
    print()
    head = (f"{'candidate':<10} {'seed':>4} {'epoch@target':>12} {'train s':>8} {'eval s':>7} {'final acc':>9} "
            f"{'all train s':>11} {'vs today':>9}")
    print(head)
    print("-" * len(head))
    today = results.get("today")
    for name in results:
        ratios, times, finals, hit = [], [], [], 0
        for i, c in enumerate(results[name]):
            r = reached(c, target)
            base = reached(today[i], target) if today else None
            ratio = "-"
            if r:
                hit += 1
                times.append(r[1])
                if today:
                    bound = base[1] if base else sum(today[i].train_s)
                    ratios.append(bound / r[1])
                    ratio = f"{'' if base else '>'}{bound / r[1]:.2f}x"
            finals.append(c.accs[-1])
            at = f"{r[0]}/{c.epochs}" if r else f"- /{c.epochs}"
            print(f"{name:<10} {seeds[i]:>4} {at:>12} {f'{r[1]:.1f}' if r else '-':>8} "
                  f"{f'{r[2]:.1f}' if r else '-':>7} {100 * c.accs[-1]:>8.2f}% {sum(c.train_s):>11.1f} {ratio:>9}")
        med_t = f"{statistics.median(times):.1f}" if times else "-"
        med_r = f"{statistics.median(ratios):.2f}x" if ratios else "-"
        print(f"{name:<10} {'med':>4} {f'{hit}/{len(seeds)} hit':>12} {med_t:>8} {'':>7} "
              f"{100 * statistics.median(finals):>8.2f}% "
              f"{statistics.median(sum(c.train_s) for c in results[name]):>11.1f} {med_r:>9}   "
              f"(final {100 * min(finals):.2f}-{100 * max(finals):.2f}%)")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
