"""Atomic file writes: a reader (or a crash) never sees a half-written file, and an existing file is
only replaced once its successor is complete and on disk.

A write goes to a hidden temporary ``.<name>.<pid>-<random>.tmp`` next to the target, is fsynced, and
is then renamed over the target. The temporary file is created by the writer with the usual mode, so
the result gets the user's umask (not mkstemp's 0600). Temporaries left behind by a killed process
(its pid no longer runs) are removed the next time anything is written to the same target.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Delete temporaries of ``path`` whose writing process no longer exists; returns what was removed."""
    path = Path(path)
    removed: list[Path] = []
    prefix = f".{path.name}."
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.iterdir():
        name = tmp.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_part = name[len(prefix) : -len(".tmp")].split("-", 1)[0]
        if pid_part.isdigit() and int(pid_part) != os.getpid() and not _pid_alive(int(pid_part)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some file systems do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path`` for the caller to write; on success it is fsynced and renamed
    over ``path``, on error removed (``path`` itself is never touched then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} (the temporary for {path})")
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "x", encoding="utf-8") as f:
        f.write(text)
