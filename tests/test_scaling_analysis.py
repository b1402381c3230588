"""The analyses' arithmetic on synthetic tables with known answers (pure math, no runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bmtk_scaling.report import scaling as sa


def rows(**columns) -> pd.DataFrame:
    n = max(len(v) for v in columns.values() if isinstance(v, list))
    base = {"network": "ping", "network_key": "k", "n_synapses": 100, "threads": 1, "strategy": "random",
            "engine": "neuron", "load_balance": None}
    df = pd.DataFrame({**{k: [v] * n for k, v in base.items()}, **columns})
    if "cores" not in df:
        df["cores"] = df["ranks"] * df["threads"]
    return df


def test_power_law_recovers_known_a_and_b():
    n = np.array([1e3, 2e3, 5e3, 1e4, 5e4])
    fit = sa.fit_power_law(n, 3e-6 * n ** 1.7)
    assert fit.a == pytest.approx(3e-6, rel=1e-9)
    assert fit.b == pytest.approx(1.7, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 5
    assert fit.predict(1e6) == pytest.approx(3e-6 * 1e6 ** 1.7)


def test_power_law_with_noise_and_bad_points():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e3, 1e5, 20)
    y = 0.01 * n ** 1.2 * np.exp(rng.normal(0, 0.05, n.size))
    fit = sa.fit_power_law(np.append(n, [0.0, 5.0]), np.append(y, [1.0, -1.0]))  # x = 0 and y < 0 are dropped
    assert fit.n == 20
    assert fit.b == pytest.approx(1.2, abs=0.03)
    assert 0.99 < fit.r2 < 1.0 and fit.adj_r2 < fit.r2
    with pytest.raises(ValueError, match="two distinct"):
        sa.fit_power_law([10, 10], [1, 2])


def test_memory_fit_groups_and_extrapolates():
    cells = [500, 1000, 2000, 4000]
    mib = [1024 * 2e-5 * c ** 1.5 for c in cells]
    df = rows(n_cells=cells, ranks=[1] * 4, peak_rss_sum_mib=mib, model_rss_sum_mib=[m / 2 for m in mib],
              peak_rss_max_mib=mib, n_synapses=[c * c for c in cells])
    df["network_key"] = [f"k{c}" for c in cells]
    df = pd.concat([df, df.iloc[:2].assign(ranks=2)])  # only two sizes on 2 ranks: no fit there
    _, fits = sa.memory_fits(df)
    assert set(fits["ranks"]) == {1}
    total = fits[(fits["memory"] == "total") & (fits["against"] == "n_cells")].iloc[0]
    assert total["b"] == pytest.approx(1.5) and total["a_gib"] == pytest.approx(2e-5)
    assert total["gib_at_1M_cells"] == pytest.approx(2e-5 * 1e6 ** 1.5)
    synapses = fits[(fits["memory"] == "total") & (fits["against"] == "n_synapses")].iloc[0]
    assert synapses["b"] == pytest.approx(0.75)  # synapses = cells^2


def test_strong_scaling_speedup_and_efficiency_with_median_of_repeats():
    df = rows(ranks=[1, 1, 1, 2, 3], n_cells=[100] * 5, simulate_s=[10.0, 10.5, 99.0, 5.0, 4.0],
              total_s=[12.0, 12.0, 12.0, 7.0, 6.0], peak_rss_sum_mib=[1.0] * 5)
    table = sa.strong_scaling(df).set_index("ranks")
    assert table.loc[1, "simulate_s"] == 10.5  # median of three repeats ignores the disturbed one
    assert table.loc[2, "speedup_simulate"] == pytest.approx(2.1)
    assert table.loc[3, "efficiency_simulate"] == pytest.approx(10.5 / 4.0 / 3)
    assert table.loc[3, "speedup_total"] == pytest.approx(2.0)
    assert sa.strong_scaling(rows(ranks=[2], n_cells=[100], simulate_s=[1.0], total_s=[1.0])).empty
    fastest = sa.strong_scaling(df, how="min").set_index("ranks")  # the least disturbed repeat
    assert fastest.loc[1, "simulate_s"] == 10.0 and fastest.loc[2, "speedup_simulate"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="median"):
        sa.strong_scaling(df, how="mean")


def test_strong_scaling_from_more_than_one_rank():
    df = rows(ranks=[2, 4], n_cells=[100, 100], simulate_s=[8.0, 5.0], total_s=[9.0, 6.0])
    table = sa.strong_scaling(df).set_index("ranks")
    assert table.loc[4, "speedup_simulate"] == pytest.approx(2 * 8.0 / 5.0)  # R0 * T(R0) / T(R)


def test_weak_scaling_needs_fixed_cells_per_rank():
    df = rows(ranks=[1, 2, 3, 2], n_cells=[1000, 2000, 3000, 1000], cells_per_rank=[1000, 1000, 1000, 500],
              simulate_s=[4.0, 5.0, 8.0, 3.0], total_s=[5.0, 6.0, 10.0, 4.0])
    df["network_key"] = ["a", "b", "c", "a"]
    table = sa.weak_scaling(df)
    assert list(table["ranks"]) == [1, 2, 3]
    assert list(table["weak_efficiency_simulate"]) == pytest.approx([1.0, 0.8, 0.5])


def test_ranks_against_threads_at_fixed_cores():
    df = rows(ranks=[1, 2, 1], threads=[2, 1, 1], n_cells=[100] * 3, simulate_s=[6.0, 5.0, 10.0],
              total_s=[7.0, 6.0, 11.0], peak_rss_sum_mib=[1.0] * 3, engine=["coreneuron"] * 3)
    table = sa.ranks_vs_threads(df)
    assert set(zip(table["ranks"], table["threads"], strict=True)) == {(1, 2), (2, 1)}
    assert (table["cores"] == 2).all()


def test_balance_only_where_neuron_reported_it():
    df = rows(ranks=[1, 2, 3], n_cells=[100] * 3, load_balance=[1.0, 0.8, 0.5], imbalance=[1.0, 1.25, 2.0],
              wait_max_s=[0.0, 1.0, 3.0], wait_mean_s=[0.0, 0.5, 2.0], simulate_s=[10.0, 6.0, 6.0])
    table = sa.balance_vs_ranks(df)
    assert list(table["wait_fraction"]) == pytest.approx([0.0, 1 / 6, 0.5])
    assert sa.balance_vs_ranks(df.assign(load_balance=None)).empty


def test_experiment_table_ratio():
    df = rows(ranks=[2] * 4, n_cells=[10, 10, 20, 20], strategy=["random", "by_assembly"] * 2,
              simulate_s=[4.0, 2.0, 9.0, 3.0])
    table = sa.experiment_table(df, "n_cells", "simulate_s", "strategy", ratio=("random", "by_assembly"))
    assert list(table["random/by_assembly"]) == pytest.approx([2.0, 3.0])
