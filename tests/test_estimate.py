"""A long run says so after its first steps, with an estimate of the epoch and of the whole run."""

import pytest
import torch
from minidata import make_idx_dataset

from convlab.training import TrainConfig, progress, train
from convlab.training.progress import _Estimate, duration


class Clock:
    def __init__(self, step_s):
        self.t, self.step_s = 0.0, step_s

    def tick(self):
        self.t += self.step_s

    def __call__(self):
        return self.t


def run_steps(est, clock, n, steps_left):
    said = []
    for i in range(n):
        clock.tick()
        said.append(est.after_step(steps_left - i - 1))
    return said


def test_a_long_run_is_announced_once_with_its_estimate():
    clock = Clock(5.2)
    est = _Estimate(torch.device("cpu"), steps_per_epoch=469, batch_size=128, epochs_left=10, clock=clock)
    said = run_steps(est, clock, 10, 4690)
    lines = [s for s in said if s]
    assert len(lines) == 1 and said.index(lines[0]) == 3        # after step 1 (skipped) and 3 timed steps
    assert est.per_step == pytest.approx(5.2)
    # 469 steps × 5.2 s = 2439 s = 41 min an epoch; 4686 steps left × 5.2 s = 24,367 s = 6.8 h
    assert lines[0].startswith("estimate: this run is long here — about 41 min per epoch (5.20 s per step of 128 "
                               "images over 3 timed steps, 469 steps an epoch), 6.8 h for the 4,686 steps left, on cpu")


def test_a_short_run_says_nothing():
    clock = Clock(0.01)
    est = _Estimate(torch.device("cpu"), steps_per_epoch=235, batch_size=256, epochs_left=8, clock=clock)
    assert not any(run_steps(est, clock, 20, 1880))
    assert est.per_step == pytest.approx(0.01)


@pytest.mark.parametrize("s,text", [(45, "45 s"), (89.4, "89 s"), (600, "10 min"), (2439, "41 min"),
                                    (24367, "6.8 h")])
def test_duration(s, text):
    assert duration(s) == text


def test_train_prints_the_estimate_when_the_run_is_long(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "HEAVY_S", 0.0)  # every run is "long": the line must come, once
    make_idx_dataset(tmp_path / "fm", n_train=96, n_test=16)
    train(config=TrainConfig(model="lenet", data="fashion-mnist", data_dir=str(tmp_path / "fm"), epochs=2,
                             batch_size=16, device="cpu", threads=1, out="runs/e"), progress=False)
    err = capsys.readouterr().err
    assert err.count("estimate: this run is long here") == 1
    assert "of 16 images over 3 timed steps, 6 steps an epoch)" in err and "for the 8 steps left, on cpu" in err
