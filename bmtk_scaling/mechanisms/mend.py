"""Mending nmodl's generated CoreNEURON sources in a cache build, so they compile and lay data out as NEURON does.

Only the generated C++ of the plugin's own cache build is changed: the user's mod files are never
written, and NEURON's library is compiled from them exactly as ``nrnivmodl`` compiles them (so every
NEURON run, and the initial state CoreNEURON starts from, is stock NEURON's). :data:`MEND_VERSION`
is part of every build's cache key, so a change here rebuilds.

- **Repeated solver helpers.** NEURON 9's nmodl emits its Crout helper once per solver block, so a
  mod file with a KINETIC (sparse) and a LINEAR block (bmtk's NaV.mod) defines it twice and does not
  compile. The copies are identical: keeping the first is the translation nmodl meant.
- **The copy of v.** nocmodl (NEURON's translator) translates a mod file it judges not thread safe
  (a LINEAR or NONLINEAR block outside a SOLVE of the BREAKPOINT: "Notice: LINEAR is not thread
  safe") without a per-instance copy of ``v``; nmodl always keeps one (``v_unused``) just before the
  conductance. CoreNEURON compares the two layouts and stops ("different MOD file than used by
  NEURON"). The copy is only written from the node's voltage before use, never transferred, so
  CoreNEURON's side gets it from storage of its own and the remaining fields move down by one: the
  layout is then nocmodl's, field for field. In-memory (and NEURON-launched file) mode CoreNEURON
  never runs INITIAL (NEURON's ``finitialize`` sets the state, typos in a LINEAR block included, and
  it is copied over), so nothing else of the translation is touched.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

MEND_VERSION = "2"  # 1: repeated solver helpers; 2: the copy of v

_DUPLICATE_HELPER = re.compile(r"([\w./-]+\.cpp):\d+:\d+: error: redefinition of [^\n]*nmodl::(\w+)::")
_HELPER_BLOCK = re.compile(r"namespace nmodl \{\nnamespace (\w+) \{\n.*?\}  // namespace \1\n\}  // namespace nmodl\n",
                           re.S)
_V_SLOT = re.compile(r"inst->v_unused = ml->data\+(\d+)\*pnodecount;")
_SLOT = re.compile(r"(= ml->data\+)(\d+)(\*pnodecount;)")
_SIZE = re.compile(r"(static inline int float_variables_size\(\) \{\s*return )(\d+)(;)")
_MEMBER = "double* v_unused{};"
_OWN = "v_unused_own"


def duplicate_helpers(staging: Path, output: str, done: list[str]) -> list[str]:
    """Remove repeated solver helpers that the compiler ``output`` names; return the mod files mended (once each)."""
    fixed = []
    for source, _ in _DUPLICATE_HELPER.findall(output):
        path = staging / source
        stem = path.stem
        if stem in done or stem in fixed or not path.is_file():
            continue
        text, seen, parts, last = path.read_text(), set(), [], 0
        for block in _HELPER_BLOCK.finditer(text):
            if block.group(0) in seen:
                parts.append(text[last:block.start()])
                last = block.end()
            seen.add(block.group(0))
        if parts:
            _write_newer(path, "".join(parts) + text[last:])
            fixed.append(stem)
    return fixed


def v_copies(staging: Path, arch: str) -> list[str]:
    """Give nmodl's copy of v storage of its own where nocmodl keeps none; return the mod files mended."""
    fixed = []
    for source in sorted((staging / arch / "corenrn" / "mod2c").glob("*.cpp")):
        mod = staging / "modfiles" / f"{source.stem}.mod"
        text = source.read_text(errors="replace")
        if not mod.is_file() or _OWN in text or not _V_SLOT.search(text) or not nocmodl_keeps_no_v(mod):
            continue
        mended = mend_v_copy(text)
        if mended is not None:
            _write_newer(source, mended)
            fixed.append(source.stem)
    return fixed


def mend_v_copy(text: str) -> str | None:
    """nmodl's CoreNEURON source ``text`` with ``v_unused`` out of the shared data; None where its shape is unknown."""
    slot = _V_SLOT.findall(text)
    if len(slot) != 1 or text.count(_MEMBER) != 1 or len(_SIZE.findall(text)) != 1:
        return None
    k = int(slot[0])
    text = _V_SLOT.sub(f"inst->{_OWN}.assign(pnodecount, 0.0);\n        inst->v_unused = inst->{_OWN}.data();", text)
    text = _SLOT.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - (int(m.group(2)) > k)}{m.group(3)}", text)
    text = _SIZE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - 1}{m.group(3)}", text)
    text = text.replace(_MEMBER, f"{_MEMBER}\n        std::vector<double> {_OWN}{{}};  // not in NEURON's layout")
    return "#include <vector>\n" + text


def nocmodl_keeps_no_v(mod: Path) -> bool:
    """Whether NEURON's translator makes ``mod`` not thread safe (``_vectorized = 0``), as nrnivmodl would."""
    nocmodl = _nocmodl()
    if nocmodl is None:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy2(mod, Path(scratch) / mod.name)
        proc = subprocess.run([str(nocmodl), mod.name], cwd=scratch, capture_output=True, text=True, check=False)
        out = Path(scratch) / f"{mod.stem}.cpp"
        return proc.returncode == 0 and out.is_file() and "_vectorized = 0;" in out.read_text(errors="replace")


def _nocmodl() -> Path | None:
    spec = importlib.util.find_spec("neuron")
    for base in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(base) / ".data" / "bin" / "nocmodl"
        if candidate.is_file():
            return candidate
    found = shutil.which("nocmodl")
    return Path(found) if found else None


def _write_newer(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path)  # newer than its mod file: make compiles it instead of translating again
