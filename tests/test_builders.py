"""Network structure, checked on the builders' arrays (no files): counts, rules, seeds, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from network_builders import n_pairs_spec, nk_cliques_spec, ping_assembly_spec


def _node_column(spec, name):
    return np.concatenate([np.asarray(g.columns[name]) for g in spec.groups])


def _edges(spec, name):
    (edge,) = [e for e in spec.edges if e.name == name]
    return edge


def _within_binomial_band(count: int, n: int, p: float, z: float = 4.5) -> bool:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return abs(count - mean) <= z * sd


def test_ping_cell_counts_and_ei_split():
    spec = ping_assembly_spec(n_assemblies=3, cells_per_assembly=250, seed=1)
    role, assembly = _node_column(spec, "role"), _node_column(spec, "assembly")
    assert spec.n_nodes == 750
    for a in range(3):
        in_a = assembly == a
        assert np.sum(in_a & (role == "E")) == 200
        assert np.sum(in_a & (role == "I")) == 50


@pytest.mark.parametrize("name,src_role,trg_role,p", [("E_to_I", "E", "I", 0.5), ("I_to_E", "I", "E", 0.5),
                                                      ("I_to_I", "I", "I", 0.5)])
def test_ping_edge_counts_within_binomial_band(name, src_role, trg_role, p):
    n_asm, k = 2, 500
    spec = ping_assembly_spec(n_assemblies=n_asm, cells_per_assembly=k, seed=11)
    role, assembly = _node_column(spec, "role"), _node_column(spec, "assembly")
    edge = _edges(spec, name)
    n_src, n_trg = (400 if src_role == "E" else 100), (400 if trg_role == "E" else 100)
    pairs = n_src * (n_trg - (1 if src_role == trg_role else 0)) * n_asm
    assert _within_binomial_band(edge.sources.size, pairs, p)
    assert np.all(role[edge.sources] == src_role) and np.all(role[edge.targets] == trg_role)
    assert np.all(assembly[edge.sources] == assembly[edge.targets])


def test_ping_no_ee_inside_assembly_and_weights_follow_reference():
    spec = ping_assembly_spec(n_assemblies=2, cells_per_assembly=1250, seed=0)
    role, assembly = _node_column(spec, "role"), _node_column(spec, "assembly")
    for edge in spec.edges:
        same = assembly[edge.sources] == assembly[edge.targets]
        assert not np.any(same & (role[edge.sources] == "E") & (role[edge.targets] == "E"))
    # w_XY = g_XY / (p_XY * N_X): at K = 1250, 5e-4 uS for E->I and 2e-3 uS for I->E, I->I
    assert _edges(spec, "E_to_I").syn_weight == pytest.approx(5e-4)
    assert _edges(spec, "I_to_E").syn_weight == pytest.approx(2e-3)
    assert _edges(spec, "I_to_I").syn_weight == pytest.approx(2e-3)
    assert _edges(spec, "cross_assembly").syn_weight == pytest.approx(5e-4)
    assert "E_to_E" not in {e.name for e in spec.edges}


def test_ping_cross_assembly_fraction():
    n_asm, k = 4, 300
    spec = ping_assembly_spec(n_assemblies=n_asm, cells_per_assembly=k, cross_fraction=0.1, seed=5)
    role, assembly = _node_column(spec, "role"), _node_column(spec, "assembly")
    cross = _edges(spec, "cross_assembly")
    assert np.all(role[cross.sources] == "E")
    assert np.all(assembly[cross.sources] != assembly[cross.targets])
    receivers_per_assembly = np.bincount(assembly[cross.targets], minlength=n_asm)
    assert receivers_per_assembly.tolist() == [30] * n_asm
    assert np.unique(cross.targets).size == cross.targets.size  # one cross synapse per receiving cell
    assert not any(e.name == "cross_assembly" for e in ping_assembly_spec(n_assemblies=1).edges)


def test_ping_drive_is_noisy_on_e_cells_only():
    spec = ping_assembly_spec(n_assemblies=2, cells_per_assembly=500, seed=2)
    role, amp = _node_column(spec, "role"), _node_column(spec, "drive_amp")
    assert np.all(amp[role == "I"] == 0.0)
    e_amp = amp[role == "E"]
    assert e_amp.mean() == pytest.approx(1.4, abs=0.01)
    assert e_amp.std() == pytest.approx(1.4 * 0.05, rel=0.15)
    assert np.all(_node_column(spec, "drive_delay") == 200.0)


def test_pairs_exactly_one_sender_to_receiver_edge():
    spec = n_pairs_spec(n_pairs=50)
    role, assembly = _node_column(spec, "role"), _node_column(spec, "assembly")
    (edge,) = spec.edges
    assert edge.sources.size == 50
    assert np.all(role[edge.sources] == "sender") and np.all(role[edge.targets] == "receiver")
    assert np.array_equal(assembly[edge.sources], assembly[edge.targets])
    assert np.array_equal(np.sort(assembly[edge.sources]), np.arange(50))
    assert edge.syn_weight == 1.0 and edge.delay == 1.0
    amp = _node_column(spec, "drive_amp")
    assert np.all(amp[role == "sender"] == 10.0) and np.all(amp[role == "receiver"] == 0.0)


@pytest.mark.parametrize("n,k", [(2, 50), (10, 10), (25, 2)])
def test_cliques_have_k_times_k_minus_one_edges(n, k):
    spec = nk_cliques_spec(n_cliques=n, clique_size=k)
    assembly, role = _node_column(spec, "assembly"), _node_column(spec, "role")
    (edge,) = spec.edges
    assert np.all(assembly[edge.sources] == assembly[edge.targets])
    assert np.bincount(assembly[edge.targets], minlength=n).tolist() == [k * (k - 1)] * n
    pairs = set(zip(edge.sources.tolist(), edge.targets.tolist(), strict=True))
    assert len(pairs) == n * k * (k - 1)  # no multapses
    assert np.sum(role == "driven") == n


@pytest.mark.parametrize("spec", [ping_assembly_spec(n_assemblies=3, cells_per_assembly=200, seed=4),
                                  n_pairs_spec(n_pairs=20), nk_cliques_spec(n_cliques=3, clique_size=6)],
                         ids=["ping", "pairs", "cliques"])
def test_no_self_connections_and_positive_delays(spec):
    for edge in spec.edges:
        assert not np.any(edge.sources == edge.targets)
        assert edge.delay > 0


def test_same_seed_same_network_other_seed_other_network():
    def arrays(seed):
        spec = ping_assembly_spec(n_assemblies=2, cells_per_assembly=200, seed=seed)
        return [_node_column(spec, "drive_amp")] + [a for e in spec.edges for a in (e.sources, e.targets)]

    first, again, other = arrays(7), arrays(7), arrays(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(first[1:], other[1:], strict=True))


def test_changing_one_edge_class_leaves_the_others_alone():
    a = ping_assembly_spec(n_assemblies=2, cells_per_assembly=200, seed=9)
    b = ping_assembly_spec(n_assemblies=2, cells_per_assembly=200, seed=9, p_ii=0.3)
    assert np.array_equal(_edges(a, "E_to_I").sources, _edges(b, "E_to_I").sources)
    assert np.array_equal(_node_column(a, "drive_amp"), _node_column(b, "drive_amp"))


@pytest.mark.parametrize("builder,kwargs,needle", [
    (ping_assembly_spec, {"n_assemblies": 0}, "n_assemblies"),
    (ping_assembly_spec, {"cells_per_assembly": -5}, "cells_per_assembly"),
    (ping_assembly_spec, {"cells_per_assembly": 2.5}, "cells_per_assembly"),
    (ping_assembly_spec, {"p_ei": 1.2}, "p_ei"),
    (ping_assembly_spec, {"p_ii": -0.1}, "p_ii"),
    (ping_assembly_spec, {"cross_fraction": 2.0}, "cross_fraction"),
    (ping_assembly_spec, {"delay": 0.0}, "delay"),
    (ping_assembly_spec, {"cells_per_assembly": 1}, "at least one"),
    (n_pairs_spec, {"n_pairs": 0}, "n_pairs"),
    (n_pairs_spec, {"delay": -1.0}, "delay"),
    (nk_cliques_spec, {"clique_size": 0}, "clique_size"),
    (nk_cliques_spec, {"n_cliques": -2}, "n_cliques"),
    (nk_cliques_spec, {"delay": 0}, "delay"),
    (nk_cliques_spec, {"tstop": float("nan")}, "tstop"),
])
def test_bad_parameters_raise_value_error_naming_them(builder, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        builder(**kwargs)
