"""Jobs: the queue with live progress, elapsed time, ETA, messages, errors and cancel."""

import streamlit as st

from engine.reports import figures
from engine.submit import delete_run
from engine.toolkit.config import LabError
from pages.ui import elapsed, eta, fmt_seconds, show_error
from storage import jobs as store

st.title("Jobs")
show_finished = st.toggle("Show finished jobs", value=True, key="show_finished")


def delete(job_id: int) -> None:
    """Delete a finished run (rows and artifacts); explain when it cannot be deleted."""
    try:
        delete_run(job_id)
        st.toast(f"Deleted job {job_id}.")
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        st.session_state["delete_error"] = str(exc)


def curves_chart(job) -> None:
    """Loss (left axis) and accuracies (right axis; the teacher's as a flat reference) by step."""
    fig = figures.curves_figure(job.curves)
    st.plotly_chart(fig, key=f"curves_{job.id}")


@st.fragment(run_every=2)
def queue() -> None:
    if st.session_state.get("delete_error"):
        show_error(LabError(st.session_state.pop("delete_error")))
    statuses = None if show_finished else ("queued", "running")
    jobs = store.list_jobs(limit=100, statuses=statuses)
    if not jobs:
        st.info("No jobs yet. Start one from the Models page or with `python -m engine submit`.")
        return
    for job in jobs:
        with st.container(border=True):
            head, action = st.columns([5, 1])
            head.markdown(f"**Job {job.id}** · `{job.method}` · {job.model} on {job.dataset} · "
                          f"**{job.status}**" + (f" → `{job.output_model}`"
                                                 if job.output_model else ""))
            if job.status in ("queued", "running"):
                action.button("Cancel", key=f"cancel_{job.id}", disabled=job.cancel_requested,
                              on_click=store.request_cancel, args=(job.id,))
                spent = elapsed(job.started_at)
                st.progress(job.progress,
                            text=f"{job.progress:.0%} · {job.message} · elapsed "
                                 f"{fmt_seconds(spent)} · ETA {fmt_seconds(eta(job))}")
            elif job.status == "failed":
                first = (job.error or "").strip().splitlines()[0] if job.error else job.message
                st.error(first)
                if job.error and "\n" in job.error.strip():
                    with st.expander("Details"):
                        st.code(job.error, language=None)
            else:
                st.caption(f"{job.message} · took "
                           f"{fmt_seconds(elapsed(job.started_at, job.finished_at))}")
            if job.status in ("done", "failed", "cancelled"):
                action.button("Delete", key=f"delete_{job.id}", on_click=delete, args=(job.id,),
                              help="Remove this run, its results and its model files")
            if job.curves and job.status == "running":
                curves_chart(job)
            elif job.curves:  # finished: the curves stay one click away
                with st.expander("Training curves"):
                    curves_chart(job)


queue()
