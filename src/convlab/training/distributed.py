"""Distributed plumbing for the training loop: the process group torchrun describes, the two
collectives the loop needs, and the clean stop on Ctrl-C that every rank agrees on.

Without torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op and nothing imports
``torch.distributed``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import torch


@dataclass
class Dist:
    """This process's place in the run: its rank, the number of processes, and its GPU on the node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a no-op otherwise.
    NCCL for a CUDA ``device_kind``, gloo for every other."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        from datetime import timedelta

        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo", timeout=timedelta(seconds=120))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce(values: list[float], d: Dist, device) -> list[float]:
    """The sums of ``values`` over every rank (in float64); the values themselves on one process."""
    if d.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    """Wait until every rank is here (rank 0 has finished writing); a no-op on one process."""
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


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
        """Put the previous signal handlers back, after completing an exchange still in flight."""
        import signal

        if self.pending is not None:  # every rank issued it; complete it before the group goes away
            with contextlib.suppress(RuntimeError):  # a rank that failed leaves it unanswered
                self.pending.wait()
            self.pending = None
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}
