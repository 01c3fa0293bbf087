"""Which runtime was fastest here for one model, and by how much, paired.

A model is timed under several runtimes in ONE process: its own job times it eager and
compiled (LAB_TIMING_RUNTIMES), and a float ONNX export of it (export with quantize=none, from
the model itself) times the same arithmetic under ONNX Runtime interleaved with the model under
PyTorch (the export's own rows and its `parent_latency`). Each such job is one paired group;
ratios are taken inside one group only, between rows of the same batch size, sequence length,
threads and device (never across jobs, which were timed at other moments). Takes run dicts
shaped like `storage.jobs.job_as_dict`. No torch, no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.reports.runs import RUNTIMES, runtime_of

SETTING = ("batch_size", "seq_len", "threads", "device")  # what must match, besides runtime


@dataclass(frozen=True)
class Fastest:
    """One batch size's answer: `fastest` runtime, its median latency (ms), and how many times
    faster it was than each other runtime timed in the same job (`slower`: {runtime: x >= 1});
    empty `slower` means only one runtime was timed."""

    batch_size: int
    fastest: str
    p50_ms: float
    slower: dict[str, float]
    seq_len: int | None
    threads: int | None
    device: str | None
    job: int  # the job whose interleaved timing this is
    method: str


def float_exports(run: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs among `runs` that are the same model as `run` on another runtime: float ONNX
    exports made from `run`'s model itself (not from a float source further up the chain)."""
    return [r for r in runs if r.get("parent_id") == run["id"] and r["id"] != run["id"]
            and r["metrics"].get("export_quantize") == "none"
            and not r["metrics"].get("export_source")]


def _groups(run: dict[str, Any], runs: list[dict[str, Any]]) -> list[tuple[dict, list[dict]]]:
    """(job, rows of the model) for each job that timed the model under several runtimes in
    one process: the run itself (its own rows; a float export also its parent's rows, which
    are the same model), then each float export of it."""
    own = list(run["metrics"].get("latency") or [])
    if run["metrics"].get("export_quantize") == "none" and not run["metrics"].get(
            "export_source"):
        own += run["metrics"].get("parent_latency") or []
    groups = [(run, own)]
    for child in float_exports(run, runs):
        groups.append((child, (child["metrics"].get("latency") or [])
                       + (child["metrics"].get("parent_latency") or [])))
    return groups


def _order(runtime: str) -> int:
    return RUNTIMES.index(runtime) if runtime in RUNTIMES else len(RUNTIMES)


def fastest_at(run: dict[str, Any], runs: list[dict[str, Any]],
               batch_size: int) -> Fastest | None:
    """The fastest runtime for `run`'s model at `batch_size` (None when it was not timed
    there). Of the paired groups (`_groups`) and, inside each, the settings (length, threads,
    device), the one with the most runtimes wins (ties: the run's own job, its stored length)."""
    best: tuple | None = None
    for rank, (job, rows) in enumerate(_groups(run, runs)):
        settings: dict[tuple, dict[str, dict]] = {}
        for row in rows:
            if row.get("batch_size") != batch_size or not row.get("p50_ms"):
                continue
            key = tuple(row.get(k) for k in SETTING)
            by_rt = settings.setdefault(key, {})
            rt = runtime_of(row)
            if rt not in by_rt or row["p50_ms"] < by_rt[rt]["p50_ms"]:
                by_rt[rt] = row
        for key, by_rt in settings.items():
            score = (len(by_rt), -rank, key[1] == run["metrics"].get("seq_len"))
            if best is None or score > best[0]:
                best = (score, job, key, by_rt)
    if best is None:
        return None
    _, job, key, by_rt = best
    ordered = sorted(by_rt.items(), key=lambda kv: (kv[1]["p50_ms"], _order(kv[0])))
    fastest, row = ordered[0]
    slower = {rt: round(other["p50_ms"] / row["p50_ms"], 2) for rt, other in ordered[1:]}
    return Fastest(batch_size, fastest, float(row["p50_ms"]), slower, key[1], key[2], key[3],
                   job["id"], job["method"])


def fastest_runtimes(run: dict[str, Any], runs: list[dict[str, Any]],
                     batch_sizes: list[int] | None = None) -> list[Fastest]:
    """`fastest_at` for each of `batch_sizes` (default: every batch the model was timed at)."""
    if batch_sizes is None:
        batch_sizes = sorted({r["batch_size"] for _, rows in _groups(run, runs) for r in rows})
    return [f for f in (fastest_at(run, runs, bs) for bs in batch_sizes) if f is not None]


def _setting_text(f: Fastest) -> str:
    parts = [f"length {f.seq_len}" if f.seq_len else None,
             f"{f.threads} threads" if f.threads else None, f.device]
    return ", ".join(p for p in parts if p)


def fastest_sentence(run: dict[str, Any], runs: list[dict[str, Any]],
                     batch_sizes: list[int] | None = None) -> str | None:
    """The answer in plain words, e.g. "Fastest runtime here: compiled at batch 32 (70.1 ms;
    1.85x faster than eager). Paired: the runtimes were timed interleaved in this job, length
    64, 2 threads, cpu." When only one runtime was timed it says so; None when never timed."""
    found = fastest_runtimes(run, runs, batch_sizes)
    if not found:
        return None
    compared = [f for f in found if f.slower]
    if not compared:
        timed = sorted({f.fastest for f in found}, key=_order)
        batches = {f.batch_size for f in found}
        apart = sorted({runtime_of(r) for _, rows in _groups(run, runs) for r in rows
                        if r.get("batch_size") in batches} - set(timed), key=_order)
        return (f"Only {' and '.join(timed)} was timed for this model (batch "
                f"{', '.join(map(str, sorted(batches)))}), so there is no other runtime to "
                "compare it with here"
                + (f" ({', '.join(apart)} only with another length, thread count or device, "
                   "which cannot be compared)" if apart else "")
                + ": time it under another runtime (LAB_TIMING_RUNTIMES, or a float ONNX "
                  "export) to know.")
    parts = []
    for f in compared:
        against = ", ".join(f"{x:.2f}x faster than {rt}" for rt, x in f.slower.items())
        parts.append(f"{f.fastest} at batch {f.batch_size} ({f.p50_ms:.1f} ms; {against})")
    where = {(f.job, f.method, _setting_text(f)) for f in compared}
    how = "; ".join(("in this job" if job == run["id"] else f"in {method} job {job}")
                    + (f", {setting}" if setting else "") for job, method, setting in
                    sorted(where, key=lambda w: (w[0] != run["id"], w[0])))
    lonely = [str(f.batch_size) for f in found if not f.slower]
    tail = (f" At batch {', '.join(lonely)} only one runtime was timed." if lonely else "")
    return (f"Fastest runtime here: {'; '.join(parts)}. Paired: the runtimes were timed "
            f"interleaved {how}.{tail}")
