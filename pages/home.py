"""Home: what the lab is, the teacher's state, and what to do first."""

import streamlit as st

from engine.worker import job_device
from pages.ui import stage_eta_text
from storage import jobs as store

st.title("Compression Lab")
st.markdown(
    "Explore the trade-offs of compressing BERT-family models: **prune**, **quantize** or "
    "**distill** a checkpoint with background jobs, then compare accuracy, latency and size, "
    "and look inside the attention heads. Every speedup is measured *paired*: the compressed "
    "model and its parent are timed in the same process, interleaved.")



def teacher_status() -> None:
    """Live while the teacher is being built (redrawn every 2 s); one line once it is ready."""
    teacher = store.find_model("default")
    pending = store.pending_alias_job("default")
    if teacher is not None:
        job = store.get_job(teacher.job_id) if teacher.job_id else None
        acc = job.metrics.accuracy if job is not None and job.metrics is not None else None
        st.success(f"The default teacher is ready: MiniLM-L6 fine-tuned on Rotten Tomatoes, "
                   f"{teacher.params or 0:,} parameters, {teacher.size_mb or 0:.1f} MB"
                   + (f", **{acc:.1%}** test accuracy." if acc is not None else "."),
                   icon=":material/check_circle:")
    elif pending is not None:
        job = store.get_job(pending)
        st.info(f"The default teacher is being prepared by job {job.id} ({job.status}): "
                f"{job.message}. It takes 5 to 7 minutes on 2 CPU cores (more where "
                f"the CPU has no bf16).",
                icon=":material/hourglass_top:")
        eta_text = stage_eta_text(job)
        st.progress(job.progress, text=f"{job.progress:.0%}" + (f" · {eta_text}" if eta_text
                                                                else ""))
        st.caption("Meanwhile: look at the base encoder on the Models and Attention pages, and "
                   "queue jobs on `default` from Compress: they start when the teacher is "
                   "ready.")
    else:
        st.warning("No default teacher yet. It is queued when the dashboard starts, or run "
                   "`python -m engine submit finetune --model minilm-l6`.")


# Polled only while there is something to watch: an idle Home tab in each of a workshop's
# browsers would otherwise query the queue every 2 s for nothing.
watching = store.find_model("default") is None and store.pending_alias_job("default")
st.fragment(teacher_status, run_every=2 if watching else None)()

device = job_device()
st.caption(f"Worker: {'running on ' + device if device else 'not running (starting)'}.")

st.subheader("What to do first")
st.markdown(
    "1. **Models**: pick a checkpoint and a dataset and look at their cards.\n"
    "2. **Compress**: quantize, prune or distill it; every job carries your name (sidebar).\n"
    "3. **Jobs**: watch the queue; each job shows live progress, elapsed time and the time "
    "left in its current stage.\n"
    "4. **Results**: compare accuracy against latency; the runs nothing beats on both form "
    "the frontier (in colour), the others are grey.\n\n"
    "From a terminal: `python -m engine submit evaluate --model default --wait`.")
counts = store.count_jobs()
cols = st.columns(4)
for col, status in zip(cols, ("queued", "running", "done", "failed")):
    col.metric(status.capitalize(), counts.get(status, 0))
