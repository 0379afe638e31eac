"""Named crash points on the checkpoint path, armed only by `LINEAGE_FAULT` (tests and the soak).

Points, in order: after_plan, during_write (subtask 0 wrote its files; the others not, unless
the executor runs them at the same time), after_data (all data written, no commit log yet),
after_log (logs written, no marker), after_marker (committed, Dagster not told). A fault fires in
whichever process runs the step: the run's own, a multiprocess step's or a Celery worker's.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from lineage_dagster.settings import fault_injection

log = logging.getLogger(__name__)


def reach(point: str) -> None:
    fault = fault_injection()
    if fault is None or fault.point != point:
        return
    if fault.once_file:
        try:
            with Path(fault.once_file).open("x") as once:
                once.write(str(os.getpid()))  # which process the fault fired in, for the test
        except FileExistsError:
            return
    if fault.action == "kill":
        log.warning("fault injection: kill -9 at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
    log.warning("fault injection: sleeping %.1fs at %s", fault.seconds, point)
    time.sleep(fault.seconds)
