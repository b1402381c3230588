"""The errors bmtk-scaling raises on purpose.

Two kinds, told apart by the command line:

- :class:`BmtkScalingError` (a ``ValueError``): bad input. Its message names the problem and the fix;
  the CLI prints it on one line and exits with status 2, and nothing has been written.
- :class:`RunError` (a ``RuntimeError``): a simulation or sweep that was started and failed (a rank
  crashed, hung, or was killed); the message names the rank and the cause, the CLI exits 1.

Anything else that escapes is a bug in bmtk-scaling: the CLI shows its traceback and says so.
"""

from __future__ import annotations


class BmtkScalingError(ValueError):
    """Bad input (a parameter, a path, a config, a map, a spec): the message says what and how to fix it."""


class ConfigError(BmtkScalingError):
    """A simulation or circuit config, or its ``bmtk_scaling`` section, that cannot be used."""


class PartitionError(BmtkScalingError):
    """A partition request or a map file that does not fit the network or the run."""


class SpecError(BmtkScalingError):
    """A sweep spec with problems; the message lists every one of them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"sweep spec {source}: {self.problems[0]} (nothing was run)")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"sweep spec {source} has {len(self.problems)} problems (nothing was run):\n{lines}")


class GpuUnavailableError(BmtkScalingError):
    """A GPU engine asked for where this NEURON build or machine cannot provide one."""


class RunError(RuntimeError):
    """Work that started and failed; the message names where and why."""


class RunFailed(RunError):
    """A simulation run that crashed, hung or produced no result; the message names the rank and cause."""


class SweepStopped(RunError):
    """A sweep point failed and the sweep stopped; what finished is kept, a rerun continues."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived: raised in the main thread so that cleanup runs as for Ctrl-C.

    A BaseException, like KeyboardInterrupt, so ``except Exception`` never swallows it; the CLI exits
    with 128 + the signal number.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")
