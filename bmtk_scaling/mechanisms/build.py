"""Compile, cache and install the project's NMODL mechanisms (RTM, WB, VecStim).

The mechanisms are compiled once with ``nrnivmodl -coreneuron`` so that one build serves both
engines: ``libnrnmech.so`` for NEURON and ``libcorenrnmech.so`` for CoreNEURON. Builds are cached
by content (mod files + NEURON version + NEURON installation), because compiling takes ~15 s and
several MPI ranks or test processes may ask for it at the same moment.

CoreNEURON finds its library through the environment variable ``CORENEURONLIB``, read when the
first CoreNEURON ``psolve`` of a process loads the library; see :func:`export_coreneuron_library`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import bmtk_scaling.mechanisms.mend as mend
from bmtk_scaling.errors import BmtkScalingError

__all__ = [
    "compile_mechanisms",
    "corenrn_library",
    "export_coreneuron_library",
    "install_mechanisms",
    "project_components_dir",
]

log = logging.getLogger(__name__)

CORENEURONLIB_ENV = "CORENEURONLIB"
_KEY_FILE = ".bmtk-scaling-build-key"


def _arch() -> str:
    """Name of the folder nrnivmodl writes into (``x86_64`` on Linux PCs), as NEURON looks it up."""
    return platform.machine() or "x86_64"


def project_components_dir() -> Path:
    """The components bundled with bmtk-scaling, in BMTK's layout: mechanisms/modfiles, templates, synaptic_models.

    In a source checkout they are the repository's top-level ``components/``; an installed wheel
    carries the same files as the data package ``bmtk_scaling.components``.
    """
    spec = importlib.util.find_spec("bmtk_scaling.components")
    candidates = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(Path(__file__).resolve().parents[2] / "components")  # a checkout on sys.path, not installed
    for path in candidates:
        if (path / "mechanisms" / "modfiles").is_dir():
            return path
    raise BmtkScalingError(f"bmtk-scaling's bundled components (mod files, templates) are missing; looked in "
                           f"{[str(c) for c in candidates]}: reinstall the package (pip install bmtk-scaling)")


def cache_root() -> Path:
    """Where every build of the package is cached (``$BMTK_SCALING_CACHE``, else ``~/.cache/bmtk-scaling``)."""
    from bmtk_scaling.environment import cache_root as checked_root  # never the filesystem root, checked writable

    return checked_root()


def _nrnivmodl() -> Path:
    """nrnivmodl of the running interpreter's NEURON (a mismatched one would build an unloadable library)."""
    # sys.executable is not resolved on purpose: its parent is the venv's bin, not the base python's.
    candidate = Path(sys.executable).parent / "nrnivmodl"
    if candidate.is_file():
        return candidate
    found = shutil.which("nrnivmodl")
    if found is None:
        raise FileNotFoundError(f"nrnivmodl not found next to {sys.executable} nor on PATH")
    return Path(found)


def _mod_files(modfiles_dir: Path) -> list[Path]:
    mods = sorted(p for p in Path(modfiles_dir).glob("*.mod") if p.is_file())
    if not mods:
        raise BmtkScalingError(f"no .mod files in {modfiles_dir}")
    return mods


def _build_key(mods: list[Path], nrnivmodl: Path, coreneuron: bool = True, flags: str | None = None) -> str:
    """Content hash: the mod files, NEURON's version and installation (libraries carry its RUNPATH), and the
    compiler flags of CoreNEURON's library with, for ``native`` ones, the processor they resolve to."""
    digest = hashlib.sha256()
    try:
        version = metadata.version("neuron")
    except metadata.PackageNotFoundError:
        version = "unknown"
    items = [version, str(nrnivmodl.parent.resolve()), _arch(), "" if coreneuron else "neuron-only",
             f"mend {mend.MEND_VERSION}"]
    if flags:  # without flags the key is what it always was: existing caches stay valid
        items += [f"flags {flags}", _native_target() if "native" in flags else ""]
    for item in items:
        digest.update(item.encode() + b"\0")
    for mod in mods:
        digest.update(mod.name.encode() + b"\0" + mod.read_bytes() + b"\0")
    return digest.hexdigest()


def _is_complete(build_dir: Path, coreneuron: bool = True) -> bool:
    from bmtk_scaling.environment import is_whole_library  # a truncated library is rebuilt, not loaded

    arch = build_dir / _arch()
    libraries = [arch / "libnrnmech.so", *([arch / "libcorenrnmech.so"] if coreneuron else [])]
    return all(lib.is_file() and is_whole_library(lib) for lib in libraries)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (blocks until free) shared by processes on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CompileError(BmtkScalingError):
    """nrnivmodl failed; ``failed`` names the mod files its output blames (empty when it names none)."""

    def __init__(self, message: str, output: str, failed: list[str]) -> None:
        super().__init__(message)
        self.output = output
        self.failed = failed


def compile_mechanisms(source: Path | Sequence[Path], coreneuron: bool = True, flags: str | None = None) -> Path:
    """Compile mod files (a folder's ``*.mod``, or a list) once; return the cached build folder.

    The folder holds ``<arch>/libnrnmech.so`` and, with ``coreneuron`` (``nrnivmodl -coreneuron``),
    ``<arch>/libcorenrnmech.so``, and the sources in ``modfiles/``. Concurrent callers serialise on a
    lock file; the build happens in a temporary folder renamed into place, so no caller ever sees a
    half-written library. A failure is a :class:`CompileError` with the compiler's output.
    ``flags``: extra compiler flags for CoreNEURON's library only (the setting ``coreneuron.build_flags``),
    see :func:`_recompile_coreneuron`.
    """
    nrnivmodl = _nrnivmodl()
    mods = _mod_files(Path(source)) if isinstance(source, str | Path) else sorted(Path(m) for m in source)
    if not mods:
        raise BmtkScalingError("no mod files to compile")
    flags = flags if coreneuron else None
    key = _build_key(mods, nrnivmodl, coreneuron, flags)
    root = cache_root()
    target = root / f"mech-{key[:20]}"
    if _is_complete(target, coreneuron):
        return target

    with _file_lock(root / f"mech-{key[:20]}.lock"):
        if _is_complete(target, coreneuron):  # another process built it while we waited
            return target
        if target.exists():  # left over from an interrupted, non-atomic copy: never trust it
            shutil.rmtree(target)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            # Compile copies, so the build matches the hashed content even if the sources change meanwhile.
            src = staging / "modfiles"
            src.mkdir()
            for mod in mods:
                shutil.copy2(mod, src / mod.name)
            env = dict(os.environ)
            env["PATH"] = f"{nrnivmodl.parent}{os.pathsep}{env.get('PATH', '')}"
            started = time.perf_counter()
            cmd = [str(nrnivmodl), *(["-coreneuron"] if coreneuron else []), "modfiles"]
            log.info("compiling %d mod files with %s (about a minute on a fresh cache; cached after)", len(mods),
                     " ".join(["nrnivmodl", *cmd[1:-1]]))
            proc = _compile(cmd, staging, env, len(mods) * (2 if coreneuron else 1))
            mended: list[str] = []
            v_copies: list[str] = []
            while True:  # make keeps the mended, newer sources and compiles them
                fixed = mend.duplicate_helpers(staging, proc.stdout, mended) if proc.returncode != 0 else []
                moved = mend.v_copies(staging, _arch()) if coreneuron else []
                if not fixed and not moved:
                    break
                mended += fixed
                v_copies += moved
                proc = _compile(cmd, staging, env, len(mods) * (2 if coreneuron else 1))
            if mended:
                (staging / "mended.json").write_text(json.dumps(sorted(set(mended))) + "\n")
            if v_copies:
                (staging / "v_copies.json").write_text(json.dumps(sorted(set(v_copies))) + "\n")
            if flags and proc.returncode == 0 and _is_complete(staging, coreneuron):
                proc = _recompile_coreneuron(cmd, staging, env, flags, len(mods))
            if proc.returncode != 0 or not _is_complete(staging, coreneuron):
                tail = "\n".join(proc.stdout.splitlines()[-40:])
                failed = sorted(set(_FAILED_MOD.findall(proc.stdout)) & {m.stem for m in mods})
                where = mods[0].parent if len({m.parent for m in mods}) == 1 else "the mod files given"
                tool = "nrnivmodl -coreneuron" if coreneuron else "nrnivmodl"
                raise CompileError(f"{tool} failed (exit {proc.returncode}) for the mechanisms in {where}"
                                   + (f" ({', '.join(f + '.mod' for f in failed)})" if failed else "")
                                   + f": fix the mod file named below (nothing was replaced)\n{tail}",
                                   proc.stdout, failed)
            (staging / _KEY_FILE).write_text(key + "\n")
            staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            os.rename(staging, target)
            elapsed = time.perf_counter() - started
            log.info("compiled %d mechanisms into %s in %.1f s", len(mods), target, elapsed)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def _compile(cmd: list[str], cwd: Path, env: dict, steps: int) -> subprocess.CompletedProcess:
    """Run nrnivmodl, showing progress as it translates each mod file (once for NEURON, once for CoreNEURON)."""
    from bmtk_scaling.progress import report

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, done = [], 0
    for line in proc.stdout:
        lines.append(line)
        if _TRANSLATING.search(line):
            done = min(steps, done + 1)
            report("compile mechanisms", done, steps + 1, "translations")  # the last step: compiling and linking
    proc.wait()
    report("compile mechanisms", steps + 1, steps + 1, "translations")
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines))


def _recompile_coreneuron(cmd: list[str], cwd: Path, env: dict, flags: str, steps: int) -> subprocess.CompletedProcess:
    """Compile CoreNEURON's mechanism objects again with ``flags`` after nrnivmodl's own (``-O2``).

    nrnivmodl hands ``-incflags`` to both compiles, after their ``-O2`` (the last ``-O`` wins); NEURON's
    mechanism objects are up to date by then and make leaves them as they are (only its registration
    file, which calls no mechanism code, is compiled again), so NEURON runs keep the stock library.
    The sources are the ones already translated (and mended): make does not translate them again.
    ``-frecord-gcc-switches`` keeps the command line in the library, where it can be checked
    (:func:`recorded_compile_flags`).
    """
    core = cwd / _arch() / "corenrn" / "build"
    for stale in [*core.glob("*.o"), *core.glob("*.so"), *(cwd / _arch()).glob("libcorenrnmech*")]:
        stale.unlink()
    where = cmd.index("-coreneuron") + 1
    flagged = [*cmd[:where], "-incflags", f"{flags} -frecord-gcc-switches", *cmd[where:]]
    log.info("compiling CoreNEURON's mechanisms again with %s", flags)
    return _compile(flagged, cwd, env, steps)


def recorded_compile_flags(build_dir: Path) -> str:
    """The compiler command lines recorded in a flagged build's CoreNEURON library ('' where none were)."""
    lib = Path(build_dir) / _arch() / "libcorenrnmech.so"
    proc = subprocess.run(["readelf", "-p", ".GCC.command.line", str(lib)], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def _native_target() -> str:
    """What ``-march=native`` resolves to on this machine: its processor's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
    return hashlib.sha256("\n".join(wanted).encode()).hexdigest()


def mended_sources(build_dir: Path) -> list[str]:
    """The mod files whose generated CoreNEURON sources repeated a solver helper (mended, :mod:`.mend`)."""
    path = Path(build_dir) / "mended.json"
    return json.loads(path.read_text()) if path.is_file() else []


def v_copies_mended(build_dir: Path) -> list[str]:
    """The mod files whose CoreNEURON translation was given NEURON's layout without a copy of v (:mod:`.mend`)."""
    path = Path(build_dir) / "v_copies.json"
    return json.loads(path.read_text()) if path.is_file() else []


_TRANSLATING = re.compile(r"NMODL\S*\s+\S+\.mod|^Translating \S+\.mod")  # CoreNEURON's nmodl, NEURON's nocmodl
# Compiler output naming a mod file: generated C/C++ sources and objects carry its stem.
_FAILED_MOD = re.compile(r"x86_64/(?:corenrn/(?:mod2c|build)/)?(\w+)\.(?:cpp|c|o)\b[^\n]*(?:error|Error)")


def install_mechanisms(dest: Path, modfiles: Path | None = None) -> Path:
    """Put mod files (the project's by default) and their compiled build into ``dest`` (BMTK's ``mechanisms_dir``).

    Layout: ``dest/modfiles/*.mod`` and ``dest/<arch>/`` with both libraries and the build's content
    key; BMTK then runs ``neuron.load_mechanisms(dest)``. Re-installing the same build is a no-op, and
    concurrent installers (one per MPI rank) serialise on a lock in ``dest``.
    """
    dest = Path(dest)
    modfiles = Path(modfiles) if modfiles is not None else project_components_dir() / "mechanisms" / "modfiles"
    build = compile_mechanisms(modfiles)
    key = (build / _KEY_FILE).read_text().strip()
    dest.mkdir(parents=True, exist_ok=True)
    arch_dest = dest / _arch()
    with _file_lock(dest / ".bmtk-scaling-install.lock"):
        mod_dest = dest / "modfiles"
        mod_dest.mkdir(exist_ok=True)
        if mod_dest.resolve() != modfiles.resolve():
            for mod in _mod_files(modfiles):
                shutil.copy2(mod, mod_dest / mod.name)
        key_file = arch_dest / _KEY_FILE
        if key_file.is_file() and key_file.read_text().strip() == key and _is_complete(dest):
            return dest
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=dest))
        try:
            shutil.copytree(build / _arch(), staging / _arch(), symlinks=True)
            (staging / _arch() / _KEY_FILE).write_text(key + "\n")
            if arch_dest.exists():
                shutil.rmtree(arch_dest)
            os.rename(staging / _arch(), arch_dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def ensure_compiled(mech_dir: Path, coreneuron: bool) -> str:
    """Check, before a run, that ``mech_dir`` holds libraries built from its own mod files; say what was done.

    A folder the plugin installed (it carries the build key) whose mod files changed since is
    recompiled from them, so an edited mod file never runs with its old library (a mod file that
    does not compile is a BmtkScalingError with the compiler's output). A folder the plugin did not
    install must already hold NEURON's library, and CoreNEURON's when ``coreneuron``.
    Returns ``"current"`` or ``"recompiled"``.
    """
    mech_dir = Path(mech_dir)
    arch = mech_dir / _arch()
    key_file = arch / _KEY_FILE
    if key_file.is_file() and (mech_dir / "modfiles").is_dir():
        wanted = _build_key(_mod_files(mech_dir / "modfiles"), _nrnivmodl())
        if key_file.read_text().strip() == wanted and _is_complete(mech_dir):
            return "current"
        install_mechanisms(mech_dir, mech_dir / "modfiles")
        return "recompiled"
    if not any((arch / lib).is_file() or (arch / ".libs" / lib).is_file() for lib in ("libnrnmech.so",)):
        mods = sorted(p.name for p in mech_dir.rglob("*.mod"))[:5] if mech_dir.is_dir() else []
        raise BmtkScalingError(
            f"the mechanisms in {mech_dir} are not compiled (no {_arch()}/libnrnmech.so"
            + (f"; mod files {mods}" if mods else "; no mod files either") + "): compile them with "
            f"'nrnivmodl -coreneuron' in {mech_dir}, or point components.mechanisms_dir at the compiled folder")
    if coreneuron and not (arch / "libcorenrnmech.so").is_file():
        raise BmtkScalingError(f"the engine is CoreNEURON but {mech_dir} holds no {_arch()}/libcorenrnmech.so: compile "
                               f"the mechanisms with 'nrnivmodl -coreneuron', or run on NEURON")
    return "current"


def corenrn_library(mech_dir: Path) -> Path:
    """Path of ``libcorenrnmech.so`` under a folder produced by compile/install_mechanisms."""
    lib = Path(mech_dir) / _arch() / "libcorenrnmech.so"
    if not lib.is_file():
        raise FileNotFoundError(
            f"CoreNEURON mechanism library {lib} not found: the mechanisms in {mech_dir} must be "
            "compiled with 'nrnivmodl -coreneuron' (use bmtk_scaling.mechanisms.install_mechanisms)"
        )
    return lib


def export_coreneuron_library(mech_dir: Path) -> Path:
    """Point CoreNEURON at our mechanism library via ``CORENEURONLIB``; return the library path.

    Must run before the process's first CoreNEURON ``psolve``: NEURON reads the variable when it
    first dlopens the library and keeps that library for the rest of the process (without it,
    CoreNEURON falls back to ``./<arch>/libcorenrnmech.so`` or its built-ins-only library, prints
    "rtm mechanism does not exist" and aborts the whole process: SIGABRT, no Python exception).
    """
    lib = corenrn_library(mech_dir).resolve()
    os.environ[CORENEURONLIB_ENV] = str(lib)
    return lib
