"""Lean instantiation places synapses exactly where stock bionet does.

bionet draws each edge's segments with its target cell's ``RandomState(gid).choice(segments, nsyns,
p=p)``, edge by edge; the lean path draws a cell's segments with one ``random_sample`` and must give the
same segments and leave the stream in the same state. The second test builds the multi-compartment
fixture (targets by section and distance, 1-3 synapses per edge, preselected locations, spike-input
edges) with stock bionet and with the lean modes and compares every synapse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.bionet.lean_edges import draw_segments
from bmtk_scaling.config.derive import derive_config, write_config
from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.sonata.configs import load_config

PROBE = Path(__file__).with_name("lean_locations_probe.py")


def test_one_draw_per_cell_is_bionets_choice_per_edge():
    rng = np.random.default_rng(3)
    tables = {}
    for t in (100, 101, 102):
        ix = np.sort(rng.choice(500, size=int(rng.integers(1, 40)), replace=False))
        p = rng.random(ix.size) ** 3  # uneven, as segment lengths are
        tables[t] = (ix, p / p.sum())
    for gid in range(20):
        edge_types = rng.choice(list(tables), size=60)
        nsyns = rng.integers(0, 5, size=60)
        stock = np.random.RandomState(gid)
        expected = np.concatenate([stock.choice(tables[t][0], n, p=tables[t][1])
                                   for t, n in zip(edge_types.tolist(), nsyns.tolist(), strict=True)])
        cdfs = {t: (ix, np.cumsum(p) / np.cumsum(p)[-1]) for t, (ix, p) in tables.items()}
        lean = np.random.RandomState(gid)
        got = draw_segments(lean, np.repeat(edge_types, nsyns), cdfs)
        np.testing.assert_array_equal(got, expected)
        assert lean.random_sample() == stock.random_sample()  # the stream continues alike (spike inputs next)


def _probe(net: Path, mode: str) -> dict[str, np.ndarray]:
    config = net / "config.simulation.json"
    switches = {"synapses": mode, "cell_build": "bmtk" if mode == "bmtk" else "lean"}
    cfg = write_config(derive_config(load_config(config).data, output_dir=f"$BASE_DIR/out_probe_{mode}", **switches),
                       config, net / f"probe_{mode}.json", overwrite=True)
    out = net / f"probe_{mode}.npz"
    proc = subprocess.run([sys.executable, str(PROBE), str(cfg), str(out)], capture_output=True, text=True,
                          timeout=600, env=configure_neuron_environment(dict(os.environ)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = dict(np.load(out))
    # "Biophys1[3].dend[2]": the template differs (lean cells are BmtkScalingBiophys1), not the cell or section
    names = [name.split(".", 1) for name in found.pop("section").tolist()]
    found["cell"] = np.array([cell.split("[", 1)[1] for cell, _ in names])
    found["section"] = np.array([section for _, section in names])
    found["order_syn_section"] = np.array([name.split("[", 1)[1] for name in found["order_syn_section"].tolist()])
    return found


@pytest.mark.slow
def test_every_synapse_is_where_stock_bionet_puts_it(tmp_path):
    from tests.fixtures.multicompartment import build_fixture

    net = build_fixture(tmp_path / "fixture_net", reports=("soma",))
    stock = _probe(net, "bmtk")
    per_edge = _probe(net, "per_edge")
    assert stock["gid"].size > 200
    assert len(set(zip(stock["cell"].tolist(), stock["section"].tolist(), strict=True))) > 20  # placement varies
    assert np.unique(stock["x"]).size > 20
    assert np.unique(stock["weight"]).size > 10  # gaussianLL, called per edge as bionet calls it
    for key in ("gid", "cell", "section", "x", "source", "weight", "delay"):  # every synapse, in bionet's order
        np.testing.assert_array_equal(per_edge[key], stock[key], err_msg=key)
    # every Exp2Syn and NetCon made in stock's global order (NEURON's object order, which its instance data and
    # event delivery follow), spike-input NetCons included: per_edge's model is stock's object for object
    assert any(s.startswith("VecStim") for s in stock["order_nc_source"].tolist())
    assert stock["order_nc_target"].size >= stock["gid"].size
    for key in [k for k in stock if k.startswith("order_")]:
        np.testing.assert_array_equal(per_edge[key], stock[key], err_msg=key)
    shared = _probe(net, "shared")  # NetCons grouped by point process, each edge still at its segment

    def edges(d):
        keys = ("gid", "cell", "section", "source", "weight", "delay")
        return Counter(zip(*(d[k].tolist() for k in keys), strict=True))

    assert edges(shared) == edges(stock)
    assert np.unique(shared["x"]).size <= np.unique(stock["x"]).size
