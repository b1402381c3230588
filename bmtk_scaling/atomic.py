"""Write a directory or a file completely or not at all.

Work goes to a hidden temporary sibling that is renamed into place at the end, so a failed or
interrupted run never leaves a half-written result where a user (or a resumable sweep) would
mistake it for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bmtk_scaling.errors import BmtkScalingError


def check_output_dir(out_dir: Path, overwrite: bool) -> Path:
    """Validate a requested output directory before any work starts; raise BmtkScalingError naming the fix."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BmtkScalingError(f"output path {out_dir} exists and is not a directory: choose another --out")
        if any(out_dir.iterdir()) and not overwrite:
            raise BmtkScalingError(
                f"output directory {out_dir} exists and is not empty: choose another --out, or pass "
                "--overwrite (overwrite=True) to replace it"
            )
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BmtkScalingError(f"cannot create {out_dir}: {parent} is a file, not a directory; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BmtkScalingError(f"cannot write under {parent} (permission denied): choose a writable --out")
    return out_dir


@contextlib.contextmanager
def atomic_directory(out_dir: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out_dir`` only if the block finishes without error."""
    out_dir = check_output_dir(out_dir, overwrite)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as err:
        raise BmtkScalingError(f"cannot write {out_dir}: {err.strerror or err}; choose a writable --out") from err
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
