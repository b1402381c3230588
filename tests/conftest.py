"""Small fixture circuits, built once per test session with the real builders into real files."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_ping(tmp_path_factory):
    from network_builders import ping_assembly

    return ping_assembly(tmp_path_factory.mktemp("ping") / "net", n_assemblies=2, cells_per_assembly=100,
                         seed=3, tstop=300.0)


@pytest.fixture(scope="session")
def small_pairs(tmp_path_factory):
    from network_builders import n_pairs

    return n_pairs(tmp_path_factory.mktemp("pairs") / "net", n_pairs=12, tstop=30.0)


@pytest.fixture(scope="session")
def small_cliques(tmp_path_factory):
    from network_builders import nk_cliques

    return nk_cliques(tmp_path_factory.mktemp("cliques") / "net", n_cliques=4, clique_size=5, tstop=40.0)
