"""Models: pick a checkpoint and a dataset, read their cards, evaluate or fine-tune."""

import hashlib
import re

import streamlit as st

from engine.reports.runs import config_text
from engine.toolkit.checkpoints import PRESETS, checkpoint_card
from engine.toolkit.data import load_dataset
from engine.worker import job_device
from pages.ui import (
    DATASETS,
    dataset_label,
    plain,
    preset_facts,
    remember_upload,
    show_error,
    stage_eta_text,
    submit_job,
    teacher_pending,
    without_paths,
)
from storage import jobs as store
from storage import settings

OTHER = "other (path or hub id)"


def job_model_text(name: str) -> tuple[str, str]:
    """What made the model `job:N`: a short line for the list ("quantize of default") and
    the full one for the card (with its input job, dataset and settings); ("", "") unknown."""
    try:
        job = store.get_job(int(name[4:]))
    except (ValueError, store.JobNotFound):
        return "", ""
    settings_text = config_text({"config": job.config})
    parent = f" (job {job.parent_id})" if job.parent_id else ""
    short = f"{job.method} of {job.model}"
    return short, (f"{short}{parent} on {dataset_label(job.dataset)}"
                   + (f": {settings_text}" if settings_text else ""))


st.title("Models")

job_models = [m.name for m in store.list_models() if m.name.startswith("job:")]
choices = ["default", "minilm-l6"] + job_models + [f"preset:{name}" for name in PRESETS] + [OTHER]
described = {name: job_model_text(name) for name in job_models}
short = {name: d[0] for name, d in described.items() if d[0]}
descriptions = {name: d[1] for name, d in described.items() if d[1]}
left, right = st.columns(2)
model_id = left.selectbox(
    "Checkpoint", choices, key="model_choice",
    format_func=lambda c: f"{c} · {short[c]}" if c in short else c,
    help="default: the embedded teacher; minilm-l6: the base encoder; job:N: a job's output; "
         "preset: random weights, latency only.")
if model_id == OTHER:
    model_id = left.text_input("Model directory or hub id", key="model_other").strip()

dataset_id = right.selectbox("Dataset", DATASETS + ["upload a CSV"], key="dataset_choice")
upload_paths: dict[str, str] = {}  # server path -> the file's own name, for messages
if dataset_id == "upload a CSV":
    upload = right.file_uploader("CSV with columns text,label", type=["csv"], key="csv_upload")
    dataset_id = ""
    if upload is not None:
        data = upload.getvalue()
        folder = settings.lab_home() / "uploads"
        folder.mkdir(exist_ok=True)
        safe_name = re.sub(r"[^\w.-]", "_", upload.name)[-80:]
        path = folder / f"{hashlib.sha1(data).hexdigest()[:12]}-{safe_name}"
        path.write_bytes(data)
        dataset_id = f"csv:{path}"
        # messages name the file as the user knows it: not its server path, nor the
        # stored name with its content hash
        upload_paths = {dataset_id: upload.name, str(path): upload.name, path.name: upload.name}
st.session_state["model"], st.session_state["dataset"] = model_id, dataset_id

card_col, data_col = st.columns(2)
with card_col:
    st.subheader("Model card")
    card = None
    building = teacher_pending() if model_id == "default" else None
    if building is not None:
        st.info(f"The default teacher (MiniLM-L6 fine-tuned on Rotten Tomatoes) is being built "
                f"by job {building.id}: {building.message}. Jobs you queue on `default` now "
                f"start when it is ready.", icon=":material/hourglass_top:")
        eta_text = stage_eta_text(building)
        st.progress(building.progress,
                    text=f"{building.progress:.0%}" + (f" · {eta_text}" if eta_text else ""))
    elif model_id == "":
        st.info("Type a model directory (inside one of the folders named by LAB_MODEL_DIRS, "
                "e.g. a folder saved with `save_pretrained`, safetensors weights) or a "
                "Hugging Face hub id like `owner/name` (offline: only models already in the "
                "local cache load). Its layers, heads and size appear here.",
                icon=":material/help:")
    elif model_id:
        try:
            card = checkpoint_card(model_id)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    if card:
        if card["source"] == "preset":
            card = {**preset_facts(PRESETS[model_id.split(":", 1)[1]]), **card,
                    "labels": None}
        c1, c2, c3 = st.columns(3)
        c1.metric("Layers", card.get("layers") or "-")
        c2.metric("Heads", card.get("heads") or "-")
        c3.metric("Hidden", card.get("hidden") or "-")
        c1.metric("Parameters", f"{card['params'] / 1e6:.1f} M" if card.get("params") else "-")
        c2.metric("Size", f"{card['size_mb']:.1f} MB" if card.get("size_mb") else "-",
                  help="fp32 weights, counted from the shape" if card["source"] == "preset"
                  else "weight files on disk")
        c3.metric("Classifier", "yes" if card.get("classifier") else "no")
        if descriptions.get(model_id):
            st.caption(f"Made by {plain(descriptions[model_id])}.")
        for key in ("note", "made_by"):
            if card.get(key) and not (key == "made_by" and descriptions.get(model_id)):
                st.caption(plain(card[key]))

with data_col:
    st.subheader("Dataset")
    data = None
    if dataset_id:
        try:
            data = load_dataset(dataset_id)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc, hide=upload_paths)
    if data is not None:
        if upload_paths:
            remember_upload(dataset_id, upload_paths[dataset_id])
        summary = data.summary()
        st.caption(plain(without_paths(summary["description"], upload_paths)))
        c1, c2, c3 = st.columns(3)
        c1.metric("Train", summary["train"])
        c2.metric("Validation", summary["val"])
        c3.metric("Test", summary["test"])
        st.bar_chart(summary["label_counts"], horizontal=True, height=160)
        # the label first: long texts would push it off the right edge
        st.dataframe({"label": [data.label_names[y] for y in data.test.labels[:5]],
                      "text": data.test.texts[:5]}, hide_index=True,
                     column_config={"label": st.column_config.TextColumn(width="small"),
                                    "text": st.column_config.TextColumn(width="large")})
        if upload_paths:
            st.caption(f"{plain(dataset_label(dataset_id))} is offered on the Compress page "
                       f"too.")

mismatch = False
if card and data is not None and card.get("classifier") and card.get("labels"):
    mismatch = len(card["labels"]) != data.num_labels
    if mismatch:
        st.warning(f"This model predicts {len(card['labels'])} labels "
                   f"({plain(', '.join(map(str, card['labels'])))}) but the dataset has "
                   f"{data.num_labels} ({plain(', '.join(data.label_names))}): it cannot be "
                   f"evaluated on it. Fine-tune it on this dataset first (below); it gets a "
                   f"new classifier head.", icon=":material/warning:")

if (card or building is not None) and data is not None:
    source = card["source"] if card else "job"
    has_head = (card or {}).get("classifier") or source == "job"
    action = "evaluate" if has_head and not mismatch else "finetune"
    label = ("Evaluate on the test split" if action == "evaluate"
             else "Fine-tune a classifier on this dataset")
    if st.button(label, key="submit_model_job", type="primary"):
        try:
            job_id = submit_job(action, model=model_id, dataset=dataset_id, device=job_device())
            st.success(f"Queued job {job_id} ({action}); follow it on the Jobs page.")
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc, hide=upload_paths)
