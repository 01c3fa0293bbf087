"""Compress: pick a method and an input model, fill the generated form, launch a job."""

import streamlit as st

from engine.methods.registry import methods
from engine.submit import build_config, submit
from engine.toolkit.config import LabError
from engine.worker import job_device
from pages.forms import config_form
from pages.ui import DATASETS, show_error
from storage import jobs as store

st.title("Compress")
specs = methods()
names = [n for n in specs if n not in ("evaluate",)]
preferred = [n for n in ("quantize", "prune", "distill") if n in names]
method = st.segmented_control("Method", names, default=(preferred or names)[0], key="method")
if method is None:
    st.stop()
spec = specs[method]
st.caption(spec.summary)

models = ["default"] + [m.name for m in store.list_models() if m.name.startswith("job:")]
left, right = st.columns(2)
current = st.session_state.get("model")
model_id = left.selectbox("Input model", models, key="compress_model",
                          index=models.index(current) if current in models else 0,
                          help="default is the embedded teacher; job:N chains on a job's output")
dataset_id = right.selectbox("Dataset", DATASETS, key="compress_dataset")

values = config_form(method, spec.config.fields_info())
device = job_device()
problem = None
try:
    cfg = build_config(method, values=values)
    if spec.availability is not None and device is not None:
        problem = spec.availability(cfg, device)
except LabError as exc:
    cfg, problem = None, str(exc)
if problem:
    st.warning(problem, icon=":material/block:")
if st.button(f"Launch {method}", type="primary", key="launch", disabled=bool(problem)):
    try:
        job_id = submit(method, model=model_id, dataset=dataset_id, values=values, device=device)
        st.success(f"Queued job {job_id}; follow it on the Jobs page.")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)

st.subheader(f"Recent {method} runs")
jobs = store.list_jobs(limit=10, statuses=("done",), method=method)
if not jobs:
    st.info(f"No {method} run has finished yet.")
for job in jobs:
    m = store.job_as_dict(job)["metrics"]
    with st.container(border=True):
        st.markdown(f"**Job {job.id}**: `{job.output_model}` from `{job.model}` · "
                    + ", ".join(f"{k}={v}" for k, v in job.config.get("data", {}).items()))
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Accuracy", f"{m.get('accuracy', 0):.1%}",
                  delta=f"{100 * m['accuracy_delta_vs_parent']:+.1f} pts"
                  if m.get("accuracy_delta_vs_parent") is not None else None)
        c2.metric("Speedup (batch 32)", f"{m['speedup_vs_parent'].get('32', 0):.2f}x"
                  if m.get("speedup_vs_parent") else "-")
        c3.metric("Speedup (batch 1)", f"{m['speedup_vs_parent'].get('1', 0):.2f}x"
                  if m.get("speedup_vs_parent") else "-")
        c4.metric("Smaller by", f"{m['size_ratio_vs_parent']:.2f}x"
                  if m.get("size_ratio_vs_parent") else "-")
        if m.get("explanation"):
            st.markdown(m["explanation"])
        if m.get("speed_summary"):
            st.caption(m["speed_summary"])
        if m.get("why_not_faster"):
            st.info(m["why_not_faster"], icon=":material/speed:")
