"""Emulated multi-site latency (the PMPI shim) and NEURON's spike-exchange options, on real MPI runs.

What latency must change is time, never spikes; what it adds must be what the documented model says
(cross-site collectives x latency, plus point-to-point deliveries); and the runner must report the counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.config.derive import derive_config, write_config
from bmtk_scaling.config.settings import read_settings, validate_sites
from bmtk_scaling.errors import BmtkScalingError, ConfigError
from bmtk_scaling.run.launcher import run_config
from bmtk_scaling.sites import SiteModel, shim_library
from bmtk_scaling.sonata.configs import load_config
from bmtk_scaling.sonata.spikes import read_spikes
from tests.helpers import cli


def test_sites_settings_are_checked():
    settings = read_settings({"bmtk_scaling": {"sites": {"site_map": [0, 1], "latency_ms": 5}}})
    assert settings.sites.model == SiteModel((0, 1), 5.0, None)
    assert validate_sites("0,0,1,1", 2.5).site_map == (0, 0, 1, 1)
    with pytest.raises(ConfigError, match="need sites.site_map"):
        validate_sites(None, 5.0)
    with pytest.raises(ConfigError, match="one site number per rank"):
        read_settings({"bmtk_scaling": {"sites": {"site_map": "0,x"}}})
    with pytest.raises(ConfigError, match="latency_ms"):
        read_settings({"bmtk_scaling": {"sites": {"site_map": [0, 1], "latency_ms": -1}}})
    with pytest.raises(BmtkScalingError, match="names 2 rank.*run has 4.*--sites 0,0,1,1"):
        SiteModel((0, 1)).check_ranks(4)


def test_exchange_combinations_are_refused():
    with pytest.raises(ConfigError, match="gid_compress needs exchange.spike_compress"):
        derive_config({}, gid_compress=True)
    with pytest.raises(ConfigError, match="choose one"):
        derive_config({}, multisend=True, spike_compress=100)
    with pytest.raises(ConfigError, match="need exchange.multisend"):
        derive_config({}, multisend_phases=2)
    cfg = derive_config({}, multisend=True, multisend_phases=2, step_wait=False, site_map="0,1", latency_ms=3)
    assert cfg["bmtk_scaling"]["exchange"]["multisend"] is True
    assert read_settings(cfg).exchange.xchng_meth == 9
    assert cfg["bmtk_scaling"]["sites"] == {"site_map": [0, 1], "latency_ms": 3.0, "bandwidth_mbit_s": None}
    assert "exchange" not in derive_config({}, engine="neuron")["bmtk_scaling"]  # unset sections stay out


def test_run_refuses_latency_without_sites(tmp_path):
    proc = cli("run", str(tmp_path / "missing.json"), "--latency-ms", "5")
    assert proc.returncode == 2 and "site_map" in proc.stderr


def test_shim_is_built_once_into_the_cache():
    first = shim_library()
    assert first.is_file() and shim_library() == first
    assert first.is_relative_to(Path(__import__("bmtk_scaling.mechanisms.build", fromlist=["x"]).cache_root()))


@pytest.fixture(scope="module")
def ping(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("sites") / "ping", n_assemblies=2, cells_per_assembly=40, seed=2,
                         tstop=300.0)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from network_builders import n_pairs

    return n_pairs(tmp_path_factory.mktemp("sites") / "pairs", n_pairs=20, tstop=40.0)


def _variant(net, name: str, **switches) -> Path:
    cfg = derive_config(load_config(net.simulation_config).data, output_dir=f"$BASE_DIR/out_{name}", **switches)
    return write_config(cfg, net.simulation_config, net.path / f"{name}.json", overwrite=True)


def _spikes(result) -> np.ndarray:
    return read_spikes(Path(result.spikes_file))[["node_id", "timestamp"]].to_numpy()


@pytest.mark.mpi
@pytest.mark.slow
def test_latency_adds_the_model_time_and_changes_no_spike(pairs):
    """Two sites at 0 and at L ms one way: same spikes; added time = cross-site collectives x L (within 30 %).

    L is large against the machine's noise (a wake-up from sleep on a loaded machine can be late by a
    millisecond), and the network small, so that the added time dominates.
    """
    latency = 20.0
    # one psolve call: progress pieces follow the wall clock, and each piece adds collectives, so the slower run
    # would make another number of them than the faster
    config = _variant(pairs, "plain", progress_interval_s=0)
    plain = run_config(config, 2)
    zero = run_config(config, 2, sites=SiteModel((0, 1), 0.0))
    slow = run_config(config, 2, sites=SiteModel((0, 1), latency))
    assert len(_spikes(plain)) > 20
    assert np.array_equal(_spikes(plain), _spikes(zero)) and np.array_equal(_spikes(plain), _spikes(slow))
    counts = slow.per_rank[0]["sites"]
    assert counts["cross_site_collectives"] > 50 and counts["cross_site_messages_sent"] == 0
    assert counts["cross_site_collectives"] == slow.per_rank[1]["sites"]["cross_site_collectives"]
    # the whole run's counts, written by each rank at MPI_Finalize, include the simulation's
    assert [r["site"] for r in slow.sites["run_per_rank"]] == [0, 1]
    assert slow.sites["run_per_rank"][0]["cross_site_collectives"] >= counts["cross_site_collectives"]
    assert zero.summary["sim_cross_site_collectives"] == slow.summary["sim_cross_site_collectives"]
    added = slow.summary["simulate_s"] - zero.summary["simulate_s"]
    predicted = slow.summary["sim_cross_site_collectives"] * latency / 1000
    assert added == pytest.approx(predicted, rel=0.3), (added, predicted)


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["neuron", "coreneuron"])
def test_every_exchange_option_gives_the_same_spikes_under_latency(ping, engine):
    """Each exchange option, on two sites 0.3 ms apart (so multisend's messages are delayed): stock spikes."""
    reference = _spikes(run_config(_variant(ping, f"ref_{engine}", engine=engine), 2))
    variants = {"compress": {"spike_compress": 50, "gid_compress": True}, "multisend": {"multisend": True},
                "bin_queue": {"bin_queue": True}, "no_step_wait": {"step_wait": False}}
    for name, switches in variants.items():
        result = run_config(_variant(ping, f"{name}_{engine}", engine=engine, site_map="0,1", latency_ms=0.3,
                                     **switches), 2)
        assert np.array_equal(_spikes(result), reference), f"{name} on {engine} changed the spikes"
        inforce = result.exchange
        assert inforce["multisend"] == (name == "multisend")
        assert inforce["spike_compress"] == (50 if name == "compress" else 0)
        assert inforce["bin_queue"] == (name == "bin_queue")
        assert inforce["step_wait"] == (name != "no_step_wait" or engine == "coreneuron")
        assert result.per_rank[0]["sites"]["cross_site_collectives"] > 0
        if name == "multisend":
            assert result.per_rank[0]["sites"]["cross_site_messages_sent"] > 0


def test_sweep_axes_for_sites_and_exchange(tmp_path):
    from bmtk_scaling.errors import SpecError
    from bmtk_scaling.sweep.grid import expand_points
    from bmtk_scaling.sweep.spec import parse_spec

    base = ("name: s\nnetworks: [{builder: pairs, params: {tstop: 20.0}, sizes: {n_pairs: [10]}}]\nranks: [2, 4]\n"
            "engines: [coreneuron]\n")
    plain = expand_points(parse_spec(base))
    assert [p.latency_ms for p in plain] == [None, None] and "_lat" not in plain[0].id  # old ids unchanged
    points = expand_points(parse_spec(base + "latencies: [0.1, 10]\nexchanges: [default, compress]\n"))
    assert len(points) == 8 and len({p.id for p in points}) == 8
    four = next(p for p in points if p.ranks == 4 and p.exchange == "compress" and p.latency_ms == 10)
    assert four.site_map == "0,0,1,1" and four.id.endswith("_lat10_xcompress_rep0")
    with pytest.raises(SpecError, match="latencies must be a list"):
        expand_points(parse_spec(base + "latencies: [fast]\n"))
    with pytest.raises(SpecError, match="unknown exchanges"):
        expand_points(parse_spec(base + "exchanges: [telepathy]\n"))



def test_by_role_puts_senders_and_receivers_on_their_own_ranks(small_pairs):
    from bmtk_scaling.errors import PartitionError
    from bmtk_scaling.partition.map_file import make_map

    pmap = make_map(small_pairs.simulation_config, 2, "by_role")
    assert pmap.metrics["cut_fraction"] == 1.0  # every sender -> receiver synapse crosses
    with pytest.raises(PartitionError, match="at least 2 ranks"):
        make_map(small_pairs.simulation_config, 1, "by_role")


@pytest.mark.mpi
@pytest.mark.slow
def test_compression_where_nothing_crosses_ranks(pairs, tmp_path):
    """By-assembly N-Pairs: no synapse crosses, so NEURON's exchange interval would be the 10 ms maximum,
    which compressed exchange cannot encode (NEURON aborted on an assertion); the simulator shortens it."""
    from bmtk_scaling.api import partition_network

    placed = partition_network(pairs.simulation_config, 2, "by_assembly", out=tmp_path / "asm.h5")
    assert placed.metrics["synapses_cut"] == 0
    reference = _spikes(run_config(_variant(pairs, "asm_ref", partition=str(tmp_path / "asm.h5")), 2))
    assert len(reference) > 20
    for engine, extra in (("neuron", {}), ("coreneuron", {}), ("coreneuron", {"file_mode": True})):
        name = f"asm_{engine}_{'files' if extra else 'mem'}"
        result = run_config(_variant(pairs, name, engine=engine, spike_compress=20, partition=str(tmp_path / "asm.h5"),
                                     **extra), 2)
        assert np.array_equal(_spikes(result), reference), name


@pytest.mark.mpi
@pytest.mark.slow
def test_coreneuron_multisend_keeps_its_spikes_on_two_sites(tmp_path):
    """CoreNEURON's multisend reuses each Isend's buffer at once; before the shim sent small cross-site Isends
    on the spot, this network aborted (multisend.cpp: gid2in assertion) or lost spikes under the shim."""
    from network_builders import n_pairs

    net = n_pairs(tmp_path / "pairs50", n_pairs=50, tstop=60.0)
    reference = _spikes(run_config(_variant(net, "ms_ref"), 2))
    for phases in (1, 2):
        config = _variant(net, f"ms_core{phases}", engine="coreneuron", multisend=True, multisend_phases=phases)
        result = run_config(config, 2, sites=SiteModel((0, 1), 0.3))
        assert result.per_rank[0]["sites"]["cross_site_messages_sent"] > 100
        assert np.array_equal(_spikes(result), reference), f"CoreNEURON multisend, {phases} phase(s)"
