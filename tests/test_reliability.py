"""Nothing is lost, overwritten or run: the one writer (atomic, no links followed, full disks), run-directory
locks and ownership, untrusted runs, checked run files, and kill -9 at random moments."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from minidata import TINY_SPEC, mini_run_folder, tiny_config

from convlab import fileio
from convlab.cli import main
from convlab.errors import ConvlabError, WriteError
from convlab.training import train

SPEC = TINY_SPEC
cfg = tiny_config


@pytest.fixture
def mini(tmp_path, monkeypatch):
    return mini_run_folder(tmp_path, monkeypatch)


def temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------
# the one writer


def test_writer_replaces_atomically_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    fileio.write_text(p, "one")
    fileio.write_text(p, "two")
    assert p.read_text() == "two" and temps(tmp_path) == []


def test_writer_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.html").symlink_to(victim)
    with pytest.raises(WriteError, match=r"report.html: it is a symbolic link .*nothing was written"):
        fileio.write_text(tmp_path / "run" / "report.html", "<html>")
    assert victim.read_text() == "precious" and (tmp_path / "run" / "report.html").is_symlink()


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_injected_enospc_names_the_file_and_keeps_the_previous_version(tmp_path, monkeypatch, where):
    p = tmp_path / "curves.png"
    p.write_bytes(b"old picture")
    full = OSError(errno.ENOSPC, "No space left on device")

    def fail(*a, **k):
        raise full

    if where == "fsync":
        monkeypatch.setattr(fileio.os, "fsync", fail)
    elif where == "replace":
        monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(WriteError, match=r"cannot write .*curves.png: the disk is full.*previous version"):
        with fileio.atomic_open(p) as f:
            if where == "write":
                raise full  # what f.write raises on a full disk
            f.write(b"new picture")
    assert p.read_bytes() == b"old picture" and temps(tmp_path) == []


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(WriteError, match=r"folder .*nowhere does not exist"):
        fileio.write_text(tmp_path / "nowhere" / "report.html", "x")


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = fileio._host()
    stale = tmp_path / f".last.pt.convlab-{host}-{dead.pid}-0abc.tmp"
    live = tmp_path / f".last.pt.convlab-{host}-{os.getpid()}-0abc.tmp"
    other = tmp_path / f".last.pt.convlab-otherhost-{dead.pid}-0abc.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x" * 100)
    assert fileio.remove_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_every_command_that_writes_says_disk_full_in_one_line(mini, monkeypatch, capsys):
    train(config=cfg(mini, out="runs/a"), progress=False)
    run = mini / "runs" / "a"
    assert main(["report", str(run)]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    capsys.readouterr()
    for argv in (["report", str(run)], ["eval", str(run), "--device", "cpu"],
                 ["viz", str(run), "--device", "cpu", "--what", "filters"],
                 ["inspect", str(run), "--device", "cpu", "--what", "activations", "--images", "8"],
                 ["compare", str(run), "--plot", str(mini / "c.png")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("convlab: error: cannot write") and "disk is full" in err and "\n" not in err, argv
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # every previous version intact, no temp left
    with pytest.raises(WriteError, match="disk is full"):
        train(config=cfg(mini, out="runs/b"), progress=False)
    assert temps(mini / "runs" / "b") == []


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk_on_a_small_tmpfs(mini, capsys):
    disk = mini / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        train(config=cfg(mini, out=str(disk / "run")), progress=False)
        run = disk / "run"
        assert main(["report", str(run)]) == 0
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        with open(disk / "filler", "wb") as f:  # fill what is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        capsys.readouterr()
        assert main(["report", str(run)]) == 2
        assert "disk is full" in capsys.readouterr().err
        assert main(["eval", str(run), "--device", "cpu"]) == 2
        assert "disk is full" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_report_escapes_every_value_from_the_run_files(mini, capsys):
    train(config=cfg(mini, out="runs/a"), progress=False)
    run = mini / "runs" / "a"
    # a text value where a number belongs is refused before anything is written ...
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    good = (run / "metrics.jsonl").read_text()
    rows[0]["lr"] = "<script>alert(1)</script>"
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl, line 1: key 'lr': expected a number" in err and not (run / "report.html").exists()
    # ... and every text value that reaches the page is escaped
    (run / "metrics.jsonl").write_text(good)
    import yaml

    conf = yaml.safe_load((run / "config.yaml").read_text())
    conf["model"], conf["augment"] = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    (run / "config.yaml").write_text(yaml.safe_dump(conf))
    page = Path(main(["report", str(run)]) == 0 and run / "report.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
