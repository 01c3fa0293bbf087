"""Which stored runs answer which lesson steps (one provenance at a time), the input model
a step is queued on, and what this machine's own runs still lack."""

from __future__ import annotations

import json
from typing import Any

from engine.reports.lessons.catalogue import LESSONS, LIVE, Lesson, Step


def _text(value: Any) -> str:
    """A config value as the text stored JSON gives it (true, 0.4, [16, 32])."""
    return value if isinstance(value, str) else json.dumps(value)


def config_matches(values: dict[str, Any], run: dict[str, Any]) -> bool:
    """Whether every one of `values` is in the run's stored config, compared as text."""
    data = (run.get("config") or {}).get("data") or {}
    return all(k in data and _text(data[k]) == _text(v) for k, v in values.items())


def output_name(run: dict[str, Any]) -> str:
    """The model id a job's output goes by (a reused job's is the original's)."""
    return run.get("output_model") or f"job:{run['id']}"


def _input_names(step: Step, runs: list[dict[str, Any]],
                 found: dict[str, list[dict[str, Any]]]) -> set[str]:
    if step.model.startswith("step:"):
        return {n for r in found.get(step.model[5:], [])
                for n in (output_name(r), f"job:{r['id']}")}
    names = {step.model}
    for r in runs:  # the teacher may also be named by its own job's output
        if r.get("alias") == step.model:
            names |= {output_name(r), f"job:{r['id']}"}
    return names


def match(lesson: Lesson, runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{step key: the runs answering it, newest first} among `runs` (one provenance)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for step in lesson.steps:  # in order: a chained step's input is an earlier step's run
        names = _input_names(step, runs, found)
        found[step.key] = sorted(
            (r for r in runs if r["method"] == step.method and r["status"] in LIVE
             and r["model"] in names and r.get("dataset") == step.dataset
             and config_matches(step.values, r)), key=lambda r: -r["id"])
    return found


def by_origin(runs: list[dict[str, Any]]) -> dict[str | None, list[dict[str, Any]]]:
    """Runs split by provenance: None (measured here) first, then each pack's origin."""
    groups: dict[str | None, list[dict[str, Any]]] = {None: []}
    for r in runs:
        groups.setdefault(r.get("origin") or None, []).append(r)
    return groups


def answers(runs: list[dict[str, Any]]) -> bool:
    """Whether some run of `runs` answers some lesson step."""
    return any(any(match(lesson, runs).values()) for lesson in LESSONS)


def sources(runs: list[dict[str, Any]]) -> list[str | None]:
    """None (this machine) and every origin that answers some lesson step."""
    return [None] + [o for o, rs in by_origin(runs).items() if o is not None and answers(rs)]


def missing(lesson: Lesson, runs: list[dict[str, Any]]) -> list[Step]:
    """The lesson's steps that no run measured here (queued, running or done) answers."""
    found = match(lesson, by_origin(runs)[None])
    return [step for step in lesson.steps if not found[step.key]]


def input_model(step: Step, runs: list[dict[str, Any]], queued: dict[str, int]) -> str:
    """The model id to submit `step` on: its own, or the output of the earlier step's job
    (one just queued in `queued` {step key: job id}, else this machine's newest, done first)."""
    if not step.model.startswith("step:"):
        return step.model
    key = step.model[5:]
    if key in queued:
        return f"job:{queued[key]}"
    lesson = next(ls for ls in LESSONS if step in ls.steps)
    earlier = match(lesson, by_origin(runs)[None])[key]
    ready = [r for r in earlier if r["status"] == "done"] or earlier
    return output_name(ready[0])


def done(found: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any] | None:
    """The newest done run answering step `key`, or None."""
    return next((r for r in found.get(key, []) if r["status"] == "done"), None)


def pending(found: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Matched jobs still queued or running (oldest first), when no done run answers their
    step yet."""
    out = [r for key, rs in found.items() if done(found, key) is None for r in rs]
    return sorted(out, key=lambda r: r["id"])
