"""CoreNEURON file mode (bmtk_scaling.bionet.coreneuron_files): exact spike times, and the same spikes as NEURON.

The integration test runs this file as a script (``python test_coreneuron_files.py CONFIG OUT``) under
real mpiexec: each rank builds the model, runs it with NEURON's psolve, then again with
:func:`run_file_mode` (which re-initialises and writes the model), and saves both spike sets to
``OUT/rank<k>.npz``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bmtk_scaling.bionet.coreneuron_files import SPIKE_TEPS, _time_grid, exact_spike_times, read_out_dat


def test_exact_spike_times_recovers_neuron_doubles():
    dt = 0.025
    true = _time_grid(40_000, dt)[[1, 7, 4000, 39_999, 40_000]] + SPIKE_TEPS  # t up to 1000 ms
    t, step = 0.0, 0
    while step < 4000:  # NEURON's own accumulation, written out: two half steps per step
        t += 0.5 * dt
        t += 0.5 * dt
        step += 1
    assert true[2] == t + SPIKE_TEPS
    printed = np.array([float(f"{x:.8g}") for x in true])
    assert not np.array_equal(printed, true)  # out.dat really loses digits
    assert np.array_equal(exact_spike_times(printed, dt), true)


def test_exact_spike_times_refuses_what_it_cannot_recover():
    with pytest.raises(ValueError, match="not threshold crossings"):
        exact_spike_times(np.array([10.0125]), 0.025)  # half way between steps: an artificial-cell time
    with pytest.raises(ValueError, match="cannot be told apart"):
        exact_spike_times(np.array([2.0e6]), 0.1)


def test_read_out_dat_filters_and_sorts(tmp_path):
    dt = 0.1
    grid = _time_grid(100, dt) + SPIKE_TEPS
    rows = [(grid[50], 7), (grid[20], 9), (grid[20], 3), (grid[30], -1), (grid[40], 5)]
    out = tmp_path / "out.dat"
    out.write_text("".join(f"{t:.8g}\t{g}\n" for t, g in rows))
    times, gids = read_out_dat(out, dt, gids=[3, 7, 9])
    assert gids.tolist() == [3, 9, 7]
    assert times.tolist() == [grid[20], grid[20], grid[50]]
    empty = tmp_path / "empty.dat"
    empty.write_text("")
    assert read_out_dat(empty, dt)[0].size == 0


def _run(config: Path, out: Path, ranks: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Spikes of all ranks, sorted by (time, gid): {"neuron": (t, gid), "files": (t, gid)}."""
    from bmtk_scaling.environment import configure_neuron_environment, mpiexec_path

    env = configure_neuron_environment(dict(os.environ))
    cmd = [sys.executable, __file__, str(config), str(out)]
    if ranks > 1:
        cmd = [str(mpiexec_path()), "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = [np.load(out / f"rank{k}.npz") for k in range(ranks)]
    result = {}
    for mode in ("neuron", "files"):
        times = np.concatenate([p[f"{mode}_t"] for p in parts])
        gids = np.concatenate([p[f"{mode}_gid"] for p in parts])
        order = np.lexsort((gids, times))
        result[mode] = (times[order], gids[order])
    return result


@pytest.mark.mpi
@pytest.mark.slow
def test_file_mode_gives_neuron_spikes_on_1_and_2_ranks(small_ping, tmp_path):
    from bmtk_scaling.bionet.coreneuron_files import standalone_command

    config = small_ping.simulation_config
    runs = {ranks: _run(config, tmp_path / f"ranks{ranks}", ranks) for ranks in (1, 2)}
    ref_t, ref_g = runs[1]["neuron"]
    assert ref_t.size > 100
    for ranks, spikes in runs.items():
        for mode, (t, g) in spikes.items():
            assert np.array_equal(t, ref_t) and np.array_equal(g, ref_g), f"{mode} on {ranks} rank(s) differs"

    # the same files, run by CoreNEURON's standalone binary under mpiexec (the out-of-process route)
    work = tmp_path / "ranks2" / "work"
    argv, env = standalone_command(small_ping.path / "components" / "mechanisms", work / "coredat",
                                   tmp_path / "standalone", 300.0, 0.1, -75.0, 36.0, ranks=2, verbose=0)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    t, g = read_out_dat(tmp_path / "standalone" / "out.dat", 0.1, gids=np.unique(ref_g))
    assert np.array_equal(t, ref_t) and np.array_equal(g, ref_g)


def _drive(config: Path, out: Path) -> None:
    """Build ``config`` with bionet as bmtk_scaling.run.rank_main does; run it with psolve, then from files."""
    from bmtk_scaling.environment import configure_neuron_environment

    configure_neuron_environment()
    config, out = config.absolute(), out.absolute()
    os.chdir(config.parent)
    from neuron import h

    h.nrnmpi_init()
    pc = h.ParallelContext()
    from bmtk.simulator import bionet

    import bmtk_scaling.bionet.cell_drive  # noqa: F401  (registers attach_drive)
    from bmtk_scaling.bionet.coreneuron_files import run_file_mode
    from bmtk_scaling.bionet.simulator import ScalingBioSimulator
    from bmtk_scaling.sonata.configs import resolved_for_bmtk

    conf = bionet.Config.from_dict(resolved_for_bmtk(config), validate=True)
    conf.build_env()
    net = bionet.BioNetwork.from_config(conf)
    sim = ScalingBioSimulator.from_config(conf, network=net)
    sim.set_spikes_recording()
    pc.set_maxstep(10)
    h.finitialize(sim.v_init)
    pc.psolve(sim.tstop)
    pairs = [(t, gid) for gid, vec in sim.spikes_table.items() for t in vec]
    spikes = {"neuron_t": np.array([p[0] for p in pairs], dtype=float),
              "neuron_gid": np.array([p[1] for p in pairs], dtype=np.int64)}
    spikes["files_t"], spikes["files_gid"] = run_file_mode(sim, sim.tstop, sim.dt, sim.v_init, sim.celsius,
                                                           out / "work", verbose=0, keep_files=True)
    assert sum(1 for _ in h.allsec()) == 0, "NEURON's model was not freed"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{int(pc.id())}.npz", **spikes)
    pc.barrier()


if __name__ == "__main__":
    _drive(Path(sys.argv[1]), Path(sys.argv[2]))
