"""What a run shows while it trains: the running loss and accuracy of an epoch, how often they are
read, and the progress bar or the plain line per epoch."""

from __future__ import annotations

import time

import torch

from .head import predictions

# On a CPU the loss is read after every step (free there: nothing runs ahead); on an accelerator every
# READ_EVERY steps, so the host keeps queueing work instead of waiting for each step to finish.
READ_EVERY, READ_EVERY_CPU = 25, 1


def read_every(device: torch.device) -> int:
    """How many steps pass between two reads of the running sums on ``device``."""
    return READ_EVERY_CPU if device.type == "cpu" else READ_EVERY


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
        self.correct += (predictions(logits) == y).sum()
        self.seen += len(y)

    def read(self) -> tuple[float, int, int]:
        """(loss sum, correct, seen) as Python numbers; on an accelerator this waits for the queued steps."""
        return float(self.loss), int(self.correct), self.seen


def live_display() -> bool:
    """Whether a live progress bar can be drawn here: on a terminal, or in a Jupyter kernel where
    ipywidgets is installed (rich draws its live display into an ipywidgets Output there; without it
    rich only warns, so a notebook without ipywidgets gets the plain epoch lines)."""
    import sys

    if sys.stderr.isatty():
        return True
    if "ipykernel" not in sys.modules:
        return False
    from rich.console import Console

    if not Console().is_jupyter:
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


class _Reporter:
    """A rich progress bar per epoch on a terminal or in Jupyter; one plain line per epoch otherwise."""

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

    def say(self, line: str) -> None:
        """A line on stderr, above the progress bar when one is shown."""
        import sys

        if self.bar is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# A run whose estimated time passes HEAVY_S is announced after its first steps, with the estimate.
HEAVY_S = 600.0


def duration(seconds: float) -> str:
    """'45 s', '12 min', '6.9 h': a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Estimate:
    """The time an epoch and the rest of the run will take, from the steps after the first (which pays for
    allocation and warm-up): timed once, said once, and only when the run is long (over ``HEAVY_S``)."""

    def __init__(self, device: torch.device, steps_per_epoch: int, batch_size: int, epochs_left: int,
                 skip: int = 1, timed: int = 3, clock=time.perf_counter):
        self.device, self.steps_per_epoch, self.batch_size = device, steps_per_epoch, batch_size
        self.epochs_left, self.skip, self.timed, self.clock = epochs_left, skip, timed, clock
        self.calls, self.t0, self.done = 0, None, False
        self.per_step: float | None = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()
        return self.clock()

    def after_step(self, steps_left: int) -> str | None:
        """Call after every optimizer step with the steps still to run; returns the line to print, once."""
        if self.done:
            return None
        self.calls += 1
        if self.calls == self.skip:
            self.t0 = self._now()
            return None
        if self.calls < self.skip + self.timed:
            return None
        self.done = True
        self.per_step = (self._now() - self.t0) / self.timed
        total = self.per_step * steps_left
        if total <= HEAVY_S:
            return None
        epoch = self.per_step * self.steps_per_epoch
        return (f"estimate: this run is long here — about {duration(epoch)} per epoch ({self.per_step:.2f} s per step "
                f"of {self.batch_size} images over {self.timed} timed steps, {self.steps_per_epoch} steps an epoch), "
                f"{duration(total)} for the {steps_left:,} steps left, on {self.device.type}. Ctrl-C stops it and "
                f"keeps last.pt; fewer --epochs, a smaller --resize or a GPU (--device cuda) is faster")
