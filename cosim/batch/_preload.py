"""Imported once by the job fork server (Dask workers): loads every discoverable job kind (and
with them numpy, scipy, pandas) and the parent's main script, so that each forked job process
starts with them already imported instead of importing them again."""

import multiprocessing.spawn
import os

from cosim.batch.jobs import discover_job_kinds

discover_job_kinds()
_main_path = os.environ.get("COSIM_BATCH_MAIN_PATH")
if _main_path and os.path.isfile(_main_path):
    multiprocessing.spawn.import_main_path(_main_path)
