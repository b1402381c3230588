"""Building the model in cycles for CoreNEURON's file mode (bmtk_scaling.bionet.build_cycles).

The runs go through the runner under real mpiexec: NEURON's spikes, then CoreNEURON's with the model
built in 1, 2 and 5 parts per rank, on 1 and 2 ranks, must be the same spikes, and the ranks must have
built every cell and NetCon once (the counts of the NEURON run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.bionet.build_cycles import part_rows
from bmtk_scaling.errors import ConfigError


def test_parts_interleave_and_cover_every_row_once():
    rows = {"exc": list(range(0, 40, 2)), "inh": [1, 3, 5], "none": []}
    parts = [part_rows(rows, k, 5) for k in range(5)]
    for name, original in rows.items():
        joined = sorted(r for part in parts for r in part[name])
        assert joined == original  # nothing twice, nothing left out
        sizes = [len(part[name]) for part in parts]
        assert max(sizes) - min(sizes) <= 1
    assert parts[1]["exc"] == [2, 12, 22, 32]  # every 5th row: each part has the mix of the whole
    assert [len(p["inh"]) for p in parts] == [1, 1, 1, 0, 0]  # more parts than cells: some parts are empty
    with pytest.raises(ValueError, match="part 5 is not one of 0..4"):
        part_rows(rows, 5, 5)


def test_build_cycles_needs_coreneuron_and_implies_file_mode():
    from bmtk_scaling.config.settings import read_settings

    settings = read_settings({"target_simulator": "CORENEURON", "bmtk_scaling": {"coreneuron": {"build_cycles": 3}}})
    assert settings.uses_file_mode and not settings.coreneuron.file_mode
    with pytest.raises(ConfigError, match="build_cycles 3 builds the model in parts.*--engine coreneuron"):
        read_settings({"bmtk_scaling": {"coreneuron": {"build_cycles": 3}}})
    with pytest.raises(ConfigError, match="build_cycles"):
        read_settings({"target_simulator": "CORENEURON", "bmtk_scaling": {"coreneuron": {"build_cycles": 0}}})


def _run(config: Path, name: str, ranks: int, **switches):
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes

    derived = derive_config(load_config(config).data, output_dir=f"$BASE_DIR/out_{name}", **switches)
    result = run_config(write_config(derived, config, config.parent / f"{name}.json", overwrite=True), ranks)
    spikes = read_spikes(Path(result.spikes_file))[["population", "node_id", "timestamp"]]
    return spikes.sort_values(["timestamp", "population", "node_id"]).to_numpy(), result


def _counts(result) -> list[int]:
    return [sum(r[k] for r in result.per_rank) for k in ("cells", "netcons")]


def _check_cycles(config: Path, reference: tuple, cycles: tuple[int, ...]) -> None:
    """Spikes equal to NEURON's and every cell and NetCon built once (NEURON's counts), each N on 1 and 2 ranks."""
    spikes_ref, counts_ref = reference
    for ranks in (1, 2):
        for n in cycles:
            spikes, result = _run(config, f"cycles{n}_{ranks}", ranks, engine="coreneuron", build_cycles=n,
                                  file_mode=True)
            where = f"{n} cycle(s) on {ranks} rank(s)"
            assert np.array_equal(spikes, spikes_ref), f"{where}: spikes differ from NEURON's"
            assert _counts(result) == counts_ref, f"{where}: cells and NetCons {_counts(result)}, NEURON {counts_ref}"
            summary = result.summary
            assert 0 < summary["build_peak_rss_max_mib"] <= summary["peak_rss_max_mib"]
            assert 0 < summary["coreneuron_peak_rss_max_mib"] <= summary["peak_rss_max_mib"]


@pytest.fixture(scope="module")
def ping_reference(small_ping) -> tuple:
    """NEURON's spikes of the small PING (1 rank), and its cell and NetCon counts."""
    spikes, result = _run(small_ping.simulation_config, "neuron", 1, engine="neuron")
    assert len(spikes) >= 100
    return spikes, _counts(result)


@pytest.mark.slow
@pytest.mark.mpi
def test_cycles_give_neuron_spikes_on_ping(small_ping, ping_reference):
    """PING (point-like cells, recurrent edges only), round-robin placement, 2 and 5 cycles on 1 and 2 ranks (one
    cycle, file mode as before, is checked against NEURON on this network in test_coreneuron_files.py)."""
    _check_cycles(small_ping.simulation_config, ping_reference, (2, 5))


@pytest.mark.slow
@pytest.mark.mpi
def test_cycles_give_neuron_spikes_on_the_multicompartment_fixture(tmp_path):
    """Morphologies, placed synapses, weight functions, preselected locations and spike inputs; 2 ranks and
    5 cycles leave some parts empty on some ranks (12 cells)."""
    from tests.fixtures.multicompartment import build_fixture

    config = build_fixture(tmp_path / "fixture_net", reports=(), input_rate_hz=30.0) / "config.simulation.json"
    spikes, result = _run(config, "neuron", 1, engine="neuron")
    assert len(spikes) >= 20
    _check_cycles(config, (spikes, _counts(result)), (1, 2, 5))


@pytest.mark.slow
@pytest.mark.mpi
def test_cycles_with_a_partition_map_and_stock_instantiation(small_ping, ping_reference, tmp_path):
    """A METIS map and bionet's own cells and edges (stock instantiation), in 4 cycles on 2 ranks."""
    from bmtk_scaling import partition_network

    placed = partition_network(small_ping.simulation_config, 2, "metis", out=tmp_path / "metis_2.h5",
                               config_out=small_ping.path / "sim_metis2_cycles.json", overwrite=True)
    spikes, _ = _run(Path(placed.config), "stock_cycles", 2, engine="coreneuron", build_cycles=4, synapses="bmtk",
                     cell_build="bmtk")
    assert np.array_equal(spikes, ping_reference[0])


def test_memory_plan_per_engine_and_cycles():
    from bmtk_scaling.config.settings import Settings
    from bmtk_scaling.run.memory_plan import BASE_MIB, plan_memory, refusal

    # PING 2 x 12,500 at the paper's density, 2 ranks
    cells, synapses = 25_000, 56_000_000
    neuron = plan_memory(Settings(engine="neuron"), 2, cells, synapses)
    online = plan_memory(Settings(engine="coreneuron"), 2, cells, synapses)
    files = plan_memory(Settings(engine="coreneuron", coreneuron={"build_cycles": 4}), 2, cells, synapses)
    assert online.peak_per_rank_mib() > neuron.peak_per_rank_mib() > files.peak_per_rank_mib()
    assert files.peak_per_rank_mib(1) == BASE_MIB + max(files.neuron_model_mib(), files.coreneuron_model_mib())
    peaks = [files.peak_gib(n) for n in (1, 2, 4, 8)]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] > 2 * peaks[2]
    fits = files.smallest_cycles(files.peak_gib(3) * 2**30)
    assert fits == 3 and files.peak_gib(2) > files.peak_gib(3)
    assert files.smallest_cycles(files.coreneuron_model_mib() * 2**20) is None  # CoreNEURON's copy alone is larger
    assert plan_memory(Settings(), 2, cells, synapses, imbalance=1.5).synapses_per_rank == synapses / 2 * 1.5

    assert refusal(files, None) is None and refusal(files, files.peak_gib() * 2**30) is None
    one_cycle = plan_memory(Settings(engine="coreneuron", coreneuron={"file_mode": True}), 2, cells, synapses)
    message = refusal(one_cycle, files.peak_gib(3) * 2**30)
    assert "build the model in cycles, e.g. configure --engine coreneuron --build-cycles 3" in message
    assert "run it on CoreNEURON built in cycles" in refusal(neuron, files.peak_gib(3) * 2**30)
    assert "CoreNEURON's own copy alone needs more" in refusal(files, 2**30)
