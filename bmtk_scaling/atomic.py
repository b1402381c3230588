"""The one gate every path bmtk-scaling writes passes, and the atomic writes behind it.

:func:`claim` decides whether a path may be written, before any work starts: it resolves symlinks
(a loop is refused), refuses every input of the run and everything inside the network's and the
components' folders, refuses what this tool did not write (a file that is not of the kind being
written, a folder without the marker :data:`MARKER` or holding anything its marker does not list),
lets ``overwrite`` replace only what it wrote before of the same kind, and tries the place: a
read-only folder, a file where a folder belongs (or the reverse) and a name too long for the file
system are refused there, not after the simulation. A refusal is a :class:`Refused` that carries
the path and the reason, so a caller may instead write into a new folder beside it.

The writes are atomic: work goes to a hidden sibling (``.NAME.<pid>-XXXX.partial``) renamed into
place at the end, so nothing half-written is ever where a user (or a resumable sweep) would take it
for a finished result. Every folder written this way carries the marker, which lists what it holds.
One writer at a time: a lock file beside the target (``.NAME.lock``). A ``.partial`` left by a
writer that was killed is removed by the next writer, once its recorded process is gone.
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmtk_scaling.errors import BmtkScalingError, RunError

MARKER = ".bmtk-scaling"  # in every folder this tool wrote: the proof that it may replace it, and what it holds
PARTIAL = ".partial"  # the suffix of every staging folder and temporary file
_ROOM = 40  # characters a name needs beyond itself: ".NAME.<pid>-XXXXXXXX.partial", ".NAME.old-<pid>"


class Refused(BmtkScalingError):
    """A path the gate will not write; ``reason`` is one of: input, foreign, exists, kind, unwritable, shape, name."""

    def __init__(self, path: Path, reason: str, message: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Protected:
    """What a write must never touch: the inputs of a run, and folders nothing is written into.

    ``files``: every input file (configs, network files, maps, spike inputs); ``folders``: the
    network's and the components' folders; ``owner``: the config they belong to, for the message.
    """

    files: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()
    owner: str = "the run"

    @classmethod
    def of(cls, files: Iterable[Path], folders: Iterable[Path], owner: str) -> Protected:
        """The same paths with every symlink resolved, as :func:`claim` compares them."""
        return cls(files=tuple(dict.fromkeys(_real(f) for f in files)),
                   folders=tuple(dict.fromkeys(_real(f) for f in folders)), owner=owner)

    def check(self, target: Path, option: str, folder: bool) -> None:
        """Refused (reason ``input``) when ``target`` is an input, lies in a protected folder, or holds an input."""
        for path in self.files:
            if path == target:
                raise Refused(target, "input", f"{option} {target} is {path.name}, an input of {self.owner}: "
                                               "choose another path (inputs are never replaced, with or without "
                                               "--overwrite)")
            if target in path.parents:
                raise Refused(target, "input", f"{option} {target} holds {path}, an input of {self.owner}, which "
                                               "replacing it would delete: give the output a folder of its own")
        for path in self.folders:
            if path == target or path in target.parents:
                raise Refused(target, "input", f"{option} {target} lies inside {path}, an input folder of "
                                               f"{self.owner}, where nothing is ever written: choose another path")
            if target in path.parents:
                raise Refused(target, "input", f"{option} {target} holds the input folder {path} of {self.owner}, "
                                               "which replacing it would delete: give the output a folder of its own")


def _real(path: str | Path) -> Path:
    """``path`` absolute with every symlink resolved (as far as it exists)."""
    return Path(os.path.realpath(Path(path).expanduser().absolute()))


def resolve_target(path: str | Path, option: str) -> Path:
    """``path`` absolute, symlinks resolved; a symlink loop, an empty name or a name too long is refused."""
    text = os.fspath(path)
    if not text.strip():
        raise Refused(Path(text), "name", f"{option}: an empty path: name the file or folder to write")
    raw = Path(text).expanduser().absolute()
    try:
        real = raw.resolve(strict=False)
        os.stat(real)
    except FileNotFoundError:
        pass
    except RuntimeError:
        raise Refused(raw, "name", f"{option} {raw} is a symlink loop (a link that leads back to itself): choose a "
                                   "real folder or file") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Refused(raw, "name", f"{option} {raw} is a symlink loop (a link that leads back to itself): "
                                       "choose a real folder or file") from None
        if err.errno == errno.ENAMETOOLONG:
            raise Refused(raw, "name", _too_long(raw, option)) from None
        if err.errno == errno.ENOTDIR:
            raise Refused(raw, "shape", f"cannot write {raw}: a part of it is a file, not a folder; choose another "
                                        f"{option}") from None
        raise Refused(raw, "unwritable", f"{option} {raw}: {err.strerror or err}; choose another path") from None
    limit = _name_max(real)
    if any(len(os.fsencode(part)) + _ROOM > limit for part in real.parts) or len(os.fsencode(str(real))) > 3800:
        raise Refused(real, "name", _too_long(real, option))
    return real


def _name_max(path: Path) -> int:
    folder = path
    while folder != folder.parent:
        try:
            if folder.is_dir():
                return int(os.pathconf(folder, "PC_NAME_MAX"))
        except (OSError, ValueError):
            pass
        folder = folder.parent
    return 255


def _too_long(path: Path, option: str) -> str:
    longest = max(path.parts, key=lambda p: len(os.fsencode(p)))
    return (f"{option}: the name {longest[:40]}... has {len(os.fsencode(longest))} bytes; this file system allows "
            f"{_name_max(path)} per name and bmtk-scaling needs {_ROOM} more for its temporary copy: choose a "
            "shorter path")


Recognise = Callable[[Path], bool]  # whether an existing file is one this tool wrote, of the kind being written


def claim(path: str | Path, kind: str, *, folder: bool, overwrite: bool = False, option: str = "--out",
          protected: Protected | None = None, recognise: Recognise | None = None, resume: bool = False) -> Path:
    """The gate: the resolved path where ``kind`` may be written, or Refused saying why not and what to do.

    ``folder``: a folder is written (else a file). ``overwrite``: an existing one of the same ``kind``
    that this tool wrote may be replaced (a folder only if it holds nothing its marker does not list;
    a file only if ``recognise`` knows it). ``resume``: a folder of the same kind is written into, not
    replaced (a sweep's results). Call before any work starts, and again right before the write.
    """
    target = resolve_target(path, option)
    if protected is not None:
        protected.check(target, option, folder)
    if os.path.lexists(target):
        if folder:
            _check_folder(target, kind, overwrite, option, resume)
        else:
            _check_file(target, kind, overwrite, option, recognise)
    _check_writable(target, option)
    return target


def _check_folder(target: Path, kind: str, overwrite: bool, option: str, resume: bool) -> None:
    if not target.is_dir():
        raise Refused(target, "shape", f"{option} {target} is a file, not a folder: choose another {option} (a new "
                                       f"folder, or one bmtk-scaling wrote)")
    if not any(target.iterdir()):
        return
    marker = read_marker(target)
    if marker is None:
        raise Refused(target, "foreign", f"{option} {target} holds files bmtk-scaling did not write (no {MARKER} "
                                         f"marker), so it is never replaced: choose another {option} (nothing was "
                                         "deleted)")
    if marker.get("kind") not in (kind, "output"):  # "output": written before kinds were told apart
        raise Refused(target, "kind", f"{option} {target} holds {marker.get('kind')!r} that bmtk-scaling wrote, not "
                                      f"{kind!r}: choose another {option} (nothing was deleted)")
    if resume:
        return
    foreign = foreign_entries(target, marker)  # first: --overwrite would not help
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise Refused(target, "foreign", f"{option} {target} also holds {shown}, which bmtk-scaling did not write, so "
                                         f"it is never replaced: move {'them' if len(foreign) > 1 else 'it'} out, or "
                                         f"choose another {option} (nothing was deleted)")
    if not overwrite:
        raise Refused(target, "exists", f"{option} {target} exists and is not empty: choose another {option}, or "
                                        "pass --overwrite (overwrite=True) to replace it")


def _check_file(target: Path, kind: str, overwrite: bool, option: str, recognise: Recognise | None) -> None:
    if target.is_dir():
        raise Refused(target, "shape", f"{option} {target} is a folder, not a file: name the {kind} file itself")
    if not target.is_file():
        raise Refused(target, "shape", f"{option} {target} is not a regular file (a FIFO, socket or device): name "
                                       f"a file for the {kind}")
    if not overwrite:
        raise Refused(target, "exists", f"{option} {target} exists: choose another {option}, or pass --overwrite "
                                        "(overwrite=True) to replace it")
    try:
        ours = recognise is not None and recognise(target)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise Refused(target, "foreign", f"{option} {target} is not a {kind} bmtk-scaling wrote, so it is never "
                                         f"replaced, with or without --overwrite: choose another {option}")


def _check_writable(target: Path, option: str) -> None:
    """Try the place: create (and remove) a folder in the nearest existing folder the write goes into."""
    place = target.parent
    while not os.path.lexists(place) and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise Refused(target, "shape", f"cannot write {target}: {place} is a file, not a folder; choose another "
                                       f"{option}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bmtk-scaling-probe-", dir=place))
    except OSError as err:
        raise Refused(target, "unwritable", f"cannot write {target}: {place} is not writable ({err.strerror or err});"
                                            f" choose a writable {option}") from None


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder this tool wrote (kind, pid, what it holds), or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "bmtk-scaling" else None


def written_by_us(folder: Path) -> bool:
    """Whether ``folder`` carries the marker of a folder bmtk-scaling wrote."""
    return read_marker(folder) is not None


def _entries(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (links not followed), relative, the marker left out."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / name).as_posix() for name in [*dirs, *files]]
    return sorted(e for e in out if e != MARKER)


def foreign_entries(folder: Path, marker: dict) -> list[str]:
    """What ``folder`` holds that this tool did not write: not listed in its marker, not in a sub-folder with a
    marker of its own (a run's output), not one of its lock files. A marker without a list (older) lists all."""
    if not isinstance(marker.get("files"), list):
        return []
    listed = set(marker["files"])
    also = tuple(f"{a}/" for a in marker.get("also", []))
    ours = [e for e in _entries(folder) if (folder / e).is_dir() and not (folder / e).is_symlink()
            and read_marker(folder / e) is not None]
    inside_ours = tuple(f"{e}/" for e in ours)
    return [e for e in _entries(folder) if e not in listed and e not in ours and not e.startswith((*also, *inside_ours))
            and not (e.rpartition("/")[2].startswith(".") and e.endswith(".lock"))]


def register(path: Path) -> None:
    """List ``path``, just written, in the marker of the nearest folder above it that this tool wrote, so that
    folder stays replaceable (a map in a built network's ``partitions/``, a config beside its own)."""
    path = Path(path)
    for folder in path.parents:
        marker = read_marker(folder)
        if marker is None:
            continue
        if isinstance(marker.get("files"), list):
            rel = path.relative_to(folder)
            parts = [p.as_posix() for p in reversed(rel.parents) if p != Path(".")] + [rel.as_posix()]
            if not set(parts) <= set(marker["files"]):
                marker["files"] = sorted(set(marker["files"]) | set(parts))
                with contextlib.suppress(OSError):
                    write_json(folder / MARKER, marker)
        return


def check_output_dir(out_dir: Path, overwrite: bool, option: str = "--out", kind: str = "output",
                     protected: Protected | None = None) -> Path:
    """:func:`claim` for a folder: validate a requested output folder before any work starts."""
    return claim(out_dir, kind, folder=True, overwrite=overwrite, option=option, protected=protected)


@contextlib.contextmanager
def exclusive_lock(target: Path, option: str = "--out") -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``target`` for the block; BmtkScalingError at once if another process holds it."""
    target = Path(target).absolute()
    path = target.with_name(f".{target.name}.lock")
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as err:
            raise Refused(target, "unwritable", f"cannot write {target}: {err.strerror or err}; choose a writable "
                                                f"{option}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_quietly(path)
            raise BmtkScalingError(f"{target} is being written by another bmtk-scaling process ({holder or 'pid ?'}):"
                                   f" wait for it to finish, or choose another {option}") from None
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
    also: list[str] = field(default_factory=list)  # sub-folders whose contents are ours though written later

    def commit(self) -> Path:
        """Put the staged folder in place of ``target`` (whose old copy, ours by construction, goes).

        If that fails (the place became read-only, the disk is full), the staged results are kept where
        they are and the RunError says where.
        """
        try:
            _write_marker(self.folder, self.kind, files=_entries(self.folder), also=self.also)
            _swap_into_place(self.folder, self.target)
        except OSError as err:
            self.keep()
            raise RunError(f"the finished results could not be put in place as {self.target} ({err.strerror or err});"
                           f" they are kept in {self.folder}: move that folder where you want it") from None
        return self.target

    def keep(self) -> None:
        """Mark the staged folder as kept: no later writer removes it."""
        with contextlib.suppress(OSError):
            _write_marker(self.folder, self.kind, files=_entries(self.folder), also=self.also, kept=True)

    def abort(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def begin_staging(target: Path, kind: str, also: Iterable[str] = (), option: str = "--out") -> Staging:
    """A fresh ``.NAME.<pid>-XXXX.partial`` beside ``target``, marked as ours; abandoned ones removed.

    Call while holding :func:`exclusive_lock` on ``target``, after :func:`claim`.
    """
    target = Path(target).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(target)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=PARTIAL, dir=target.parent))
    except OSError as err:
        raise Refused(target, "unwritable", f"cannot write {target}: {err.strerror or err}; choose a writable "
                                            f"{option}") from err
    _write_marker(folder, kind)
    return Staging(target=target, folder=folder, kind=kind, also=list(also))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned(target: Path) -> list[Path]:
    """Remove the staging and trash folders of ``target`` whose writer is provably gone; return them.

    Proof: the folder carries our marker or our name pattern with a process id, that process no longer
    exists, and it was not kept (a result whose final rename failed is the user's to move).
    """
    import re

    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)-[^/]*\.partial|old-(\d+)|[^/]*\.partial)$")
    removed = []
    for stale in target.parent.glob(f".{glob_escape(target.name)}.*"):
        match = pattern.match(stale.name)
        if match is None or not stale.is_dir() or stale.is_symlink():
            continue
        marker = read_marker(stale)
        pid = match.group(1) or match.group(2) or (marker or {}).get("pid")
        if (marker or {}).get("kept") or pid is None or (marker is None and not (match.group(1) or match.group(2))):
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _write_marker(folder: Path, kind: str, files: list[str] | None = None, also: Iterable[str] = (),
                  kept: bool = False) -> None:
    data: dict[str, Any] = {"written_by": "bmtk-scaling", "kind": kind, "pid": os.getpid(),
                            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if files is not None:
        data["files"] = files
    if also:
        data["also"] = list(also)
    if kept:
        data["kept"] = True
    write_json(Path(folder) / MARKER, data)


@contextlib.contextmanager
def atomic_directory(out_dir: Path, overwrite: bool = False, kind: str = "output", *, option: str = "--out",
                     protected: Protected | None = None, also: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out_dir`` only if the block finishes without error.

    ``out_dir`` passes :func:`claim` (before the work and again under the lock); a second writer of
    the same ``out_dir`` fails at once.
    """
    out_dir = claim(out_dir, kind, folder=True, overwrite=overwrite, option=option, protected=protected)
    with exclusive_lock(out_dir, option):
        claim(out_dir, kind, folder=True, overwrite=overwrite, option=option, protected=protected)
        staging = begin_staging(out_dir, kind, also=also, option=option)
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
        try:
            tmp.rename(out_dir)
        except OSError:
            trash.rename(out_dir)
            raise
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

    For files inside folders this tool owns (staging folders, a sweep's records); a path a user chose
    goes through :func:`write_file`. ``durable`` also fsyncs the file and its folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=path.parent)
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


def write_file(path: str | Path, text: str, kind: str, *, overwrite: bool = False, option: str = "--out",
               protected: Protected | None = None, recognise: Recognise | None = None) -> Path:
    """Write ``text`` to a path a user chose, through :func:`claim` and an atomic rename; return the path."""
    target = claim(path, kind, folder=False, overwrite=overwrite, option=option, protected=protected,
                   recognise=recognise)
    try:
        write_text_atomic(target, text)
    except OSError as err:
        raise Refused(target, "unwritable", f"cannot write {target}: {err.strerror or err}; choose another "
                                            f"{option}") from None
    register(target)
    return target


def write_files_into(folder: str | Path, files: dict[str, str], kind: str, *, overwrite: bool = False,
                     option: str = "--out", protected: Protected | None = None, also: Iterable[str] = (),
                     executable: Iterable[str] = ()) -> list[Path]:
    """Write ``files`` (name -> text) into a folder of ``kind`` that this tool owns, each atomically.

    The folder passes :func:`claim` (a new one, or one of the same kind); a file there is replaced only
    with ``overwrite`` and only if the folder's marker lists it. Everything is checked before anything
    is written. ``also``: sub-folders whose contents are ours though others write them (job logs).
    """
    target = claim(folder, kind, folder=True, option=option, protected=protected, resume=True)
    marker = read_marker(target) or {}
    listed = set(marker.get("files", [])) if isinstance(marker.get("files"), list) else None
    for name in files:
        path = target / name
        if not os.path.lexists(path):
            continue
        if not path.is_file() or path.is_symlink() or (listed is not None and name not in listed):
            raise Refused(path, "foreign", f"{option} {target} holds {name}, which bmtk-scaling did not write, so it "
                                           f"is never replaced: move it out, or choose another {option} (nothing was "
                                           "written)")
        if not overwrite:
            raise Refused(path, "exists", f"{option} {target} already holds {name}: pass --overwrite to replace "
                                          f"the files an earlier run wrote there, or choose another {option}")
    written = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        _write_marker(target, kind, files=sorted((listed or set()) | set(files)),
                      also=sorted(set(marker.get("also", [])) | set(also)))
        for name, text in files.items():
            write_text_atomic(target / name, text)
            if name in set(executable):
                (target / name).chmod(0o755 & ~_umask())
            written.append(target / name)
    except OSError as err:
        raise Refused(target, "unwritable", f"cannot write {target}: {err.strerror or err}; choose a writable "
                                            f"{option}") from None
    return written


def is_json_with(*keys: str) -> Recognise:
    """A :data:`Recognise` for JSON files this tool writes: an object holding every one of ``keys``."""
    def recognise(path: Path) -> bool:
        data = json.loads(Path(path).read_text())
        return isinstance(data, dict) and all(k in data for k in keys)
    return recognise


@contextlib.contextmanager
def atomic_file(path: Path, overwrite: bool = False, kind: str = "file", *, option: str = "--out",
                protected: Protected | None = None, recognise: Recognise | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (after :func:`claim`) that replaces it only if the block succeeds.

    For writers that need a file name (h5py): readers never see a half-written file.
    """
    path = claim(path, kind, folder=False, overwrite=overwrite, option=option, protected=protected,
                 recognise=recognise)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=path.parent)
    except OSError as err:
        raise Refused(path, "unwritable", f"cannot write {path}: {err.strerror or err}") from err
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    register(path)
