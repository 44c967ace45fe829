"""Job process entry point for workers that may not fork: ``python -m cosim.batch.child
REQUEST REPLY`` unpickles (job, modules) from REQUEST, runs the job and pickles
(status, payload) to REPLY (written atomically)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from cosim.batch.runner import execute_job


def main(request: Path, reply: Path) -> None:
    """Run the job described in ``request``; write the outcome to ``reply``."""
    job, modules = pickle.loads(request.read_bytes())
    outcome = execute_job(job, modules)
    tmp = reply.with_name(reply.name + ".tmp")
    tmp.write_bytes(pickle.dumps(outcome))
    os.replace(tmp, reply)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
