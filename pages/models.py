"""Models: pick a checkpoint and a dataset, read their cards, evaluate or fine-tune."""

import hashlib

import streamlit as st

from engine.submit import submit
from engine.toolkit.checkpoints import PRESETS, checkpoint_card
from engine.toolkit.data import load_dataset
from engine.worker import job_device
from pages.ui import DATASETS, show_error
from storage import jobs as store
from storage import settings

st.title("Models")

choices = ["default", "minilm-l6"] + [m.name for m in store.list_models()
                                      if m.name.startswith("job:")]
choices += [f"preset:{name}" for name in PRESETS] + ["other (path or hub id)"]
left, right = st.columns(2)
model_id = left.selectbox("Checkpoint", choices, key="model_choice",
                          help="default: the embedded teacher; minilm-l6: the base encoder; "
                               "job:N: a job's output; preset: random weights, latency only.")
if model_id.startswith("other"):
    model_id = left.text_input("Model directory or hub id", key="model_other").strip()

dataset_id = right.selectbox("Dataset", DATASETS + ["upload a CSV"], key="dataset_choice")
if dataset_id == "upload a CSV":
    upload = right.file_uploader("CSV with columns text,label", type=["csv"], key="csv_upload")
    dataset_id = ""
    if upload is not None:
        data = upload.getvalue()
        folder = settings.lab_home() / "uploads"
        folder.mkdir(exist_ok=True)
        path = folder / f"{hashlib.sha1(data).hexdigest()[:12]}-{upload.name}"
        path.write_bytes(data)
        dataset_id = f"csv:{path}"
st.session_state["model"], st.session_state["dataset"] = model_id, dataset_id

card_col, data_col = st.columns(2)
with card_col:
    st.subheader("Model card")
    card = None
    if model_id:
        try:
            card = checkpoint_card(model_id)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    if card:
        c1, c2, c3 = st.columns(3)
        c1.metric("Layers", card.get("layers") or "-")
        c2.metric("Heads", card.get("heads") or "-")
        c3.metric("Hidden", card.get("hidden") or "-")
        c1.metric("Parameters", f"{card['params'] / 1e6:.1f} M" if card.get("params") else "-")
        c2.metric("Size", f"{card['size_mb']:.1f} MB" if card.get("size_mb") else "-")
        c3.metric("Classifier", "yes" if card.get("classifier") else "no")
        for key in ("note", "made_by"):
            if card.get(key):
                st.caption(card[key])

with data_col:
    st.subheader("Dataset")
    data = None
    if dataset_id:
        try:
            data = load_dataset(dataset_id)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    if data is not None:
        summary = data.summary()
        st.caption(summary["description"])
        c1, c2, c3 = st.columns(3)
        c1.metric("Train", summary["train"])
        c2.metric("Validation", summary["val"])
        c3.metric("Test", summary["test"])
        st.bar_chart(summary["label_counts"], horizontal=True, height=160)
        st.dataframe({"text": data.test.texts[:5],
                      "label": [data.label_names[y] for y in data.test.labels[:5]]},
                     hide_index=True)

if card and data is not None:
    action = "evaluate" if card.get("classifier") or card["source"] == "job" else "finetune"
    label = ("Evaluate on the test split" if action == "evaluate"
             else "Fine-tune a classifier on this dataset")
    if st.button(label, key="submit_model_job", type="primary"):
        try:
            job_id = submit(action, model=model_id, dataset=dataset_id, device=job_device())
            st.success(f"Queued job {job_id} ({action}); follow it on the Jobs page.")
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
