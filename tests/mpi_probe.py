"""Test-only run script: run_bionet.py, then record what NEURON says about this rank.

    mpiexec -n N python mpi_probe.py CONFIG OUT_DIR N_GIDS

Writes OUT_DIR/rank<r>.json: {"rank", "nhost", "gids"} where gids are the ones ``pc.gid_exists``
reports on this rank, asked after the run, from NEURON itself rather than from bmtk's bookkeeping.
"""

import json
import sys
from pathlib import Path

from bmtk_scaling.run.rank_main import main

if __name__ == "__main__":
    config, out_dir, n_gids = sys.argv[1], Path(sys.argv[2]).absolute(), int(sys.argv[3])
    rc = main([config])
    from neuron import h

    pc = h.ParallelContext()
    rank = int(pc.id())
    gids = [gid for gid in range(n_gids) if pc.gid_exists(gid)]
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "nhost": int(pc.nhost()), "gids": gids}))
    sys.exit(rc)
