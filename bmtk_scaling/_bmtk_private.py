"""Every use of bmtk's internals, in one place, checked against the bmtk version it was written for.

bmtk offers no public hook for what the plugin changes (which rank builds a cell, how edges reach
the builder, what a report records under psolve), so these helpers reach into its private
attributes. Each helper is one small contract with bmtk, tested on its own
(``tests/test_bmtk_contract.py``); when bmtk changes, a contract test names the helper that broke.
Importing this module checks the installed bmtk against :data:`SUPPORTED_BMTK`; outside that range
it refuses with a message, unless ``BMTK_SCALING_ANY_BMTK=1`` asks to try anyway.

Nothing here imports bmtk at module import: the builders' helpers import ``bmtk.builder`` and the
simulator's ``bmtk.simulator.bionet`` when first called, so MPI can still be initialised first.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from bmtk_scaling.errors import BmtkScalingError

SUPPORTED_BMTK = ("1.2",)  # bmtk release series whose internals these helpers were checked against
OVERRIDE_ENV = "BMTK_SCALING_ANY_BMTK"


def check_bmtk_version(version: str | None = None) -> str:
    """The installed bmtk version, or BmtkScalingError when its internals were never checked here."""
    if version is None:
        try:
            version = metadata.version("bmtk")
        except metadata.PackageNotFoundError:
            raise BmtkScalingError("bmtk is not installed: pip install 'bmtk~=1.2.0'") from None
    series = ".".join(version.split(".")[:2])
    if series not in SUPPORTED_BMTK and os.environ.get(OVERRIDE_ENV) != "1":
        raise BmtkScalingError(
            f"bmtk {version} is installed, but bmtk-scaling relies on bmtk internals checked only for bmtk "
            f"{', '.join(s + '.x' for s in SUPPORTED_BMTK)}: install 'bmtk~=1.2.0', or set {OVERRIDE_ENV}=1 to "
            "try anyway (tests/test_bmtk_contract.py tells what still holds)")
    return version


BMTK_VERSION = check_bmtk_version()


# --- bionet: cell placement -------------------------------------------------------------------


class _PlacedNodes:
    """A bionet node population whose ``[rank::size]`` slice yields the nodes at given rows instead.

    Stock ``BioNetwork.build_nodes`` takes each population's ``node_pop[MPI_rank::MPI_size]``; handing
    it this stand-in keeps all of bmtk's own logic (virtual and mixed populations, cell building,
    gid registration) and changes only which rows this rank builds.
    """

    def __init__(self, node_pop: Any, rows: Sequence[int]) -> None:
        self._wrapped = node_pop
        self._rows = list(rows)

    def __getitem__(self, item: Any) -> Iterator[Any]:
        if not isinstance(item, slice):
            return self._wrapped[item]
        return nodes_at_rows(self._wrapped, self._rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def nodes_at_rows(node_pop: Any, rows: Sequence[int]) -> Iterator[Any]:
    """bmtk's nodes at the given (sorted) rows, as ``SonataNodes.__getitem__`` yields them for a slice.

    bmtk 1.2 indexes a population only by slice or int (its list branch is broken), so this goes
    through the same two objects ``__getitem__`` uses: the SONATA population's ``get_rows`` and the
    property adaptors.
    """
    for base_node in node_pop._node_pop.get_rows(list(rows)):
        yield node_pop._prop_adaptors[base_node.group_id].get_node(base_node)


@contextlib.contextmanager
def rows_built_here(network: Any, rows: Mapping[str, Sequence[int]]) -> Iterator[None]:
    """While active, ``network.build_nodes()`` builds exactly ``rows[population]`` on this rank."""
    pops = network._node_populations
    original = dict(pops)
    try:
        for name, pop in original.items():
            pops[name] = _PlacedNodes(pop, rows.get(name, []))
        yield
    finally:
        pops.clear()
        pops.update(original)


def round_robin_rows(network: Any, rank: int, size: int) -> dict[str, list[int]]:
    """The rows stock ``BioNetwork.build_nodes`` builds on ``rank`` of ``size``: ``node_pop[rank::size]``."""
    return {pop.name: list(range(rank, pop.n_nodes(), size)) for pop in network.node_populations}


@contextlib.contextmanager
def counting_cell_builds(network: Any, on_cell: Callable[[], None]) -> Iterator[None]:
    """While active, ``on_cell()`` is called after each cell bionet's ``build_nodes`` builds (its ``_build_cell``)."""
    original = network._build_cell

    def build(*args, **kwargs):
        cell = original(*args, **kwargs)
        on_cell()
        return cell

    network._build_cell = build
    try:
        yield
    finally:
        del network._build_cell  # the class's method again


@contextlib.contextmanager
def only_edge_populations(network: Any, names: set[str]) -> Iterator[None]:
    """While active, bionet's ``build_recurrent_edges`` builds only the edge populations named."""
    pops = network._edge_populations
    original = list(pops)
    try:
        pops[:] = [ep for ep in original if ep.name in names]
        yield
    finally:
        pops[:] = original


def build_cell(network: Any, node: Any, population: str) -> Any:
    """One bionet cell of ``node`` (as ``build_nodes`` makes it), e.g. to measure a cell type."""
    return network._build_cell(bionode=node, population_name=population)


# --- bionet: what a rank built ----------------------------------------------------------------


def local_cells(network: Any) -> dict[str, dict[int, Any]]:
    """This rank's cells: population -> node id -> bionet cell."""
    return network._rank_node_ids


def virtual_populations(network: Any) -> set[str]:
    """Names of the populations bionet treats as virtual (spike inputs)."""
    return set(network._virtual_nodes)


def cell_synapses(cell: Any) -> list:
    """The synapse point processes bionet made on ``cell`` (bionet's own edge building)."""
    return list(getattr(cell, "_synapses", []) or [])


# --- bionet: the simulator's modules ----------------------------------------------------------


def simulation_modules(sim: Any) -> list:
    """The simulator's modules (spikes, reports, clamps, inputs) in bionet's order."""
    return sim._sim_mods


def set_simulation_modules(sim: Any, mods: list) -> None:
    sim._sim_mods = list(mods)


def forget_morphologies() -> int:
    """Empty bionet's module-wide morphology cache; return how many entries it held.

    ``Morphology.load`` keeps the first cell of each morphology file (its hoc object and sections)
    as a key of ``morphology.morphology_cache`` for the life of the process, so freeing the model
    must empty it; the next cell of that file fills it again with the same segment properties.
    """
    from bmtk.simulator.bionet import morphology

    held = len(morphology.morphology_cache)
    morphology.morphology_cache.clear()
    return held


def use_simulator(sim: Any) -> None:
    """Point bmtk's hoc ``pysim`` (what its ``advance()`` calls back) at ``sim``: each ``BioSimulator`` made
    points it at itself, which would keep a later one alive."""
    from neuron import h

    h.pysim = sim


def record_spike(spikes_module: Any, node_id: int, timestamp: float, population: str) -> None:
    """Add one spike to the spike writer of bionet's ``SpikesMod`` (spikes that came from CoreNEURON files)."""
    spikes_module._spike_writer.add_spike(node_id=node_id, timestamp=timestamp, population=population)


@dataclass(frozen=True)
class ReportPlan:
    """What a bionet report records, as bmtk's own ``initialize`` set it up for this simulation."""

    file_name: str
    variables: tuple[str, ...]  # recorded directly
    transforms: tuple[str, ...]  # variables bmtk would pass through a function each step
    start_step: int
    end_step: float
    dt_step: int
    recorder: Any  # bmtk's report writer, its cells and elements already added
    elements: dict[int, list]  # gid -> the objects whose ``_ref_<variable>`` bmtk reads each step, in its order


def initialize_report(report: Any, sim: Any) -> ReportPlan:
    """Run bmtk's own ``initialize`` of a soma, membrane or netcon report, with one buffer for the whole run.

    bmtk then knows the cells, sections and synapses it records and has added them to its writer;
    the elements are returned in the order its ``step`` reads them, so recorded vectors fill the same
    columns. A buffer as long as the run lets all samples be written in one block after psolve.
    """
    from bmtk.simulator.bionet import modules

    block = sim._nsteps_block
    sim._nsteps_block = max(int(block), int(sim.n_steps) + 1)
    try:
        report.initialize(sim)
    finally:
        sim._nsteps_block = block
    elements: dict[int, list] = {}
    for gid in sorted(report._local_gids):
        cell = sim.net.get_cell_gid(gid)
        if isinstance(report, modules.SomaReport):
            elements[gid] = [cell.soma[0](0.5)]
        elif isinstance(report, modules.NetconReport):
            if gid in report._object_lookup:
                elements[gid] = list(report._object_lookup[gid])
        else:  # MembraneReport: the segments of the selected section types
            types = cell.morphology.seg_props.type
            elements[gid] = [seg for seg, kind in zip(cell.morphology.segments, types, strict=True)
                             if kind in report._section_types]
    return ReportPlan(file_name=report._file_name, variables=tuple(report._variables),
                      transforms=tuple(getattr(report, "_transforms", ())), start_step=report._start_step,
                      end_step=report._end_step, dt_step=report._dt_step, recorder=report._var_recorder,
                      elements=elements)


# --- builder: edges handed over as arrays -----------------------------------------------------


@functools.cache
def sparse_network_class(edge_list: type, check_ids_in: Callable[[Any, Any, str], None]) -> type:
    """A ``DenseNetwork`` adaptor that accepts ``edge_list`` connection rules without a dense table.

    bmtk's ``DenseNetwork._add_edges`` builds a sources x targets count table per edge type; for a
    connection rule of type ``edge_list`` (with ``sources`` and ``targets`` id arrays) this one stores
    the arrays instead and registers the table exactly as bmtk's own code does, so bmtk's collator and
    writer save it. ``check_ids_in(ids, allowed, message)`` refuses ids outside ``add_edges``' selection.
    """
    import numpy as np
    from bmtk.builder.network_adaptors.dm_network import DenseNetwork
    from bmtk.builder.network_adaptors.edge_props_table import EdgeTypesTableMemory

    EdgeList = edge_list  # noqa: N806 (a class)

    class SparseEdgeTypesTable(EdgeTypesTableMemory):
        """The edge-type table bmtk's collator reads, backed by two id arrays."""

        def __init__(self, connection_map, network_name: str, edges: EdgeList) -> None:  # noqa: D107
            # Deliberately not calling the parent constructor: it allocates the dense S x T table.
            self._connection_map = connection_map
            self._network_name = network_name
            self.source_network = connection_map.source_nodes.network_name
            self.target_network = connection_map.target_nodes.network_name
            self.edge_type_id = connection_map.edge_type_properties["edge_type_id"]
            self.edge_group_id = -1  # assigned by bmtk when the edges are saved
            self._prop_vals = {}
            self._source_nodes_map = None
            self._target_nodes_map = None
            self._nsyns_updated = False
            self._ids = np.column_stack([edges.sources, edges.targets])

        @property
        def n_syns(self) -> int:
            return int(self._ids.shape[0])

        @property
        def n_edges(self) -> int:
            return int(self._ids.shape[0])

        @property
        def edge_type_node_ids(self):
            return self._ids

        def get_property_metatadata(self):  # bmtk's spelling
            return [{"name": "nsyns", "dtype": np.dtype(np.uint32)}]

        def get_property_value(self, prop_name: str):
            if prop_name != "nsyns":
                raise KeyError(prop_name)
            return np.ones(self.n_edges, dtype=np.uint32)

        def set_nsyns(self, source_id, target_id, nsyns):
            raise TypeError("edges of an EdgeList are fixed when it is created")

        def free_data(self) -> None:
            self._ids = np.empty((0, 2), dtype=np.uint64)

    class SparseNetwork(DenseNetwork):
        """``DenseNetwork`` that accepts :class:`EdgeList` connection rules without a dense table."""

        def _add_edges(self, connection_map, i):
            edges = connection_map.connector
            if not isinstance(edges, EdgeList):
                return super()._add_edges(connection_map, i)
            for label, ids, pool in (("source", edges.sources, connection_map.source_nodes),
                                     ("target", edges.targets, connection_map.target_nodes)):
                allowed = np.fromiter((n.node_id for n in pool), dtype=np.int64)
                check_ids_in(ids, allowed, f"edge type {connection_map.edge_type_id}: some {label} node ids are "
                             f"not in the {label} selection of add_edges()")
            table = SparseEdgeTypesTable(connection_map, self.name, edges)
            target_net = connection_map.target_nodes
            self._target_networks[target_net.network_name] = target_net.network
            self._nedges += table.n_syns
            self.edges_table().append(table)

    return SparseNetwork


# --- bionet: edges, as its own edge building sees them ----------------------------------------


def init_connections(network: Any) -> None:
    """Give every local cell bionet's per-cell ``RandomState(gid)`` stream, once, as bionet's edge building does.

    bionet calls this (guarded by a flag) before its first edge; calling it here first keeps later
    bionet calls (fallback populations, spike inputs) from resetting the streams.
    """
    network._init_connections()


def edge_populations(network: Any) -> list:
    """bionet's edge populations, in the order its edge building walks them."""
    return list(network._edge_populations)


def edge_type_props(edge_pop: Any, type_id: int) -> dict:
    """The edge type's properties as bionet uses them (``target_sections`` and ``distance_range`` parsed,
    ``dynamics_params`` loaded), from the same cached dict bionet's edges read."""
    return edge_pop._edge_pop.types_table[int(type_id)]


def is_morphological(cell: Any) -> bool:
    """Whether ``cell`` is a bionet ``BioCell`` (sections, a morphology, synapses placed on segments)."""
    from bmtk.simulator.bionet.biocell import BioCell

    return isinstance(cell, BioCell)


def is_point_process_cell(cell: Any) -> bool:
    """Whether ``cell`` is exactly a bionet ``PointProcessCell`` (an artificial cell such as IntFire1, its NetCons
    aimed at the cell's own ``hobj``)."""
    from bmtk.simulator.bionet.pointprocesscell import PointProcessCell

    return type(cell) is PointProcessCell


def returns_syn_weight(weight_function: Any) -> bool:
    """Whether ``weight_function`` is one of bmtk's own that return the edge's ``syn_weight`` unchanged
    (``wmax``, ``default_weight_fnc``): its weights can then be read as an array."""
    from bmtk.simulator.bionet.default_setters import synaptic_weights

    return weight_function in (synaptic_weights.wmax, synaptic_weights.default_weight_fnc)


def is_bmtk_exp2syn_setter(synapse_function: Any) -> bool:
    """Whether ``synapse_function`` is bmtk's own ``Exp2Syn`` setter, which makes ``h.Exp2Syn(x, sec=sec)`` and
    sets ``e``, ``tau1`` and ``tau2`` from ``erev``, ``tau1``, ``tau2`` (what a hoc loop can make alike)."""
    from bmtk.simulator.bionet.default_setters import synapse_models

    return synapse_function is synapse_models.Exp2Syn


def segment_sections(cell: Any) -> Any:
    """The section of every segment of a ``BioCell``, indexed as bionet's placement indexes segments."""
    return cell._secs


def cell_node(cell: Any) -> Any:
    """The bionet node of ``cell``, as a weight function receives its target."""
    return cell._node


@contextlib.contextmanager
def only_target_cells(network: Any, population: str, node_ids: set[int]) -> Iterator[None]:
    """While active, bionet's edge building sees only the cells ``node_ids`` of ``population`` on this rank."""
    cells = network._rank_node_ids[population]
    original = dict(cells)
    try:
        for nid in [n for n in cells if n not in node_ids]:
            del cells[nid]
        yield
    finally:
        cells.clear()
        cells.update(original)


# --- bionet: cell building --------------------------------------------------------------------


_CACHED_BIOPHYS1 = """
begintemplate BmtkScalingBiophys1
public init
public soma, dend, apic, axon
public nl
public i3d
public all, somatic, basal, apical, axonal
objref all, somatic, basal, apical, axonal
objref this
objref nl
objref i3d
create soma[1]
create dend[1]
create apic[1]
create axon[1]
proc init() {
    all = new SectionList()
    somatic = new SectionList()
    basal = new SectionList()
    apical = new SectionList()
    axonal = new SectionList()
    forall delete_section()
    nl = $o1
    i3d = $o2
    i3d.instantiate(this)
}
endtemplate BmtkScalingBiophys1
"""


class _LeanCellLoading:
    """bmtk's ``cell_models`` sees this as ``h``: NEURON's ``h``, except that ``define_shape`` only records that
    it was asked for, and ``Biophys1(swc)`` parses each swc file once (bmtk's template parses it per cell)."""

    def __init__(self, hoc: Any) -> None:
        self._hoc = hoc
        self.asked = False
        self._parsed: dict[str, tuple[Any, Any]] = {}

    def define_shape(self, *args: Any, **kwargs: Any) -> None:
        self.asked = True

    def Biophys1(self, morphology_file: str) -> Any:  # noqa: N802 (bmtk's name)
        """A cell like bmtk's ``Biophys1`` template makes: the same sections from the same Import3d reader, which
        is made once per file (reading an swc in hoc is most of the cost of a cell)."""
        if morphology_file not in self._parsed:
            hoc = self._hoc
            if not hasattr(hoc, "BmtkScalingBiophys1"):
                hoc(_CACHED_BIOPHYS1)
            reader = hoc.Import3d_SWC_read()
            reader.quiet = 1
            reader.input(morphology_file)
            self._parsed[morphology_file] = (reader, hoc.Import3d_GUI(reader, 0))
        return self._hoc.BmtkScalingBiophys1(*self._parsed[morphology_file])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hoc, name)


@contextlib.contextmanager
def lean_cell_loading() -> Iterator[None]:
    """While active, bmtk's cell loaders build the same cells faster: each swc file is read once (not once
    per cell), and ``fix_axon_peri`` (every perisomatic and NeuroML cell) skips its ``h.define_shape()``,
    which runs once on leaving if any loader asked for it.

    ``define_shape`` walks every section of the model, so calling it once per cell, as bmtk does, makes
    building N cells cost O(N^2) (about 0.36 s per cell at 300 cells here). It only fills in 3-d points of
    sections that have none (the new axon stubs), from each cell's own geometry, and nothing between two
    cells reads them (bionet reads 3-d points only for coordinates, lazily, after the build). The cells'
    hoc template is ``BmtkScalingBiophys1`` instead of ``Biophys1`` (the same public members).
    """
    from bmtk.simulator.bionet.default_setters import cell_models

    original = cell_models.h
    proxy = _LeanCellLoading(original)
    cell_models.h = proxy
    try:
        yield
    finally:
        cell_models.h = original
        if proxy.asked:
            original.define_shape()


# --- bionet: the ECP module's state -----------------------------------------------------------


def ecp_cell_gids(ecp_module: Any) -> list[int]:
    """The gids bmtk's ``EcpMod`` sums on this rank, in the order its ``step`` adds them (after ``initialize``)."""
    return list(ecp_module._local_gids)


def ecp_transfer_matrix(ecp_module: Any, gid: int) -> Any:
    """bmtk's electrode transfer matrix of ``gid`` (channels x segments, in ``hobj.all`` segment order)."""
    return ecp_module._rel.get_transfer_resistance(gid)


class EcpRows:
    """``EcpMod``'s block writing fed many steps at a time, with the per-cell contribution files written here.

    The sum goes to bmtk's block buffer and bmtk's own ``block`` writes it, every ``nsteps_block`` steps and at
    the last step, exactly as its ``step`` and ``block`` would. The per-cell buffers bmtk allocates in
    ``initialize`` (``nsteps_block`` x channels doubles per cell) are taken over: bmtk's ``block`` then writes only
    the sum, and this class writes each cell's rows into the file bmtk created for it (``ecp/data``, bmtk's shape,
    dtype and chunks). bmtk writes those files a block at a time through HDF5's chunk cache, flushes each file
    after each block and zeroes its buffers; here each write covers whole HDF5 chunks (the rows held are a
    multiple of the dataset's chunk rows), with the chunk cache off, so HDF5 writes every chunk once, straight
    from the buffer, and the buffers are overwritten, not zeroed. :meth:`close` writes what is left and closes the
    files (bmtk leaves them open until the process exits). Without ``contributions_dir`` bmtk keeps the per-cell
    buffers all the same; they are dropped.
    """

    def __init__(self, ecp_module: Any) -> None:
        import h5py

        self._module = ecp_module
        self._block = int(ecp_module._block_size)
        self._buffers = dict(ecp_module._saved_gids) if ecp_module._save_individ_cells else {}
        ecp_module._saved_gids = {}  # bmtk's block then writes the sum only
        self._files = [ecp_module._cell_var_files[gid] for gid in self._buffers]
        self._datasets: dict[int, Any] = {}
        self._rows = self._block  # rows held before a write
        if self._buffers:
            # (the dataset object is gone after this line: the uncached ones below are then its only opening)
            chunk_rows = ecp_module._cell_var_files[next(iter(self._buffers))]["/ecp/data"].chunks[0]
            if chunk_rows <= self._block:  # else bmtk's block, through the chunk cache, as bmtk writes it
                self._rows = self._block // chunk_rows * chunk_rows
            for gid in self._buffers:
                file = ecp_module._cell_var_files[gid]
                if chunk_rows <= self._block:
                    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
                    access.set_chunk_cache(0, 0, 1.0)
                    self._datasets[gid] = h5py.Dataset(h5py.h5d.open(file.id, b"/ecp/data", access))
                else:
                    self._datasets[gid] = file["/ecp/data"]
        self._filled = 0  # rows held in the buffers
        self._written = 0  # rows in the files
        self.seconds = {"rows": 0.0, "sum": 0.0, "files": 0.0}  # copying rows, bmtk's block, the contribution files

    def add(self, sim: Any, contributions: Sequence[tuple[int, Any]], first_step: int, n: int) -> None:
        """The ECP of the ``n`` steps after ``first_step``: ``(gid, steps x channels)`` per cell, in
        :func:`ecp_cell_gids` order. Rows are added to bmtk's block buffer cell by cell, as bmtk adds them step by
        step (the same sum, the same order); a block ends where bmtk's would."""
        if first_step != self._written + self._filled:
            raise RuntimeError(f"ECP rows from step {first_step} handed over after {self._written + self._filled}")
        module = self._module
        done = 0
        while done < n:
            row = int(module._block_step)
            take = min(self._block - row, self._rows - self._filled, n - done)
            at = self._filled
            t0 = time.perf_counter()
            for gid, ecp in contributions:
                part = ecp[done:done + take]
                buffer = self._buffers.get(gid)
                if buffer is not None:
                    buffer[at:at + take] = part  # the product's transpose: read across once, then added from here
                    part = buffer[at:at + take]
                module._data_block[row:row + take] += part
            module._block_step = row + take
            self.seconds["rows"] += time.perf_counter() - t0
            self._filled += take
            done += take
            step = first_step + done
            if module._block_step == self._block or step == sim.n_steps:
                t0 = time.perf_counter()
                module.block(sim, (step - module._block_step, step))
                self.seconds["sum"] += time.perf_counter() - t0
            if self._filled == self._rows or step == sim.n_steps:
                self._write()

    def _write(self) -> None:
        t0 = time.perf_counter()
        if self._filled:
            end = self._written + self._filled
            for gid, dataset in self._datasets.items():
                dataset[self._written:end] = self._buffers[gid][:self._filled]
        self._written += self._filled
        self._filled = 0
        self.seconds["files"] += time.perf_counter() - t0

    def close(self) -> None:
        """Write the rows still held and close the contribution files."""
        self._write()
        self._datasets = {}
        for file in self._files:
            file.close()
        self._files = []


@contextlib.contextmanager
def ecp_without_extracellular() -> Iterator[None]:
    """While active, bionet's ``BioCell.setup_ecp`` (called for every biophysical cell when a config has an ECP
    report) does not insert NEURON's ``extracellular`` mechanism, which CoreNEURON lacks and NEURON cannot uninsert.

    ``cvode.use_fast_imem`` gives ``i_membrane_`` without it; with bmtk's default parameters (``xg`` and
    ``xraxial`` 1e9) it only shorts the extracellular layers to ground.
    """
    from bmtk.simulator.bionet.biocell import BioCell

    name = "_BioCell__set_extracell_mechanism"
    original = getattr(BioCell, name)
    setattr(BioCell, name, lambda self: None)
    try:
        yield
    finally:
        setattr(BioCell, name, original)
