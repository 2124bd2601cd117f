"""A failure under torchrun reads as one convlab message, from rank 0, and exits non-zero."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convlab import cli

SRC = str(Path(cli.__file__).resolve().parents[1])


def _run_main(monkeypatch, capsys, env: dict[str, str]):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(cli, "_OTHER_RANK_WAIT_S", 0.0)
    rc = cli.main(["train", "lenet-modern", "--epochs", "many"])
    return rc, capsys.readouterr().err


def test_one_process_prints_the_error_plainly(monkeypatch, capsys):
    rc, err = _run_main(monkeypatch, capsys, {})
    assert rc == 2
    assert err.startswith("convlab: error: argument --epochs: invalid int value: 'many'")


def test_rank_0_speaks_plainly_and_a_rank_still_running_names_itself(monkeypatch, capsys):
    rc0, err0 = _run_main(monkeypatch, capsys, {"RANK": "0", "WORLD_SIZE": "2"})
    rc1, err1 = _run_main(monkeypatch, capsys, {"RANK": "1", "WORLD_SIZE": "2"})
    assert (rc0, rc1) == (2, 2)
    assert err0.startswith("convlab: error: argument --epochs")
    assert err1.startswith("[rank 1] convlab: error: argument --epochs")


@pytest.mark.ddp
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed next to this python")
def test_under_torchrun_the_message_appears_once_and_the_exit_is_non_zero(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "convlab", "train",
                        "lenet-modern", "--data", "nosuch", "--threads", "1"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert out.count("unknown dataset 'nosuch'") == 1, out
    assert "[rank 1]" not in out
