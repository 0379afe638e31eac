"""The Celery app of the checkpoint workers: `dagster-celery worker start -A lineage_dagster.celery_app`.

dagster-celery's own task, on a broker, backend and settings read from the environment like every
other setting, so a worker and the code location configured alike agree without a config file. The
worker loads the code location and the data path before it starts its pool processes, which then
share them instead of each importing them for its first step.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

# Loaded once in the worker, shared by its pool processes.
import lineage_dagster.definitions
import lineage_dagster.ingest.subtask  # noqa: F401
from lineage_dagster.executors import celery_config_source
from lineage_dagster.resources.secrets import resolved
from lineage_dagster.settings import SettingsError, load_resources

_execution = load_resources().execution
if _execution.executor != "celery" or _execution.celery_broker_url is None:
    # Its steps would hand their outputs over where the other workers cannot find them.
    raise SettingsError("a Celery worker needs CHECKPOINT_EXECUTOR=celery and CELERY_BROKER_URL, as the code location has")
app = make_app(
    CeleryExecutor.for_cli(
        broker=resolved(_execution.celery_broker_url),
        backend=_execution.celery_results_url,
        config_source=celery_config_source(_execution),
    ).app_args()
)
execute_plan = create_task(app)
