"""Training runs on miniature data: run directory, reproducibility, resume, Ctrl-C, NaN, DDP, eval."""

import json
import os
import platform
import signal
import socket
import sys
from pathlib import Path

import pytest
import torch
import yaml
from minidata import mini_run_folder

from convlab.cli import main
from convlab.errors import ConvlabError
from convlab.training import TrainConfig, TrainingError, train
from convlab.training.optim import eager_optimizer, lr_at

SPEC = "conv(4,3,p=1) bn relu maxpool(2) conv(8,3,p=1) relu gap flatten dropout(0.2) fc(10)"

TRAINING_SGD = eager_optimizer(torch.optim.SGD)  # the class convlab's training steps with


@pytest.fixture
def mini(tmp_path, monkeypatch):
    return mini_run_folder(tmp_path, monkeypatch, n_train=96, n_test=40)


def cfg(tmp_path, **kw):
    base = dict(model=SPEC, data="fashion-mnist", data_dir=str(tmp_path / "fm"), epochs=2, batch_size=16, lr=0.05,
                device="cpu", augment="crop=2,flip", threads=1)
    base.update(kw)
    return TrainConfig(**base)


def final_weights(run_dir):
    return torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["model"]


def test_run_directory_holds_everything(mini):
    run = train(config=cfg(mini, out="runs/a"), progress=False)
    d = mini / "runs" / "a"
    for f in ["config.yaml", "model.spec", "summary.txt", "summary.json", "metrics.jsonl", "metrics.csv", "last.pt",
              "best.pt", "curves.png"]:
        assert (d / f).is_file(), f
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) >= {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s",
                            "epoch_s", "wall_s"}
    saved = yaml.safe_load((d / "config.yaml").read_text())
    assert saved["lr"] == 0.05 and saved["schedule"] == "onecycle" and saved["weight_decay"] is not None
    ck = torch.load(d / "last.pt", weights_only=True)  # plain types only
    assert ck["epoch"] == 2 and ck["config"]["model"] == SPEC and "torch" in ck["rng"]
    assert run.test_acc == rows[-1]["test_acc"]
    assert (d / "model.spec").read_text().strip().startswith("conv(4,3,p=1)")


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.05), ("adamw", 0.01)])
def test_learns_a_learnable_task(mini, optimizer, lr):
    run = train(config=cfg(mini, out=f"runs/learn-{optimizer}", epochs=4, augment="none", optimizer=optimizer,
                           lr=lr), progress=False)
    assert run.test_acc > 0.9  # bright vs dark images
    state = torch.load(mini / f"runs/learn-{optimizer}/last.pt", weights_only=True)
    assert ("exp_avg" in str(state["optimizer"])) == (optimizer == "adamw")


def test_same_seed_same_metrics(mini):
    a = train(config=cfg(mini, out="runs/s1"), progress=False)
    b = train(config=cfg(mini, out="runs/s2"), progress=False)
    keys = ["train_loss", "train_acc", "test_loss", "test_acc", "lr"]
    assert [[m[k] for k in keys] for m in a.metrics] == [[m[k] for k in keys] for m in b.metrics]
    wa, wb = final_weights(mini / "runs/s1"), final_weights(mini / "runs/s2")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(config=cfg(mini, out="runs/s3", seed=1), progress=False)
    assert c.metrics[-1]["train_loss"] != a.metrics[-1]["train_loss"]


@pytest.mark.parametrize("stop_at", [3, 6, 8])  # mid-epoch 1, the first step of epoch 2, mid-epoch 2
def test_resume_after_ctrl_c_gives_the_same_weights(mini, monkeypatch, capsys, stop_at):
    full = train(config=cfg(mini, out="runs/full"), progress=False)
    original = TRAINING_SGD.step
    calls = {"n": 0}

    def interrupting_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == stop_at:
            # Ctrl-C during this step (or the SIGTERM a scheduler or torchrun sends: the same clean stop)
            os.kill(os.getpid(), signal.SIGTERM if stop_at == 6 else signal.SIGINT)
        return original(self, *a, **k)

    monkeypatch.setattr(TRAINING_SGD, "step", interrupting_step)
    part = train(config=cfg(mini, out="runs/part"), progress=False)
    assert part.interrupted
    monkeypatch.setattr(TRAINING_SGD, "step", original)
    capsys.readouterr()
    resumed = train(config=TrainConfig(out="runs/part", device="cpu", threads=1), resume=True, progress=False)
    assert not resumed.interrupted
    # 6 steps an epoch: stopped after step N, it goes on with step N + 1 (1-based, like the epoch lines)
    said = capsys.readouterr().out
    if stop_at == 6:  # after epoch 1's last step, before its evaluation
        assert "resuming from epoch 1, after its last batch (6 of 6; its evaluation next, then step 7 of" in said
    else:
        assert f"resuming from epoch {stop_at // 6 + 1}, batch {stop_at % 6 + 1} of 6 (step {stop_at + 1} of" in said
    wf, wr = final_weights(mini / "runs/full"), final_weights(mini / "runs/part")
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert [m["test_acc"] for m in resumed.metrics] == [m["test_acc"] for m in full.metrics]
    if stop_at == 3:  # epoch 1 resumed after 3 of its 6 steps: its speed counts the 3 x 16 images trained now
        row = resumed.metrics[0]
        assert row["images_per_s"] * row["epoch_s"] == pytest.approx(48)


def test_nan_loss_stops_with_a_clear_message(mini):
    with pytest.raises(TrainingError, match=r"loss became (nan|inf).*Lower --lr"):
        train(config=cfg(mini, out="runs/nan", lr=1e30, augment="none"), progress=False)


def test_reading_the_loss_every_few_steps_changes_nothing(mini, monkeypatch):
    # how an accelerator runs: the loss is summed on the device and read every READ_EVERY steps
    from convlab.training import progress

    a = train(config=cfg(mini, out="runs/every1"), progress=False)
    monkeypatch.setattr(progress, "READ_EVERY_CPU", 4)  # 6 steps per epoch: read after steps 4 and 8, and at epoch ends
    b = train(config=cfg(mini, out="runs/every4"), progress=False)
    assert a.metrics == [dict(m, epoch_s=n["epoch_s"], images_per_s=n["images_per_s"], wall_s=n["wall_s"])
                         for m, n in zip(b.metrics, a.metrics)]
    # a NaN that appears between two reads still stops the run before anything is saved
    monkeypatch.setattr(progress, "READ_EVERY_CPU", 100)
    with pytest.raises(TrainingError, match=r"loss became (nan|inf)"):
        train(config=cfg(mini, out="runs/nan4", lr=1e30, augment="none"), progress=False)
    assert not (mini / "runs/nan4/last.pt").exists()


def test_existing_run_is_never_overwritten(mini):
    train(config=cfg(mini, out="runs/keep", epochs=1), progress=False)
    before = (mini / "runs/keep/metrics.jsonl").read_bytes()
    with pytest.raises(ConvlabError, match="already holds a run"):
        train(config=cfg(mini, out="runs/keep", epochs=1), progress=False)
    assert (mini / "runs/keep/metrics.jsonl").read_bytes() == before


def test_auto_numbered_run_dirs(mini):
    a = train(config=cfg(mini, epochs=1, max_steps=2, model="lenet-modern"), progress=False)
    b = train(config=cfg(mini, epochs=1, max_steps=2, model="lenet-modern"), progress=False)
    assert a.dir.name == "001-lenet-modern-fashion-mnist" and b.dir.name == "002-lenet-modern-fashion-mnist"
    assert len(a.metrics) == 1


def test_schedules():
    c = TrainConfig(lr=1.0, schedule="paper", warmup=0.0)
    assert [lr_at(s, 100, c) for s in (0, 49, 50, 74, 75, 99)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1),
                                                                   pytest.approx(0.01), pytest.approx(0.01)]
    c = TrainConfig(lr=1.0, schedule="onecycle", warmup=0.25)
    assert lr_at(0, 100, c) == 0 and lr_at(25, 100, c) == 1.0 and lr_at(100, 100, c) == 0
    c = TrainConfig(lr=1.0, schedule="cosine", warmup=0.0)
    assert lr_at(50, 100, c) == pytest.approx(0.5)


def test_onecycle_records_the_warmup_it_runs(mini):
    from convlab.training.config import ONECYCLE_WARMUP, with_family_defaults

    # the CIFAR ResNets' recipe has no warm-up; asked for one-cycle, the schedule rises over 25% of the steps
    c = with_family_defaults(TrainConfig(model="resnet20", schedule="onecycle"), "resnet-cifar")
    assert c.warmup == ONECYCLE_WARMUP == 0.25
    c.lr = 1.0
    assert lr_at(0, 100, c) == 0 and lr_at(10, 100, c) == pytest.approx(0.4) and lr_at(25, 100, c) == 1.0
    assert with_family_defaults(TrainConfig(schedule="onecycle", warmup=0.1), "resnet-cifar").warmup == 0.1
    assert with_family_defaults(TrainConfig(schedule="paper"), "resnet-cifar").warmup == 0.0
    assert with_family_defaults(TrainConfig(schedule="cosine", warmup=0.0), "small").warmup == 0.0
    # a run's config.yaml says so, and its learning rate is the schedule of the saved config
    run = train(config=cfg(mini, out="runs/oc", epochs=1, max_steps=3, schedule="onecycle", warmup=0.0), progress=False)
    saved = yaml.safe_load((mini / "runs/oc/config.yaml").read_text())
    assert saved["warmup"] == 0.25 and run.config.warmup == 0.25
    assert run.metrics[-1]["lr"] == lr_at(2, 3, TrainConfig.from_dict(saved))


def test_bad_model_output_and_config(mini):
    with pytest.raises(TrainingError, match="has 10 classes"):
        import torch.nn as nn

        train(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), "fashion-mnist",
              cfg(mini, out="runs/bad", model="custom"), progress=False)
    with pytest.raises(ConvlabError, match="--lr must be a finite number > 0"):
        train(config=cfg(mini, out="runs/bad2", lr=-1.0), progress=False)
    with pytest.raises(ConvlabError, match="unknown config key.*did you mean 'lr'"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_cli_train_and_eval(mini, capsys):
    rc = main(["train", SPEC, "--data", "fashion-mnist", "--data-dir", str(mini / "fm"), "--epochs", "1",
               "--batch-size", "16", "--out", "runs/cli", "--no-progress", "--device", "cpu", "--threads", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "test accuracy:" in out
    assert main(["eval", "runs/cli", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    best = torch.load(mini / "runs/cli/best.pt", weights_only=True)["best_acc"]
    assert res["accuracy"] == pytest.approx(best) and res["n"] == 40
    assert sum(map(sum, res["confusion"])) == 40 and (mini / "runs/cli/confusion-test.png").is_file()
    assert main(["train"]) == 2
    assert main(["train", SPEC, "--lr", "-3", "--data-dir", str(mini / "fm")]) == 2

    capsys.readouterr()
    assert main(["viz", "runs/cli", "--index", "3", "--out", "viz"]) == 0
    out = capsys.readouterr().out
    from convlab.data import load

    ds = load("fashion-mnist", str(mini / "fm"), download=False)
    assert f"test image 3: {ds.classes[int(ds.test_y[3])]}, predicted " in out
    from convlab.training.report import load_run, predict

    p = predict(load_run("runs/cli"), 3)
    assert p.label == int(ds.test_y[3]) and p.pred == int(p.probs.argmax())
    assert float(p.probs.sum()) == pytest.approx(1)
    assert f"predicted {ds.classes[p.pred]} ({100 * p.confidence:.1f}%)" in out and p.input.shape == (1, 28, 28)
    assert (mini / "viz/filters-conv1.png").stat().st_size > 2000 and (mini / "viz/maps-test-3.png").stat().st_size > 2000
    assert main(["viz", "runs/cli", "--index", "40"]) == 2            # 40 test images: 0..39
    assert main(["viz", "runs/cli", "--what", "maps", "--layer", "conv9"]) == 2
    assert main(["viz", "runs/cli", "--what", "filters", "--layer", "cnv2"]) == 2  # a typo is not ignored
    assert main(["viz", "runs/cli", "--what", "filters", "--layer", "relu1", "--layer", "conv2", "--out", "v2"]) == 0
    assert (mini / "v2/filters-conv2.png").is_file()


# ---------------------------------------------------------------- distributed (2 processes, gloo, CPU)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, tmp, config_dict, interrupt_at=None, resume=False, nan_at=None):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    os.chdir(tmp)
    torch.set_num_threads(1)
    if nan_at and rank in nan_at:  # this rank's loss turns NaN at its n-th training step
        import torch.nn.functional as F

        original_ce, calls = F.cross_entropy, {"n": 0}

        def nan_ce(*a, **k):
            loss = original_ce(*a, **k)
            if "label_smoothing" in k:
                calls["n"] += 1
                if calls["n"] == nan_at[rank]:
                    return loss * float("nan")
            return loss

        F.cross_entropy = nan_ce
    if nan_at:
        with pytest.raises(TrainingError, match="loss became nan"):
            train(config=TrainConfig(**config_dict), progress=False)
        (Path(tmp) / f"nan-stopped-{rank}").touch()
        import torch.distributed as dist

        dist.destroy_process_group()
        return
    if interrupt_at and rank in interrupt_at:  # this rank gets its Ctrl-C during its n-th step
        original, calls = TRAINING_SGD.step, {"n": 0}

        def interrupting_step(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == interrupt_at[rank]:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, *a, **k)

        TRAINING_SGD.step = interrupting_step
    run = train(config=TrainConfig(**config_dict), resume=resume, progress=False)
    assert run.interrupted == bool(interrupt_at)
    import torch.distributed as dist

    dist.destroy_process_group()


@pytest.mark.ddp
def test_ddp_two_processes_match_one_and_stop_together(mini):
    import torch.multiprocessing as mp

    spec = "conv(4,3,p=1) relu maxpool(2) flatten fc(10)"  # no BatchNorm: per-rank statistics would differ
    common = dict(model=spec, data="fashion-mnist", data_dir=str(mini / "fm"), epochs=2, batch_size=16, lr=0.05,
                  device="cpu", augment="none", threads=1)
    single = train(config=TrainConfig(**common, out=str(mini / "runs/single")), progress=False)
    ddp = {**common, "out": str(mini / "runs/ddp")}
    # the ranks get Ctrl-C during different steps (rank 0 in its 3rd, rank 1 in its 5th): they agree to
    # stop together after step 4, rank 0 saves, and a resumed two-process run finishes the training
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(mini), ddp, {0: 3, 1: 5}),
                       nprocs=2, join=True, start_method="spawn")
    state = torch.load(mini / "runs/ddp/last.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (0, 4)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(mini), {"out": ddp["out"], "device": "cpu"}, None,
                                          True), nprocs=2, join=True, start_method="spawn")
    ws, wd = final_weights(mini / "runs/single"), final_weights(mini / "runs/ddp")
    assert all(torch.allclose(ws[k], wd[k], atol=1e-5) for k in ws)
    rows = [json.loads(x) for x in (mini / "runs/ddp/metrics.jsonl").read_text().splitlines()]
    assert [r["test_acc"] for r in rows] == pytest.approx([m["test_acc"] for m in single.metrics])
    assert rows[-1]["train_loss"] == pytest.approx(single.metrics[-1]["train_loss"], rel=1e-5)


@pytest.mark.ddp
def test_ddp_nan_on_one_rank_stops_every_rank_before_anything_is_saved(mini):
    import torch.multiprocessing as mp

    common = dict(model="conv(4,3,p=1) relu maxpool(2) flatten fc(10)", data="fashion-mnist",
                  data_dir=str(mini / "fm"), epochs=2, batch_size=16, lr=0.05, device="cpu", augment="none",
                  threads=1, out=str(mini / "runs/nan"))
    # rank 1 alone sees a NaN loss, in the last step of epoch 1 (6 steps per epoch): both ranks stop there,
    # rather than rank 0 waiting forever in the next all-reduce, and no NaN weights reach last.pt
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(mini), common, None, False, {1: 6}),
                       nprocs=2, join=True, start_method="spawn")
    assert (mini / "nan-stopped-0").exists() and (mini / "nan-stopped-1").exists()
    assert not (mini / "runs/nan/last.pt").exists()
    assert not (mini / "runs/nan/metrics.jsonl").exists() or not (mini / "runs/nan/metrics.jsonl").read_text()


def test_make_demo_trains_the_zoos_demo_model():
    from convlab.zoo import DEMO_MODEL, get

    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    demo = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert f"convlab summary {DEMO_MODEL}\n" in demo and f"convlab train {DEMO_MODEL} --data fashion-mnist" in demo
    assert f"runs/*-{DEMO_MODEL}-fashion-mnist" in demo and get(DEMO_MODEL).input_shape == (1, 28, 28)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Fashion-MNIST not installed")
@pytest.mark.parametrize("model, epochs", [("fastcnn", 3), ("lenet-modern", 8)])
def test_defaults_reach_91_percent(model, epochs, tmp_path, monkeypatch):
    """make demo's net (fastcnn) and LeNet reach 91% on Fashion-MNIST with their family's recipe."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(os.cpu_count() or 1)
    run = train(model, "fashion-mnist", TrainConfig(device="cpu"), progress=False)
    assert run.config.epochs == epochs and len(run.metrics) == epochs
    assert run.test_acc >= 0.91


def test_compare_and_report(mini, capsys):
    train(config=cfg(mini, out="runs/r1", epochs=1), progress=False)
    train(config=cfg(mini, out="runs/r2", epochs=2, lr=0.1), progress=False)
    capsys.readouterr()
    assert main(["compare", "runs/r1", "runs/r2", "--plot", "cmp.png", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["epochs"] for r in rows] == [1, 2] and rows[1]["params"] is not None
    assert (mini / "cmp.png").stat().st_size > 1000
    assert main(["report", "runs/r2"]) == 0
    page = (mini / "runs/r2/report.html").read_text()
    assert "data:image/png;base64," in page and "test accuracy" in page and "conv1" in page
    assert "Inside the model" not in page
    assert "Not evaluated yet: <code>convlab eval runs/r2</code>" in page
    assert "note: no evaluation in it yet; 'convlab eval runs/r2'" in capsys.readouterr().out
    assert main(["viz", "runs/r2", "--what", "filters"]) == 0 and main(["report", "runs/r2"]) == 0
    page = (mini / "runs/r2/report.html").read_text()
    assert "Inside the model" in page and page.count("data:image/png;base64,") == 2  # curves, filters
    capsys.readouterr()
    assert main(["eval", "runs/r2"]) == 0 and main(["report", "runs/r2"]) == 0
    page = (mini / "runs/r2/report.html").read_text()
    assert "Not evaluated yet" not in page and page.count("data:image/png;base64,") == 3  # + confusion
    assert "note: no evaluation" not in capsys.readouterr().out
    assert main(["compare", "runs/nope"]) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_allocator_tuning_takes_effect_on_glibc():
    from convlab.training.device import tune_cpu_allocator

    assert tune_cpu_allocator() is True


def test_config_yaml_records_the_device_augmentation_and_threads_that_ran(mini):
    import yaml

    run = train(config=cfg(mini, out="runs/resolved", device="auto", augment=None, max_steps=1), progress=False)
    saved = yaml.safe_load((mini / "runs/resolved/config.yaml").read_text())
    from convlab.data import default_augment, load

    want_aug = str(default_augment(load("fashion-mnist", str(mini / "fm"))))
    assert saved["device"] == ("cuda" if torch.cuda.is_available() else "cpu") == run.config.device
    assert saved["augment"] == want_aug and want_aug != "None"
    assert saved["threads"] == torch.get_num_threads() == 1


def test_evaluates_after_the_last_epoch_only_by_default(mini):
    run = train(config=cfg(mini, out="runs/ev", epochs=3), progress=False)
    assert [m["test_acc"] is not None for m in run.metrics] == [False, False, True]
    every = train(config=cfg(mini, out="runs/ev1", epochs=3, eval_every=2), progress=False)
    assert [m["test_acc"] is not None for m in every.metrics] == [False, True, True]
    # evaluating changes nothing the training computes: the same weights either way
    wa, wb = final_weights(mini / "runs/ev"), final_weights(mini / "runs/ev1")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert run.metrics[-1]["test_acc"] == every.metrics[-1]["test_acc"]


def test_target_acc_stops_at_the_first_epoch_that_reaches_it(mini, capsys):
    full = train(config=cfg(mini, out="runs/full", epochs=4, augment="none", eval_every=1), progress=False)
    accs = [m["test_acc"] for m in full.metrics]
    target = accs[1]  # reached at epoch 2 at the latest
    first = next(i for i, a in enumerate(accs) if a >= target) + 1
    assert first < 4, accs  # the miniature task must leave epochs to skip, or this test proves nothing
    run = train(config=cfg(mini, out="runs/tgt", epochs=4, augment="none", target_acc=target), progress=False)
    assert run.reached_target and len(run.metrics) == first
    assert [m["test_acc"] for m in run.metrics] == accs[:first]  # evaluated every epoch, same numbers
    assert "reached, stopped" in capsys.readouterr().out
    ck = torch.load(mini / "runs/tgt/last.pt", weights_only=True)
    assert ck["epoch"] == first and ck["config"]["target_acc"] == target
    assert yaml.safe_load((mini / "runs/tgt/config.yaml").read_text())["target_acc"] == target
    # resuming a run that stopped at its target trains nothing more
    again = train(config=TrainConfig(out="runs/tgt", device="cpu"), resume=True, progress=False)
    assert len(again.metrics) == first and "nothing to resume" in capsys.readouterr().out
    # a target never reached (a learning rate too small to learn anything in 2 epochs): every epoch runs
    never = train(config=cfg(mini, out="runs/never", epochs=2, augment="none", lr=1e-7, target_acc=0.99),
                  progress=False)
    assert never.metrics[-1]["test_acc"] < 0.99
    assert not never.reached_target and len(never.metrics) == 2
    assert all(m["test_acc"] is not None for m in never.metrics)


@pytest.mark.parametrize("value,hint", [(91.0, "write --target-acc 0.91"), (0.0, "(0, 1]"), (-0.5, "(0, 1]")])
def test_target_acc_out_of_range_is_refused(mini, capsys, value, hint):
    code = main(["train", SPEC, "--data-dir", str(mini / "fm"), "--device", "cpu", "--target-acc", str(value)])
    assert code == 2 and hint in capsys.readouterr().err


def test_test_flip_scores_each_image_as_the_mean_with_its_mirror():
    from convlab.training.distributed import Dist
    from convlab.training.loop import evaluate

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4))
    x = torch.randn(10, 1, 8, 8)
    y = torch.randint(0, 4, (10,))
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    with torch.no_grad():
        mean = (net(x) + net(x.flip(-1))) / 2  # the oracle: torch on the whole split at once
        plain = net(x)
    loss, acc = evaluate(net, batches, Dist(), torch.device("cpu"), flip=True)
    assert acc == pytest.approx((mean.argmax(1) == y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(mean, y).item(), rel=1e-5)
    loss0, acc0 = evaluate(net, batches, Dist(), torch.device("cpu"))
    assert loss0 == pytest.approx(torch.nn.functional.cross_entropy(plain, y).item(), rel=1e-5)
    assert loss0 != pytest.approx(loss)  # the flip changes the scores: this test can tell the two apart


@pytest.mark.parametrize("kw,want", [(dict(augment="flip"), True), (dict(augment="none"), False),
                                     (dict(augment="flip", recipe="d2l"), False),
                                     (dict(augment="none", test_flip=True), True),
                                     (dict(augment="flip", test_flip=False), False)])
def test_test_flip_default_only_where_the_training_flips(mini, kw, want):
    run = train(config=cfg(mini, out="runs/tf", epochs=1, max_steps=1, **kw), progress=False)
    assert run.config.test_flip is want
    assert yaml.safe_load((mini / "runs/tf/config.yaml").read_text())["test_flip"] is want


def test_eval_scores_a_run_as_it_scored_itself(mini, capsys):
    run = train(config=cfg(mini, out="runs/tfe", epochs=2, test_flip=True), progress=False)
    capsys.readouterr()  # the training's own lines
    assert main(["eval", "runs/tfe", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_flip"] is True and result["accuracy"] == pytest.approx(run.test_acc)
