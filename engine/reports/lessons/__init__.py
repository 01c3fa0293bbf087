"""The Learn page's five lessons: the jobs each needs, the stored runs that answer them, and
the takeaways in plain words, computed from those runs (never canned numbers).

Runs are dicts shaped like `storage.jobs.job_as_dict` (done runs from `queries.runs_table`;
queued or running jobs with empty metrics). A run answers a lesson's step when its method,
input model and dataset are the step's, the step's config values are a subset of the run's
stored config (compared as text: stored configs are JSON), and it is not failed or cancelled.

Provenance: a run imported from a pack carries `origin` (where and on what hardware it was
measured). Lessons are matched and summarised one provenance at a time (`by_origin`), so a
ratio measured elsewhere is never multiplied with, or set against, one measured here; "run it"
queues what this machine's own runs lack (`missing`). No torch, no streamlit.

One module per part: catalogue (Step, Lesson, LESSONS, BY_KEY and the shared names), matching
(runs to steps, provenance, what to queue), wording (the small words the takeaways share),
then one module per lesson, named by its key, with its rows and takeaways: quantize, prune,
distill, frontier, seqlen. This package gives their public names, for `L.<name>`.
"""

from engine.reports.lessons.catalogue import (
    BASE,
    BY_KEY,
    INT8,
    LENGTHS,
    LESSONS,
    LIVE,
    RUNTIMES,
    TEACHER,
    Lesson,
    Step,
)
from engine.reports.lessons.distill import depth_rows, distill_takeaways
from engine.reports.lessons.frontier import (
    chain,
    frontier_batches,
    frontier_mask,
    frontier_rows,
    frontier_takeaways,
    pick,
    reference_length,
    teacher_ms,
)
from engine.reports.lessons.matching import (
    answers,
    by_origin,
    config_matches,
    done,
    input_model,
    match,
    missing,
    output_name,
    pending,
    sources,
)
from engine.reports.lessons.prune import prune_takeaways
from engine.reports.lessons.quantize import embedding_share, quantize_takeaways, speedup_rows
from engine.reports.lessons.seqlen import seqlen_takeaways, sweep_rows
from engine.reports.lessons.wording import HERE, where

__all__ = [
    "BASE", "BY_KEY", "HERE", "INT8", "LENGTHS", "LESSONS", "LIVE", "RUNTIMES", "TEACHER",
    "Lesson", "Step",
    "answers", "by_origin", "config_matches", "done", "input_model", "match", "missing",
    "output_name", "pending", "sources", "where",
    "embedding_share", "quantize_takeaways", "speedup_rows",
    "prune_takeaways",
    "depth_rows", "distill_takeaways",
    "chain", "frontier_batches", "frontier_mask", "frontier_rows", "frontier_takeaways", "pick",
    "reference_length", "teacher_ms",
    "seqlen_takeaways", "sweep_rows",
]
