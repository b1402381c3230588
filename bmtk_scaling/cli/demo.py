"""The main job in miniature: build a small PING network, simulate it on NEURON, summarise, plot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bmtk_scaling.environment import configure_neuron_environment
from bmtk_scaling.report.activity import plot_raster, population_spectrum, read_spikes


def simulate_serial(network_dir: Path, config: str = "simulation_config.json", timeout: float = 1800) -> Path:
    """Run ``run_bionet.py`` of a built network in a fresh process; return its spike file."""
    env = configure_neuron_environment(dict(os.environ))
    proc = subprocess.run([sys.executable, "run_bionet.py", config], cwd=network_dir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"simulation of {network_dir} failed (exit {proc.returncode}):\n{tail}")
    return network_dir / "output" / "spikes.h5"


def run_demo(out: Path, n_assemblies: int = 2, cells_per_assembly: int = 250, tstop: float = 600.0,
             seed: int = 1, overwrite: bool = False) -> dict[str, float]:
    from network_builders import ping_assembly

    t0 = time.perf_counter()
    print(f"[1/3] building PING-Assembly {n_assemblies} x {cells_per_assembly} cells (seed {seed}) ...",
          flush=True)
    net = ping_assembly(out, n_assemblies=n_assemblies, cells_per_assembly=cells_per_assembly, tstop=tstop,
                        seed=seed, overwrite=overwrite)
    t1 = time.perf_counter()
    print(f"      {net.n_nodes} cells, {net.n_edges} synapses in {t1 - t0:.2f} s -> {net.path}", flush=True)
    print(f"[2/3] simulating {tstop:g} ms on NEURON (bmtk bionet, 1 rank) ...", flush=True)
    spikes_file = simulate_serial(net.path)
    t2 = time.perf_counter()

    print("[3/3] analysing ...", flush=True)
    spikes = read_spikes(spikes_file)
    params = net.path / "network_parameters.json"
    import json

    p = json.loads(params.read_text())["parameters"]
    n_e = int(round(p["exc_fraction"] * cells_per_assembly)) * n_assemblies
    is_e = spikes["node_id"].to_numpy() < n_e
    window = tstop - p["drive_start"]
    late = spikes["timestamp"].to_numpy() >= p["drive_start"]
    spectrum = population_spectrum(spikes["timestamp"].to_numpy()[late], p["drive_start"], tstop)
    summary = {
        "cells": net.n_nodes,
        "synapses": net.n_edges,
        "spikes": int(len(spikes)),
        "E rate (Hz)": float(np.sum(is_e & late) / (n_e * window / 1000.0)),
        "I rate (Hz)": float(np.sum(~is_e & late) / ((net.n_nodes - n_e) * window / 1000.0)),
        "population peak (Hz)": spectrum.peak_hz,
        "build (s)": t1 - t0,
        "simulate (s)": t2 - t1,
    }
    colors = {i: ("tab:red" if i < n_e else "tab:blue") for i in range(net.n_nodes)}
    png = plot_raster(spikes, net.path / "raster.png",
                      f"PING {n_assemblies} x {cells_per_assembly} (E red, I blue)", colors, spectrum)
    width = max(len(k) for k in summary)
    print()
    for key, val in summary.items():
        print(f"  {key:<{width}}  {val:,.2f}" if isinstance(val, float) else f"  {key:<{width}}  {val:,d}")
    band = "inside" if 30.0 <= spectrum.peak_hz <= 40.0 else "outside"
    print(f"\n  gamma check: peak {spectrum.peak_hz:.1f} Hz is {band} the 30-40 Hz band")
    print(f"  raster: {png}")
    return summary
