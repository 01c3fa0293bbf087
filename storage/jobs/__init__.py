"""The job store, by noun: `from storage import jobs as store` gives every verb.

    queue      enqueue, claim (fair share), report_progress, add_curve_points, finish,
               complete, fail, mark_cancelled, request_cancel, reap_stale, owner_usage
    guard      the compare-and-set on a claim (status running AND the same attempts)
    results    save_results, predictions, latest_metrics_for
    catalogue  register_model, find_model, list_models, release_alias
    workers    register_worker, worker_heartbeat, worker_stopped, alive_workers, worker_names
    reading    get_job, list_jobs (both refresh first: reap, answer waiters), count_jobs...
    reuse      find_identical, answer_waiters (identical work answered from one run)
    views      job_as_dict (the `show --json` contract)
    delete     dependents, delete_job
Where a job's files go is storage.artifacts.job_dir.
"""

from storage.jobs.catalogue import find_model, list_models, register_model, release_alias
from storage.jobs.delete import delete_job, dependents
from storage.jobs.errors import JobNotFound, QueueFull, StaleClaim
from storage.jobs.queue import (
    FAIR_SHARE_WINDOW_S,
    add_curve_points,
    claim,
    complete,
    count_queued,
    enqueue,
    fail,
    finish,
    mark_cancelled,
    owner_usage,
    reap_stale,
    report_progress,
    request_cancel,
)
from storage.jobs.reading import (
    count_jobs,
    get_job,
    head_score_jobs,
    list_jobs,
    load_job,
    pending_alias_job,
    refresh,
)
from storage.jobs.results import latest_metrics_for, predictions, save_results
from storage.jobs.reuse import answer_waiters, find_identical
from storage.jobs.views import job_as_dict
from storage.jobs.workers import (
    alive_workers,
    register_worker,
    worker_heartbeat,
    worker_names,
    worker_stopped,
)

__all__ = [
    "FAIR_SHARE_WINDOW_S", "JobNotFound", "QueueFull", "StaleClaim", "add_curve_points",
    "alive_workers",
    "answer_waiters", "claim", "complete", "count_jobs", "count_queued", "delete_job",
    "dependents", "enqueue", "fail", "find_identical", "find_model", "finish", "get_job",
    "head_score_jobs", "job_as_dict", "latest_metrics_for", "list_jobs", "list_models",
    "load_job", "mark_cancelled", "owner_usage", "pending_alias_job", "predictions",
    "reap_stale", "refresh", "register_model", "register_worker", "release_alias",
    "report_progress",
    "request_cancel", "save_results", "worker_heartbeat", "worker_names", "worker_stopped",
]
