"""Jobs: the queue with live progress, the current stage's ETA, who runs what, results,
errors, cancel and delete (your own jobs; anyone's with the instructor token)."""

import streamlit as st

from engine.reports import figures
from engine.submit import cancel_job, delete_run
from pages.ui import (
    attendee,
    can_change,
    dataset_label,
    elapsed,
    fmt_seconds,
    instructor_token,
    owner_filter,
    plain,
    result_summary,
    show_error,
    stage_eta_text,
)
from storage import jobs as store
from storage import settings
from storage.models import utcnow

st.title("Jobs")
c1, c2 = st.columns(2)
with c1:
    owner = owner_filter("jobs_everyone")
show_finished = c2.toggle("Show finished jobs", value=True, key="show_finished")


def act(verb, job_id: int, done: str) -> None:
    """Cancel or delete as this session (its name; the instructor token if entered)."""
    st.session_state.pop("confirm_delete", None)
    try:
        verb(job_id, owner=attendee(), token=instructor_token())
        st.toast(done)
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        st.session_state["job_action_error"] = exc


def curves_chart(job) -> None:
    """Loss (left axis) and accuracies (right axis; the teacher's as a flat reference) by step."""
    fig = figures.curves_figure(job.curves)
    st.plotly_chart(fig, key=f"curves_{job.id}")


def worker_names() -> dict[int, str]:
    """Live workers by id: their name (e.g. gpu0), else host:pid, with the device."""
    live = store.alive_workers(utcnow(), settings.heartbeat_timeout_s())
    return {w.id: f"{w.name or f'{w.hostname}:{w.pid}'} ({w.device})" for w in live}


def job_card(job, workers: dict[int, str]) -> None:
    d = store.job_as_dict(job)
    head, action = st.columns([5, 1])
    who = f" · by {plain(job.owner)}" if job.owner else ""
    head.markdown(f"**Job {job.id}** · `{job.method}` · {plain(job.model)} on "
                  f"{plain(dataset_label(job.dataset))} · **{job.status}**"
                  + (f" → `{job.output_model}`" if job.output_model else "") + who)
    mine = can_change(job.owner)
    if job.status in ("queued", "running"):
        if mine:
            action.button("Cancel", key=f"cancel_{job.id}", disabled=job.cancel_requested,
                          on_click=act, args=(cancel_job, job.id, f"Cancelling job {job.id}."))
        runner = ""
        if job.status == "running" and job.worker_id is not None:
            runner = f" · on {workers.get(job.worker_id, f'worker {job.worker_id}')}"
        eta_text = stage_eta_text(d)
        st.progress(job.progress,
                    text=f"{job.progress:.0%} · {job.message} · elapsed "
                         f"{fmt_seconds(elapsed(job.started_at))}"
                         + (f" · {eta_text}" if eta_text else "") + runner)
    elif job.status == "failed":
        first = (job.error or "").strip().splitlines()[0] if job.error else job.message
        st.error(first)
        detail = "\n\n".join(t for t in (job.error if job.error and "\n" in job.error.strip()
                                         else None, job.error_detail) if t)
        if detail:
            with st.expander("Details"):
                st.code(detail, language=None)
    else:
        ran_on = f" on worker {job.worker_id}" if job.worker_id is not None else ""
        st.caption(f"{plain(job.message)} · took "
                   f"{fmt_seconds(elapsed(job.started_at, job.finished_at))}{ran_on}")
        if job.status == "done":
            result_summary(d)
    if job.status in ("done", "failed", "cancelled") and mine:
        if st.session_state.get("confirm_delete") == job.id:
            st.warning(f"Delete job {job.id}, its results and its model files? This cannot "
                       f"be undone.", icon=":material/delete:")
            yes, no, _ = st.columns([1, 1, 4])
            yes.button("Yes, delete", key=f"delete_yes_{job.id}", type="primary", on_click=act,
                       args=(delete_run, job.id, f"Deleted job {job.id}."))
            no.button("Keep it", key=f"delete_no_{job.id}",
                      on_click=lambda: st.session_state.pop("confirm_delete", None))
        else:
            action.button("Delete", key=f"delete_{job.id}",
                          on_click=lambda: st.session_state.update(confirm_delete=job.id),
                          help="Remove this run, its results and its model files (asks first)")
    if job.curves and job.status == "running":
        curves_chart(job)
    elif job.curves:  # finished: the curves stay one click away
        with st.expander("Training curves"):
            curves_chart(job)


@st.fragment(run_every=2)
def queue() -> None:
    if st.session_state.get("job_action_error"):
        show_error(st.session_state.pop("job_action_error"))
    statuses = None if show_finished else ("queued", "running")
    jobs = store.list_jobs(limit=100, statuses=statuses, owner=owner)
    workers = worker_names()
    if workers:
        busy = {j.worker_id: j.id for j in store.list_jobs(statuses=("running",))}
        st.caption(f"{len(workers)} worker{'s' * (len(workers) != 1)}: " + "; ".join(
            f"{name} runs job {busy[w]}" if w in busy else f"{name} idle"
            for w, name in workers.items()))
    if not jobs:
        st.info("No jobs yet" + (" of yours (switch on everyone's runs to see the others')"
                                 if owner else "")
                + ". Start one from the Models or Compress page, or with "
                  "`python -m engine submit`.")
        return
    for job in jobs:
        with st.container(border=True):
            job_card(job, workers)


queue()
