"""Submitting jobs: validate everything a user typed, then write one queued job row.

Shared by the CLI and the pages (cheap to import: no torch). Every bad input raises LabError
with a message that says what to do, before any row is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.methods.registry import get_method
from engine.toolkit.config import ConfigError, LabError, MethodConfig
from engine.toolkit.data import DatasetError, load_dataset
from storage import jobs as store
from storage.models import CANCELLED, DONE, FAILED

# The embedded teacher: MiniLM-L6 fine-tuned on Rotten Tomatoes with FinetuneConfig's defaults.
TEACHER = {"method": "finetune", "model": "minilm-l6", "dataset": "rotten-tomatoes"}
DEFAULT_ALIAS = "default"


def teacher_recipe() -> dict[str, Any]:
    """What builds the default teacher: method, base model, dataset and the config JSON."""
    return {**TEACHER, "config": get_method("finetune").config().to_json()}


def ensure_teacher(fresh: bool = False) -> int | None:
    """Make sure the default teacher exists or is being built.

    From the machine's teacher cache when it holds this recipe (seconds; `fresh` skips it),
    else by queueing the teacher's finetune job. A teacher built here is put in the cache for
    the next LAB_HOME. Returns the id of the job that builds it (new or pending), or None when
    it exists."""
    from engine import teacher_cache

    recipe = teacher_recipe()
    row = store.find_model(DEFAULT_ALIAS)
    if row is not None:
        if row.job_id is not None:
            _cache_teacher(row.job_id, recipe)
        return None
    pending = store.pending_alias_job(DEFAULT_ALIAS)
    if pending is not None:
        return pending
    if not fresh and teacher_cache.restore(recipe) is not None:
        return None
    return store.enqueue(TEACHER["method"], recipe["config"], TEACHER["model"],
                         TEACHER["dataset"], alias=DEFAULT_ALIAS)


def _cache_teacher(job_id: int, recipe: dict[str, Any]) -> None:
    """Keep a teacher built here by this very recipe in the machine's cache (cheap when it
    is there already; a teacher of an older recipe is not filed under the new key)."""
    from engine import teacher_cache

    try:
        job = store.get_job(job_id)
    except store.JobNotFound:
        return
    same = (job.method, job.model, job.dataset, job.config) == (
        recipe["method"], recipe["model"], recipe["dataset"], recipe["config"])
    if same and job.status == DONE and not job.origin:
        teacher_cache.store(job_id, recipe)


def _input_job(model: str) -> int | None:
    """For `default` and `job:ID`: the id of the job whose output is the input (if any)."""
    if model == DEFAULT_ALIAS:
        row = store.find_model(DEFAULT_ALIAS)
        return row.job_id if row is not None else ensure_teacher()
    if model.startswith("job:"):
        raw = model[4:]
        if not raw.isdigit():
            raise LabError(f"{model!r}: a job model id is job: followed by a job number")
        try:
            parent = store.get_job(int(raw))
        except store.JobNotFound as exc:
            raise LabError(f"{model}: there is no job {raw} (`python -m engine jobs` lists "
                           f"them)") from exc
        if not get_method(parent.method).config.produces_model:
            raise LabError(f"{model}: job {raw} is an {parent.method} job and produced no "
                           f"model; use the job that made the model")
        if parent.status in (FAILED, CANCELLED):
            raise LabError(f"{model}: job {raw} {parent.status}, so it has no model")
        return parent.id
    return None


def check_model_id(model: str) -> None:
    """Refuse ids that can never work, without loading anything."""
    from engine.toolkit.checkpoints import HUB_ID, PRESETS, local_model_dir

    if model in (DEFAULT_ALIAS, "minilm-l6") or model.startswith("job:"):
        return
    if model.startswith("preset:"):
        if model[7:] not in PRESETS:
            raise LabError(f"unknown preset {model[7:]!r}; use one of {', '.join(PRESETS)}")
        return
    if local_model_dir(model) is not None:
        return
    if not HUB_ID.match(model):
        raise LabError(f"unknown model {model!r}; use default, minilm-l6, job:ID, "
                       f"preset:NAME, a local model directory or a hub id like owner/name")


def input_card(model: str) -> dict[str, Any]:
    """Facts of the input model for the methods' check_input hooks, without torch: its
    checkpoint card; for `default` before the teacher is built, the card it will have (the
    embedded encoder with a head for the teacher's dataset); {} while unknown (a job whose
    model is not made yet, a hub model: those are checked when the job runs)."""
    from engine.toolkit.checkpoints import checkpoint_card

    try:
        return checkpoint_card(model)
    except LabError:
        if model != DEFAULT_ALIAS or store.find_model(DEFAULT_ALIAS) is not None:
            return {}  # job:ID not made yet (or not at all: _input_job says so)
    card = checkpoint_card(TEACHER["model"])
    labels = load_dataset(TEACHER["dataset"]).label_names
    return {**card, "id": DEFAULT_ALIAS, "classifier": True, "labels": labels}


def check_input(spec: Any, cfg: MethodConfig, model: str, data: Any) -> None:
    """Every check that needs the input model's facts but no model run (layer and head
    indices, label counts): the method's check_input hook, refused as a ConfigError."""
    if spec.check_input is None:
        return
    card = input_card(model)
    if card.get("source") == "hub" or not card:
        card = {}
    spec.check_input(cfg, card, data)


def build_config(method: str, sets: list[str] | None = None,
                 values: dict[str, Any] | None = None) -> MethodConfig:
    """The method's config from CLI `key=value` strings or a form's values."""
    spec = get_method(method)
    if values is not None:
        return spec.config.from_values(values)
    return spec.config.from_sets(sets or [])


def submit(method: str, model: str = DEFAULT_ALIAS, dataset: str = "rotten-tomatoes",
           from_job: int | None = None, sets: list[str] | None = None,
           values: dict[str, Any] | None = None, device: str | None = None) -> int:
    """Validate and queue a job; return its id.

    `model` may be `default`: when the teacher does not exist yet its finetune job is queued
    first and this job waits for it. `from_job` takes the output of that job as the input.
    `device` (e.g. "cpu" or "cuda:... (sm90)") lets a method refuse a scheme that cannot run
    there."""
    spec = get_method(method)
    cfg = build_config(method, sets, values)
    model = (model or DEFAULT_ALIAS).strip()
    if from_job is not None:
        model = f"job:{from_job}"
    check_model_id(model)
    try:
        data = load_dataset(dataset)
    except DatasetError as exc:
        raise LabError(str(exc)) from exc
    if spec.availability is not None and device is not None:
        reason = spec.availability(cfg, device)
        if reason:
            raise ConfigError(reason)
    check = getattr(cfg, "check_dataset", None)
    if check is not None:
        check(data)
    check_input(spec, cfg, model, data)
    parent_id = _input_job(model)
    return store.enqueue(method, cfg.to_json(), model, dataset, parent_id=parent_id)


def delete_run(job_id: int) -> None:
    """Delete a finished job with its rows and its artifact folder (only inside the lab's
    artifacts folder: a row can never make the lab delete files elsewhere)."""
    import shutil

    from storage import settings

    try:
        paths = store.delete_job(job_id)
    except ValueError as exc:
        raise LabError(str(exc)) from exc
    root = settings.artifacts_dir().resolve()
    # job-N, job-N.partial, job-N-best-on-cancel...: everything the job wrote.
    own = [root / f"job-{job_id}", *root.glob(f"job-{job_id}.*"), *root.glob(f"job-{job_id}-*")]
    for folder in [*paths, *map(str, own)]:
        target = Path(folder).resolve()
        if target.is_relative_to(root) and target != root:
            shutil.rmtree(target, ignore_errors=True)
