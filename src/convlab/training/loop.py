"""``convlab.train``: a training loop you can read top to bottom.

    for epoch ...:            permutation from (seed, epoch); batches built on the device
        for batch ...:        forward (autocast) → loss → backward → step → lr from the schedule
        evaluate              test loss and accuracy, all-reduced across ranks
        save                  metrics.jsonl/csv, last.pt (atomic), best.pt, curves.png

Runs are reproducible (same seed, same machine → same metrics), resumable (``resume=True`` continues
from ``last.pt``, mid-epoch included, with the same final weights), and stop cleanly on Ctrl-C and on a
non-finite loss. Under ``torchrun`` each rank trains on its slice of every global batch through
DistributedDataParallel; rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import TrainingError, UsageError
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, resolve
from .rundir import RunDir


@dataclass
class Run:
    """What ``train`` returns: where the run lives, its resolved config, the metrics per epoch."""

    dir: Path | None
    config: TrainConfig
    metrics: list[dict] = field(default_factory=list)
    best_acc: float = 0.0
    model: nn.Module | None = None
    interrupted: bool = False

    @property
    def test_acc(self) -> float | None:
        evals = [m["test_acc"] for m in self.metrics if m.get("test_acc") is not None]
        return evals[-1] if evals else None


# ---------------------------------------------------------------------------------------------
# schedules: the learning rate as a function of the step


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate after ``step`` of ``total`` optimizer steps."""
    peak = cfg.lr
    t = min(step / max(total, 1), 1.0)
    w = cfg.warmup
    if cfg.schedule == "onecycle":  # linear rise over `warmup`, then linear fall to zero
        w = w or 0.25
        return peak * (t / w if t < w else max(0.0, (1 - t) / (1 - w)))
    if w and t < w:
        return peak * t / w
    if cfg.schedule == "cosine":
        u = (t - w) / (1 - w) if w else t
        return peak * 0.5 * (1 + math.cos(math.pi * u))
    if cfg.schedule in ("step", "paper"):  # ÷10 at 50% and at 75% of training (He et al. 2016)
        return peak * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return peak


# ---------------------------------------------------------------------------------------------
# distributed


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        from datetime import timedelta

        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo", timeout=timedelta(seconds=120))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_reduce(values: list[float], d: Dist, device) -> list[float]:
    if d.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def pick_device(kind: str, d: Dist) -> torch.device:
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            kind = "mps"
        else:
            kind = "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
        return torch.device("cuda", d.local_rank)
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: Apple's MPS is not available here; use --device cpu or auto")
    return torch.device(kind)


def tune_cpu_allocator() -> bool:
    """Keep freed blocks up to 32 MiB in the C heap instead of returning them to the OS (glibc only).

    glibc hands large blocks back to the kernel on free, so every training step pays page faults to
    touch fresh memory for its activations and gradients. Keeping them cut a LeNet run's minor page
    faults from 208k to 66k here and its CPU step by 3-7% (bench/train_speed.py times the step with
    and without, each in its own process; the machine's own drift is of the same size). It changes
    this process's allocator for the rest of its life: memory freed after training stays reserved by
    the process. Returns whether the setting took effect; a no-op off glibc.
    """
    import ctypes
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameter numbers from <malloc.h>
        return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------
# model and optimizer


def make_model(cfg: TrainConfig, input_shape, num_classes: int):
    """(model, spec text or None, family) for the config's MODEL."""
    from .. import zoo
    from ..builder import build
    from ..resolve import resolve_model

    if zoo.is_zoo_name(cfg.model):
        text, entry = zoo.spec_for(cfg.model, **cfg.overrides)
        return build(text, input_shape, num_classes), text, entry.family
    kind, obj, *rest = resolve_model(cfg.model)
    if kind == "module":
        return obj, None, None
    model = build(obj, input_shape, num_classes)
    return model, model.spec, None


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only; biases and norm parameters are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """SGD (Nesterov when momentum > 0) or AdamW; PyTorch's fused kernels on CPU and CUDA (one kernel
    over all parameters instead of a string of per-tensor ops; the same metrics here)."""
    groups = param_groups(model, cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), fused=fused or None)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, fused=fused or None)


# ---------------------------------------------------------------------------------------------
# the loop


def train(model=None, data=None, config: TrainConfig | None = None, *, resume: bool = False,
          progress: bool | None = None, **overrides) -> Run:
    """Train a model (zoo name, spec, or nn.Module) on a dataset (name, ``folder:PATH`` or a loaded
    :class:`~convlab.data.Dataset`) and return the :class:`Run`.

    >>> run = train("lenet-modern", "fashion-mnist", TrainConfig(epochs=1))  # doctest: +SKIP
    """
    from ..data import Augment, Batcher, default_augment, load

    cfg = TrainConfig(**{**(config.to_dict() if config else {}), **overrides})
    if isinstance(model, str):
        cfg.model = model
    if isinstance(data, str):
        cfg.data = data
    state = None
    if resume:  # the run's own config, so the continuation is the same run; only where it runs may change
        rundir = RunDir.create(cfg, resume=True, main=True)
        state = load_checkpoint(rundir.path / "last.pt")
        saved = TrainConfig.from_dict(state["config"])
        saved.device, saved.threads, saved.out = cfg.device, cfg.threads, str(rundir.path)
        cfg = saved
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device_kind = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    d = setup_distributed(device_kind)
    device = pick_device(cfg.device, d)
    if device.type == "cpu":
        tune_cpu_allocator()
    elif device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels; TF32 for fp32 matmuls
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True

    ds = data if data is not None and not isinstance(data, str) else load(cfg.data, cfg.data_dir, progress=d.main)
    c, h, w = ds.shape
    if cfg.resize:
        h = w = cfg.resize
    input_shape, num_classes = (c, h, w), ds.num_classes

    torch.manual_seed(cfg.seed)
    if isinstance(model, nn.Module):
        net, spec_text, family = model, getattr(model, "spec", None), None
        cfg.model = cfg.model if cfg.model != TrainConfig.model else type(model).__name__
    else:
        net, spec_text, family = make_model(cfg, input_shape, num_classes)
    cfg = resolve(cfg, family)
    if cfg.batch_size % d.world:
        raise UsageError(f"--batch-size {cfg.batch_size} must divide evenly across {d.world} processes")

    from ..analyze import summary

    summ = summary(net, input_shape)  # a shape bug stops here, before any step
    summ.model = cfg.model
    out_shape = summ.output_shape
    if not out_shape or out_shape[-1] != num_classes or len(out_shape) != 2:
        raise TrainingError(f"the model outputs {out_shape} but {cfg.data} has {num_classes} classes; the last "
                            f"layer must give [N, {num_classes}] (zoo and spec models are resized automatically)")

    if len(ds.train_x) < cfg.batch_size:
        raise UsageError(f"--batch-size {cfg.batch_size} is larger than the training set ({len(ds.train_x)})")
    if state is None:
        rundir = RunDir.create(cfg, resume=False, main=d.main)
    if d.main and state is None:
        rundir.write_start(cfg, spec_text, summ)

    net = net.to(device)
    if cfg.channels_last and device.type != "mps":
        net = net.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16" and device.type == "cuda")
    augment = Augment.parse(cfg.augment, default_augment(ds))
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

    start_epoch, start_batch, step, best, metrics, partial = 0, 0, 0, 0.0, [], (0.0, 0, 0)
    wall_before = 0.0
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, start_batch, step = state["epoch"], state["batch"], state["scheduler"]["step"]
        best, partial = state["best_acc"], tuple(state["partial"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        metrics = rundir.read_metrics()[:start_epoch]
        wall_before = metrics[-1]["wall_s"] if metrics else 0.0
    model = net
    if cfg.compile:
        model = torch.compile(model)
    if d.world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16)
                if cfg.precision != "fp32" else contextlib.nullcontext())
    show = progress if progress is not None else sys.stderr.isatty()
    reporter = _Reporter(d.main, show, cfg.epochs)
    run = Run(rundir.path if d.main else None, cfg, metrics, best, net)

    def checkpoint(epoch: int, batch: int, part) -> None:
        # the weights are the same on every rank, so every rank takes the same branch here
        params = list(net.parameters())
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            raise _nonfinite((float("nan"), epoch + 1, step), cfg, what="weights")
        if d.main:
            save_checkpoint(rundir.path / "last.pt", net, optimizer, scaler, cfg, epoch=epoch, batch=batch, step=step,
                            best_acc=run.best_acc, partial=part)
        _barrier(d)

    # on a CPU the loss is read after every step (free there: nothing runs ahead); on an accelerator every
    # READ_EVERY steps, so the host keeps queueing work instead of waiting for each step to finish
    read_every = READ_EVERY_CPU if device.type == "cpu" else READ_EVERY
    t_start = time.perf_counter() - wall_before
    epoch, done_batch = start_epoch, start_batch
    stop = _StopRequest(d)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if step >= total_steps:
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
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, cfg)
                with autocast:
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                tally.add(loss, logits, y)
                done_batch = batch_i + 1
                if step % read_every == 0:  # reading the sums makes an accelerator wait: not every step there
                    loss_sum, correct, seen = tally.read()
                    if not math.isfinite(loss_sum) and stop.nonfinite is None:
                        stop.nonfinite = (loss_sum, epoch + 1, step)
                    if stop.nonfinite and d.world == 1:  # under DDP the ranks first agree (should_stop below)
                        raise _nonfinite(stop.nonfinite, cfg)
                    reporter.step(batch_i + 1, loss_sum / seen, correct / seen, seen, time.perf_counter() - t_epoch)
                if stop.should_stop():  # Ctrl-C: stop at this step boundary, where the state is consistent
                    if stop.nonfinite_anywhere:
                        raise _nonfinite(stop.nonfinite or (float("nan"), epoch + 1, step), cfg)
                    raise _Stop
            else:
                done_batch = steps_per_epoch
            stop_now = stop.settle()  # DDP: a stop the ranks agreed on during the epoch's last step
            if stop_now and stop.nonfinite_anywhere:
                raise _nonfinite(stop.nonfinite or (float("nan"), epoch + 1, step), cfg)
            epoch_s = time.perf_counter() - t_epoch
            loss_sum, correct, seen = tally.read()
            tl, tc, tn, fresh = _all_reduce([loss_sum, correct, seen, seen - seen_before], d, device)
            if not math.isfinite(tl):  # a non-finite loss on any rank (the sum carries it): nothing is saved
                raise _nonfinite(stop.nonfinite or (tl, epoch + 1, step), cfg)
            row = {"epoch": epoch + 1, "train_loss": tl / max(tn, 1), "train_acc": tc / max(tn, 1),
                   "test_loss": None, "test_acc": None, "lr": optimizer.param_groups[0]["lr"],
                   "images_per_s": fresh / epoch_s if epoch_s > 0 else None, "epoch_s": epoch_s,
                   "wall_s": time.perf_counter() - t_start}
            last = epoch + 1 == cfg.epochs or step >= total_steps
            if (epoch + 1) % cfg.eval_every == 0 or last:
                row["test_loss"], row["test_acc"] = evaluate(model, test_batches, d, device, autocast)
                row["wall_s"] = time.perf_counter() - t_start
            metrics.append(row)
            reporter.end_epoch(row)
            improved = row["test_acc"] is not None and row["test_acc"] > run.best_acc
            if improved:
                run.best_acc = row["test_acc"]
            finished = done_batch >= steps_per_epoch or step >= total_steps
            if d.main:
                rundir.append_metrics(row)
            checkpoint(epoch + 1 if finished else epoch, 0 if finished else done_batch, (0.0, 0, 0))
            if improved and d.main:
                rundir.copy_best()
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
            print(f"\ninterrupted: {rundir.path}/last.pt holds {where}; resume with:\n"
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
        print(f"test accuracy: {100 * acc:.2f}% after {len(metrics)} epoch(s), {metrics[-1]['wall_s']:.1f} s "
              f"(best {100 * run.best_acc:.2f}% at epoch {best_epoch['epoch'] if best_epoch else '-'}) — "
              f"{rundir.path}" if acc is not None else f"run saved in {rundir.path}")
    return run


READ_EVERY, READ_EVERY_CPU = 25, 1


class _Tally:
    """An epoch's running training loss and accuracy, summed where the model runs (float64 where the
    device has it, so a run's metrics do not depend on how often they are read)."""

    def __init__(self, device: torch.device, start: tuple = (0.0, 0, 0)):
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.loss = torch.tensor(float(start[0]), dtype=dtype, device=device)
        self.correct = torch.tensor(int(start[1]), dtype=torch.int64, device=device)
        self.seen = int(start[2])

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.detach().to(self.loss.dtype) * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def read(self) -> tuple[float, int, int]:
        """(loss sum, correct, seen) as Python numbers; on an accelerator this waits for the queued steps."""
        return float(self.loss), int(self.correct), self.seen


def _nonfinite(where: tuple, cfg: TrainConfig, what: str = "loss") -> TrainingError:
    lv, epoch, step = where
    seen = f"became {lv}" if what == "loss" else "became non-finite"
    return TrainingError(f"the training {what} {seen} (seen at epoch {epoch}, step {step}); the run stopped and "
                         f"last.pt holds the last good state. Lower --lr (now {cfg.lr}) or add warm-up "
                         f"(--warmup 0.1)")


class _Stop(Exception):
    """Raised inside the loop at a step boundary after Ctrl-C."""


class _StopRequest:
    """The first Ctrl-C (or SIGTERM) asks the loop to stop after the current step, where the state is
    consistent; it saves and exits. A second Ctrl-C interrupts at once. Installed in the main thread.

    Under torchrun each worker gets the signal from the launcher, each at its own step; the ranks
    agree on where to stop through a two-number all-reduce (stop requested, loss non-finite) on a side
    gloo group, issued without waiting after each step and read after the next one, so every rank
    stops after the same step — a rank whose own loss went NaN included, instead of leaving the others
    waiting in the next gradient all-reduce — and the collective's latency hides behind a step.
    """

    def __init__(self, d: Dist):
        import signal
        import threading

        self.requested = False
        self.nonfinite: tuple | None = None   # (loss, epoch, step) where this rank's loss went non-finite
        self.nonfinite_anywhere = False       # the ranks agreed: some rank's loss went non-finite
        self.previous: dict = {}
        self.world = d.world
        self.main = d.main
        self.group = self.flag = self.pending = None
        if d.world > 1:
            import torch.distributed as dist

            self.group = dist.new_group(backend="gloo")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.main:
            print("\nstopping after this step (Ctrl-C again to stop at once) ...", file=sys.stderr, flush=True)

    def should_stop(self) -> bool:
        """Called by every rank once per step, in step: True when the run stops after this step."""
        if self.world == 1:
            return self.requested
        import torch.distributed as dist

        if self.settle():
            return True
        self.flag = torch.tensor([float(self.requested), float(self.nonfinite is not None)])
        self.pending = dist.all_reduce(self.flag, group=self.group, async_op=True)
        return False

    def settle(self) -> bool:
        """Read the exchange in flight, if any (every rank, at the same point): whether the ranks agreed
        to stop. Called before an epoch's results are saved, so a NaN never reaches a checkpoint."""
        if self.pending is None:
            return False
        self.pending.wait()
        self.pending = None
        stop, bad = self.flag.tolist()
        self.nonfinite_anywhere = bad > 0
        return stop > 0 or bad > 0

    def restore(self) -> None:
        import signal

        if self.pending is not None:  # every rank issued it; complete it before the group goes away
            with contextlib.suppress(RuntimeError):  # a rank that failed leaves it unanswered
                self.pending.wait()
            self.pending = None
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


@torch.inference_mode()
def evaluate(model, batches, d: Dist, device, autocast=contextlib.nullcontext()) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split, summed across ranks."""
    was = model.training
    model.eval()
    tally = _Tally(device)
    for x, y in batches:
        with autocast:
            logits = model(x)
        tally.add(F.cross_entropy(logits.float(), y), logits, y)  # the mean loss, weighed by the batch size
    model.train(was)
    loss_sum, correct, n = _all_reduce(list(tally.read()), d, device)
    return loss_sum / max(n, 1), correct / max(n, 1)


class _Reporter:
    """A rich progress bar per epoch on a terminal; one plain line per epoch otherwise."""

    def __init__(self, main: bool, show: bool, epochs: int):
        self.main, self.show, self.epochs = main, show and main, epochs
        self.bar = None
        self.task = None
        self.last = 0.0

    def start_epoch(self, epoch: int, total: int, done: int) -> None:
        if not self.show:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.close()
        self.bar = Progress(TextColumn(f"epoch {epoch + 1}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("train", total=total, completed=done, stats="")

    def step(self, done: int, loss: float, acc: float, seen: int, elapsed: float) -> None:
        if self.bar is None or time.perf_counter() - self.last < 0.1:
            return
        self.last = time.perf_counter()
        rate = seen / elapsed if elapsed > 0 else 0
        self.bar.update(self.task, completed=done, stats=f"loss {loss:.4f} acc {100 * acc:.2f}% {rate:,.0f} img/s")

    def end_epoch(self, row: dict) -> None:
        self.close()
        if not self.main:
            return
        test = (f" test_loss {row['test_loss']:.4f} test_acc {100 * row['test_acc']:.2f}%"
                if row["test_acc"] is not None else "")
        print(f"epoch {row['epoch']:>3}/{self.epochs}: train_loss {row['train_loss']:.4f} "
              f"train_acc {100 * row['train_acc']:.2f}%{test} lr {row['lr']:.4g} "
              f"{row['images_per_s'] or 0:,.0f} img/s {row['epoch_s']:.1f}s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
