"""The ``bmtk-scaling`` command line: one module per command, each imported only when it is used.

``bmtk-scaling --help`` therefore imports click and nothing of the science stack. Errors: bad input
(:class:`~bmtk_scaling.errors.BmtkScalingError`) prints one line and exits 2; SIGINT, SIGTERM and SIGHUP
stop every child process, remove temporary folders and exit with 128 + the signal number; a run or sweep that
started and failed (:class:`~bmtk_scaling.errors.RunError`) prints its cause and exits 1; anything
else is a bug in bmtk-scaling: its traceback is shown, with a line that says so, and the exit is 1.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import traceback

import click

from bmtk_scaling.errors import BmtkScalingError, Interrupted, RunError

# command -> module of bmtk_scaling.cli, in the order of the data flow (the order --help lists them)
COMMANDS = {
    "build": "build", "partition": "partition", "configure": "configure", "run": "run", "compare": "compare",
    "sweep": "sweep", "report": "report", "demo": "demo",
}

BUG_NOTE = ("this is a bug in bmtk-scaling, not a problem with your input: please report it with the traceback "
            "above and the command you ran")


class CommandGroup(click.Group):
    """Commands loaded on demand; the project's errors turned into exit statuses (see module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"bmtk_scaling.cli.{COMMANDS[name]}").command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BmtkScalingError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)
        except RunError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted (SIGINT): child processes stopped, nothing partial left", err=True)
            ctx.exit(128 + signal.SIGINT)
        except Interrupted as err:
            click.echo(f"{err}: child processes stopped, nothing partial left", err=True)
            ctx.exit(128 + err.signum)
        except Exception:
            traceback.print_exc()
            click.echo(f"bmtk-scaling: internal error: {BUG_NOTE}", err=True)
            ctx.exit(1)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@click.group(cls=CommandGroup)
@click.version_option(package_name="bmtk-scaling")
def main() -> None:
    """Benchmark networks, rank partitions and engine switches for BMTK's bionet."""
    for signum in (signal.SIGTERM, signal.SIGHUP):  # cleanup runs as for Ctrl-C: children stopped, temp removed
        signal.signal(signum, _raise_interrupted)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("  %(message)s"))
    for name in ("network_builders", "bmtk_scaling"):  # our progress lines only, not bmtk's
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not logger.handlers:
            logger.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
