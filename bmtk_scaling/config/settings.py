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
        "coreneuron": {"gpu": false, "cell_permute": null, "file_mode": false, "nthread": 1, "verbose": 1}
    }

Every option is declared once below, with its type, default, doc and validator; the config reader,
:func:`bmtk_scaling.config.derive.derive_config`, the ``configure`` command's options and the docs
all come from these declarations. Unknown keys are refused, and so is a combination NEURON would
reject only after the network is built (``cell_permute`` outside NEURON's rule, stock ``h.run`` on
CoreNEURON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bmtk_scaling.errors import ConfigError

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
    coreneuron: CoreNeuronOptions = Field(default_factory=CoreNeuronOptions)

    @model_validator(mode="after")
    def _engine_rules(self) -> Settings:
        if self.engine.is_coreneuron and self.neuron_loop == "bmtk":
            raise ValueError("neuron_loop 'bmtk' (stock h.run) runs on NEURON only: use 'psolve' with CoreNEURON")
        permute = self.coreneuron.cell_permute
        if self.engine.is_coreneuron and permute is not None and permute not in self.valid_cell_permute:
            raise ValueError(f"coreneuron.cell_permute {permute} is not allowed on {self.engine.label}: NEURON "
                             f"accepts {sorted(self.valid_cell_permute)} there (0/1 on the CPU, 1/2 on a GPU)")
        return self

    @property
    def valid_cell_permute(self) -> set[int]:
        return {1, 2} if self.engine.gpu else {0, 1}

    @property
    def cell_permute(self) -> int:
        """The permutation CoreNEURON will use (NEURON's default where unset)."""
        permute = self.coreneuron.cell_permute
        return permute if permute is not None else (1 if self.engine.gpu else 0)

    @property
    def uses_psolve(self) -> bool:
        return self.engine.is_coreneuron or self.neuron_loop == "psolve"

    @property
    def uses_file_mode(self) -> bool:
        return self.engine.is_coreneuron and self.coreneuron.file_mode


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


def _describe(error: dict) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    where = f"{SECTION}.{loc}" if loc and loc != "engine" else (loc or SECTION)
    if error["type"] == "extra_forbidden":
        model = CoreNeuronOptions if error["loc"][:1] == ("coreneuron",) else Settings
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
    section = {k: v for k, v in settings.model_dump(mode="json", exclude={"engine", "coreneuron"}).items()
               if not (k == "partition" and v is None)}
    section["coreneuron"] = {"gpu": settings.engine.gpu, **settings.coreneuron.model_dump(mode="json")}
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
    for model, prefix in ((Settings, SECTION), (CoreNeuronOptions, f"{SECTION}.coreneuron")):
        for name, info in model.model_fields.items():
            if name == "coreneuron":
                continue
            extra = info.json_schema_extra or {}
            ann = info.annotation
            choices = None
            if ann is Engine:
                kind, choices = Engine, tuple(e.value for e in Engine)
            elif getattr(ann, "__origin__", None) is Literal:
                kind, choices = str, tuple(ann.__args__)
            elif ann in (bool, int):
                kind = ann
            elif ann == int | None:
                kind = int
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
        elif o.minimum is not None or o.maximum is not None:
            low, high = ("" if b is None else b for b in (o.minimum, o.maximum))
            allowed = f"integer {low}..{high}"
        else:
            allowed = "a path" if o.name == "partition" else o.kind.__name__
        default = json.dumps(o.default.value if isinstance(o.default, Engine) else o.default)
        flag = f"`--{o.cli}`" + (f" / `--no-{o.cli}`" if o.kind is bool else "")
        rows.append(f"| `{o.name}` | `{o.key}` | {flag} | `{default}` | {allowed} | {o.doc} |")
    return "\n".join(rows) + "\n"


CORENEURON_FIELDS = frozenset(CoreNeuronOptions.model_fields)
SETTING_NAMES = tuple(o.name for o in options())
