"""An exclusive lock on a run directory while a run writes to it.

``.convlab.lock`` holds the pid, host, start time and command of the process that trains there. The lock
itself is an ``flock`` on that file (POSIX): the kernel releases it when the process ends, however it ends
(``kill -9`` included), so a lock file left by a dead process is recognised and taken over, never waited on.
Where ``flock`` does not exist (Windows) the file is created exclusively and a holder on this host that is
no longer running is taken over. On a network file system that does not pass ``flock`` between machines,
two hosts are not kept apart (the holder's host is named in the file for that reason).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import RunError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _describe(info: dict) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {when}"


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        info = json.loads(data.decode("utf-8", "replace")) if data.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class RunLock:
    """Held by the one process that trains in a folder; :meth:`acquire` refuses a second one."""

    NAME = ".convlab.lock"

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, folder: str | Path) -> "RunLock":
        """Lock ``folder``; a RunError naming the holder (pid, host, start time) where another run holds it."""
        path = Path(folder) / cls.NAME
        if path.is_symlink():
            raise RunError(f"{path} is a symbolic link; convlab does not follow links in a run directory — remove it")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
              "command": " ".join(sys.argv)[:300]}
        for _ in range(20):  # the file can be removed by its holder between our open and our lock: try again
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) |
                             (0 if fcntl else os.O_EXCL), 0o644)
            except FileExistsError:  # no flock: the holder is judged by its pid
                with open(path, "rb") as f:
                    info = json.loads(f.read() or b"{}") if path.stat().st_size < 4096 else {}
                if info.get("host") == me["host"] and not _alive(info.get("pid")):
                    _took_over(path, info)
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    continue
                raise RunError(_busy(path, info)) from None
            except OSError as e:
                raise RunError(f"cannot lock {path}: {e.strerror}") from None
            if fcntl:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    info = _read(fd)
                    os.close(fd)
                    raise RunError(_busy(path, info)) from None
                try:
                    same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # its holder removed it as we opened it: lock the file that is there now
                    os.close(fd)
                    continue
                old = _read(fd)
                if old:  # a lock file nobody holds: its process ended without removing it
                    _took_over(path, old)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(me) + "\n").encode())
            with contextlib.suppress(OSError):
                os.fsync(fd)
            return cls(path, fd)
        raise RunError(f"cannot lock {path}: it keeps changing (another process is starting and stopping there)")

    def release(self) -> None:
        """Remove the lock file and let go of the lock (once)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None

    def __del__(self):  # a lock dropped without release (an error in Python code): let go of it
        with contextlib.suppress(Exception):
            self.release()


def _busy(path: Path, info: dict) -> str:
    return (f"{path.parent} is in use by another convlab run ({_describe(info)}"
            + (f": {info['command']}" if info.get("command") else "")
            + f"); wait for it to finish or stop it, or give another --out (nothing was written). "
              f"The lock is {path}")


def _took_over(path: Path, info: dict) -> None:
    print(f"note: {path.parent} was locked by a convlab run that is no longer running ({_describe(info)}); "
          f"taking over its lock", file=sys.stderr)
