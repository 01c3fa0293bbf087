"""Where it hurts: a model's sensitivity map (int8 one part at a time, each layer dropped, head
importance, latency shares) and the jobs that would act on one layer."""

import streamlit as st

from engine.reports.figures import HURT_MEASURES, PLOTLY_CONFIG, sensitivity_figure
from engine.reports.sensitivity import latest_sensitivity
from engine.toolkit.heads import format_heads
from engine.worker import job_device
from pages.ui import dataset_choices, dataset_label, show_error, submit_job
from storage import jobs as store
from storage.models import DONE

st.title("Where it hurts")
st.caption("Measured by sensitivity jobs on the validation split, against the float model: the "
           "accuracy lost and the logits' SQNR with only one part int8, the accuracy lost with "
           "one layer dropped, each head's gradient importance and each part's share of a "
           "forward pass on the worker's device.")


def queue(what: str, method: str, **kwargs) -> None:
    try:
        job_id = submit_job(method, device=job_device(), **kwargs)
        st.success(f"Queued {what}: job {job_id}; follow it on the Jobs page.")
    except Exception as exc:  # noqa: BLE001 (shown to the user)
        show_error(exc)


with st.expander("Map a model", expanded=False):
    c1, c2 = st.columns(2)
    new_model = c1.selectbox("Model", ["default"] + [m.name for m in store.list_models()
                                                     if m.name.startswith("job:")],
                             key="hurts_new_model")
    new_data = c2.selectbox("Dataset", dataset_choices(), key="hurts_new_dataset",
                            format_func=dataset_label)
    if st.button("Measure where it hurts", key="hurts_submit"):
        queue("a sensitivity map", "sensitivity", model=new_model, dataset=new_data)

runs = store.list_jobs(statuses=(DONE,), method="sensitivity")
models = list(dict.fromkeys(j.model for j in runs
                            if j.metrics and (j.metrics.extra or {}).get("sensitivity")))
if not models:
    st.info("No sensitivity map yet: measure one above, or run `python -m engine submit "
            "sensitivity --model M`.", icon=":material/troubleshoot:")
    st.stop()

model = st.selectbox("Model", models, key="hurts_model")
sens = latest_sensitivity(model)
dataset = store.get_job(sens["job_id"]).dataset
if sens.get("accuracy_meaningful") is False:
    st.warning("This model has random weights (a preset): its accuracy drops mean nothing; "
               "only the latency shares do.", icon=":material/warning:")
measure = st.segmented_control("Colour", list(HURT_MEASURES), key="hurts_measure",
                               default="acc_drop", required=True,
                               format_func=lambda m: HURT_MEASURES[m][0].split(",")[0])
st.plotly_chart(sensitivity_figure(sens, measure), key="hurts_map", config=PLOTLY_CONFIG)
st.caption(f"Job {sens['job_id']}: {sens['examples']} validation examples of "
           f"{dataset_label(dataset)}, base accuracy {sens['base_accuracy']:.1%}. Drops are in "
           f"points (1 = one percentage point lost); head importance is normalised per layer.")

drops = {r["layer"]: r["acc_drop"] for r in sens.get("layer_drop") or []}
worst = {}
for r in sens.get("quant") or []:
    if r["layer"] is not None and r["acc_drop"] >= worst.get(r["layer"], (-1.0, ""))[0]:
        worst[r["layer"]] = (r["acc_drop"], r["part"])


def layer_text(i: int) -> str:
    text = f"layer {i}"
    if i in drops:
        text += f": dropping it costs {100 * drops[i]:.2f} points"
    if i in worst:
        text += f"; worst int8 part {worst[i][1]} ({100 * worst[i][0]:.2f})"
    return text


layers = list(range(sens["layers"]))
st.subheader("Act on a layer")
layer = st.selectbox("Layer", layers, key="hurts_layer", format_func=layer_text,
                     index=layers.index(max(layers, key=lambda i: drops.get(i, 0.0))))
# the Attention page picks the model it is handed in the session (read once on arrival)
st.session_state["attention_models"] = [model]
st.page_link("pages/attention.py", label=f"See layer {layer}'s heads on the Attention page",
             icon=":material/visibility:")
row = (sens.get("heads") or [[]] * len(layers))[layer]
alive = sorted((s, h) for h, s in enumerate(row) if s is not None)
weakest = format_heads({layer: [h for _, h in alive[:len(alive) // 2]]}) if len(alive) > 1 \
    else ""
c1, c2 = st.columns(2)
if c1.button(f"Prune layer {layer}'s weakest heads ({weakest or 'none to spare'})",
             key="hurts_prune_heads", disabled=not weakest):
    queue("a head-pruning job", "prune", model=model, dataset=dataset,
          values={"kind": "heads", "heads": weakest})
if c2.button(f"Drop layer {layer}", key="hurts_drop_layer", disabled=len(layers) < 2):
    queue("a layer-dropping job", "prune", model=model, dataset=dataset,
          values={"kind": "layers", "layers": [layer]})

st.subheader("Quantize within a budget")
budget = st.number_input("Validation accuracy the model may lose (points)", 0.05, 50.0, 0.5,
                         step=0.05, key="hurts_budget",
                         help="int8 everywhere except the most sensitive parts, which stay "
                              "float until the measured drop is within this budget.")
if st.button("Quantize int8 within this budget", key="hurts_quantize", type="primary"):
    queue("an accuracy-aware int8 job", "quantize", model=model, dataset=dataset,
          values={"scheme": "int8-dynamic", "max_drop": round(budget / 100, 6)})
