"""One lesson on the Learn page: the intro, "run it" (only the jobs this machine lacks), the
jobs still on their way, the chart and the takeaways computed from the runs."""

from typing import Any

import streamlit as st

from engine.reports import figures
from engine.reports import lessons as L
from engine.reports.lessons import charts
from engine.worker import job_device
from pages.learn_parts.runs import everything
from pages.ui import show_error, submit_job


def run_it(lesson: L.Lesson, runs: list[dict[str, Any]]) -> bool:
    """The button: queue the lesson's steps that no run of this machine answers yet, through
    the Compress page's path (this session's owner, reuse, the queue cap). True if it queued."""
    todo = L.missing(lesson, runs)
    label = f"Run it ({len(todo)} job{'s' * (len(todo) != 1)})" if todo else "Run it"
    if not st.button(label, key=f"learn_run_{lesson.key}", type="primary" if todo else
                     "secondary", help="Queues the jobs this lesson needs that this machine "
                     "has not run (or queued) yet: " + "; ".join(s.label for s in lesson.steps)):
        return False
    if not todo:
        st.info("Every job of this lesson is already queued or done on this machine.")
        return False
    queued: dict[str, int] = {}
    try:
        for step in todo:
            queued[step.key] = submit_job(step.method, model=L.input_model(step, runs, queued),
                                          dataset=step.dataset, values=step.values,
                                          device=job_device())
    except Exception as exc:  # noqa: BLE001 (shown to the user)
        show_error(exc)
    if queued:
        st.success(f"Queued job{'s' * (len(queued) > 1)} "
                   f"{', '.join(str(j) for j in queued.values())}; follow them on the Jobs "
                   f"page. The chart fills in as they finish.")
    return bool(queued)


def chart(fig, lesson: L.Lesson) -> None:
    st.plotly_chart(fig, key=f"learn_chart_{lesson.key}", config=figures.PLOTLY_CONFIG)


def takeaways(lines: list[str]) -> None:
    if lines:
        st.markdown("**What the runs say**\n\n" + "\n".join(f"- {t}" for t in lines))


def budget(rows, found, origin: str | None, lesson: L.Lesson, batch: int) -> None:
    """Lesson 4's slider: the latency budget, and the model to ship for it."""
    lo, hi = float(rows["latency_ms"].min()), float(rows["latency_ms"].max())
    lo, hi = round(lo * 0.8, 1), round(hi * 1.2, 1) + 0.1
    key = f"learn_budget_{batch}"
    if not lo <= st.session_state.get(key, lo) <= hi:  # the runs changed under the slider
        st.session_state.pop(key)
    limit = st.slider("Latency budget (ms)", lo, hi, value=round((lo + hi) / 2, 1), step=0.1,
                      key=key, help="Per call at this batch size; the lesson picks the most "
                      "accurate model within it.")
    choice = L.pick(rows, limit)
    chart(charts.lesson_budget_figure(rows, L.frontier_mask(rows), limit, choice, batch), lesson)
    takeaways(L.frontier_takeaways(rows, limit, batch, found, origin))


def show(lesson: L.Lesson, runs: list[dict[str, Any]], origin: str | None) -> None:
    st.markdown(lesson.intro)
    if run_it(lesson, runs):
        runs = everything()
    group = L.by_origin(runs).get(origin, [])
    found = L.match(lesson, group)
    waiting = L.pending(found)
    if waiting:
        st.caption("Waiting for " + ", ".join(
            f"job {r['id']} ({r['status']}, {r.get('progress') or 0:.0%})" for r in waiting)
            + ". See the Jobs page.")
    if lesson.key == "frontier":
        sizes = L.frontier_batches(group)
        if st.session_state.get("learn_batch") not in sizes:  # another source's batch sizes
            st.session_state.pop("learn_batch", None)
        batch = st.selectbox("Batch size", sizes, key="learn_batch") if sizes else None
        rows = L.frontier_rows(group, batch) if batch is not None else None
        if rows is None or not len(rows):
            st.info(lesson.empty)
            return
        budget(rows, found, origin, lesson, batch)
        return
    shown = results(lesson, found, origin)
    if shown is None:
        st.info(lesson.empty)
        return
    chart(shown[0], lesson)
    takeaways(shown[1])


def results(lesson: L.Lesson, found, origin: str | None):
    """(figure, takeaways) of lessons 1, 2, 3 and 5, or None while no run has finished."""
    if lesson.key in ("quantize", "prune"):
        rows = L.speedup_rows(found, lesson, compile_alone=lesson.key == "quantize")
        lines = (L.quantize_takeaways if lesson.key == "quantize" else L.prune_takeaways)(
            found, origin)
        return (charts.lesson_speedups_figure(rows), lines) if len(rows) else None
    if lesson.key == "distill":
        rows = L.depth_rows(found, lesson)
        return (charts.lesson_depth_figure(rows), L.distill_takeaways(found, origin)) \
            if len(rows) else None
    rows = L.sweep_rows(L.done(found, "sweep"))
    return (charts.lesson_seqlen_figure(rows), L.seqlen_takeaways(rows, origin)) \
        if len(rows) else None
