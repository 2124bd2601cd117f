"""The one writer every file convlab writes goes through.

``write_bytes``/``write_text`` (and ``atomic_open`` for writers that want a file object, such as
``torch.save``) write to a temp file in the destination's own folder, fsync it, and ``os.replace`` it
over the destination, so a reader — or a crash, or ``kill -9`` — sees the old file or the new one,
never half of one. A symbolic link at the destination is refused, not followed (a link planted in a
run directory cannot make convlab overwrite the file it points to). A full disk, a read-only folder or
a missing one is a :class:`~convlab.errors.WriteError` that names the file; the previous version stays
as it was. Temp files are named ``.NAME.convlab-HOST-PID-RANDOM.tmp``; ``remove_stale_temps`` deletes
those whose writer (same host, that pid) is gone.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import socket
from pathlib import Path

from .errors import WriteError

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES, errno.EPERM}
_TEMP = re.compile(r"^\.(?P<name>.+)\.convlab-(?P<host>[^-]*)-(?P<pid>\d+)-[0-9a-f]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40]


def _describe(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full (no space left on the device or the quota is used up); free some space and run again"
    if e.errno == errno.EROFS:
        return "the file system is read-only"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or type(e).__name__


def _check_target(path: Path) -> None:
    if path.is_symlink():
        raise WriteError(f"cannot write {path}: it is a symbolic link (to {os.readlink(path)}); convlab does not write "
                         f"through links — remove the link and run again (nothing was written)")
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise WriteError(f"cannot write {path}: the folder {path.parent} does not exist; create it first")


@contextlib.contextmanager
def atomic_open(path: str | Path, what: str = ""):
    """A binary file object whose contents replace ``path`` when the block ends without an error.

    On any error (a full disk included) the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    _check_target(path)
    tmp = path.parent / f".{path.name}.convlab-{_host()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as e:
        raise WriteError(f"cannot write {path}{what}: {_describe(e)}") from None
    f = os.fdopen(fd, "wb")
    try:
        try:
            yield f
        except OSError as e:  # the caller's own errors (a failed download) pass; the disk's become WriteError
            if e.errno in _DISK_ERRNOS:
                raise WriteError(f"cannot write {path}{what}: {_describe(e)}; the previous version (if any) is "
                                 f"unchanged") from None
            raise
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp, path)
        except OSError as e:
            raise WriteError(f"cannot write {path}{what}: {_describe(e)}; the previous version (if any) is "
                             f"unchanged") from None
    finally:
        with contextlib.suppress(OSError):
            f.close()  # a close that fails on a full disk: the temp is removed below either way
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); where a folder cannot be opened (Windows), skip it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: str | Path, **kw) -> Path:
    """A matplotlib figure as PNG, rendered in memory first so a failure never leaves a 0-byte picture."""
    buf = io.BytesIO()
    fig.savefig(buf, format=kw.pop("format", "png"), **kw)
    return write_bytes(path, buf.getvalue())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: keep its file
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files in ``folder`` left by convlab writers of this host that are no longer running
    (a ``kill -9`` mid-save); a live writer's temp file and other hosts' are kept. Returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    host = _host()
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if not m or m["host"] != host or _alive(int(m["pid"])) or p.is_symlink() or not p.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed
