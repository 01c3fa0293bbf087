"""Compress: pick a method and an input model, fill the generated form, launch a job."""

import streamlit as st

from engine.methods.registry import methods
from engine.reports.runtimes import fastest_sentence
from engine.submit import build_config
from engine.toolkit.config import LabError
from engine.worker import job_device
from pages.forms import config_form
from pages.ui import (
    dataset_choices,
    dataset_label,
    method_summary,
    plain,
    result_summary,
    show_error,
    submit_job,
    teacher_pending,
)
from storage import jobs as store

st.title("Compress")
specs = methods()
names = [n for n in specs if n not in ("evaluate",)]
preferred = [n for n in ("quantize", "prune", "distill") if n in names]
method = st.segmented_control("Method", names, default=(preferred or names)[0], key="method")
if method is None:
    st.stop()
spec = specs[method]
st.caption(method_summary(spec))

# ------------------------------------------------------------------ what to compress
models = ["default"] + [m.name for m in store.list_models() if m.name.startswith("job:")]
datasets = dataset_choices()
left, right = st.columns(2)
current = st.session_state.get("model")
model_id = left.selectbox("Input model", models, key="compress_model",
                          index=models.index(current) if current in models else 0,
                          help="default is the embedded teacher; job:N chains on a job's output")
current_data = st.session_state.get("dataset")
dataset_id = right.selectbox("Dataset", datasets, key="compress_dataset",
                             index=datasets.index(current_data) if current_data in datasets
                             else 0, format_func=dataset_label,
                             help="An uploaded CSV (Models page) is offered here too.")
building = teacher_pending() if model_id == "default" else None
if building is not None:
    st.info(f"The default teacher is still being built (job {building.id}, "
            f"{building.progress:.0%}). You can queue jobs on it now: they wait and start "
            f"when it is ready.", icon=":material/hourglass_top:")

# ------------------------------------------------------------------ settings and launch
values, problems = config_form(method, spec.config.fields_info())
device = job_device()
problem = "; ".join(problems) or None
if problem is None:
    try:
        cfg = build_config(method, values=values)
        if spec.availability is not None and device is not None:
            problem = spec.availability(cfg, device)
    except LabError as exc:
        problem = str(exc)
if problem:
    st.warning(f"Cannot launch yet: {problem}", icon=":material/block:")
if st.button(f"Launch {method}", type="primary", key="launch", disabled=bool(problem)):
    try:
        job_id = submit_job(method, model=model_id, dataset=dataset_id, values=values,
                            device=device)
        waits = " It starts when the teacher is ready." if building is not None else ""
        st.success(f"Queued job {job_id}; follow it on the Jobs page.{waits}")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)

# ------------------------------------------------------------------ what it gave before
st.subheader(f"Recent {method} runs")
jobs = store.list_jobs(limit=10, statuses=("done",), method=method)
if not jobs:
    st.info(f"No {method} run has finished yet.")
# float ONNX exports time a model under ONNX Runtime beside PyTorch: the fastest-runtime line
exports = [store.job_as_dict(j) for j in store.list_jobs(
    limit=200, statuses=("done",), method="export", refresh_first=False)]
for job in jobs:
    d = store.job_as_dict(job)
    m = d["metrics"]
    with st.container(border=True):
        settings_text = ", ".join(f"{k}={v}" for k, v in job.config.get("data", {}).items())
        st.markdown(f"**Job {job.id}**: `{job.output_model}` from `{job.model}`")
        st.caption(plain(settings_text))
        result_summary(d)
        if m.get("explanation"):
            st.markdown(m["explanation"])
        if m.get("speed_summary"):
            st.caption(m["speed_summary"])
        fastest = fastest_sentence(d, exports)
        if fastest:
            st.caption(fastest)
