"""The degradation experiment on miniature data: one seed and batch order for every member, resume,
a verdict that follows the numbers, the steps log, compare --metric, the pictures."""

import dataclasses
import json
import os
import signal

import pytest
import torch
from minidata import mini_run_folder

from convlab import experiment as E
from convlab.cli import main
from convlab.errors import ConvlabError
from convlab.training import TrainConfig, train
from convlab.training.optim import eager_optimizer
from convlab.training.rundir import RunDir

TRAINING_SGD = eager_optimizer(torch.optim.SGD)  # the class convlab's training steps with

TINY = dataclasses.replace(E.PRESETS["quick"], width=2, batch_size=16, epochs=2, max_steps=9, log_every=3,
                           resize=8, train_subset=None, test_subset=None, warmup=0.0)


@pytest.fixture
def mini(tmp_path, monkeypatch):
    return mini_run_folder(tmp_path, monkeypatch, n_train=96, n_test=40)


def run(mini, out="exp", **kw):
    return E.degradation(mini / out, depths=[20, 32], data_dir=str(mini / "fm"), device="cpu", threads=1,
                         progress=False, _preset=TINY, **kw)


def weights(path):
    return torch.load(path / "last.pt", weights_only=True)["model"]


def test_members_share_seed_recipe_and_batch_order(mini, monkeypatch):
    from convlab.data import Batcher

    seen = {}
    original = Batcher.__iter__

    def recording(self):
        for x, y in original(self):
            if self.train:
                seen.setdefault(id(self), []).append(y.clone())
            yield x, y

    monkeypatch.setattr(Batcher, "__iter__", recording)
    res = run(mini)
    assert list(res["members"]) == ["plain20", "resnet20", "plain32", "resnet32"]
    orders = list(seen.values())
    assert len(orders) == 4 and all(len(o) == len(orders[0]) for o in orders)
    assert all(all(torch.equal(a, b) for a, b in zip(orders[0], o)) for o in orders[1:])  # same labels, same order
    cfgs = [RunDir(mini / "exp" / n).read_config() for n in res["members"]]
    keys = ("seed", "lr", "batch_size", "schedule", "momentum", "weight_decay", "max_steps", "augment")
    assert all({k: c[k] for k in keys} == {k: cfgs[0][k] for k in keys} for c in cfgs)
    for f in ("results.json", "degradation.png", "gradients.png", "experiment.json"):
        assert (mini / "exp" / f).is_file()
    steps = RunDir(mini / "exp" / "plain32").read_steps()
    assert [r["step"] for r in steps] == [1, 3, 6, 9]
    assert len(steps[0]["grad_norm"]) == 32  # 31 convs and the fc, by depth
    assert all(0 <= r["train_error"] <= 1 for r in steps)


def test_interrupted_experiment_resumes_to_the_same_results(mini, monkeypatch):
    full = run(mini, out="full")
    original = TRAINING_SGD.step
    calls = {"n": 0}

    def interrupting(self, *a, **k):  # Ctrl-C in the middle of the third member (plain32's 4th step)
        calls["n"] += 1
        if calls["n"] == 2 * 9 + 4:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *a, **k)

    monkeypatch.setattr(TRAINING_SGD, "step", interrupting)
    part = run(mini, out="part")
    assert part["interrupted"] and "resnet32" not in part["members"]
    monkeypatch.setattr(TRAINING_SGD, "step", original)
    first = (mini / "part" / "plain20" / "last.pt").stat().st_mtime_ns
    with pytest.raises(ConvlabError, match="--resume"):
        run(mini, out="part")  # never over an experiment's files without --resume
    resumed = run(mini, out="part", resume=True)
    assert (mini / "part" / "plain20" / "last.pt").stat().st_mtime_ns == first  # finished: not retrained
    assert not resumed["interrupted"]
    for name in full["members"]:
        wf, wr = weights(mini / "full" / name), weights(mini / "part" / name)
        assert all(torch.equal(wf[k], wr[k]) for k in wf), name
        a, b = full["members"][name], resumed["members"][name]
        assert a["test_error"] == b["test_error"] and a["steps"] == b["steps"] == 9
    # the resumed member's rows after its checkpoint were logged again, once
    assert [r["step"] for r in RunDir(mini / "part" / "plain32").read_steps()] == [1, 3, 6, 9]


def test_logging_steps_leaves_the_training_bit_for_bit(mini):
    base = dict(model="plain20:width=2", data="fashion-mnist", data_dir=str(mini / "fm"), epochs=1, batch_size=16,
                device="cpu", threads=1, resize=8, augment="none")
    train(config=TrainConfig(**base, out="runs/a"), progress=False)
    train(config=TrainConfig(**base, out="runs/b", log_every=2), progress=False)
    wa, wb = weights(mini / "runs/a"), weights(mini / "runs/b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not (mini / "runs/a/steps.jsonl").exists()
    rows = RunDir(mini / "runs/b").read_steps()
    assert [r["step"] for r in rows] == [1, 2, 4, 6]
    assert sum(r["images"] for r in rows) == 96


def _results(p20, p56, r20, r56, grads=(2.0, 0.5, 1.0, 0.8)):
    g = dict(zip(("grad_first_over_last_start", "grad_first_over_last_end"), grads[:2]))
    h = dict(zip(("grad_first_over_last_start", "grad_first_over_last_end"), grads[2:]))
    return {"depths": [20, 56], "members": {
        "plain20": {"train_error": p20}, "resnet20": {"train_error": r20},
        "plain56": {"train_error": p56, **g}, "resnet56": {"train_error": r56, **h}}}


def test_verdict_follows_the_numbers_both_ways():
    paper = E.verdict(_results(0.280, 0.632, 0.211, 0.195))
    assert paper[0] == ("plain-56 ends with 63.2% training error against plain-20's 28.0%: the deeper plain net "
                        "trains worse (degradation).")
    assert "resnet-56 ends with 19.5% training error against resnet-20's 21.1%" in paper[1]
    assert "trains better" in paper[1]
    other = E.verdict(_results(0.30, 0.20, 0.20, 0.40))
    assert "no degradation" in other[0] and "degradation)" not in other[0]
    assert "behind too" in other[1]
    level = E.verdict(_results(0.30, 0.302, 0.2, 0.2))
    assert "level" in level[0] and "level" in level[1]
    assert "2x the fc's in the plain net" in paper[2] and "does not vanish" in paper[2]
    assert "explodes" in E.verdict(_results(0.3, 0.6, 0.2, 0.2, grads=(1600.0, 3.0, 1.0, 1.0)))[2]
    assert "far smaller" in E.verdict(_results(0.3, 0.6, 0.2, 0.2, grads=(0.01, 0.02, 1.0, 1.0)))[2]


def test_final_training_error_is_the_end_of_the_curve():
    rows = [{"step": s, "train_error": e, "images": 10} for s, e in ((10, 0.9), (50, 0.5), (95, 0.2), (100, 0.1))]
    assert E.final_train_error(rows) == pytest.approx(0.15)


def test_pictures_render(mini):
    res = run(mini)
    from matplotlib.image import imread

    for f in ("degradation.png", "gradients.png"):
        img = imread(mini / "exp" / f)
        assert img.shape[0] > 300 and img.shape[1] > 600 and img[..., :3].std() > 0.05


def test_cli_experiment_and_compare_metric(mini, capsys, monkeypatch):
    monkeypatch.setitem(E.PRESETS, "quick", TINY)
    assert main(["experiment", "degradation", "--out", "e", "--data-dir", str(mini / "fm"), "--device", "cpu",
                 "--depths", "20,32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train error" in out and "plain-32 ends with" in out
    assert json.loads((mini / "e/results.json").read_text())["verdict"]
    assert main(["experiment", "degradation", "--depths", "20,57"]) == 2
    assert "57 not among them" in capsys.readouterr().err
    runs = [str(mini / "e" / n) for n in ("plain20", "plain32")]
    for metric in ("train_error", "test_error", "loss"):
        assert main(["compare", *runs, "--metric", metric, "--plot", f"c-{metric}.png"]) == 0
        assert (mini / f"c-{metric}.png").is_file()
    table = capsys.readouterr().out
    assert "train err" in table
    assert main(["compare", *runs, "--metric", "speed"]) == 2


def test_paper_preset_on_a_cpu_asks_first(mini):
    with pytest.raises(ConvlabError, match="--yes"):
        E.degradation(mini / "p", depths=[20, 56], preset="paper", data="fashion-mnist", data_dir=str(mini / "fm"),
                      device="cpu", threads=1, progress=False, ask=lambda msg: "n")
