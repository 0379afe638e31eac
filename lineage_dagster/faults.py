"""Named crash points on the checkpoint path, armed only by `LINEAGE_FAULT` (tests and the soak).

Points, in order: after_plan, during_write (subtask 0 wrote; the others not, unless subtask
workers wrote them meanwhile), after_data (all data written, no commit log yet), after_log (logs
written, no marker), after_marker (committed, Dagster not told); and in a `lineage workers`
process, service_subtask (a subtask received, nothing of it written yet).
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
            Path(fault.once_file).touch(exist_ok=False)
        except FileExistsError:
            return
    if fault.action == "kill":
        log.warning("fault injection: kill -9 at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
    log.warning("fault injection: sleeping %.1fs at %s", fault.seconds, point)
    time.sleep(fault.seconds)
