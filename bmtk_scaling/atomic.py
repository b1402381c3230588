"""Write a directory or a file completely or not at all, and never replace what this tool did not write.

Work goes to a hidden temporary sibling (``.NAME.XXXX.partial``) that is renamed into place at the
end, so a failed or interrupted run never leaves a half-written result where a user (or a resumable
sweep) would mistake it for a finished one. Every folder written this way carries a marker file
(:data:`MARKER`); an existing non-empty folder is replaced only when it carries one, so a user's own
folder is never deleted, whatever ``--overwrite`` says. One writer at a time: a lock file beside the
target (``.NAME.lock``) makes a second writer fail at once, and whoever holds it may remove the
``.partial`` folders a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmtk_scaling.errors import BmtkScalingError

MARKER = ".bmtk-scaling"  # in every folder this tool wrote: the proof that it may replace it


def written_by_us(folder: Path) -> bool:
    """Whether ``folder`` carries the marker of a folder bmtk-scaling wrote."""
    return (Path(folder) / MARKER).is_file()


def check_output_dir(out_dir: Path, overwrite: bool, option: str = "--out") -> Path:
    """Validate a requested output directory before any work starts; raise BmtkScalingError naming the fix."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BmtkScalingError(f"output path {out_dir} exists and is not a directory: choose another {option}")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise BmtkScalingError(f"output directory {out_dir} exists and is not empty: choose another {option}, "
                                       "or pass --overwrite (overwrite=True) to replace it")
            if not written_by_us(out_dir):
                raise BmtkScalingError(f"output directory {out_dir} holds files bmtk-scaling did not write (no "
                                       f"{MARKER} marker), so it is never replaced: choose another {option} "
                                       "(nothing was deleted)")
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BmtkScalingError(f"cannot create {out_dir}: {parent} is a file, not a directory; choose another "
                               f"{option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BmtkScalingError(f"cannot write under {parent} (permission denied): choose a writable {option}")
    return out_dir


@contextlib.contextmanager
def exclusive_lock(target: Path) -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``target`` for the block; BmtkScalingError at once if another process holds it."""
    target = Path(target).absolute()
    path = target.with_name(f".{target.name}.lock")
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as err:
            raise BmtkScalingError(f"cannot write {target}: {err.strerror or err}; choose a writable --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_quietly(path)
            raise BmtkScalingError(f"{target} is being written by another bmtk-scaling process ({holder or 'pid ?'}):"
                                   " wait for it to finish, or choose another --out") from None
        try:  # the file may have been unlinked by its last holder between our open and our lock: then retry
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _read_quietly(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass
class Staging:
    """A hidden sibling folder that becomes ``target`` on :meth:`commit` (see :func:`begin_staging`)."""

    target: Path
    folder: Path

    kind: str

    def commit(self) -> Path:
        """Put the staged folder in place of ``target`` (whose old copy, ours by construction, goes)."""
        if not written_by_us(self.folder):  # a writer that empties its folder first (bmtk does) removed it
            _write_marker(self.folder, self.kind)
        _swap_into_place(self.folder, self.target)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def begin_staging(target: Path, kind: str) -> Staging:
    """A fresh ``.NAME.XXXX.partial`` beside ``target``, marked as ours; leftovers of killed writers removed.

    Call while holding :func:`exclusive_lock` on ``target``, after :func:`check_output_dir`.
    """
    target = Path(target).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in [*target.parent.glob(f".{target.name}.*.partial"), *target.parent.glob(f".{target.name}.old-*")]:
            if stale.is_dir() and written_by_us(stale):  # a writer killed before it finished; we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as err:
        raise BmtkScalingError(f"cannot write {target}: {err.strerror or err}; choose a writable --out") from err
    _write_marker(folder, kind)
    return Staging(target=target, folder=folder, kind=kind)


def _write_marker(folder: Path, kind: str) -> None:
    write_json(Path(folder) / MARKER, {"written_by": "bmtk-scaling", "kind": kind, "pid": os.getpid(),
                                       "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


@contextlib.contextmanager
def atomic_directory(out_dir: Path, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out_dir`` only if the block finishes without error.

    An existing non-empty ``out_dir`` is replaced only with ``overwrite`` and only if bmtk-scaling wrote
    it (its marker); a second writer of the same ``out_dir`` fails at once.
    """
    out_dir = check_output_dir(out_dir, overwrite)
    with exclusive_lock(out_dir):
        check_output_dir(out_dir, overwrite)  # again: another writer may have finished while we waited
        staging = begin_staging(out_dir, kind)
        try:
            yield staging.folder
        except BaseException:
            staging.abort()
            raise
        staging.commit()


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        trash = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(trash)
        tmp.rename(out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(out_dir)
    os.chmod(out_dir, 0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and an atomic rename.

    ``durable`` also fsyncs the file and its folder, so the result survives a crash right after.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file is as readable as any other
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(path: Path, data: Any, durable: bool = False) -> Path:
    """``data`` as indented JSON, written through :func:`write_text_atomic`; return ``path``."""
    write_text_atomic(Path(path), json.dumps(data, indent=2) + "\n", durable=durable)
    return Path(path)


@contextlib.contextmanager
def atomic_file(path: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder that replaces ``path`` only if the block succeeds.

    For writers that need a file name (h5py): readers never see a half-written file.
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise BmtkScalingError(f"{path} exists: choose another path, or pass --overwrite (overwrite=True) to "
                               "replace it")
    if path.is_dir():
        raise BmtkScalingError(f"{path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as err:
        raise BmtkScalingError(f"cannot write {path}: {err.strerror or err}") from err
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
