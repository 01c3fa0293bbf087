"""Submitting jobs: validate everything a user typed, then write one queued job row.

Shared by the CLI and the pages (cheap to import: no torch). Every bad input raises LabError
with a message that says what to do, before any row is written.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import re
from pathlib import Path
from typing import Any

from engine.methods.registry import get_method
from engine.toolkit.config import ConfigError, LabError, MethodConfig
from engine.toolkit.data import DatasetError, load_dataset
from storage import jobs as store
from storage import settings
from storage.models import CANCELLED, DONE, FAILED, Job

log = logging.getLogger("engine.submit")

# The embedded teacher: MiniLM-L6 fine-tuned on Rotten Tomatoes with FinetuneConfig's defaults.
TEACHER = {"method": "finetune", "model": "minilm-l6", "dataset": "rotten-tomatoes"}
DEFAULT_ALIAS = "default"
# Part of every work key: bump it when a change to the lab changes what a job produces, so
# results made by an older lab are not reused for a newer one.
LAB_VERSION = "2026.12-2"  # -2: training selects on half the validation split
OWNER_TEXT = re.compile(r"^[\w][\w .@'-]*$")


def teacher_recipe() -> dict[str, Any]:
    """What builds the default teacher: method, base model, dataset and the config JSON."""
    return {**TEACHER, "config": get_method("finetune").config().to_json()}


def ensure_teacher(owner: str | None = None, fresh: bool = False) -> int | None:
    """Make sure the default teacher exists or is being built.

    From the machine's teacher cache when it holds this recipe (seconds; `fresh` skips it),
    else by queueing the teacher's finetune job: ordinary work with a work key, so an
    identical finetune done before (or queued) answers it. A teacher built here is put in the
    cache for the next LAB_HOME. Returns the id of the job that builds it (new or pending),
    or None when it exists."""
    from engine import teacher_cache

    recipe = teacher_recipe()
    row = store.find_model(DEFAULT_ALIAS)
    if row is not None and _trained_on_another_split(row, recipe):
        # its training examples are not this dataset's training split (since 2026-12-08 a
        # thousand of them judge the search): it stays as job:N, `default` is built again
        log.warning("the default teacher (%s) was trained on an older split of %s; "
                    "building it again", row.name, recipe["dataset"])
        store.release_alias(DEFAULT_ALIAS)
        row = None
    if row is not None:
        if row.job_id is not None:
            _cache_teacher(row.job_id, recipe)
        return None
    pending = store.pending_alias_job(DEFAULT_ALIAS)
    if pending is not None:
        return pending
    if not fresh and teacher_cache.restore(recipe) is not None:
        return None
    cfg = recipe["config"]
    key = work_key(TEACHER["method"], cfg, TEACHER["model"], load_dataset(TEACHER["dataset"]),
                   None)
    return store.enqueue(TEACHER["method"], cfg, TEACHER["model"], TEACHER["dataset"],
                         alias=DEFAULT_ALIAS, owner=check_owner(owner), work_key=key,
                         reuse=not fresh)


def default_job(owner: str | None = None) -> int | None:
    """The job whose output is `default`: the teacher's, or the job building it (queued when
    it is missing or was trained on an older split; ensure_teacher). A sound teacher costs
    one look-up: filing it in the machine's cache is left to the dashboard's start and the
    worker (every submit on `default` comes here)."""
    row = store.find_model(DEFAULT_ALIAS)
    if row is not None and not _trained_on_another_split(row, teacher_recipe()):
        return row.job_id
    building = ensure_teacher(owner)
    row = store.find_model(DEFAULT_ALIAS)  # restored from the cache, or None while building
    return row.job_id if row is not None else building


def _trained_on_another_split(row: Any, recipe: dict[str, Any]) -> bool:
    """Whether the default teacher's model row was made on other splits of the recipe's
    dataset than today's: its info's dataset_fingerprint differs, or (a row from before
    2026-12-08, which recorded none) its job's work key, which holds the dataset's content,
    is not the recipe's. That key also holds the recipe and the base model's files, so such a
    row is rebuilt when those changed too; every row of that age trained on the old split. A
    row with neither (imported from an older pack) is left alone."""
    data = load_dataset(recipe["dataset"])
    made_on = (row.info or {}).get("dataset_fingerprint")
    if made_on is not None:
        return made_on != data.fingerprint
    if row.source != "job" or row.job_id is None:
        return False
    try:
        job = store.load_job(row.job_id)
    except store.JobNotFound:
        return False
    return job.work_key is not None and job.work_key != work_key(
        recipe["method"], recipe["config"], recipe["model"], data, None)


def _cache_teacher(job_id: int, recipe: dict[str, Any]) -> None:
    """Keep a teacher built here by this very recipe in the machine's cache (cheap when it
    is there already; a teacher of an older recipe, or one imported, is not filed)."""
    from engine import teacher_cache

    try:
        job = store.load_job(job_id)
    except store.JobNotFound:
        return
    same = (job.method, job.model, job.dataset, job.config) == (
        recipe["method"], recipe["model"], recipe["dataset"], recipe["config"])
    if same and job.status == DONE and not job.origin and not job.reused_from:
        teacher_cache.store(job_id, recipe)


def _input_job(model: str, owner: str | None = None) -> int | None:
    """For `default` and `job:ID`: the id of the job whose output is the input (if any)."""
    if model == DEFAULT_ALIAS:
        return default_job(owner)
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
           values: dict[str, Any] | None = None, device: str | None = None,
           owner: str | None = None, fresh: bool = False) -> int:
    """Validate and queue a job; return its id.

    `model` may be `default`: when the teacher does not exist yet its finetune job is queued
    first and this job waits for it. `from_job` takes the output of that job as the input.
    `device` (e.g. "cpu" or "cuda:... (sm90)") lets a method refuse a scheme that cannot run
    there. `owner` (default: the OS user) is who the job belongs to. Identical work (same
    `work_key`) is reused: answered at once from a done job (status done, `reused_from`), or
    waiting on a queued or running one; `fresh` forces a new run."""
    store.refresh()  # a reader too: stale jobs show re-queued or failed before we look
    owner = check_owner(owner)
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
    parent_id = _input_job(model, owner)
    config = cfg.to_json()
    key = work_key(method, config, model, data, device)
    # the reuse look-up, the cap (store.QueueFull, a LabError) and the insert: one atomic step
    return store.enqueue(method, config, model, dataset, parent_id=parent_id, owner=owner,
                         work_key=key, reuse=not fresh,
                         max_queued=settings.max_queued_per_owner())


def default_owner() -> str:
    """The OS user (what the CLI submits as when no --owner is given)."""
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):
        return "local"


def check_owner(owner: str | None) -> str:
    """The owner name to store (None: the OS user); LabError for an empty name, one over
    100 characters, or one that is not plain text (markup, control characters)."""
    if owner is None:
        return default_owner()
    name = " ".join(str(owner).split())
    if not name:
        raise LabError("the name is empty; enter the name you want your runs listed under")
    if len(name) > 100:
        raise LabError(f"the name is {len(name)} characters long; use at most 100")
    if not OWNER_TEXT.match(name):
        raise LabError("the name must be plain text: letters, digits, spaces and . @ ' - _ "
                       "(no markup such as < > & or quotes)")
    return name


# --------------------------------------------------------------------------- reuse


def work_key(method: str, config: dict[str, Any], model: str, data: Any,
             device: str | None) -> str:
    """sha256 of the work a job does: method, canonical config JSON, the input model's
    content fingerprint, the dataset's content fingerprint, LAB_VERSION and the device kind.
    Two jobs with the same key would produce the same result."""
    parts = {"method": method, "config": config, "model": model_fingerprint(model),
             "dataset": dataset_fingerprint(data), "lab": LAB_VERSION,
             "device": device_kind(device)}
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def dataset_fingerprint(data: Any) -> str:
    """sha256 of a loaded dataset's content (label names, every split's texts and labels)."""
    return data.fingerprint


def model_fingerprint(model: str) -> str:
    """What identifies an input model's content: for job:ID (and `default`, the teacher's
    job) the producing job's work key; for a folder, its files' names, sizes, mtimes and
    safetensors headers; for a preset or hub id, the id itself."""
    from engine.toolkit.checkpoints import embedded_minilm_path, local_model_dir

    if model == DEFAULT_ALIAS:
        row = store.find_model(DEFAULT_ALIAS)
        if row is not None and row.job_id is not None:
            return _job_fingerprint(row.job_id)
        if row is not None:
            return "dir:" + folder_fingerprint(Path(row.path))
        pending = store.pending_alias_job(DEFAULT_ALIAS)
        return _job_fingerprint(pending) if pending is not None else "default"
    if model.startswith("job:") and model[4:].isdigit():
        return _job_fingerprint(int(model[4:]))
    if model == "minilm-l6":
        return "dir:" + folder_fingerprint(Path(embedded_minilm_path()))
    if model.startswith("preset:"):
        return model
    folder = local_model_dir(model)
    if folder is not None:
        return "dir:" + folder_fingerprint(folder)
    return "hub:" + model


def _job_fingerprint(job_id: int) -> str:
    try:
        job = store.load_job(job_id)
    except store.JobNotFound:
        return f"job:{job_id}"
    return "work:" + job.work_key if job.work_key else f"job:{job_id}:{job.finished_at}"


def folder_fingerprint(folder: Path) -> str:
    """sha256 of a model folder's file names, sizes and mtimes, plus each safetensors file's
    header (tensor names, shapes, dtypes, offsets): cheap, and changes with the weights."""
    h = hashlib.sha256()
    if not folder.is_dir():
        return "missing:" + str(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                head = f.read(8)
                size = int.from_bytes(head, "little") if len(head) == 8 else 0
                h.update(f.read(min(size, 16 << 20)))
    return h.hexdigest()


def device_kind(device: str | None) -> str:
    """cpu/THREADS or cuda: the device kind a job's timings depend on. With no device given,
    the kind this machine's workers run on: LAB_DEVICE, with `auto` resolved from the GPUs
    the driver shows (settings.gpu_count). It never asks a live worker, so a job submitted
    before a worker registers gets the same work key as one submitted after (bench_workshop
    found identical work run twice when it did)."""
    if device is None:
        device = settings.device()
        if device == "auto":
            device = "cuda" if settings.gpu_count() else "cpu"
    kind = "cuda" if device.startswith("cuda") else "cpu" if device.startswith("cpu") else device
    return f"cpu/{settings.threads()}" if kind == "cpu" else kind


# --------------------------------------------------------------------------- permissions


def can_touch(job: Job, owner: str | None, instructor_token: str | None = None) -> bool:
    """May `owner` cancel or delete `job`? Their own jobs (and unowned ones) yes; anyone's
    when `instructor_token` equals LAB_INSTRUCTOR_TOKEN (when that is set)."""
    expected = settings.instructor_token()
    if expected and instructor_token and hmac.compare_digest(
            expected.encode(), str(instructor_token).encode()):
        return True
    who = default_owner() if owner is None else " ".join(str(owner).split())
    return not job.owner or job.owner == who


def _check_touch(job_id: int, owner: str | None, token: str | None, verb: str) -> Job:
    try:
        job = store.get_job(job_id)
    except store.JobNotFound as exc:
        raise LabError(str(exc)) from exc
    if not can_touch(job, owner, token):
        raise LabError(f"job {job_id} belongs to {job.owner}; only {job.owner} or the "
                       f"instructor (with the instructor token) can {verb} it")
    return job


def cancel_job(job_id: int, owner: str | None = None, token: str | None = None) -> str:
    """Cancel a queued job at once or ask a running one to stop, if `owner` may (see
    can_touch); return the job's status after the request."""
    _check_touch(job_id, owner, token, "cancel")
    return store.request_cancel(job_id)


def delete_run(job_id: int, owner: str | None = None, token: str | None = None) -> None:
    """Delete a finished job with its rows and its artifact folders, if `owner` may (see
    can_touch). Only folders inside the lab's artifacts folder are removed: a row can never
    make the lab delete files elsewhere."""
    import shutil

    from storage.artifacts import job_paths

    _check_touch(job_id, owner, token, "delete")
    own = job_paths(job_id)  # final, any attempt's partial, best-on-cancel
    try:
        paths = store.delete_job(job_id)
    except ValueError as exc:
        raise LabError(str(exc)) from exc
    root = settings.artifacts_dir().resolve()
    for folder in [*paths, *map(str, own)]:
        target = Path(folder).resolve()
        if target.is_relative_to(root) and target != root:
            shutil.rmtree(target, ignore_errors=True)
