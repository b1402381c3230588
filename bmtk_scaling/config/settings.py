"""The one schema of the plugin's settings: the engine and the ``bmtk_scaling`` section of a simulation config.

SONATA allows implementation-specific sections in a simulation config; ours is ``"bmtk_scaling"``.
libsonata ignores it (and still parses the config), bmtk resolves its ``$VARIABLES`` like every
other section. The engine is written as SONATA's own ``target_simulator`` ("NEURON" or "CORENEURON")
plus ``coreneuron.gpu``, and read back as one :class:`Engine`:

    "target_simulator": "CORENEURON",
    "bmtk_scaling": {
        "partition": "$BASE_DIR/partitions/metis_2.h5",
        "neuron_loop": "psolve",
        "synapses": "shared",
        "coreneuron": {"gpu": false, "cell_permute": null, "file_mode": false, "nthread": 1, "verbose": 1,
                       "build_cycles": 1, "build_flags": null},
        "exchange": {"spike_compress": 100, "step_wait": false},
        "sites": {"site_map": [0, 1], "latency_ms": 10}
    }

``exchange`` holds NEURON's spike-exchange switches (passed on to CoreNEURON), ``sites`` the emulated
multi-site latency (:mod:`bmtk_scaling.sites`, docs/sites.md); both are written only where set.

Every option is declared once below, with its type, default, doc and validator; the config reader,
:func:`bmtk_scaling.config.derive.derive_config`, the ``configure`` command's options and the docs
all come from these declarations. Unknown keys are refused, and so is a combination NEURON would
reject only after the network is built (``cell_permute`` outside NEURON's rule, stock ``h.run`` on
CoreNEURON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bmtk_scaling.errors import ConfigError
from bmtk_scaling.sites.model import SiteModel, parse_site_map

SECTION = "bmtk_scaling"


class Engine(StrEnum):
    """The simulator behind the same model: one switch, three values."""

    NEURON = "neuron"
    CORENEURON = "coreneuron"
    CORENEURON_GPU = "coreneuron_gpu"

    @property
    def target_simulator(self) -> str:
        """SONATA's ``target_simulator`` for this engine."""
        return "NEURON" if self is Engine.NEURON else "CORENEURON"

    @property
    def gpu(self) -> bool:
        return self is Engine.CORENEURON_GPU

    @property
    def is_coreneuron(self) -> bool:
        return self is not Engine.NEURON

    @property
    def label(self) -> str:
        return {"neuron": "NEURON", "coreneuron": "CoreNEURON", "coreneuron_gpu": "CoreNEURON (GPU)"}[self.value]

    @classmethod
    def parse(cls, value: str | Engine) -> Engine:
        """An engine from its name in any case (``NEURON``, ``CoreNEURON``, ``coreneuron_gpu``)."""
        if isinstance(value, Engine):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ConfigError(f"engine must be one of {[e.value for e in cls]}, got {value!r}") from None

    @classmethod
    def from_config(cls, target_simulator: object, gpu: object) -> Engine:
        name = str(target_simulator or "NEURON").upper()
        if name not in ("NEURON", "CORENEURON"):
            raise ConfigError(f"target_simulator must be NEURON or CORENEURON, got {target_simulator!r}")
        if name == "NEURON":
            if gpu:
                raise ConfigError("bmtk_scaling.coreneuron.gpu is true but target_simulator is NEURON: GPUs run "
                                  "CoreNEURON; set target_simulator CORENEURON (configure --engine coreneuron_gpu)")
            return cls.NEURON
        return cls.CORENEURON_GPU if gpu else cls.CORENEURON


def _cli(name: str | None = None, **extra: Any) -> dict[str, Any]:
    """Field metadata: the CLI option name (default: the field's) for ``configure``."""
    return {"cli": name, **extra}


class CoreNeuronOptions(BaseModel):
    """Options passed to NEURON's ``coreneuron`` module (ignored on NEURON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell_permute: int | None = Field(
        None, ge=0, le=2, description="CoreNEURON's cell permutation. NEURON's rule: 0 or 1 on the CPU, 1 or 2 "
        "on a GPU; null is NEURON's default (0 on the CPU, 1 on a GPU)", json_schema_extra=_cli())
    file_mode: bool = Field(
        False, description="NEURON writes the model to files and frees it, then CoreNEURON runs from the files "
        "(lower peak memory; no soma reports)", json_schema_extra=_cli())
    nthread: int = Field(1, ge=1, description="threads per MPI rank (CoreNEURON's nthread)",
                         json_schema_extra=_cli("threads"))
    verbose: int = Field(1, ge=0, le=3, description="CoreNEURON's log level: 0 silent .. 3 debug",
                         json_schema_extra=_cli("coreneuron-verbose"))
    build_cycles: int = Field(
        1, ge=1, description="build each rank's cells in this many parts, each written to CoreNEURON's files and "
        "freed before the next (implies file_mode; lowers NEURON's peak about N-fold; docs/engines.md)",
        json_schema_extra=_cli())
    build_flags: str | None = Field(
        None, description="extra C++ compiler flags for CoreNEURON's mechanism library, after nrnivmodl's -O2 (e.g. "
        "\"-O3 -march=native -ffp-contract=off\", which keeps IEEE results); NEURON's library stays as nrnivmodl "
        "builds it; each set of flags is a build of its own in the cache. Flags that let the compiler change "
        "floating-point results (-ffast-math, FMA contraction) may move spikes; null: nrnivmodl's flags",
        json_schema_extra=_cli())

    @field_validator("build_flags")
    @classmethod
    def _flags(cls, value: str | None) -> str | None:
        if value is None:
            return None
        tokens = value.split()
        bad = [t for t in tokens if not _FLAG.fullmatch(t) or t in _NOT_FLAGS]
        if not tokens or bad:
            raise ValueError(f"coreneuron.build_flags {value!r}: give compiler options such as \"-O3 -march=native "
                             "-ffp-contract=off\" (each starting with '-'; not -o, -c, -E, -S, -shared)"
                             + (f"; not {', '.join(map(repr, bad))}" if bad else ""))
        return " ".join(tokens)


_FLAG = re.compile(r"-[A-Za-z][\w=.,+:/-]*")  # one compiler option, nothing a shell or make would read
_NOT_FLAGS = frozenset({"-o", "-c", "-E", "-S", "-shared"})  # would change what is built, not how


class ExchangeOptions(BaseModel):
    """How spikes cross ranks: NEURON's spike-exchange switches, passed on to CoreNEURON too.

    They decide how many MPI calls a spike exchange makes, which is what latency between sites costs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    spike_compress: int = Field(
        0, ge=0, description="spikes per rank sent in the fixed-size Allgather of each exchange (pc.spike_compress "
        "nspike; only overflow needs a second call); 0: NEURON's default exchange", json_schema_extra=_cli())
    gid_compress: bool = Field(
        False, description="send short local ids instead of gids in the compressed exchange (needs spike_compress > 0; "
        "NEURON only: CoreNEURON is passed nspike alone)", json_schema_extra=_cli())
    multisend: bool = Field(
        False, description="point-to-point spike exchange (NEURON's multisend, xchng_meth bit 1) instead of "
        "an Allgather to every rank", json_schema_extra=_cli())
    multisend_subintervals: int = Field(
        1, ge=1, le=2, description="multisend: exchanges per minimum-delay interval (2 sets xchng_meth bit 4)",
        json_schema_extra=_cli())
    multisend_phases: int = Field(
        1, ge=1, le=2, description="multisend: 2 relays through a second phase (xchng_meth bit 8)",
        json_schema_extra=_cli())
    bin_queue: bool = Field(
        False, description="fixed-step bin queue for spike delivery (CVode.queue_mode bit 1)", json_schema_extra=_cli())
    step_wait: bool = Field(
        True, description="NEURON's barrier before each exchange, which measures wait time; false: "
        "pc.step_wait(-1) removes it (CoreNEURON has no such barrier switch)", json_schema_extra=_cli())

    @model_validator(mode="after")
    def _combination(self) -> ExchangeOptions:
        if self.gid_compress and self.spike_compress == 0:
            raise ValueError("exchange.gid_compress needs exchange.spike_compress > 0 (e.g. 100)")
        if self.multisend and self.spike_compress:
            raise ValueError("exchange.multisend and exchange.spike_compress are two different exchanges: choose one")
        if not self.multisend and (self.multisend_subintervals, self.multisend_phases) != (1, 1):
            raise ValueError("exchange.multisend_subintervals / multisend_phases need exchange.multisend true")
        return self

    @property
    def xchng_meth(self) -> int:
        """NEURON's exchange-method bits (third argument of pc.spike_compress)."""
        if not self.multisend:
            return 0
        return 1 | (4 if self.multisend_subintervals == 2 else 0) | (8 if self.multisend_phases == 2 else 0)

    @property
    def is_default(self) -> bool:
        return self == ExchangeOptions()


class SitesOptions(BaseModel):
    """Emulated sites: which rank is where, and what a message between sites costs (docs/sites.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_map: tuple[int, ...] | None = Field(
        None, description="site of each MPI rank, e.g. 0,1 or 0,0,1,1; none: one site, no shim",
        json_schema_extra=_cli("sites"))
    latency_ms: float = Field(0.0, ge=0, le=10000, description="one-way latency between sites, ms",
                              json_schema_extra=_cli())
    bandwidth_mbit_s: float | None = Field(
        None, gt=0, description="bandwidth between sites, Mbit/s; none: unlimited", json_schema_extra=_cli())

    @field_validator("site_map", mode="before")
    @classmethod
    def _parse_map(cls, value: Any) -> Any:
        return None if value is None else parse_site_map(value)

    @model_validator(mode="after")
    def _needs_map(self) -> SitesOptions:
        if self.site_map is None and (self.latency_ms or self.bandwidth_mbit_s):
            raise ValueError("sites.latency_ms / bandwidth_mbit_s need sites.site_map (the site of each rank, "
                             "e.g. --sites 0,1)")
        return self

    @property
    def model(self) -> SiteModel | None:
        """The site model, or None when every rank is on one site (the shim is not loaded)."""
        if self.site_map is None:
            return None
        return SiteModel(self.site_map, self.latency_ms, self.bandwidth_mbit_s)


class Settings(BaseModel):
    """Everything the plugin reads from a simulation config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Engine = Field(Engine.NEURON, description="the simulator: neuron, coreneuron or coreneuron_gpu "
                           "(written as target_simulator and coreneuron.gpu)", json_schema_extra=_cli())
    partition: str | None = Field(None, description="node -> rank map file (bmtk-scaling partition); none: "
                                  "bionet's own round-robin placement", json_schema_extra=_cli())
    neuron_loop: Literal["psolve", "bmtk"] = Field(
        "psolve", description="NEURON's time loop: psolve, or bmtk's stock h.run with a Python call per step",
        json_schema_extra=_cli())
    synapses: Literal["shared", "per_edge", "bmtk"] = Field(
        "shared", description="synapse instantiation: one point process per segment, synapse model and parameters "
        "(shared), one per synapse (per_edge), or bionet's own (bmtk)", json_schema_extra=_cli())
    cell_build: Literal["lean", "bmtk"] = Field(
        "lean", description="cell building: bmtk's loaders as shipped (bmtk), or the same cells with each swc file "
        "read once and the axon stub's define_shape made once for all cells, not once per cell (lean)",
        json_schema_extra=_cli())
    progress_interval_s: float = Field(
        10.0, ge=0.0, description="seconds of wall time between progress updates while simulating: psolve runs "
        "in pieces of about this length, spikes unchanged (0: one psolve call, no progress)",
        json_schema_extra=_cli("progress-interval"))
    ecp_buffer_mib: int = Field(
        256, ge=1, le=1048576, description="memory per rank for the membrane currents an ECP (extracellular) report "
        "records between two folds into the electrode matrix, MiB: psolve runs in chunks of as many steps as fit",
        json_schema_extra=_cli())
    ecp_extracellular: bool = Field(
        False, description="insert NEURON's extracellular mechanism into every biophysical cell for an ECP report, as "
        "bmtk does: stock's exact model, but NEURON then solves the whole model with its sparse solver, about 100x "
        "slower (NEURON only; the ECP needs only i_membrane_)", json_schema_extra=_cli())
    coreneuron: CoreNeuronOptions = Field(default_factory=CoreNeuronOptions)
    exchange: ExchangeOptions = Field(default_factory=ExchangeOptions)
    sites: SitesOptions = Field(default_factory=SitesOptions)

    @model_validator(mode="after")
    def _engine_rules(self) -> Settings:
        if self.engine.is_coreneuron and self.neuron_loop == "bmtk":
            raise ValueError("neuron_loop 'bmtk' (stock h.run) runs on NEURON only: use 'psolve' with CoreNEURON")
        if self.engine.is_coreneuron and self.ecp_extracellular:
            raise ValueError("ecp_extracellular runs on NEURON only: CoreNEURON has no extracellular mechanism")
        permute = self.coreneuron.cell_permute
        if self.engine.is_coreneuron and permute is not None and permute not in self.valid_cell_permute:
            raise ValueError(f"coreneuron.cell_permute {permute} is not allowed on {self.engine.label}: NEURON "
                             f"accepts {sorted(self.valid_cell_permute)} there (0/1 on the CPU, 1/2 on a GPU)")
        if self.coreneuron.build_cycles > 1 and not self.engine.is_coreneuron:
            raise ValueError(f"coreneuron.build_cycles {self.coreneuron.build_cycles} builds the model in parts for "
                             "CoreNEURON's file mode: set the engine to coreneuron (configure --engine coreneuron), "
                             "or build_cycles 1")
        return self

    @property
    def valid_cell_permute(self) -> set[int]:
        return {1, 2} if self.engine.gpu else {0, 1}

    @property
    def cell_permute(self) -> int:
        """The permutation CoreNEURON will use (NEURON's default where unset)."""
        if self.engine.is_coreneuron and self.ecp_extracellular:
            raise ValueError("ecp_extracellular runs on NEURON only: CoreNEURON has no extracellular mechanism")
        permute = self.coreneuron.cell_permute
        return permute if permute is not None else (1 if self.engine.gpu else 0)

    @property
    def uses_psolve(self) -> bool:
        return self.engine.is_coreneuron or self.neuron_loop == "psolve"

    @property
    def uses_file_mode(self) -> bool:
        """CoreNEURON from files: asked for, or implied by building in more than one cycle."""
        return self.engine.is_coreneuron and (self.coreneuron.file_mode or self.coreneuron.build_cycles > 1)


NESTED = {"coreneuron": CoreNeuronOptions, "exchange": ExchangeOptions, "sites": SitesOptions}

STOCK = Settings(neuron_loop="bmtk", synapses="bmtk", cell_build="bmtk")  # bionet as shipped: cells, edges, h.run


def read_settings(config: Mapping[str, Any], where: str = "the simulation config") -> Settings:
    """The settings of a simulation config (a raw dict or bmtk's resolved ``Config``); ConfigError if invalid."""
    section = config.get(SECTION)
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"the {SECTION!r} section of {where} must be an object, got {type(section).__name__}")
    core = section.get("coreneuron")
    if core is None:
        core = {}
    if not isinstance(core, Mapping):
        raise ConfigError(f"{SECTION}.coreneuron in {where} must be an object, got {type(core).__name__}")
    core = dict(core)
    gpu = core.pop("gpu", False)
    if not isinstance(gpu, bool):
        raise ConfigError(f"{SECTION}.coreneuron.gpu in {where} must be true or false, got {gpu!r}")
    engine = Engine.from_config(config.get("target_simulator", "NEURON"), gpu)
    raw = {**section, "coreneuron": core}
    if raw.get("partition") is not None:
        raw["partition"] = str(raw["partition"])  # bmtk hands resolved paths over as strings or Paths
    return validate_settings({**raw, "engine": engine}, where)


def validate_settings(data: Mapping[str, Any], where: str = "the settings") -> Settings:
    """``Settings`` from a dict of field values; one ConfigError naming every problem."""
    try:
        return Settings.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(f"{where}: " + "; ".join(_describe(e) for e in err.errors())) from None


def validate_sites(site_map: Any, latency_ms: float = 0.0, bandwidth_mbit_s: float | None = None,
                   where: str = "sites") -> SiteModel | None:
    """A site model from command-line values, checked like the config's ``sites`` section."""
    try:
        return SitesOptions(site_map=site_map, latency_ms=latency_ms, bandwidth_mbit_s=bandwidth_mbit_s).model
    except ValidationError as err:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ConfigError(f"{where}: {problems}") from None


def _describe(error: dict) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    where = f"{SECTION}.{loc}" if loc and loc != "engine" else (loc or SECTION)
    if error["type"] == "extra_forbidden":
        model = NESTED.get(str(error["loc"][0]), Settings) if len(error["loc"]) > 1 else Settings
        known = sorted(set(model.model_fields) - {"engine"} | ({"gpu"} if model is CoreNeuronOptions else set()))
        return f"unknown key {where!r} (known: {', '.join(known)})"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":
        return message
    return f"{where}: {message}, got {error.get('input')!r}"


def settings_to_config(config: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """A copy of ``config`` whose engine and ``bmtk_scaling`` section say ``settings`` (every option written)."""
    new = dict(config)
    new["target_simulator"] = settings.engine.target_simulator
    section = {k: v for k, v in settings.model_dump(mode="json", exclude={"engine", *NESTED}).items()
               if not (k == "partition" and v is None)}
    section["coreneuron"] = {"gpu": settings.engine.gpu, **settings.coreneuron.model_dump(mode="json")}
    for name in ("exchange", "sites"):  # written only where set, so configs without them stay as they were
        value = getattr(settings, name)
        if value != type(value)():
            section[name] = value.model_dump(mode="json")
    new[SECTION] = section
    return new


@dataclass(frozen=True)
class Option:
    """One setting as the command line and the docs see it (generated from the schema)."""

    name: str  # keyword of derive_config: a Settings or CoreNeuronOptions field
    cli: str  # option name without the leading dashes
    kind: type  # bool, int, str, or Engine
    choices: tuple[str, ...] | None
    minimum: int | None
    maximum: int | None
    default: Any
    doc: str
    key: str  # where it lives in a config, e.g. bmtk_scaling.coreneuron.nthread


def options() -> list[Option]:
    """Every setting, in declaration order: what ``configure`` offers and ``docs/configuration.md`` lists."""
    out = []
    for model, prefix in ((Settings, SECTION), *((m, f"{SECTION}.{n}") for n, m in NESTED.items())):
        for name, info in model.model_fields.items():
            if name in NESTED:
                continue
            extra = info.json_schema_extra or {}
            ann = info.annotation
            choices = None
            if ann is Engine:
                kind, choices = Engine, tuple(e.value for e in Engine)
            elif getattr(ann, "__origin__", None) is Literal:
                kind, choices = str, tuple(ann.__args__)
            elif ann in (bool, int, float):
                kind = ann
            elif ann == int | None:
                kind = int
            elif ann == float | None:
                kind = float
            else:
                kind = str
            bounds = {type(m).__name__: m for m in info.metadata}
            out.append(Option(
                name=name, cli=(extra.get("cli") or name).replace("_", "-"), kind=kind, choices=choices,
                minimum=getattr(bounds.get("Ge"), "ge", None), maximum=getattr(bounds.get("Le"), "le", None),
                default=info.get_default(call_default_factory=True), doc=info.description or "",
                key="target_simulator, coreneuron.gpu" if name == "engine" else f"{prefix}.{name}"))
    return out


def options_table() -> str:
    """Every setting as a markdown table (``docs/configuration.md`` holds it; a test keeps the two equal)."""
    rows = ["| setting | config key | CLI (`configure`) | default | allowed | what |", "|---|---|---|---|---|---|"]
    for o in options():
        if o.choices:
            allowed = ", ".join(o.choices)
        elif o.kind is bool:
            allowed = "true, false"
        elif o.kind is float:
            allowed = "number" + (f" >= {o.minimum}" if o.minimum is not None else " > 0")
        elif o.minimum is not None or o.maximum is not None:
            low, high = ("" if b is None else b for b in (o.minimum, o.maximum))
            allowed = f"integer {low}..{high}"
        elif o.name == "site_map":
            allowed = "site numbers, one per rank"
        elif o.name == "build_flags":
            allowed = "compiler options"
        else:
            allowed = "a path" if o.name == "partition" else o.kind.__name__
        default = json.dumps(o.default.value if isinstance(o.default, Engine) else o.default)
        flag = f"`--{o.cli}`" + (f" / `--no-{o.cli}`" if o.kind is bool else "")
        rows.append(f"| `{o.name}` | `{o.key}` | {flag} | `{default}` | {allowed} | {o.doc} |")
    return "\n".join(rows) + "\n"


CORENEURON_FIELDS = frozenset(CoreNeuronOptions.model_fields)
NESTED_FIELDS = {name: frozenset(model.model_fields) for name, model in NESTED.items()}  # option -> its section
SETTING_NAMES = tuple(o.name for o in options())
