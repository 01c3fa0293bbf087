"""Jobs: the queue with live progress, the current stage's ETA, who runs what, results,
errors, cancel and delete (your own jobs; anyone's with the instructor token).

Only queued and running jobs are redrawn every 2 s; finished ones are drawn on a full rerun
(newest first, a page at a time, curves on request). A workshop's server draws this page for
every attendee every 2 s, and redrawing 90 finished cards with their plotly curves each time
took most of the CPU the jobs themselves needed."""

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
    elif job.curves and st.toggle("Training curves", key=f"show_curves_{job.id}"):
        # finished: drawn on request (a plotly figure per card made every render slow)
        curves_chart(job)


ACTIVE, FINISHED = ("queued", "running"), ("done", "failed", "cancelled")
PAGE = 20  # finished jobs drawn per "show more"


@st.fragment(run_every=2)
def live() -> None:
    """Queued and running jobs, redrawn every 2 s. When that set changes (one finished or
    was cancelled, a new one came), the whole page reruns once, so that Finished and the
    "no jobs" note below are current too."""
    if st.session_state.get("job_action_error"):
        show_error(st.session_state.pop("job_action_error"))
    jobs = store.list_jobs(limit=100, statuses=ACTIVE, owner=owner)
    ids = {j.id for j in jobs}
    changed = ids != set(st.session_state.get("jobs_live_ids", ()))
    st.session_state["jobs_live_ids"] = sorted(ids)
    if changed and not st.session_state.pop("jobs_full_run", False):
        st.rerun()  # a fragment-only run: redraw the finished list too
    st.session_state.pop("jobs_full_run", None)
    workers = worker_names()
    if workers:
        busy = {j.worker_id: j.id for j in store.list_jobs(statuses=("running",),
                                                          refresh_first=False)}
        st.caption(f"{len(workers)} worker{'s' * (len(workers) != 1)}: " + "; ".join(
            f"{name} runs job {busy[w]}" if w in busy else f"{name} idle"
            for w, name in workers.items()))
    if jobs:
        st.subheader("Queued and running")
    for job in jobs:
        with st.container(border=True):
            job_card(job, workers)


def finished() -> int:
    """The newest finished jobs, PAGE more per click; returns how many there are in view."""
    shown = st.session_state.get("jobs_shown", PAGE)
    jobs = store.list_jobs(limit=shown + 1, statuses=FINISHED, owner=owner,
                           refresh_first=False)
    if not jobs:
        return 0
    st.subheader("Finished")
    workers = worker_names()
    for job in jobs[:shown]:
        with st.container(border=True):
            job_card(job, workers)
    if len(jobs) > shown:
        st.button(f"Show {PAGE} more", key="jobs_more",
                  on_click=lambda: st.session_state.update(jobs_shown=shown + PAGE))
    return len(jobs)


st.session_state["jobs_full_run"] = True  # live() runs as part of this run, not alone
live()
n_finished = finished() if show_finished else 0
if not st.session_state.get("jobs_live_ids") and not n_finished:
    st.info(("No queued or running jobs" if not show_finished else "No jobs yet")
            + (" of yours (switch on everyone's runs to see the others')" if owner else "")
            + ". Start one from the Models or Compress page, or with "
              "`python -m engine submit`.")
