"""Run directories are data, never code, and never someone else's: a run's files make convlab import nothing,
links planted in them are not followed, a folder that is not a run is not written into, a run directory is
locked while it trains, full disks and dead writers leave nothing broken, every run file read back is checked,
and a run that went non-finite or is resumed says exactly what it holds and does."""

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from minidata import make_idx_dataset

from convlab import fileio
from convlab.cli import main
from convlab.errors import ConvlabError, RunError, TrainingError, UsageError
from convlab.training import TrainConfig, train
from convlab.training.lock import RunLock

SPEC = "conv(4,3,p=1) bn relu maxpool(2) conv(8,3,p=1) relu gap flatten fc(10)"


@pytest.fixture
def mini(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_idx_dataset(tmp_path / "fm", n_train=64, n_test=32, learnable=True)
    return tmp_path


def cfg(tmp_path, **kw):
    base = dict(model=SPEC, data="fashion-mnist", data_dir=str(tmp_path / "fm"), epochs=1, batch_size=16, lr=0.05,
                device="cpu", augment="none", threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def run(mini):
    train(config=cfg(mini, out="runs/a"), progress=False)
    return mini / "runs" / "a"


def edit_checkpoints(run: Path, **changes):
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / name, weights_only=True)
        for k, v in changes.items():
            if k.startswith("config."):
                state["config"][k[7:]] = v
            elif v is None:
                state.pop(k, None)
            else:
                state[k] = v
        torch.save(state, run / name)


def err_of(capsys, argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 1. a run directory never causes an import


def test_checkpoint_records_the_spec_and_is_rebuilt_from_it(run, capsys):
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["spec"].startswith("conv(4,3") and state["module"] is None
    edit_checkpoints(run, **{"config.model": "tempfile:mkdtemp"})  # the recorded name is never resolved
    assert main(["eval", str(run), "--device", "cpu"]) == 0


@pytest.mark.parametrize("spec_recorded", [True, False])
def test_tempfile_mkdtemp_in_last_pt_creates_nothing(run, monkeypatch, capsys, spec_recorded):
    tmp = run.parent.parent / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    edit_checkpoints(run, **{"config.model": "tempfile:mkdtemp"}, **({} if spec_recorded else {"spec": None}))
    for argv in (["eval", str(run), "--device", "cpu"], ["viz", str(run), "--device", "cpu", "--what", "filters"],
                 ["inspect", str(run), "--device", "cpu", "--what", "activations", "--images", "4"],
                 ["train", "--out", str(run), "--resume", "--device", "cpu"]):
        rc, err = err_of(capsys, argv)
        if not spec_recorded:  # an older checkpoint: its config's model is only read as a zoo name or spec
            assert rc == 2 and "never imports code named in" in err and "\n" not in err.strip(), argv
        assert list(tmp.iterdir()) == [], argv


def test_a_helper_module_in_the_run_dir_is_not_executed(mini, monkeypatch, capsys):
    (mini / "helper_net.py").write_text(textwrap.dedent('''
        import pathlib
        import torch.nn as nn
        pathlib.Path("EXECUTED").write_text("helper_net ran")
        class Net(nn.Sequential):
            def __init__(self):
                super().__init__(nn.Flatten(), nn.Linear(784, 10))
    '''))
    assert main(["train", "helper_net:Net", "--data-dir", str(mini / "fm"), "--epochs", "1", "--batch-size", "16",
                 "--device", "cpu", "--threads", "1", "--out", "runs/m", "--no-progress"]) == 0
    state = torch.load(mini / "runs/m/last.pt", weights_only=True)
    assert state["module"] == "helper_net:Net" and state["spec"] is None
    run = mini / "runs" / "m"
    (mini / "helper_net.py").rename(run / "helper_net.py")
    (mini / "EXECUTED").unlink()
    sys.modules.pop("helper_net", None)
    monkeypatch.chdir(run)
    for argv in (["eval", ".", "--device", "cpu"], ["viz", ".", "--device", "cpu", "--what", "maps"],
                 ["train", "--out", ".", "--resume", "--device", "cpu"]):
        rc, err = err_of(capsys, argv)
        assert rc == 2 and "never imports code named in a run" in err and "--model helper_net:Net" in err, argv
        assert not (run / "EXECUTED").exists() and "helper_net" not in sys.modules, argv
    # named again by the user on the command line: now it is the user's own choice
    assert main(["eval", ".", "--device", "cpu", "--model", "helper_net:Net"]) == 0
    assert (run / "EXECUTED").exists()
    sys.modules.pop("helper_net", None)
    rc, err = err_of(capsys, ["eval", ".", "--device", "cpu", "--model", "helper_net:Other"])
    assert rc == 2 and "was trained with the model 'helper_net:Net', not 'helper_net:Other'" in err


def test_a_file_named_as_model_is_not_read_nor_echoed(run, capsys):
    secret = run.parent.parent / "secret.txt"
    secret.write_text("TOPSECRET password line\n")
    edit_checkpoints(run, **{"config.model": str(secret)}, spec=None)
    rc, err = err_of(capsys, ["eval", str(run), "--device", "cpu"])
    assert rc == 2 and "TOPSECRET" not in err and "names a file" in err


# ---------------------------------------------------------------------------------------------
# 2. links planted in a run directory are not followed


@pytest.mark.parametrize("argv,name", [
    (["report", "RUN"], "report.html"),
    (["eval", "RUN", "--device", "cpu"], "eval-test.json"),
    (["viz", "RUN", "--device", "cpu", "--what", "filters"], "filters-conv1.png"),
    (["train", "--out", "RUN", "--resume", "--device", "cpu"], "curves.png"),
])
def test_a_planted_link_is_not_followed(run, capsys, argv, name):
    victim = run.parent.parent / "bashrc"
    victim.write_text("precious")
    if name == "curves.png":  # the resumed run has one epoch to go
        edit_checkpoints(run, epoch=0, batch=0, scheduler={"step": 0})
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    rc, err = err_of(capsys, [a.replace("RUN", str(run)) for a in argv])
    assert rc == 2 and f"{name}: it is a symbolic link" in err
    assert victim.read_text() == "precious" and (run / name).is_symlink()


# ---------------------------------------------------------------------------------------------
# 3. a folder that is not a run is never written into


def test_train_refuses_a_folder_that_is_not_a_run(mini, capsys):
    project = mini / "project"
    project.mkdir()
    (project / "config.yaml").write_text("my: own config\n")
    (project / "notes.txt").write_text("mine")
    for out in (str(project), "."):
        rc, err = err_of(capsys, ["train", SPEC, "--data-dir", str(mini / "fm"), "--epochs", "1", "--device", "cpu",
                                  "--batch-size", "16", "--out", out])
        assert rc == 2 and "not empty and is not a convlab run" in err and "--out" in err and "run1" in err
    assert (project / "config.yaml").read_text() == "my: own config\n"
    assert sorted(p.name for p in project.iterdir()) == ["config.yaml", "notes.txt"]


def test_train_takes_an_empty_folder_and_refuses_a_finished_run(mini, capsys):
    (mini / "empty").mkdir()
    train(config=cfg(mini, out="empty"), progress=False)
    assert (mini / "empty" / "last.pt").is_file() and not (mini / "empty" / RunLock.NAME).exists()
    with pytest.raises(UsageError, match="already holds a run; continue it with --resume"):
        train(config=cfg(mini, out="empty"), progress=False)


# ---------------------------------------------------------------------------------------------
# 4. one run at a time in a run directory


def test_a_second_run_gets_the_holder_named(mini, capsys):
    out = mini / "runs" / "busy"
    out.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from convlab.training.lock import RunLock; "
         "l = RunLock.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=rf"in use by another convlab run \(pid {holder.pid} on "
                                           rf"{socket.gethostname()}, started 20"):
            train(config=cfg(mini, out=str(out)), progress=False)
        with pytest.raises(RunError, match=rf"pid {holder.pid}"):
            RunLock.acquire(out)
        assert not (out / "last.pt").exists() and not (out / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    # killed: its lock file stays behind, and the next run sees that nobody holds it
    assert json.loads((out / RunLock.NAME).read_text())["pid"] == holder.pid
    capsys.readouterr()
    train(config=cfg(mini, out=str(out)), progress=False)
    assert "locked by a convlab run that is no longer running" in capsys.readouterr().err
    assert (out / "last.pt").is_file() and not (out / RunLock.NAME).exists()


def test_a_failed_start_releases_the_lock(mini):
    with pytest.raises(UsageError):
        train(config=cfg(mini, out="runs/x", batch_size=1000), progress=False)
    train(config=cfg(mini, out="runs/x"), progress=False)  # same process: the lock was let go


# ---------------------------------------------------------------------------------------------
# 5. full disks and dead writers


def test_stale_temps_of_a_killed_save_are_removed_on_the_next_run(run, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run / f".last.pt.convlab-{fileio._host()}-{dead.pid}-0abc.tmp"
    stale.write_bytes(b"x" * 1000)
    edit_checkpoints(run, epoch=0, batch=0, scheduler={"step": 0})
    rc, err = err_of(capsys, ["train", "--out", str(run), "--resume", "--device", "cpu", "--no-progress"])
    assert rc == 0 and not stale.exists() and f"removed {stale.name}" in err


def test_a_full_disk_while_training_keeps_the_previous_checkpoint(run, monkeypatch, capsys):
    edit_checkpoints(run, epoch=0, batch=0, scheduler={"step": 0})
    before = {n: (run / n).read_bytes() for n in ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl")}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    rc, err = err_of(capsys, ["train", "--out", str(run), "--resume", "--device", "cpu", "--no-progress"])
    assert rc == 2 and "cannot write" in err and "disk is full" in err and "Traceback" not in err
    after = {n: (run / n).read_bytes() for n in before}
    assert after == before and after["metrics.csv"].count(b"\n") == 2  # header and the epoch, never empty
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")] and not (run / RunLock.NAME).exists()


# ---------------------------------------------------------------------------------------------
# 9. every run file and config is checked where it is read


@pytest.mark.parametrize("line,says", [
    ("not json at all", "metrics.jsonl, line 2: not JSON"),
    ("[1, 2, 3]", "metrics.jsonl, line 2: expected a JSON object"),
    ('{"epoch": "two", "train_loss": 1, "train_acc": 0.5}', "line 2: key 'epoch': expected a whole number"),
    ('{"epoch": 2, "train_acc": 0.5}', "line 2: the key 'train_loss' is missing"),
])
def test_a_garbage_line_in_metrics_jsonl(run, capsys, line, says):
    with open(run / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    for argv in (["report", str(run)], ["compare", str(run)]):
        rc, err = err_of(capsys, argv)
        assert rc == 2 and says in err and "Traceback" not in err, argv


@pytest.mark.parametrize("text,says", [
    ("- a\n- b\n", "config.yaml: expected a mapping of config keys"),
    ("model: [1, 2]\n", "config.yaml: key 'model': expected a zoo name"),
    ("epochs: three\n", "key 'epochs': expected a whole number of epochs, e.g. 8, got the text 'three'"),
    ("lr: '0.1'\n", "key 'lr': expected a number, e.g. 0.1, got the text '0.1' — write it without quotes"),
])
def test_config_yaml_checked_in_a_run_and_as_config(run, capsys, text, says):
    (run / "config.yaml").write_text(text)
    rc, err = err_of(capsys, ["report", str(run)])
    assert rc == 2 and says in err and str(run / "config.yaml") in err
    rc, err = err_of(capsys, ["train", SPEC, "--config", str(run / "config.yaml"), "--out", "runs/new"])
    assert rc == 2 and says in err


def test_yaml_exponent_without_a_dot_is_explained(mini, capsys):
    (mini / "c.yaml").write_text("lr: 1e-3\n")
    rc, err = err_of(capsys, ["train", SPEC, "--config", "c.yaml"])
    assert rc == 2 and "write 1.0e-3 or 0.001" in err


@pytest.mark.parametrize("change,says", [
    ({"config": None}, "the key 'config' is missing"),
    ({"epoch": "three"}, "key 'epoch': expected the number of epochs completed"),
    ({"config.model": None}, "the config lacks the key(s) 'model'"),
    ({"config.epochs": "three"}, "key 'epochs': expected a whole number"),
    ({"config.lr": "0.1"}, "key 'lr': expected a number"),
])
def test_a_checkpoint_with_a_missing_or_mistyped_key(run, capsys, change, says):
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / name, weights_only=True)
        for k, v in change.items():
            if k.startswith("config."):
                if v is None:
                    del state["config"][k[7:]]
                else:
                    state["config"][k[7:]] = v
            elif v is None:
                del state[k]
            else:
                state[k] = v
        torch.save(state, run / name)
    for argv in (["eval", str(run), "--device", "cpu"], ["train", "--out", str(run), "--resume"]):
        rc, err = err_of(capsys, argv)
        assert rc == 2 and says in err and ".pt" in err and "Traceback" not in err, argv


def test_a_plain_state_dict_given_as_checkpoint(run, capsys):
    net = torch.nn.Linear(3, 2)
    torch.save(net.state_dict(), run / "weights.pt")
    rc, err = err_of(capsys, ["eval", str(run / "weights.pt"), "--device", "cpu"])
    assert rc == 2 and "holds a plain state_dict (weights only: weight, bias" in err and "load_state_dict" in err


def test_resume_with_a_changed_model_is_refused(mini, run, capsys):
    edit_checkpoints(run, epoch=0, batch=0, scheduler={"step": 0})
    rc, err = err_of(capsys, ["train", "resnet20", "--out", str(run), "--resume", "--device", "cpu"])
    assert rc == 2 and "was trained with the model" in err and "not 'resnet20'" in err
    # the recorded spec itself edited to another architecture: its weights do not fit, said in one line
    edit_checkpoints(run, spec=SPEC.replace("conv(8,3", "conv(6,3"))
    rc, err = err_of(capsys, ["train", "--out", str(run), "--resume", "--device", "cpu"])
    assert rc == 2 and "last.pt: its weights do not fit the model" in err and "size mismatch" in err


# ---------------------------------------------------------------------------------------------
# 11. NaN, --lr inf, what --resume changes, threads


class NaNNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


def test_nan_in_the_first_epoch_does_not_claim_a_good_state(mini):
    with pytest.raises(TrainingError) as e:
        train(NaNNet(), config=cfg(mini, out="runs/nan", model="nan-net"), progress=False)
    msg = str(e.value)
    assert "last good state" not in msg and "no checkpoint had been saved yet" in msg and "runs/nan" in msg
    train(config=cfg(mini, out="runs/nan"), progress=False)  # and it restarts there, as the message says
    assert (mini / "runs/nan/last.pt").is_file()


def test_nan_after_a_saved_epoch_names_the_checkpoint(mini):
    train(config=cfg(mini, out="runs/n2"), progress=False)
    net = NaNNet()
    with pytest.raises(ConvlabError):
        train(net, config=cfg(mini, out="runs/n2", model="nan-net"), progress=False)  # already a run: refused


def test_lr_inf_is_refused_and_a_blown_up_run_can_restart(mini, capsys):
    rc, err = err_of(capsys, ["train", SPEC, "--lr", "inf", "--data-dir", str(mini / "fm"), "--out", "runs/inf"])
    assert rc == 2 and "--lr must be a finite number > 0, got inf" in err
    # one step per epoch and an lr that blows the weights up in that step: nothing is recorded ...
    with pytest.raises(TrainingError, match="weights became non-finite.*no checkpoint had been saved yet"):
        train(config=cfg(mini, out="runs/big", batch_size=64, lr=1e300, schedule="constant", warmup=0.0), progress=False)
    assert not (mini / "runs/big/metrics.jsonl").exists() and not (mini / "runs/big/last.pt").exists()
    # ... so the same --out restarts
    train(config=cfg(mini, out="runs/big", batch_size=64), progress=False)
    assert (mini / "runs/big/last.pt").is_file()


@pytest.mark.parametrize("flags,says", [(["--epochs", "3"], "epochs (the run has 1, asked 3)"),
                                        (["--lr", "0.2"], "lr (the run has 0.05, asked 0.2)"),
                                        (["--batch-size", "32"], "batch_size (the run has 16, asked 32)")])
def test_resume_refuses_changed_training_flags(run, capsys, flags, says):
    rc, err = err_of(capsys, ["train", "--out", str(run), "--resume", "--device", "cpu", *flags])
    assert rc == 2 and "--resume continues" in err and says in err
    if flags[0] == "--epochs":
        assert "A longer run is a new run" in err
    # the same values as the run's are fine
    assert main(["train", "--out", str(run), "--resume", "--device", "cpu", "--epochs", "1", "--lr", "0.05"]) == 0


def test_resume_reuses_the_recorded_thread_count(mini, capsys):
    try:
        train(config=cfg(mini, out="runs/t", threads=2), progress=False)
        assert yaml.safe_load((mini / "runs/t/config.yaml").read_text())["threads"] == 2
        torch.set_num_threads(1)
        edit_checkpoints(mini / "runs/t", epoch=0, batch=0, scheduler={"step": 0})
        r = train(config=TrainConfig(out="runs/t", device="cpu"), resume=True, progress=False)
        assert r.config.threads == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)
        capsys.readouterr()
        edit_checkpoints(mini / "runs/t", epoch=0, batch=0, scheduler={"step": 0})
        train(config=TrainConfig(out="runs/t", device="cpu", threads=1), resume=True, progress=False)
        assert "--threads 1, the run trained with 2" in capsys.readouterr().err
    finally:
        torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# kill -9 at random moments and during saves


_CHILD = '''
import os, sys, time
if os.environ.get("SAVE_MARK"):  # every fsync of a save: say so, and linger, so the parent can kill it there
    real = os.fsync
    def slow(fd):
        with open(os.environ["SAVE_MARK"], "a") as f:
            f.write("s")
        time.sleep(0.15)
        return real(fd)
    os.fsync = slow
from convlab.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow
def test_kill_9_at_random_moments_and_during_saves_20_trials(mini):
    """20 trainings killed with SIGKILL, half at a random moment and half inside a save (after the temp
    file is written, before it is renamed); each is resumed (or restarted, where it had saved no checkpoint)
    until it finishes, and must end with the uninterrupted run's weights, bit for bit, best.pt included,
    with its metrics complete and no temp file or lock left."""
    import random

    child = mini / "child.py"
    child.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [SPEC, "--data-dir", str(mini / "fm"), "--epochs", "3", "--batch-size", "16", "--lr", "0.05",
            "--device", "cpu", "--augment", "none", "--threads", "1", "--no-progress"]

    def start(out: Path, mark: Path | None, resume: bool):
        argv = ["train", "--out", str(out), "--resume", "--device", "cpu"] if resume else ["train", *args, "--out",
                                                                                            str(out)]
        e = {**env, **({"SAVE_MARK": str(mark)} if mark else {})}
        return subprocess.Popen([sys.executable, str(child), *argv], env=e, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    t0 = time.perf_counter()
    ref = start(mini / "ref", mini / "ref.mark", False)
    assert ref.wait() == 0, ref.stderr.read()
    ref_s = time.perf_counter() - t0
    saves = len((mini / "ref.mark").read_text())
    want, want_best = _weights(mini / "ref" / "last.pt"), _weights(mini / "ref" / "best.pt")
    rng = random.Random(15)
    stats = {"killed": 0, "in_save": 0, "resumed": 0, "restarted": 0}
    for trial in range(20):
        out, mark = mini / f"k{trial}", mini / f"k{trial}.mark"
        p = start(out, mark, False)
        if trial % 2:  # inside the n-th save
            n = rng.randint(1, saves)
            while p.poll() is None and (len(mark.read_text()) if mark.exists() else 0) < n:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.1))
            stats["in_save"] += p.poll() is None
        else:
            time.sleep(rng.uniform(0.5, ref_s))
        if p.poll() is None:
            p.kill()
            stats["killed"] += 1
        p.wait()
        for _ in range(5):
            resume = (out / "last.pt").is_file()
            q = start(out, None, resume)
            rc = q.wait()
            err = q.stderr.read()
            assert rc == 0 and "Traceback" not in err, (trial, err)
            stats["resumed" if resume else "restarted"] += 1
            if len([ln for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]) == 3:
                break
        got, best = _weights(out / "last.pt"), _weights(out / "best.pt")
        assert all(torch.equal(got[k], want[k]) for k in want), trial
        assert all(torch.equal(best[k], want_best[k]) for k in want_best), trial
        assert (out / "metrics.csv").read_text().count("\n") == 4, trial
        assert not [q.name for q in out.iterdir() if q.name.endswith(".tmp") or q.name == RunLock.NAME], trial
    print(f"\nkill -9 trials: {stats}, reference run {ref_s:.1f} s with {saves} fsyncs")
    assert stats["killed"] >= 15 and stats["in_save"] >= 5


def test_every_config_key_has_a_checked_type():
    # a new TrainConfig field without its entry in the one table of types breaks every run's read-back
    from dataclasses import fields

    from convlab.training.config import _TYPES, TrainConfig

    assert set(_TYPES) == {f.name for f in fields(TrainConfig)}
