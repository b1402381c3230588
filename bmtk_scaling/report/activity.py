"""Network activity from a spike train: the population spectrum and raster plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bmtk_scaling.atomic import atomic_file
from bmtk_scaling.errors import BmtkScalingError


@dataclass(frozen=True)
class Spectrum:
    freqs: np.ndarray  # Hz
    power: np.ndarray
    peak_hz: float


def population_spectrum(times_ms: np.ndarray, t_start: float, t_stop: float, bin_ms: float = 1.0,
                        band: tuple[float, float] = (5.0, 200.0)) -> Spectrum:
    """Power spectrum of the population spike count (mean removed, Hann window) in [t_start, t_stop).

    The peak is searched in ``band`` so the DC remainder and the bin frequency never win.
    """
    if t_stop - t_start < 10 * bin_ms:
        raise BmtkScalingError(f"window [{t_start}, {t_stop}) ms is too short for a spectrum")
    edges = np.arange(t_start, t_stop + bin_ms / 2, bin_ms)
    counts, _ = np.histogram(times_ms, bins=edges)
    x = (counts - counts.mean()) * np.hanning(counts.size)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(counts.size, d=bin_ms / 1000.0)
    in_band = (freqs >= band[0]) & (freqs <= band[1])
    peak = float(freqs[in_band][np.argmax(power[in_band])]) if power[in_band].any() else float("nan")
    return Spectrum(freqs=freqs, power=power, peak_hz=peak)


def plot_raster(spikes: pd.DataFrame, path: Path, title: str, colors: dict[int, str] | None = None,
                spectrum: Spectrum | None = None) -> Path:
    """Save a raster (and the population spectrum beside it, if given) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if spectrum is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(11 if spectrum is not None else 8, 4.5),
                             gridspec_kw={"width_ratios": [3, 1.3]} if spectrum is not None else None)
    ax = axes[0] if spectrum is not None else axes
    c = [colors.get(int(n), "k") for n in spikes["node_id"]] if colors else "k"
    ax.scatter(spikes["timestamp"], spikes["node_id"], s=1.5, c=c, marker="|", linewidths=0.6)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("node id")
    ax.set_title(title)
    if spectrum is not None:
        sel = (spectrum.freqs > 0) & (spectrum.freqs <= 150)
        axes[1].plot(spectrum.freqs[sel], spectrum.power[sel], "k-", lw=1)
        axes[1].axvline(spectrum.peak_hz, color="tab:red", ls="--", lw=1)
        axes[1].set_xlabel("frequency (Hz)")
        axes[1].set_ylabel("power (a.u.)")
        axes[1].set_title(f"population spectrum, peak {spectrum.peak_hz:.1f} Hz")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_file(path, overwrite=True, kind=FIGURE_KIND, recognise=is_png) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


FIGURE_KIND = "figure"


def is_png(path: Path) -> bool:
    """Whether ``path`` is a PNG image (the only kind of file a figure replaces)."""
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n"
