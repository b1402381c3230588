"""A network's own mechanisms (its ``components.mechanisms_dir``), compiled for both engines without touching it.

The user's folder is only read: its mod files are compiled with ``nrnivmodl -coreneuron`` into the
plugin's content-keyed cache, and bmtk is pointed at that build for the run. Known obstacles are
handled on the way: bmtk's ``vecevent.mod`` (a VecStim without BBCOREPOINTER, which CoreNEURON cannot
load) is replaced by the plugin's CoreNEURON-ready VecStim, and generated CoreNEURON sources with a
repeated solver helper are mended (see :func:`~bmtk_scaling.mechanisms.build.compile_mechanisms`).
Where a mod file still does not translate for CoreNEURON, the mechanisms are built for NEURON only
and :func:`check_for_coreneuron` names, before anything is built, the file, the cell types that use
it and what to do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from bmtk_scaling.errors import BmtkScalingError
from bmtk_scaling.mechanisms.build import (
    CompileError,
    compile_mechanisms,
    mended_sources,
    project_components_dir,
    v_copies_mended,
)

# NEURON built-ins CoreNEURON lacks -> the plugin's CoreNEURON-ready stand-in (bionet/point_cells.py builds it)
STAND_INS = {"IntFire1": "BmtkScalingIntFire1"}
_DEFINES = re.compile(r"^\s*(SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+(\w+)", re.M)
_COMMENT = re.compile(r":[^\n]*|COMMENT.*?ENDCOMMENT", re.S)


@dataclass(frozen=True)
class NetworkMechanisms:
    """The builds to hand bmtk, and what it took to make them."""

    source: Path  # the network's mechanisms_dir (never written)
    files: tuple[Path, ...]  # the mod files compiled (the user's, with replacements)
    neuron_build: Path  # folder with <arch>/libnrnmech.so of every mod file: for NEURON runs
    defines: dict[str, str]  # mechanism name (SUFFIX, POINT_PROCESS, ARTIFICIAL_CELL) -> mod file it comes from
    replaced: dict[str, str] = field(default_factory=dict)  # mod file -> what stands in for it
    mended: tuple[str, ...] = ()  # mod files whose generated CoreNEURON sources repeated a solver helper (mended)
    v_copies: tuple[str, ...] = ()  # mod files NEURON lays out without a copy of v; CoreNEURON's side made to match
    coreneuron_error: str | None = None  # why some (or all) mod files cannot run on CoreNEURON
    not_for_coreneuron: tuple[str, ...] = ()  # the mod files that error names (empty: all of them)
    flags: str | None = None  # extra compiler flags of CoreNEURON's library (coreneuron.build_flags)

    def coreneuron_build(self) -> Path | None:
        """Both libraries of the mod files CoreNEURON can run (compiled on first use); None if none can."""
        if self.coreneuron_error is None:
            return self.neuron_build
        failed = set(self.not_for_coreneuron)
        for _ in range(len(self.files)):  # drop what the compiler blames until the rest compiles
            rest = [f for f in self.files if f.name not in failed]
            if not failed or not rest:
                return None
            try:
                return compile_mechanisms(rest, coreneuron=True, flags=self.flags)
            except CompileError as err:
                if not err.failed:
                    return None
                failed |= {f + ".mod" for f in err.failed}
        return None

    def notes(self, coreneuron: bool = False, used: set[str] | None = None) -> list[str]:
        """What the user should know about the build for a run (``coreneuron``) that uses the mechanisms ``used``
        (None: all); what concerns CoreNEURON only is said on CoreNEURON runs, of mod files the network uses."""
        lines = [f"{name}: replaced by {what}" for name, what in self.replaced.items()]
        if not coreneuron:
            return lines
        files = {self.defines[n] for n in (used if used is not None else self.defines) if n in self.defines}
        for stem in sorted(set(self.v_copies) | set(self.mended)):  # one line per mod file
            if f"{stem}.mod" not in files:
                continue
            done = []
            if stem in self.v_copies:
                done.append("NEURON translates it as not thread safe (a LINEAR or NONLINEAR block) and keeps no copy "
                            "of v, so CoreNEURON's translation was given the same layout")
            if stem in self.mended:
                done.append("a solver helper nmodl repeats in its CoreNEURON source was removed")
            lines.append(f"{stem}.mod: {'; '.join(done)} (in the cache build only: your file is unchanged, and "
                         "NEURON computes the initial state from it as stock does)")
        for builtin, stand_in in STAND_INS.items():
            if stand_in in self.defines and (used is None or builtin in used):
                lines.append(f"{builtin} cells run as {stand_in} on CoreNEURON (the same cell, whose refractory "
                             "period ends at the next input instead of with a self-event)")
        if self.coreneuron_error:
            lines.append(f"{', '.join(self.not_for_coreneuron) or 'the mechanisms of ' + str(self.source)} cannot "
                         f"run on CoreNEURON: {self.coreneuron_error}")
        return lines


def mod_files(mech_dir: Path) -> list[Path]:
    """The mod files of a bmtk ``mechanisms_dir``: ``modfiles/*.mod`` (bmtk's layout), else ``*.mod``."""
    mech_dir = Path(mech_dir)
    found = sorted((mech_dir / "modfiles").glob("*.mod")) or sorted(mech_dir.glob("*.mod"))
    return [p for p in found if p.is_file()]


def defined_names(mod: Path) -> list[str]:
    text = _COMMENT.sub("", Path(mod).read_text(errors="replace"))
    return [name for _, name in _DEFINES.findall(text)]


def prepare(mech_dir: Path, flags: str | None = None) -> NetworkMechanisms:
    """Compile a network's mechanisms into the cache (once per content and ``flags``, the extra compiler flags of
    CoreNEURON's library: ``coreneuron.build_flags``); see the module docstring."""
    mech_dir = Path(mech_dir).absolute()
    if not mech_dir.is_dir():
        raise BmtkScalingError(f"components.mechanisms_dir {mech_dir} is not a folder: fix the path in the config")
    mods = {p.name: p for p in mod_files(mech_dir)}
    replaced = {}
    ours = project_components_dir() / "mechanisms" / "modfiles" / "vecstim.mod"
    for name, path in list(mods.items()):
        text = path.read_text(errors="replace")
        if "VecStim" in defined_names(path) and "BBCOREPOINTER" not in text:
            del mods[name]
            replaced[name] = "the plugin's vecstim.mod (the same VecStim, with what CoreNEURON needs to load it)"
    if not any("VecStim" in defined_names(p) for p in mods.values()):
        mods["vecstim.mod"] = ours  # spike inputs need VecStim on either engine
    stand_in = ours.with_name("intfire1_core.mod")
    if not any(set(STAND_INS.values()) & set(defined_names(p)) for p in mods.values()):
        mods[stand_in.name] = stand_in  # IntFire1 cells on CoreNEURON (bionet/point_cells.py)
    if not any("ecp_imem" in defined_names(p) for p in mods.values()):
        mods["ecp_imem.mod"] = ours.with_name("ecp_imem.mod")  # an ECP's membrane currents on NEURON (bionet/ecp.py)
    files = sorted(mods.values(), key=lambda p: p.name)
    defines = {name: mod.name for mod in files for name in defined_names(mod)}
    neuron_build, coreneuron_error, failed, mended, v_copies = None, None, set(), (), ()
    try:
        build = compile_mechanisms(files, coreneuron=True, flags=flags)
    except CompileError as err:
        coreneuron_error, failed = str(err).splitlines()[0], {f + ".mod" for f in err.failed}
    else:
        neuron_build, mended = build, tuple(mended_sources(build))  # its NEURON library holds every mod file
        v_copies = tuple(v_copies_mended(build))
        differ = _layouts_differ(build, files)
        if differ:
            coreneuron_error = (f"NEURON and CoreNEURON translate {', '.join(sorted(differ))} into different data "
                                "layouts (CoreNEURON stops with 'different MOD file than used by NEURON')")
            unsafe = sorted(name for name in differ if _not_thread_safe(build, name))
            if unsafe:
                coreneuron_error += (f"; NEURON translates {', '.join(unsafe)} as not thread safe (a LINEAR or "
                                     "NONLINEAR block outside a SOLVE of the BREAKPOINT), so it keeps no copy of v "
                                     "where CoreNEURON expects one: solve the initial state another way (for a "
                                     "kinetic scheme, SOLVE <scheme> STEADYSTATE sparse in INITIAL)")
            failed = set(differ)
    if neuron_build is None:
        try:
            neuron_build = compile_mechanisms(files, coreneuron=False)
        except CompileError as err:
            raise BmtkScalingError(f"the mechanisms in {mech_dir} do not compile for NEURON either: {err}") from None
    return NetworkMechanisms(mech_dir, tuple(files), neuron_build, defines, replaced, mended, v_copies,
                             coreneuron_error, tuple(sorted(failed)), flags)


def _not_thread_safe(build: Path, mod_name: str) -> bool:
    """Whether nocmodl translated ``mod_name`` as not thread safe (not vectorised) in ``build``."""
    from bmtk_scaling.mechanisms.build import _arch

    source = build / _arch() / (Path(mod_name).stem + ".cpp")
    return source.is_file() and "_vectorized = 0;" in source.read_text(errors="replace")


_PROBE = """
import json, sys
from neuron import h, load_mechanisms, coreneuron
load_mechanisms(sys.argv[1])
h.load_file("stdrun.hoc")
suffixes, points = json.loads(sys.argv[2]), json.loads(sys.argv[3])
pc = h.ParallelContext()
keep = []
for i, name in enumerate(suffixes):  # one section each: mechanisms that write the same ion stay apart
    sec = h.Section(name=f"s{i}")
    sec.insert(name)
    keep.append(sec)
host = h.Section(name="host")
keep += [getattr(h, name)(host(0.5)) for name in points]
pc.set_gid2node(0, 0)
nc = h.NetCon(host(0.5)._ref_v, None, sec=host)
pc.cell(0, nc)
h.cvode.cache_efficient(1)
coreneuron.enable = True
coreneuron.verbose = 0
h.finitialize(-65)
pc.psolve(0.1)
print("PROBE-OK")
"""


def _layouts_differ(build: Path, files: list[Path]) -> set[str]:
    """Mod files whose mechanisms CoreNEURON refuses as translated differently from NEURON (probed once).

    CoreNEURON compares each mechanism's data layout with NEURON's when it loads a model and aborts
    the whole process on a difference (seen with NEURON 9.0.2 for bmtk's NaV.mod, whose KINETIC and
    LINEAR blocks nocmodl and nmodl lay out differently). A one-step model with every density
    mechanism and point process of the build, in a child process, finds them before a real run.
    """
    import os
    import subprocess
    import sys
    import tempfile

    from bmtk_scaling.environment import configure_neuron_environment
    from bmtk_scaling.mechanisms.build import corenrn_library

    cached = build / "coreneuron_probe.json"
    if cached.is_file():
        return set(json.loads(cached.read_text()))
    suffixes, points = [], []
    for mod in files:
        text = _COMMENT.sub("", mod.read_text(errors="replace"))
        for kind, name in _DEFINES.findall(text):
            if kind == "SUFFIX":
                suffixes.append(name)
            elif kind == "POINT_PROCESS" and "POINTER" not in text:
                points.append(name)
    env = configure_neuron_environment(dict(os.environ))
    env["CORENEURONLIB"] = str(corenrn_library(build))
    with tempfile.TemporaryDirectory() as scratch:  # not the build: NEURON would load its x86_64/ a second time
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(build), json.dumps(suffixes), json.dumps(points)],
                              capture_output=True, text=True, env=env, timeout=300, cwd=scratch)
    names = set(re.findall(r"Error: (\w+) is a different MOD file than used by NEURON", proc.stdout + proc.stderr))
    by_name = {n: mod.name for mod in files for n in defined_names(mod)}
    differ = {by_name[n] for n in names if n in by_name}
    if proc.returncode == 0 or differ:  # a probe that failed for another reason says nothing either way
        cached.write_text(json.dumps(sorted(differ)) + "\n")
    return differ


# NEURON's own mechanisms (no mod file needed), as the names cells and synapses refer to them by.
BUILT_IN = frozenset({"hh", "pas", "fastpas", "extracellular", "capacitance", "na_ion", "k_ion", "ca_ion",
                      "IClamp", "SEClamp", "VClamp", "OClamp", "AlphaSynapse", "ExpSyn", "Exp2Syn", "NetStim",
                      "IntFire1", "IntFire2", "IntFire4", "PatternStim", "APCount", "PointProcessMark"})
# Those CoreNEURON does not ship (its library holds hh, pas, ExpSyn, Exp2Syn, NetStim, PatternStim,
# IClamp, SEClamp and the ions): a model that uses one aborts CoreNEURON ("... mechanism does not exist").
NEURON_ONLY = frozenset({"fastpas", "extracellular", "VClamp", "OClamp", "AlphaSynapse", "IntFire1", "IntFire2",
                         "IntFire4", "APCount", "PointProcessMark"})


def check_defined(mechanisms: NetworkMechanisms, usage: dict[str, set[str]]) -> None:
    """BmtkScalingError when cells use a mechanism no mod file of the network defines and NEURON lacks."""
    known = set(mechanisms.defines) | BUILT_IN
    lower = {name.lower() for name in known}
    missing = {label: sorted(n for n in names if n not in known and n.lower() not in lower)
               for label, names in usage.items()}
    missing = {label: names for label, names in missing.items() if names}
    if missing:
        users = "; ".join(f"{label} uses {', '.join(names)}" for label, names in sorted(missing.items()))
        raise BmtkScalingError(f"cells use mechanisms that no mod file in {mechanisms.source} defines ({users}): "
                               "add their mod files to the mechanisms folder (components.mechanisms_dir)")


def declared_names(mech_dir: Path | None, users_folder: bool) -> set[str]:
    """The mechanism names a run's build will define, read from the mod files (nothing compiled).

    A user's folder is compiled with the plugin's stand-ins (:data:`STAND_INS`) added.
    """
    names = {n for mod in mod_files(mech_dir) for n in defined_names(mod)} if mech_dir and mech_dir.is_dir() else set()
    return names | set(STAND_INS.values()) if users_folder else names


def _users(needs: dict[str, set[str]]) -> str:
    return "; ".join(f"{label} uses {', '.join(sorted(names))}" for label, names in sorted(needs.items()) if names)


def check_builtins_for_coreneuron(defined: set[str], usage: dict[str, set[str]]) -> None:
    """BmtkScalingError, before anything is compiled, when cells use a NEURON built-in that CoreNEURON lacks and
    that no mod file (nor a plugin stand-in) of the build defines (``extracellular`` and the like)."""
    absent = {label: {n for n in names if n in NEURON_ONLY and n not in defined and STAND_INS.get(n) not in defined}
              for label, names in usage.items()}
    if _users(absent):
        raise BmtkScalingError(f"this network cannot run on CoreNEURON: cells use NEURON built-in mechanisms that "
                               f"CoreNEURON does not have ({_users(absent)}): add a CoreNEURON-compatible mod file "
                               "that defines them to the mechanisms folder, or run it on NEURON (--engine neuron)")


def check_for_coreneuron(mechanisms: NetworkMechanisms, usage: dict[str, set[str]]) -> Path:
    """The build a CoreNEURON run loads; BmtkScalingError, before anything is built, when cells need a
    mechanism CoreNEURON cannot have.

    ``usage``: cell type (a label) -> the mechanism names it uses (:func:`mechanisms_used`).
    """
    users = _users
    check_builtins_for_coreneuron(set(mechanisms.defines), usage)
    problems = []
    build = mechanisms.neuron_build
    if mechanisms.coreneuron_error is not None:
        blocked = set(mechanisms.not_for_coreneuron) or set(mechanisms.defines.values())
        needs = {label: {n for n in names if mechanisms.defines.get(n) in blocked} for label, names in usage.items()}
        build = None if users(needs) else mechanisms.coreneuron_build()  # without those files, the rest may serve
        if build is None:
            problems.append(f"cells need mechanisms that cannot run on CoreNEURON ({users(needs) or 'every cell'}): "
                            f"{mechanisms.coreneuron_error}; or change the mod file so that CoreNEURON can "
                            "translate it")
    if problems:
        raise BmtkScalingError(f"this network cannot run on CoreNEURON: {'. And '.join(problems)}. "
                               "Run it on NEURON (--engine neuron)")
    return build


def mechanisms_used(node_types: list[dict], models_dir: Path | None, templates_dir: Path | None,
                    synapse_models: set[str]) -> dict[str, set[str]]:
    """Which mechanism names each cell type needs, read from its model files (no NEURON needed).

    Allen-style dynamics (``genome`` entries), NeuroML cells (``ionChannel`` and concentration
    models), hoc templates (``insert`` statements); every cell type also counts the synapse models
    of the edges (``synapse_models``), since they may sit on any cell.
    """
    usage: dict[str, set[str]] = {}
    for row in node_types:
        if str(row.get("model_type")) in ("virtual", "nan", "None"):
            continue
        label = str(row.get("pop_name") or row.get("model_name") or f"node type {row.get('node_type_id')}")
        names = set(synapse_models)
        template = str(row.get("model_template") or "")
        params = row.get("dynamics_params")
        if models_dir is not None and isinstance(params, str) and params.endswith(".json"):
            names |= _json_mechanisms(Path(models_dir) / params)
        if template.startswith("nml:") and models_dir is not None:
            names |= _nml_mechanisms(Path(models_dir) / template[4:])
        processing = str(row.get("model_processing") or "")
        if "extracellular" in processing.split(","):  # bmtk's processor inserts the extracellular mechanism
            names.add("extracellular")
        if template.startswith("nrn:"):  # a NEURON point process as the whole cell (IntFire1, ...)
            names.add(template[4:])
        if template.startswith("hoc:") and templates_dir is not None:
            names |= _hoc_mechanisms(Path(templates_dir), template[4:])
        usage[label] = usage.get(label, set()) | names
    return usage


def _json_mechanisms(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    genome = data.get("genome", []) if isinstance(data, dict) else []
    return {g["mechanism"] for g in genome if isinstance(g, dict) and g.get("mechanism")}


def _nml_mechanisms(path: Path) -> set[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return set()
    return set(re.findall(r'(?:ionChannel|concentrationModel)="(\w+)"', text))


def _hoc_mechanisms(templates_dir: Path, name: str) -> set[str]:
    found: set[str] = set()
    for hoc in templates_dir.glob("*.hoc"):
        text = hoc.read_text(errors="replace")
        if re.search(rf"begintemplate\s+{re.escape(name)}\b", text):
            found |= set(re.findall(r"\binsert\s+(\w+)", text))
    return found
