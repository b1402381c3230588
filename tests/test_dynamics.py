"""Dynamics of the benchmark networks, simulated on NEURON through bmtk's bionet and computed here."""

from __future__ import annotations

import numpy as np
import pytest

from bmtk_scaling.report.activity import population_spectrum
from tests.helpers import run_network

pytestmark = [pytest.mark.slow]


def _first_spike(spikes, node_ids):
    first = spikes.groupby("node_id")["timestamp"].min()
    return np.array([first.get(n, np.nan) for n in node_ids])


def test_ping_oscillates_in_the_gamma_band(tmp_path):
    from network_builders import ping_assembly

    net = ping_assembly(tmp_path / "ping", n_assemblies=1, cells_per_assembly=200, seed=1, tstop=700.0)
    spikes = run_network(net.path)
    late = spikes[spikes["timestamp"] >= 250.0]  # let the rhythm settle after the drive starts at 200 ms
    spectrum = population_spectrum(late["timestamp"].to_numpy(), 250.0, 700.0)
    assert 30.0 <= spectrum.peak_hz <= 40.0, spectrum.peak_hz
    e_ids, i_ids = np.arange(160), np.arange(160, 200)
    assert spikes["node_id"].isin(e_ids).sum() > 0 and spikes["node_id"].isin(i_ids).sum() > 0
    assert (spikes["timestamp"] < 200.0).sum() == 0  # silent before the drive


def test_every_receiver_fires_after_its_sender(small_pairs):
    spikes = run_network(small_pairs.path)
    senders = 2 * np.arange(12)
    t_send, t_recv = _first_spike(spikes, senders), _first_spike(spikes, senders + 1)
    assert not np.isnan(t_send).any() and not np.isnan(t_recv).any()
    lag = t_recv - t_send
    assert np.all(lag >= 1.0)  # at least the synaptic delay
    assert np.all(lag < 10.0)


def test_clique_activity_spreads_from_the_driven_cell(small_cliques):
    spikes = run_network(small_cliques.path)
    for clique in range(4):
        members = clique * 5 + np.arange(5)
        t = _first_spike(spikes, members)
        assert not np.isnan(t).any(), f"clique {clique}: some cells never fired"
        assert np.all(t[1:] >= t[0] + 1.0)  # followers fire at least one delay after the driven cell
