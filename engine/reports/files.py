"""Files made from stored runs: the runs as CSV (a runtime column per latency), a model as a
zip that says how to load it, and a run's recipe as YAML. No torch and no streamlit here."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import yaml

from engine.reports.lineage import lineage
from engine.reports.runs import FASTEST, runs_frame, runtimes
from engine.toolkit.checkpoints import read_meta
from engine.toolkit.config import LabError


def runs_csv(runs: list[dict[str, Any]], batch_sizes: list[int],
             runtime: str = FASTEST) -> str:
    """One row per run: every metric, then at each batch size the latency, throughput and
    paired speedup under `runtime` (default: each run's fastest) with a `runtime_batchN` column
    naming it, then the same for every runtime the runs were timed under
    (`p50_ms_compiled_batch32`, `speedup_vs_parent_compiled_batch32`, ...). A speedup in a row
    is always against the parent under the runtime its column names."""
    frames = [runs_frame(runs, bs, runtime) for bs in batch_sizes] or [runs_frame(runs, None)]
    per_bs = ["runtime", "p50_ms", "p95_ms", "iqr_ms", "throughput_per_s", "speedup_vs_parent",
              "speedup_ci_low", "speedup_ci_high"]
    out = frames[0].drop(columns=["label", "speedup", *per_bs])
    for bs, frame in zip(batch_sizes, frames):
        out = out.join(frame[per_bs].add_suffix(f"_batch{bs}"))
    per_rt = ["p50_ms", "p95_ms", "speedup_vs_parent", "speedup_ci_low", "speedup_ci_high"]
    for rt in runtimes(runs):
        for bs in batch_sizes:
            frame = runs_frame(runs, bs, rt)
            out = out.join(frame[per_rt].add_suffix(f"_{rt}_batch{bs}"))
    return out.to_csv(index=False)


_ARCHIVE_README = """{name}: a model from Compression Lab (job {job}).

Load it with Hugging Face transformers:

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained("{folder}")
    tokenizer = AutoTokenizer.from_pretrained("{folder}")
{loader}"""

_LOADER_NOTE = """
This model was saved by the lab's `{loader}` method (see lab_meta.json), which changes its
layers: load it with the lab's loader instead, from the Compression Lab repository:

    from engine.toolkit.checkpoints import load_classifier, resolve
    model = load_classifier(resolve("{folder}"))
"""


def model_archive(path: str | Path, name: str) -> bytes:
    """The model's artifact directory as a zip (one folder inside), with a README_LAB.txt that
    says how to load it. Weights are stored, not deflated: safetensors barely compress."""
    root = Path(path)
    if not root.is_dir():
        raise LabError(f"{name}: its files are not on this machine ({path}); run the job again "
                       f"here to get a downloadable model")
    folder = name.replace(":", "-")
    meta = read_meta(root)
    loader = _LOADER_NOTE.format(loader=meta["loader"], folder=folder) if meta.get(
        "loader") else ""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f"{folder}/{f.relative_to(root)}")
        zf.writestr(f"{folder}/README_LAB.txt", _ARCHIVE_README.format(
            name=name, job=meta.get("job_id", "?"), folder=folder, loader=loader))
    return buffer.getvalue()


def recipe(runs_by_id: dict[int, dict[str, Any]], job_id: int) -> dict[str, Any]:
    """The recipe that replays the chain of configs that led to `job_id`. A chain that starts
    at the default teacher starts from `model: default` rather than retraining it."""
    chain = lineage(runs_by_id, job_id)
    teacher = [i for i, run in enumerate(chain[:-1]) if run.get("alias") == "default"]
    if teacher:
        chain = chain[teacher[-1] + 1:]
    out = recipe_for(chain)
    if teacher:
        out["model"] = "default"
    return out


def recipe_yaml(runs_by_id: dict[int, dict[str, Any]], job_id: int) -> str:
    header = (f"# Compression Lab recipe: the chain of configs behind job {job_id}.\n"
              f"# Replay it with: python -m engine run recipe.yaml --wait\n")
    return header + yaml.safe_dump(recipe(runs_by_id, job_id), sort_keys=False)


def recipe_for(job_dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """The recipe that replays a chain of jobs (oldest first), from their stored configs."""
    first = job_dicts[0]
    return {"model": first["model"], "dataset": first["dataset"],
            "steps": [{"method": j["method"], "config": j["config"].get("data", {})}
                      for j in job_dicts]}
