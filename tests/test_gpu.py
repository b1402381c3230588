"""CoreNEURON on a GPU: run where this NEURON build has GPU support (the probe says so), skipped elsewhere.

The PyPI NEURON wheel has none, so on CI this file skips with the probe's reason; the refusal path
(a GPU engine asked for without support) is tested in test_engines.py and test_sweep_spec.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from bmtk_scaling.environment import probe_gpu_support

pytestmark = [pytest.mark.gpu, pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def gpu():
    support = probe_gpu_support()
    if not support.available:
        pytest.skip(f"no CoreNEURON GPU support here: {support.reason}")


def test_gpu_spikes_equal_cpu_spikes(gpu, small_ping, tmp_path):
    from bmtk_scaling.config.derive import derive_config, write_config
    from bmtk_scaling.run.launcher import run_config
    from bmtk_scaling.sonata.configs import load_config
    from bmtk_scaling.sonata.spikes import read_spikes

    trains = {}
    for engine in ("coreneuron", "coreneuron_gpu"):
        cfg = derive_config(load_config(small_ping.simulation_config).data, engine=engine,
                            output_dir=str(tmp_path / engine))
        path = write_config(cfg, small_ping.simulation_config, tmp_path / f"{engine}.json")
        result = run_config(path, 1)
        assert result.engine == engine
        trains[engine] = read_spikes(result.spikes_file)[["node_id", "timestamp"]].to_numpy()
    assert len(trains["coreneuron"]) > 0 and np.array_equal(trains["coreneuron"], trains["coreneuron_gpu"])
