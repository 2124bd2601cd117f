"""``convlab.train``: a training loop you can read top to bottom.

    for epoch ...:            permutation from (seed, epoch); batches built on the device
        for batch ...:        forward (autocast) → loss → backward → step → lr from the schedule
        evaluate              test loss and accuracy, all-reduced across ranks
        save                  metrics.jsonl/csv, last.pt (atomic), best.pt, curves.png

Runs are reproducible (same seed, same machine → same metrics), resumable (``resume=True`` continues
from ``last.pt``, mid-epoch included, with the same final weights), and stop cleanly on Ctrl-C and on a
non-finite loss. Under ``torchrun`` each rank trains on its slice of every global batch through
DistributedDataParallel; rank 0 alone writes.

The pieces the loop calls live next door: ``distributed.py`` (process group, collectives, the agreed
stop), ``device.py`` (the "auto" rule and per-device settings), ``optim.py`` (optimizer and
schedule), ``progress.py`` (running sums, progress bar) and ``rundir.py`` (what is written where).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import RunError, TrainingError, UsageError
from .checkpoint import checkpoint_config, load_checkpoint, model_source, save_checkpoint
from .config import TrainConfig, with_family_defaults
from .device import configure, device_kind, pick_device
from .distributed import Dist, _StopRequest, all_reduce, barrier, setup_distributed
from ..factory import make_model, resolve_model
from . import head
from .init import init_weights
from .optim import lr_at, make_optimizer
from .progress import _Estimate, _Reporter, _Tally, live_display, read_every
from .rundir import RunDir

__all__ = ["Run", "evaluate", "train"]


@dataclass
class Run:
    """What ``train`` returns: where the run lives, its resolved config, the metrics per epoch."""

    dir: Path | None
    config: TrainConfig
    metrics: list[dict] = field(default_factory=list)
    best_acc: float = 0.0
    model: nn.Module | None = None
    interrupted: bool = False
    reached_target: bool = False  # stopped early at ``config.target_acc``

    @property
    def test_acc(self) -> float | None:
        evals = [m["test_acc"] for m in self.metrics if m.get("test_acc") is not None]
        return evals[-1] if evals else None


@dataclass
class _Start:
    """Where the loop begins: step 0 of a fresh run, or where a run's last.pt left it.

    A resumed run is read here, once: its checkpoint, its own config and the metrics of the epochs it
    completed. :meth:`restore` then puts the saved weights, optimizer and scaler state and RNG into
    the model, optimizer and scaler built for the continuation.
    """

    rundir: RunDir | None = None
    config: TrainConfig | None = None  # the run's own config, as saved
    epoch: int = 0                     # epochs completed
    batch: int = 0                     # batches completed in the epoch after those
    step: int = 0                      # optimizer steps taken
    best_acc: float = 0.0
    partial: tuple = (0.0, 0, 0)       # the unfinished epoch's loss sum, correct, seen
    metrics: list[dict] = field(default_factory=list)  # one row per completed epoch
    wall_before: float = 0.0           # seconds the run had trained before
    state: dict | None = None          # the checkpoint, until restored
    source: object = None              # what a resumed run's model is built from (see model_source)

    @classmethod
    def resume(cls, cfg: TrainConfig, named=None) -> "_Start":
        """The run in ``cfg.out``, locked, read and checked; ``named`` is the MODEL the user gave again
        (a module run needs its import path named again; any other MODEL must be the run's own)."""
        main = os.environ.get("RANK", "0") == "0"  # under torchrun rank 0 alone locks (and writes)
        rundir = RunDir.create(cfg, resume=True, main=main)
        try:
            state = load_checkpoint(rundir.last)
            saved = checkpoint_config(state, rundir.last)
            _refuse_changes(cfg, saved, rundir)
            source = model_source(state, saved, rundir.last, named=named)
            metrics = rundir.read_metrics()[:state["epoch"]]
        except BaseException:
            rundir.release()
            raise
        start = cls(rundir, saved, state["epoch"], state["batch"], state["scheduler"]["step"], state["best_acc"],
                    tuple(state["partial"]), metrics, metrics[-1]["wall_s"] if metrics else 0.0, state)
        start.source = source
        return start

    def restore(self, net: nn.Module, optimizer, scaler, device: torch.device) -> None:
        """Load the saved states (a fresh run: nothing to do)."""
        from .report import _load_weights

        state, self.state = self.state, None
        if state is None:
            return
        _load_weights(net, state["model"], self.rundir.last, self.config.model)
        try:
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"].get("cuda"):
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (ValueError, KeyError, RuntimeError, TypeError) as e:
            raise RunError(f"{self.rundir.last}: its optimizer or RNG state does not fit this run "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


# what --resume may change: where the run runs (device, threads: see the note), where its data is
_RESUME_MAY_CHANGE = {"model", "device", "threads", "out", "data_dir"}


def _refuse_changes(asked: TrainConfig, saved: TrainConfig, rundir: RunDir) -> None:
    """--resume continues a run as it was configured: a flag given with another value than the run's is
    refused (it was silently ignored before), --epochs included — the schedule depends on the number of
    steps, so a longer run is a new run."""
    default = TrainConfig()
    changed = [(f.name, getattr(saved, f.name), getattr(asked, f.name)) for f in dataclasses.fields(TrainConfig)
               if f.name not in _RESUME_MAY_CHANGE and getattr(asked, f.name) != getattr(default, f.name)
               and getattr(asked, f.name) != getattr(saved, f.name)]
    if changed:
        what = ", ".join(f"{k} (the run has {v!r}, asked {a!r})" for k, v, a in changed)
        extra = (" A longer run is a new run (the learning-rate schedule spans the epochs asked for): start one "
                 "with another --out." if any(k == "epochs" for k, _, _ in changed) else "")
        raise UsageError(f"--resume continues {rundir.path} exactly as it was configured and does not change "
                         f"{what}; leave these flags out to continue it, or train a new run with another --out."
                         f"{extra} (--device, --threads and --data-dir may be given.)")


@dataclass
class _Setup:
    """Everything ``train`` builds before its first step (see :func:`_prepare`)."""

    cfg: TrainConfig
    d: Dist
    device: torch.device
    net: nn.Module          # the model itself, whose weights are saved
    model: nn.Module        # what runs: ``net``, compiled and/or wrapped in DDP
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: contextlib.AbstractContextManager
    rundir: RunDir
    train_batches: object
    test_batches: object
    steps_per_epoch: int
    total_steps: int
    start: _Start
    recorded: tuple = (None, None)  # (spec text, module path) the checkpoints record


def _prepare(model, data, config: TrainConfig | None, resume: bool, overrides: dict) -> _Setup:
    """The config (resumed, then with the family's defaults), device and process group, data, model,
    run directory, optimizer and batches; a resumed run's saved state restored into them."""
    from ..data import Augment, Batcher, default_augment, load

    cfg = TrainConfig(**{**(config.to_dict() if config else {}), **overrides})
    if isinstance(model, str):
        cfg.model = model
    if isinstance(data, str):
        cfg.data = data
    start = _Start()
    if resume:  # the run's own config, so the continuation is the same run; only where it runs may change
        named = model if model is not None else (cfg.model if cfg.model != TrainConfig.model else None)
        start = _Start.resume(cfg, named)
        saved = start.config
        if cfg.threads and saved.threads and cfg.threads != saved.threads and os.environ.get("RANK", "0") == "0":
            print(f"note: --threads {cfg.threads}, the run trained with {saved.threads}: CPU kernels may sum in "
                  f"another order, so the final weights can differ in the last bits from an uninterrupted run "
                  f"(leave --threads out to reuse {saved.threads})", file=sys.stderr)
        cfg = dataclasses.replace(saved, device=cfg.device, threads=cfg.threads or saved.threads,
                                  data_dir=cfg.data_dir or saved.data_dir, out=str(start.rundir.path))
    try:
        return _prepare_rest(model, data, cfg, resume, start)
    except BaseException:
        if start.rundir is not None:
            start.rundir.release()
        raise


def _prepare_rest(model, data, cfg: TrainConfig, resume: bool, start: "_Start") -> _Setup:
    from ..data import Augment, Batcher, default_augment, load

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    kind = device_kind(cfg.device)
    d = setup_distributed(kind)
    device = pick_device(kind, d.local_rank)
    configure(device)

    ds = data if data is not None and not isinstance(data, str) else load(cfg.data, cfg.data_dir, progress=d.main)
    if data is not None and not isinstance(data, str):
        cfg.data = ds.name  # a Dataset given in Python: the run records its own name
    input_shape, num_classes = ds.input_shape(cfg.resize), ds.num_classes

    torch.manual_seed(cfg.seed)
    src = start.source if resume else (model if isinstance(model, nn.Module) else resolve_model(cfg.model,
                                                                                                overrides=cfg.overrides or None))
    if isinstance(src, nn.Module):
        net, spec_text, family = src, getattr(src, "spec", None), None
        if not resume:
            cfg.model = cfg.model if cfg.model != TrainConfig.model else type(src).__name__
    else:
        net, spec_text, family = make_model(src, None, input_shape, num_classes)
    recorded = _recorded(net, src)
    flip_asked = cfg.test_flip
    cfg = with_family_defaults(cfg, family)
    init_weights(net, cfg.init)  # after the seed, so the same seed draws the same weights
    if cfg.batch_size % d.world:
        raise UsageError(f"--batch-size {cfg.batch_size} must divide evenly across {d.world} processes")

    from ..analyze import summary

    summ = summary(net, input_shape)  # a shape bug stops here, before any step
    summ.model = cfg.model
    out_shape = summ.output_shape
    binary = len(out_shape or []) == 2 and out_shape[-1] == 1 and num_classes == 2  # one logit: BCE
    if not binary and (not out_shape or out_shape[-1] != num_classes or len(out_shape) != 2):
        raise TrainingError(f"the model outputs {out_shape} but {ds.name} has {num_classes} classes; the last "
                            f"layer must give [N, {num_classes}] (zoo and spec models are resized automatically)")
    if d.main:
        for note in getattr(net, "notes", ()):
            print(f"note: {note}", file=sys.stderr)
        if binary:
            print(f"binary head: one logit for {ds.classes[1]!r} vs {ds.classes[0]!r}, trained with binary "
                  f"cross-entropy on the logit" + (" (before the sigmoid)" if head.ends_in_sigmoid(net) else "")
                  + "; predicts class 1 when the sigmoid is above 0.5", file=sys.stderr)

    if len(ds.train_x) < cfg.batch_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than the training set ({len(ds.train_x)})")
    augment = Augment.parse(cfg.augment, default_augment(ds))
    if flip_asked is None and not augment.flip:  # the family's test-time flip, only where the training flips
        cfg.test_flip = False
    # config.yaml records what runs, not what was asked for: 'auto' and "the dataset's default" resolved
    cfg.device, cfg.augment, cfg.threads = device.type, str(augment), torch.get_num_threads()
    rundir = start.rundir or RunDir.create(cfg, resume=False, main=d.main)
    start.rundir = rundir  # from here on a failure releases its lock (see _prepare)
    if d.main and not resume:
        rundir.write_start(cfg, spec_text, summ)

    net = net.to(device)
    if cfg.channels_last and device.type != "mps":
        net = net.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16" and device.type == "cuda")
    per_rank = cfg.batch_size // d.world
    train_batches = Batcher(ds.train_x, ds.train_y, ds.mean, ds.std, batch_size=per_rank, device=device,
                            train=True, augment=augment, seed=cfg.seed, rank=d.rank, world_size=d.world,
                            channels_last=cfg.channels_last, resize=cfg.resize)
    test_batches = Batcher(ds.test_x, ds.test_y, ds.mean, ds.std, batch_size=max(per_rank, 1024), device=device,
                           rank=d.rank, world_size=d.world, channels_last=cfg.channels_last, resize=cfg.resize)
    steps_per_epoch = len(train_batches)
    if steps_per_epoch == 0:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than the training set ({len(ds.train_x)})")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    start.restore(net, optimizer, scaler, device)
    model = head.trunk(net)  # the scores: a trailing sigmoid is left to the loss (BCE on the logit)
    if cfg.compile:
        model = torch.compile(model)
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16)
                if cfg.precision != "fp32" else contextlib.nullcontext())
    return _Setup(cfg, d, device, net, model, optimizer, scaler, autocast, rundir, train_batches, test_batches,
                  steps_per_epoch, total_steps, start, recorded)


def _recorded(net: nn.Module, src) -> tuple[str | None, str | None]:
    """(spec text, module path) a checkpoint records so that its model can be rebuilt without running
    anything the run names: a model convlab built from a spec is rebuilt from its spec text; a Python
    model is named by its ``package.module:attr`` (imported only when the user names it again)."""
    from ..nn.blocks import SpecNet

    if isinstance(net, SpecNet) and isinstance(net.spec, str):
        return net.spec, None
    path = getattr(src, "import_path", None)
    if isinstance(path, str):
        return None, path
    t = type(net)
    return None, f"{t.__module__}:{t.__qualname__}"


# ---------------------------------------------------------------------------------------------
# the loop


def train(model=None, data=None, config: TrainConfig | None = None, *, resume: bool = False,
          progress: bool | None = None, **overrides) -> Run:
    """Train a model (zoo name, spec, or nn.Module) on a dataset (name, ``folder:PATH`` or a loaded
    :class:`~convlab.data.Dataset`) and return the :class:`Run`.

    >>> run = train("lenet-modern", "fashion-mnist", TrainConfig(epochs=1))  # doctest: +SKIP
    """
    s = _prepare(model, data, config, resume, overrides)
    try:
        return _loop(s, resume, progress)
    finally:
        s.rundir.release()  # the run directory's lock (rank 0's), whatever happened


def _loop(s: _Setup, resume: bool, progress: bool | None) -> Run:
    cfg, d, device, net, model, optimizer, scaler, autocast = (s.cfg, s.d, s.device, s.net, s.model, s.optimizer,
                                                              s.scaler, s.autocast)
    rundir, train_batches, test_batches = s.rundir, s.train_batches, s.test_batches
    steps_per_epoch, total_steps = s.steps_per_epoch, s.total_steps
    start_epoch, start_batch, step, partial, metrics = (s.start.epoch, s.start.batch, s.start.step, s.start.partial,
                                                        s.start.metrics)
    show = progress if progress is not None else live_display()
    reporter = _Reporter(d.main, show, cfg.epochs)
    run = Run(rundir.path if d.main else None, cfg, metrics, s.start.best_acc, net)
    # the test split is evaluated every `eval_every` epochs and after the last; by default after the last only
    # (a test pass is not free on a CPU), and after every epoch when a target accuracy is to be caught
    eval_every = cfg.eval_every or (1 if cfg.target_acc is not None else None)
    done_before = any(_at_target(m, cfg) for m in metrics)  # a resumed run that stopped at its target
    run.reached_target = done_before
    if resume and d.main:
        if done_before:
            print(f"{rundir.path} stopped when it reached its target accuracy ({100 * cfg.target_acc:.2f}%); "
                  f"nothing to resume", flush=True)
        elif start_epoch >= cfg.epochs or step >= total_steps:
            print(f"{rundir.path} has finished its {step} steps; nothing to resume", flush=True)
        elif start_batch >= steps_per_epoch:  # stopped after an epoch's last step, before its evaluation
            print(f"resuming from epoch {start_epoch + 1}, after its last batch ({start_batch} of {steps_per_epoch}; "
                  f"its evaluation next, then step {step + 1} of {total_steps}): {rundir.path}", flush=True)
        else:  # 1-based, like the epoch lines: the next batch to train
            print(f"resuming from epoch {start_epoch + 1}, batch {start_batch + 1} of {steps_per_epoch} "
                  f"(step {step + 1} of {total_steps}): {rundir.path}", flush=True)

    def check_weights() -> None:
        # the weights are the same on every rank, so every rank takes the same branch here
        params = list(net.parameters())
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            raise _nonfinite((float("nan"), epoch + 1, step), cfg, rundir, what="weights")

    def checkpoint(epoch: int, batch: int, part, best: bool = False) -> None:
        check_weights()
        if d.main:  # best.pt first: a kill between the two saves redoes the epoch, which rewrites best.pt
            for path in (rundir.best, rundir.last) if best else (rundir.last,):
                save_checkpoint(path, net, optimizer, scaler, cfg, epoch=epoch, batch=batch, step=step,
                                best_acc=run.best_acc, partial=part, spec=s.recorded[0], module=s.recorded[1])
        barrier(d)

    steplog = _StepLog(net, device, cfg.log_every) if cfg.log_every else None
    if steplog and d.main:
        rundir.keep_steps(step)  # a resumed run: rows past its checkpoint are trained again
    every = read_every(device)  # how often the loss is read: every step on a CPU, every few on an accelerator
    estimate = _Estimate(device, steps_per_epoch, cfg.batch_size, cfg.epochs - start_epoch)
    t_start = time.perf_counter() - s.start.wall_before
    epoch, done_batch = start_epoch, start_batch
    stop = _StopRequest(d)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if step >= total_steps or done_before:
                break
            train_batches.set_epoch(epoch)
            model.train()
            skip = start_batch if epoch == start_epoch else 0
            tally = _Tally(device, partial if epoch == start_epoch else (0.0, 0, 0))
            seen_before = tally.seen  # images of this epoch trained before a resume: not part of this timing
            t_epoch = time.perf_counter()
            reporter.start_epoch(epoch, steps_per_epoch, skip)
            done_batch = skip
            for batch_i, (x, y) in enumerate(train_batches):
                if batch_i < skip:
                    continue  # resuming mid-epoch: these batches were trained before
                if step >= total_steps:
                    break
                loss, logits = train_step(s, x, y, step)
                step += 1
                tally.add(loss, logits, y)
                if steplog is not None:
                    steplog.add(loss, logits, y)
                    if step == 1 or step % cfg.log_every == 0:
                        row = steplog.row(step, epoch + 1, optimizer.param_groups[0]["lr"],
                                          scaler.get_scale() if scaler.is_enabled() else 1.0)
                        if d.main:
                            rundir.append_step(row)
                said = estimate.after_step(total_steps - step)
                if said and d.main:
                    reporter.say(said)
                done_batch = batch_i + 1
                if step % every == 0:  # reading the sums makes an accelerator wait: not every step there
                    loss_sum, correct, seen = tally.read()
                    if not math.isfinite(loss_sum) and stop.nonfinite is None:
                        stop.nonfinite = (loss_sum, epoch + 1, step)
                    if stop.nonfinite and d.world == 1:  # under DDP the ranks first agree (should_stop below)
                        raise _nonfinite(stop.nonfinite, cfg, rundir)
                    reporter.step(batch_i + 1, loss_sum / seen, correct / seen, seen, time.perf_counter() - t_epoch)
                if stop.should_stop():  # Ctrl-C: stop at this step boundary, where the state is consistent
                    if stop.nonfinite_anywhere:
                        raise _nonfinite(stop.nonfinite or (float("nan"), epoch + 1, step), cfg, rundir)
                    raise _Stop
            else:
                done_batch = steps_per_epoch
            stop_now = stop.settle()  # DDP: a stop the ranks agreed on during the epoch's last step
            if stop_now and stop.nonfinite_anywhere:
                raise _nonfinite(stop.nonfinite or (float("nan"), epoch + 1, step), cfg, rundir)
            epoch_s = time.perf_counter() - t_epoch
            loss_sum, correct, seen = tally.read()
            tl, tc, tn, fresh = all_reduce([loss_sum, correct, seen, seen - seen_before], d, device)
            if not math.isfinite(tl):  # a non-finite loss on any rank (the sum carries it): nothing is saved
                raise _nonfinite(stop.nonfinite or (tl, epoch + 1, step), cfg, rundir)
            row = {"epoch": epoch + 1, "train_loss": tl / max(tn, 1), "train_acc": tc / max(tn, 1),
                   "test_loss": None, "test_acc": None, "lr": optimizer.param_groups[0]["lr"],
                   "images_per_s": fresh / epoch_s if epoch_s > 0 else None, "epoch_s": epoch_s,
                   "wall_s": time.perf_counter() - t_start}
            last = epoch + 1 == cfg.epochs or step >= total_steps
            if (eval_every and (epoch + 1) % eval_every == 0) or last:
                row["test_loss"], row["test_acc"] = evaluate(model, test_batches, d, device, autocast,
                                                             flip=cfg.test_flip)
                row["wall_s"] = time.perf_counter() - t_start
            metrics.append(row)
            reporter.end_epoch(row)
            improved = row["test_acc"] is not None and row["test_acc"] > run.best_acc
            if improved:
                run.best_acc = row["test_acc"]
            finished = done_batch >= steps_per_epoch or step >= total_steps
            check_weights()  # before the row is recorded: metrics.jsonl never holds an epoch last.pt lacks
            if d.main:
                rundir.append_metrics(row)
            checkpoint(epoch + 1 if finished else epoch, 0 if finished else done_batch, (0.0, 0, 0), best=improved)
            if _at_target(row, cfg):  # --target-acc reached: the epoch is recorded and saved, stop here
                run.reached_target = True
                break
            if stop_now:  # Ctrl-C during the epoch's last step: the epoch is recorded and saved, now stop
                raise _Stop
    except (_Stop, KeyboardInterrupt) as e:
        reporter.close()
        run.interrupted = True
        if isinstance(e, _Stop):
            if done_batch >= steps_per_epoch and len(metrics) > epoch:
                checkpoint(epoch + 1, 0, (0.0, 0, 0))  # the epoch finished and was recorded
            else:
                checkpoint(epoch, done_batch, tally.read())
            where = f"epoch {epoch + 1}, batch {done_batch}"
        else:  # a second Ctrl-C (or one outside the loop): the last checkpoint written stays as it is
            where = "its last saved state"
        if d.main:
            per_node = os.environ.get("LOCAL_WORLD_SIZE", d.world)
            launcher = f"torchrun --nproc-per-node {per_node} -m convlab" if d.world > 1 else "convlab"
            print(f"\ninterrupted: {rundir.last} holds {where}; resume with:\n"
                  f"  {launcher} train --out {rundir.path} --resume", file=sys.stderr)
        return run
    except TrainingError:
        reporter.close()
        raise
    finally:
        stop.restore()
        reporter.close()
        if d.main and metrics:
            rundir.plot(metrics)
    if d.main:
        acc = run.test_acc
        best_epoch = max((m for m in metrics if m["test_acc"] is not None), key=lambda m: m["test_acc"],
                         default=None)
        early = (f"; target {100 * cfg.target_acc:.2f}% reached, stopped {cfg.epochs - len(metrics)} epoch(s) early"
                 if run.reached_target and len(metrics) < cfg.epochs else "")
        print(f"test accuracy: {100 * acc:.2f}% after {len(metrics)} epoch(s), {metrics[-1]['wall_s']:.1f} s "
              f"(best {100 * run.best_acc:.2f}% at epoch {best_epoch['epoch'] if best_epoch else '-'}{early}) — "
              f"{rundir.path}" if acc is not None else f"run saved in {rundir.path}")
    return run


def _at_target(row: dict, cfg: TrainConfig) -> bool:
    """Whether an epoch's metrics row reached ``cfg.target_acc`` (never, without one)."""
    return cfg.target_acc is not None and row.get("test_acc") is not None and row["test_acc"] >= cfg.target_acc


def train_step(s: _Setup, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch, the learning rate set from the schedule for ``step`` (steps taken
    before it): forward under autocast, loss, backward, step. Returns (loss, logits). The loop calls it
    for every batch, and ``bench/time_to_accuracy.py`` calls it to train what ``convlab train`` trains."""
    for group in s.optimizer.param_groups:
        group["lr"] = lr_at(step, s.total_steps, s.cfg)
    with s.autocast:
        logits = s.model(x)
        loss = head.loss(logits, y, s.cfg.label_smoothing)
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    s.scaler.step(s.optimizer)
    s.scaler.update()
    return loss, logits


def _nonfinite(where: tuple, cfg: TrainConfig, rundir: RunDir, what: str = "loss") -> TrainingError:
    lv, epoch, step = where
    seen = f"became {lv}" if what == "loss" else "became non-finite"
    if rundir.last.is_file():
        kept = (f"{rundir.last} holds the last good state (resume it with --resume to retry from there, or start "
                f"a new run)")
    else:  # no epoch (nor Ctrl-C) saved anything: there is no good state to speak of
        kept = (f"no checkpoint had been saved yet, so there is nothing to resume: train again with the same "
                f"--out {rundir.path} (it starts afresh there)")
    return TrainingError(f"the training {what} {seen} (seen at epoch {epoch}, step {step}); the run stopped and "
                         f"{kept}. Lower --lr (now {cfg.lr}) or add warm-up (--warmup 0.1)")


class _StepLog:
    """The every-k-steps log (``log_every``): the training loss and error over the batches since the
    last row, and the gradient norm of every conv and linear weight, by depth. It only reads: the
    weights, the gradients and the random state are left as they are, so a logged run trains the same
    numbers as one that is not."""

    def __init__(self, net: nn.Module, device, k: int):
        self.layers = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.device = device
        self.k = k
        self._reset()

    def _reset(self):
        self.loss = torch.zeros((), device=self.device, dtype=torch.float64)
        self.wrong = torch.zeros((), device=self.device, dtype=torch.int64)
        self.n = 0

    @torch.no_grad()
    def add(self, loss, logits, y):
        n = y.shape[0]
        self.loss += loss.detach().double() * n
        pred = (logits.detach().reshape(n, -1)[:, 0] > 0).long() if logits.shape[-1] == 1 else logits.argmax(1)
        self.wrong += (pred != y).sum()
        self.n += n

    @torch.no_grad()
    def row(self, step: int, epoch: int, lr: float, scale: float) -> dict:
        norms = [m.weight.grad.detach().float().norm() / scale if m.weight.grad is not None
                 else torch.full((), float("nan"), device=self.device) for _, m in self.layers]
        values = torch.stack(norms).tolist() if norms else []
        out = {"step": step, "epoch": epoch, "batches": max(self.n, 1), "lr": lr,
               "train_loss": float(self.loss) / max(self.n, 1), "train_error": int(self.wrong) / max(self.n, 1),
               "images": self.n, "grad_norm": {name: v for (name, _), v in zip(self.layers, values)}}
        self._reset()
        return out


class _Stop(Exception):
    """Raised inside the loop at a step boundary after Ctrl-C."""


@torch.inference_mode()
def evaluate(model, batches, d: Dist, device, autocast=contextlib.nullcontext(), flip: bool = False
             ) -> tuple[float, float]:
    """Mean cross-entropy (binary for a one-logit model) and accuracy over a split, summed across ranks.
    ``model`` computes the scores (see :func:`convlab.training.head.trunk`). With ``flip`` each image's
    scores are the mean of the scores of the image and of its mirror image (test-time flip)."""
    was = model.training
    model.eval()
    tally = _Tally(device)
    for x, y in batches:
        with autocast:
            logits = model(x)
            if flip:
                logits = (logits + model(x.flip(-1))) / 2
        tally.add(head.loss(logits, y), logits, y)  # the mean loss, weighed by the batch size
    model.train(was)
    loss_sum, correct, n = all_reduce(list(tally.read()), d, device)
    return loss_sum / max(n, 1), correct / max(n, 1)
