"""What a search reports: a chain's paired speedup against the start, the winner on the test
split (bootstrap interval, McNemar's test, in plain words), and the `--json` object."""

from __future__ import annotations

from typing import Any

from engine.reports import search_plan as P
from storage import jobs as store


def chain_speedup(job_ids: list[int], batch: int) -> tuple[dict[str, float] | None, str | None]:
    """The chain's speedup against the start by batch size: the product of its steps' paired
    speedups under one runtime (compiled when every step has one, else eager), as the lab's
    lineage derives it; never a ratio across runtimes. (None, None) when a step lacks one."""
    from engine.reports.runs import paired_speedup

    runs = [store.job_as_dict(store.get_job(i, refresh_first=False)) for i in job_ids]
    for runtime in ("compiled", "eager"):
        out: dict[str, float] = {}
        for bs in P.BATCHES:
            x = 1.0
            for run in runs:
                step, _ = paired_speedup(run, bs, runtime)
                if not step:
                    x = None
                    break
                x *= step
            if x is not None:
                out[str(bs)] = round(x, 3)
        if str(batch) in out:
            return out, runtime
    return None, None


def timing_flags(job_ids: list[int]) -> dict[int, str]:
    """{job: why its timing is not to be trusted} for the steps of a chain whose latencies
    were taken on a busy machine or spread too wide (the runner's timing_warning and
    timing_unreliable); {} when every step's timing held."""
    out: dict[int, str] = {}
    for job_id in job_ids:
        m = store.job_as_dict(store.get_job(job_id, refresh_first=False)).get("metrics") or {}
        why = m.get("timing_warning") or m.get("timing_unreliable")
        if why:
            out[job_id] = str(why)
    return out


def winner_report(start_job: int | None, winner: dict[str, Any]) -> dict[str, Any]:
    """The winner against the start on the test split, in numbers and plain words."""
    from engine.reports.stats import bootstrap_ci, difference_ci, mcnemar

    job = store.get_job(winner["id"], refresh_first=False)
    own = {p.idx: p.pred == p.label for p in store.predictions(job.id)}
    base = {p.idx: p.pred == p.label for p in store.predictions(start_job)} if start_job else {}
    idx = sorted(set(own) & set(base))
    a, b = [base[i] for i in idx], [own[i] for i in idx]
    acc = job.metrics.accuracy if job.metrics is not None else None
    low, high = bootstrap_ci([own[i] for i in sorted(own)]) if own else (None, None)
    out: dict[str, Any] = {"job": job.id, "test_accuracy": acc, "test_ci": [low, high]}
    speed, runtime = winner.get("speedup_vs_start"), winner.get("speedup_runtime")
    words = [f"The winner is job {job.id}: {winner['chain']}."]
    if speed:
        by = " and ".join(f"{x:.2f}x at batch {bs}" for bs, x in speed.items())
        e2e = winner.get("retime_job") if winner.get("speedup_source") == "end to end" \
            else None
        how = (f"timed end to end against the start, both interleaved in one process, by "
               f"retime job {e2e}" if e2e else
               "the product of paired steps, each timed against its parent in one process"
               if len(winner.get("jobs") or []) > 1 else
               "timed against the start, interleaved in one process")
        words.append(f"Its speedup against the starting model is {by} ({runtime}; {how}).")
        flagged = timing_flags([e2e] if e2e else winner.get("jobs") or [job.id])
        if flagged:
            # the search ranked on these figures: say so rather than print them as settled
            out["timing_warnings"] = {str(k): v for k, v in flagged.items()}
            ids = ", ".join(f"job {i}" for i in flagged)
            retime = (f" (`python -m engine submit retime --model job:{job.id} --set "
                      f"against=job:{start_job}`)" if start_job else "")
            words.append(f"Do not trust that speedup yet, nor the ranking it made: the timing "
                         f"of {ids} was flagged ({next(iter(flagged.values())).rstrip('.')}). "
                         f"Re-time the winner against the start on a quiet machine{retime}.")
    if idx:
        delta, dlow, dhigh = difference_ci(a, b)
        test = mcnemar(a, b)
        out.update(accuracy_delta_vs_start=delta, delta_ci=[dlow, dhigh],
                   mcnemar_p=test.p_value, start_test_accuracy=sum(a) / len(a))
        change = ("the same as the start" if delta == 0 else f"{abs(100 * delta):.2f} points "
                  f"{'below' if delta < 0 else 'above'} the start")
        words.append(f"On the test split ({len(idx)} examples) it scores {100 * acc:.1f} % "
                     f"(95 % interval {100 * low:.1f}-{100 * high:.1f} %), {change} "
                     f"(difference interval {100 * dlow:+.2f} to {100 * dhigh:+.2f} points).")
        words.append(test.sentence("the start", f"job {job.id}"))
    out["sentence"] = " ".join(words)
    return out


def result_json(rec: dict[str, Any]) -> dict[str, Any]:
    """The `--json` object: winner (as `show --json`), candidates, speedup_vs_start (paired,
    one runtime, by batch size), accuracy_delta_vs_start (test split) and minutes."""
    winner = store.job_as_dict(store.get_job(rec["winner"])) if rec.get("winner") else None
    row = next((c for c in rec["candidates"] if c["id"] == rec.get("winner")), {})
    report = rec.get("report") or {}
    return {"search": rec["id"], "status": rec["status"], "message": rec.get("message"),
            "winner": winner,
            "candidates": [{"id": c["id"], "chain": c["chain"],
                            "val_accuracy": c["val_accuracy"],
                            "val_drop_ci": c.get("val_drop_ci"), "status": c["status"]}
                           for c in rec["candidates"]],
            "speedup_vs_start": row.get("speedup_vs_start"),
            "speedup_runtime": row.get("speedup_runtime"),
            "speedup_source": row.get("speedup_source"),
            "accuracy_delta_vs_start": report.get("accuracy_delta_vs_start"),
            "minutes": rec.get("minutes")}
