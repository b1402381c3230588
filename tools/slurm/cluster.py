#!/usr/bin/env python3
"""A throw-away SLURM cluster on one machine, for the tests and for trying the ``--slurm`` scripts.

    tools/slurm/start-cluster [DIR]        # prints 'export SLURM_CONF=...' lines: eval "$(...)"
    tools/slurm/stop-cluster DIR [--remove]

``start`` runs munged, slurmctld and two slurmd "nodes" (n1, n2, each with its own port on 127.0.0.1) from
Debian's ``slurm-wlm`` and ``munge`` packages, installing them with apt-get when they are missing (as root).
Everything lives under DIR (a new folder in /tmp when none is given): keys, sockets, state, spool, logs,
``slurm.conf`` and ``pids.json``, which records every daemon's PID the moment it starts. ``stop`` cancels
the jobs, waits for the queue to empty, then stops exactly the recorded PIDs (slurmd and slurmctld
together, then munged); it never looks processes up by name.

Exit status: 0 done, 3 SLURM cannot be installed here (the tests skip, naming the reason), 1 anything else.
This file is not part of the installed package; it needs only Python's standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODES = ("n1", "n2")
DAEMONS = ("slurmctld", "slurmd", "munged", "mungekey")
CLIENTS = ("sbatch", "srun", "salloc", "squeue", "sinfo", "scancel", "scontrol", "munge")
UNAVAILABLE = 3
READY_TIMEOUT_S = 30.0


class ClusterError(Exception):
    """The cluster could not start or stop; the message says what to look at."""


class Unavailable(ClusterError):
    """SLURM is not installed and cannot be installed on this machine."""


# -- packages ------------------------------------------------------------------------------------------------

def _missing() -> list[str]:
    return [p for p in (*DAEMONS, *CLIENTS) if shutil.which(p, path=_sbin_path()) is None]


def _sbin_path() -> str:
    extra = [d for d in ("/usr/sbin", "/sbin", "/usr/local/sbin") if d not in os.environ.get("PATH", "").split(":")]
    return ":".join([os.environ.get("PATH", ""), *extra])


def ensure_packages() -> None:
    """Install Debian's slurm-wlm and munge when a program is missing; raise Unavailable where that cannot be."""
    missing = _missing()
    if not missing:
        return
    apt = shutil.which("apt-get", path=_sbin_path())
    if apt is None:
        raise Unavailable(f"SLURM programs missing ({', '.join(missing)}) and no apt-get to install slurm-wlm munge")
    if os.geteuid() != 0:
        raise Unavailable(f"SLURM programs missing ({', '.join(missing)}); installing slurm-wlm munge needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "slurm-wlm", "munge"]
    log = ""
    for attempt in ("install", "update"):
        if attempt == "update":  # a fresh image may have no package lists yet
            proc = subprocess.run([apt, "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
            log += proc.stdout[-1500:] + proc.stderr[-1500:]
        proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        log += proc.stdout[-1500:] + proc.stderr[-1500:]
        if proc.returncode == 0 and not _missing():
            return
    raise Unavailable(f"apt-get could not install slurm-wlm munge (still missing: {', '.join(_missing())}):\n"
                      + log[-3000:])


def _prog(name: str) -> str:
    found = shutil.which(name, path=_sbin_path())
    if found is None:
        raise ClusterError(f"{name} not found after installing slurm-wlm munge")
    return found


# -- start ---------------------------------------------------------------------------------------------------

def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _check_reachable(folder: Path) -> None:
    """munged refuses a socket whose folder, or any folder above it, others cannot enter."""
    for d in [folder, *folder.parents]:
        if not d.stat().st_mode & stat.S_IXOTH:
            raise ClusterError(f"{d} is not searchable by others (mode {stat.S_IMODE(d.stat().st_mode):o}); munged "
                               "refuses its socket there: use a folder under /tmp, or chmod o+x the folders above it")


def slurm_conf(root: Path, ports: list[int], cpus: int, mpi_default: str, gpus: int = 0) -> str:
    host = socket.gethostname().split(".")[0]
    lines = [
        "ClusterName=bmtkscaling",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={root / 'munge' / 'socket'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", f"MpiDefault={mpi_default}", "SwitchType=switch/none",
        "ReturnToService=2", "SlurmdParameters=config_overrides", "MailProg=/bin/true",
        "KillWait=5", "InactiveLimit=0", "MinJobAge=600",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool' / '%n'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd-%n.log'}",
        *(["GresTypes=gpu"] if gpus else []),
        *(f"NodeName={n} NodeAddr=127.0.0.1 Port={p} CPUs={cpus} RealMemory=1000 State=UNKNOWN"
          + (f" Gres=gpu:{gpus}" if gpus else "") for n, p in zip(NODES, ports[1:], strict=True)),
        f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


def _fake_gpus(root: Path, gpus: int) -> None:
    """``gpus`` stand-in devices per node (character devices like /dev/null) in a gres.conf beside slurm.conf:
    SLURM then schedules GPUs and sets CUDA_VISIBLE_DEVICES per step and task as on a GPU cluster."""
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    for i in range(gpus):
        if not (dev / f"nvidia{i}").exists():
            os.mknod(dev / f"nvidia{i}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "gres.conf").write_text(f"Name=gpu File={dev}/nvidia[0-{gpus - 1}]\n" if gpus > 1 else
                                    f"Name=gpu File={dev}/nvidia0\n")


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


class _Starter:
    def __init__(self, root: Path):
        self.root = root
        self.pids: dict[str, int] = {}
        self.programs: dict[str, str] = {}
        self.logs: dict[str, Path] = {}

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = self.root / "log" / f"{name}.out"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    cwd=self.root, start_new_session=True)
        self.pids[name] = proc.pid
        self.programs[name] = Path(cmd[0]).name
        self.logs[name] = log
        _write_json(self.root / "pids.json", {"pids": self.pids, "programs": self.programs})

    def dead(self) -> list[str]:
        out = []
        for name, pid in self.pids.items():
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                out.append(name)
        return out

    def fail(self, what: str) -> ClusterError:
        parts = [what]
        for name in self.dead():
            parts.append(f"{name} exited; its output ({self.logs[name]}):\n{_tail(self.logs[name])}")
        for log in sorted((self.root / "log").glob("*.log")):
            parts.append(f"{log.name}:\n{_tail(log, 8)}")
        return ClusterError("\n".join(parts))


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def start(root: Path | None = None, cpus: int | None = None, mpi_default: str = "none",
          timeout: float = READY_TIMEOUT_S, gpus: int = 0) -> Path:
    """Start the cluster under ``root`` (created when missing) and return it once both nodes are idle."""
    ensure_packages()
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    root = Path(root).absolute()
    _check_reachable(next(d for d in root.parents if d.exists()))  # before anything is created
    if (root / "pids.json").exists():
        raise ClusterError(f"{root} already holds a cluster (pids.json): stop it first, or give another folder")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    _check_reachable(root)
    sock = root / "munge" / "socket"
    if len(str(sock)) > 100:
        raise ClusterError(f"{root} is too long a path for munge's socket ({len(str(sock))} > 100 characters)")
    for sub in ("munge", "state", "run", "log", *(f"spool/{n}" for n in NODES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub).chmod(0o755)
    (root / "spool").chmod(0o755)
    key = root / "munge" / "munge.key"
    proc = subprocess.run([_prog("mungekey"), "-c", "-f", "-k", str(key)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"mungekey failed: {proc.stderr.strip()}")
    key.chmod(0o600)
    ports = _free_ports(1 + len(NODES))
    conf = root / "slurm.conf"
    if gpus:
        try:
            _fake_gpus(root, gpus)
        except OSError as exc:
            raise ClusterError(f"cannot make stand-in GPU devices in {root / 'dev'} ({exc}); start without --gpus") \
                from None
    conf.write_text(slurm_conf(root, ports, cpus or os.cpu_count() or 1, mpi_default, gpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    starter = _Starter(root)
    starter.spawn("munged", [_prog("munged"), "-F", "-f", f"--socket={sock}", f"--key-file={key}",
                             f"--pid-file={root / 'munge' / 'munged.pid'}", f"--seed-file={root / 'munge' / 'seed'}",
                             f"--log-file={root / 'log' / 'munged.log'}"], env)
    try:
        _wait(lambda: _munge_works(sock), starter, timeout, "munged did not answer on its socket")
        starter.spawn("slurmctld", [_prog("slurmctld"), "-D", "-i", "-f", str(conf)], env)
        for node in NODES:
            starter.spawn(f"slurmd-{node}", [_prog("slurmd"), "-D", "-N", node, "-f", str(conf)], env)
        _wait(lambda: _idle_nodes(env) >= set(NODES), starter, timeout, f"nodes {', '.join(NODES)} did not come up")
    except BaseException:
        stop(root)
        raise
    (root / "env.sh").write_text(f"export SLURM_CONF={conf}\n")
    return root


def _wait(ready, starter: _Starter, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if starter.dead():
            raise starter.fail(what)
        if ready():
            return
        if time.monotonic() > deadline:
            raise starter.fail(f"{what} within {timeout:g} s")
        time.sleep(0.2)


def _munge_works(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        cred = subprocess.run([_prog("munge"), "-n", f"--socket={sock}"], capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return cred.returncode == 0


def _idle_nodes(env: dict[str, str]) -> set[str]:
    try:
        proc = subprocess.run([_prog("sinfo"), "-h", "-N", "-t", "idle", "-o", "%N"], env=env, capture_output=True,
                              text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return set()
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


# -- stop ----------------------------------------------------------------------------------------------------

def _alive(pid: int, program: str) -> bool:
    """Whether ``pid`` is still the daemon we started (not a later process that reused the number)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return Path(argv0).name == program and state != "Z"


def _terminate(pids: dict[str, int], programs: dict[str, str], timeout: float = 15.0) -> list[str]:
    live = {n: p for n, p in pids.items() if _alive(p, programs[n])}
    for pid in live.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        time.sleep(0.1)
        live = {n: p for n, p in live.items() if _alive(p, programs[n])}
    for pid in live.values():
        os.kill(pid, signal.SIGKILL)
    return sorted(live)


def stop(root: Path, remove: bool = False, timeout: float = 60.0) -> list[str]:
    """Cancel every job, wait for the queue to empty, stop the recorded daemons; return what needed SIGKILL."""
    root = Path(root).absolute()
    record = root / "pids.json"
    if not record.is_file():
        raise ClusterError(f"{record} not found: {root} holds no cluster started by start-cluster")
    data = json.loads(record.read_text())
    pids, programs = data["pids"], data["programs"]
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    notes = []
    if "slurmctld" in pids and _alive(pids["slurmctld"], programs["slurmctld"]):
        notes += _drain(env, timeout)
    slurm = {n: p for n, p in pids.items() if n != "munged"}
    killed = _terminate(slurm, programs)
    killed += _terminate({n: p for n, p in pids.items() if n == "munged"}, programs)
    record.rename(root / "pids.stopped.json")
    if remove:
        notes += _remove_created(root)
    return notes + [f"{name} needed SIGKILL" for name in killed]


# What start() writes under its folder: --remove deletes these and nothing else, so a folder that also holds
# someone's own files (start-cluster was given an existing folder) keeps them.
CREATED = ("munge", "state", "run", "log", "spool", "dev", "slurm.conf", "gres.conf", "env.sh", "pids.stopped.json")


def _remove_created(root: Path) -> list[str]:
    for name in CREATED:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    try:
        root.rmdir()
    except OSError:
        return [f"{root} kept: it holds files start-cluster did not write"]
    return []


def _drain(env: dict[str, str], timeout: float) -> list[str]:
    def queue() -> list[str] | None:
        try:
            proc = subprocess.run([_prog("squeue"), "-h", "-o", "%A"], env=env, capture_output=True, text=True,
                                  timeout=10)
        except subprocess.TimeoutExpired:
            return None
        return proc.stdout.split() if proc.returncode == 0 else None

    jobs = queue()
    if not jobs:
        return [] if jobs is not None else ["squeue did not answer: daemons stopped without draining the queue"]
    subprocess.run([_prog("scancel"), *jobs], env=env, capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not queue():
            return []
        time.sleep(0.5)
    return [f"jobs still queued after {timeout:g} s: {' '.join(queue() or [])}"]


# -- command line --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start munged, slurmctld and two slurmd nodes; print the environment to use")
    p.add_argument("dir", nargs="?", type=Path, help="folder for everything (default: a new one in /tmp)")
    p.add_argument("--cpus", type=int, help="CPUs each node declares (default: this machine's)")
    p.add_argument("--mpi-default", default="none", help="slurm.conf MpiDefault (default none, as SLURM's own)")
    p.add_argument("--timeout", type=float, default=READY_TIMEOUT_S, help="seconds to wait for the nodes")
    p.add_argument("--gpus", type=int, default=0, help="stand-in GPUs per node (no real device: to check how SLURM "
                   "hands GPUs to ranks)")
    q = sub.add_parser("stop", help="cancel the jobs, then stop the daemons recorded in DIR/pids.json")
    q.add_argument("dir", type=Path)
    q.add_argument("--remove", action="store_true", help="delete what start-cluster wrote in DIR, and DIR once empty")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            t0 = time.monotonic()
            root = start(args.dir, args.cpus, args.mpi_default, args.timeout, args.gpus)
            print(f"export SLURM_CONF={root / 'slurm.conf'}")
            print(f"# cluster up in {time.monotonic() - t0:.1f} s: nodes {', '.join(NODES)}; stop with "
                  f"tools/slurm/stop-cluster {root}")
        else:
            for note in stop(args.dir, args.remove):
                print(note, file=sys.stderr)
    except Unavailable as exc:
        print(f"SLURM unavailable: {exc}", file=sys.stderr)
        return UNAVAILABLE
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
