"""The Learn page's five lessons: the jobs each needs, the stored runs that answer them, and
the takeaways in plain words, computed from those runs (never canned numbers).

Runs are dicts shaped like `storage.jobs.job_as_dict` (done runs from `queries.runs_table`;
queued or running jobs with empty metrics). A run answers a lesson's step when its method,
input model and dataset are the step's, the step's config values are a subset of the run's
stored config (compared as text: stored configs are JSON), and it is not failed or cancelled.

Provenance: a run imported from a pack carries `origin` (where and on what hardware it was
measured). Lessons are matched and summarised one provenance at a time (`by_origin`), so a
ratio measured elsewhere is never multiplied with, or set against, one measured here; "run it"
queues what this machine's own runs lack (`missing`). No torch, no streamlit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import pandas as pd

from engine.reports.runs import paired_speedup, pareto_mask, runtime_of

TEACHER, BASE = "default", "minilm-l6"
LIVE = ("queued", "running", "done")  # a failed or cancelled job answers nothing
RUNTIMES = ("eager", "compiled")
HERE = "On this machine"


@dataclass(frozen=True)
class Step:
    """One job a lesson needs: `values` are the config fields it sets (the rest default);
    `model` is a model id or "step:KEY", the output of this lesson's step KEY."""

    key: str
    label: str
    method: str
    values: dict[str, Any] = field(default_factory=dict)
    model: str = TEACHER
    dataset: str = "rotten-tomatoes"


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    intro: str
    empty: str  # with no runs: what to click and what it will show
    steps: tuple[Step, ...]


INT8 = {"scheme": "int8-dynamic", "embeddings": True}
LENGTHS = [16, 32, 64, 128, 256, 512]

LESSONS: tuple[Lesson, ...] = (
    Lesson("quantize", "1 · Quantization",
           "Quantization stores weights as 8-bit integers instead of 32-bit floats and does the "
           "matrix multiplies in int8. On a CPU that pays only when `torch.compile` fuses the "
           "rounding of activations into the int8 kernels, so every run is timed both eager "
           "and compiled, each against the teacher under the same runtime. The embedding "
           "tables are a large part of a small model's file; quantizing them too shrinks the "
           "file, not the time.",
           "Click **Run it**: it queues two int8 versions of the teacher (Linear layers only, "
           "and Linear layers plus embeddings). The chart will show each one's paired speedup "
           "eager and compiled, and the takeaways how much accuracy it cost and how much of "
           "the file the embeddings are.",
           (Step("linear", "int8 of the Linear layers", "quantize",
                 {"scheme": "int8-dynamic", "embeddings": False}),
            Step("all", "int8 of the Linear layers and embeddings", "quantize", dict(INT8)))),
    Lesson("prune", "2 · Pruning",
           "Pruning removes parts of the model: whole attention heads, whole layers, or single "
           "weights (unstructured). Removing heads or layers makes the matrices smaller, so "
           "they compute faster. Unstructured pruning only sets weights to zero: the dense "
           "kernels of a CPU or GPU multiply the zeros like any other number, so it is no "
           "faster (on a GPU the sparse-kernel path can even be slower at small batches).",
           "Click **Run it**: it queues three prunes of the teacher (40 % of the heads, a third "
           "of the layers, 50 % of the weights unstructured). The chart will compare their "
           "paired speedups, the takeaways what each cost in accuracy.",
           (Step("heads", "40 % of the heads", "prune", {"kind": "heads", "amount": 0.4}),
            Step("layers", "a third of the layers", "prune", {"kind": "layers", "amount": 0.33}),
            Step("unstructured", "50 % of the weights, unstructured", "prune",
                 {"kind": "unstructured", "amount": 0.5}))),
    Lesson("distill", "3 · Distillation",
           "Distillation trains a smaller student to copy the teacher's predictions. Here the "
           "student is made of some of the teacher's own layers; fewer layers run faster, and "
           "the question is how much accuracy each depth keeps.",
           "Click **Run it**: it queues students of 2, 3 and 4 layers. The chart will show the "
           "accuracy each keeps against its depth, the takeaways the speed each gains.",
           tuple(Step(f"layers{n}", f"{n}-layer student", "distill",
                      {"student": "teacher-layers", "student_layers": n}) for n in (2, 3, 4))),
    Lesson("frontier", "4 · Chaining and the frontier",
           "Methods chain: a distilled student can be quantized, and the gains multiply. "
           "Every model made from the teacher is a point of accuracy against latency; the ones "
           "no other beats on both form the frontier. Set a latency budget and the lesson "
           "picks the most accurate model that fits, its latency computed from the teacher's "
           "and the paired speedups along its chain.",
           "Click **Run it**: it queues a 3-layer student and an int8 version of it. The chart "
           "will place every model made from the teacher (this lesson's and the others') on "
           "accuracy against latency, with your budget as a line.",
           (Step("student", "3-layer student", "distill",
                 {"student": "teacher-layers", "student_layers": 3}),
            Step("student_int8", "int8 of the 3-layer student", "quantize", dict(INT8),
                 model="step:student"))),
    Lesson("seqlen", "5 · Attention and sequence length",
           "Self-attention compares every token with every other, so its work grows with the "
           "square of the length, while the feed-forward block grows in proportion to it. "
           "This lesson times the base encoder (MiniLM-L6) on BBC News texts, whose articles "
           "are long, at 16 to 512 tokens, with and without its attention and feed-forward "
           "blocks, to see where the time goes and where the quadratic term takes over. It "
           "measures latency only, so it needs no fine-tune first: a classifier head is a "
           "tiny part of the time. Efficient-attention designs change that term: sparse "
           "attention (a window per token, as in Longformer or BigBird) and linear attention "
           "(Performer, Linformer) make it grow in proportion to the length; fast recurrent "
           "models with few or no attention layers (RWKV, Mamba and their hybrids) carry a "
           "fixed-size state instead, so long inputs cost little more per token.",
           "Click **Run it**: it queues a sequence-length sweep of the base encoder on BBC "
           "News texts. The chart will split the time at each length into attention and "
           "feed-forward.",
           (Step("sweep", "length sweep of the base encoder, 16 to 512 tokens", "seqlen",
                 {"lengths": list(LENGTHS), "split": True}, model=BASE,
                 dataset="bbc-news"),)),
)
BY_KEY = {lesson.key: lesson for lesson in LESSONS}


# --------------------------------------------------------------------------- matching


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


def where(origin: str | None) -> str:
    return HERE if origin is None else "Where the pack was measured"


# --------------------------------------------------------------------------- small words


def _bs(metrics: dict[str, Any], key: str = "speedup_vs_parent") -> list[str]:
    return sorted(metrics.get(key) or {}, key=int)


def _x(x: float) -> str:
    return f"{x:.2f}x" if x < 1.95 else f"{x:.1f}x"


def _points(delta: float | None) -> str:
    """An accuracy change (0..1 scale) in points, as a verb phrase."""
    if delta is None or delta != delta:  # None or NaN
        return "its accuracy was not measured"
    p = 100 * delta
    if abs(p) < 0.05:
        return "kept the same accuracy"
    return f"cost {-p:.1f} points of accuracy" if p < 0 else f"gained {p:.1f} points of accuracy"


def _speeds(run: dict[str, Any]) -> str:
    """"3.1x faster at batch 1 and 3.5x at batch 32 (compiled against compiled, paired)"."""
    m = run["metrics"]
    sizes, rt = _bs(m), m.get("parent_runtime") or "eager"
    if not sizes:
        return "its speed against the teacher was not measured"
    x = m["speedup_vs_parent"]
    first = x[sizes[0]]
    text = (f"{_x(first)} faster" if first >= 1 else f"slower ({_x(first)} the speed)") + \
        f" at batch {sizes[0]}"
    if len(sizes) > 1:
        text += f" and {_x(x[sizes[-1]])} at batch {sizes[-1]}"
    return text + f" ({rt} against {rt}, paired)"


def _device_note(run: dict[str, Any]) -> str:
    device = run["metrics"].get("device") or ""
    return f" on {device}" if device.startswith("cuda") else ""


# --------------------------------------------------------------------------- 1 quantization


def speedup_rows(found: dict[str, list[dict[str, Any]]], lesson: Lesson,
                 compile_alone: bool = False) -> pd.DataFrame:
    """Paired speedups to chart: {series, runtime, batch_size, speedup} for each step's done
    run under every runtime it stored; with `compile_alone`, the teacher's own gain from
    compiling (its eager / its compiled, from the first run that stored it)."""
    rows, gain = [], None
    for step in lesson.steps:
        run = done(found, step.key)
        if run is None:
            continue
        m = run["metrics"]
        for rt in (m.get("speedup_by_runtime") or {}) or [m.get("parent_runtime") or "eager"]:
            for bs in sorted({int(b) for b in _bs(m)}):
                x, _ = paired_speedup(run, bs, rt)
                if x:
                    rows.append({"series": step.label, "runtime": rt, "batch_size": bs,
                                 "speedup": x})
        gain = gain or m.get("compile_gain_parent")
    if compile_alone and gain:
        rows += [{"series": "compiling alone (the fp32 teacher, compiled against eager)",
                  "runtime": "compiled", "batch_size": int(bs), "speedup": x}
                 for bs, x in gain.items()]
    return pd.DataFrame(rows, columns=["series", "runtime", "batch_size", "speedup"])


def quantize_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    lesson, out = BY_KEY["quantize"], []
    linear, full = done(found, "linear"), done(found, "all")
    for step, run in zip(lesson.steps, (linear, full)):
        if run is not None:
            out.append(f"{where(origin)}, {step.label} made the teacher {_speeds(run)} and "
                       f"{_points(run['metrics'].get('accuracy_delta_vs_parent'))}.")
    run = full or linear
    if run is not None:
        m = run["metrics"]
        by_rt = m.get("speedup_by_runtime") or {}
        bs = (_bs(m) or ["1"])[0]
        eager, compiled = (by_rt.get(rt, {}).get(bs) for rt in RUNTIMES)
        if eager and compiled:
            out.append(f"Compiling matters: run eager, int8 was {_x(eager)} faster at batch "
                       f"{bs}; compiled, {_x(compiled)} (each against the teacher under the "
                       f"same runtime). The compiler fuses the rounding of activations into the "
                       f"int8 matrix multiplies; eager PyTorch does it as separate steps.")
        else:
            out.append("This run was timed under one runtime only; with LAB_TIMING_RUNTIMES="
                       "eager,compiled the lesson shows what compiling adds.")
        gain = (m.get("compile_gain_parent") or {}).get(bs)
        if gain:
            out.append(f"Compiling alone, without int8, made the fp32 teacher {_x(gain)} "
                       f"faster at batch {bs}: the two gains are different things.")
    embed = embedding_share(linear, full)
    if embed is not None:
        mb, teacher_mb, share = embed
        out.append(f"The embedding tables are about {mb:.0f} of the teacher's {teacher_mb:.1f} "
                   f"MB ({share:.0%}): int8 on the Linear layers alone made the file "
                   f"{teacher_mb / linear['metrics']['size_mb']:.2f}x smaller, with the "
                   f"embeddings too {teacher_mb / full['metrics']['size_mb']:.2f}x. A table "
                   f"lookup costs almost no time, so this saves space, not speed.")
    return out


def embedding_share(linear: dict[str, Any] | None,
                    full: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """(embeddings MB in fp32, teacher MB, share) from the two int8 runs' sizes: quantizing
    the tables too saves 3/4 of their bytes, so fp32 tables = (linear - full) / (3/4)."""
    if linear is None or full is None:
        return None
    a, b = linear["metrics"], full["metrics"]
    if not (a.get("size_mb") and b.get("size_mb") and a.get("size_ratio_vs_parent")):
        return None
    teacher = a["size_mb"] * a["size_ratio_vs_parent"]
    mb = (a["size_mb"] - b["size_mb"]) / 0.75
    return (mb, teacher, mb / teacher) if mb > 0 else None


# --------------------------------------------------------------------------- 2 pruning


def prune_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    out, gains = [], {}
    for step in BY_KEY["prune"].steps:
        run = done(found, step.key)
        if run is None:
            continue
        m = run["metrics"]
        text = (f"{where(origin)}{_device_note(run)}, removing {step.label} made the teacher "
                f"{_speeds(run)} and {_points(m.get('accuracy_delta_vs_parent'))}")
        ratio = m.get("size_ratio_vs_parent")
        if ratio:
            text += ("; the file is the same size" if abs(ratio - 1) < 0.01 else
                     f"; the file is {ratio:.2f}x smaller")
        out.append(text + ".")
        sizes = _bs(m)
        if sizes:
            gains[step.label] = m["speedup_vs_parent"][sizes[0]]
        if step.key == "unstructured" and sizes:
            x = m["speedup_vs_parent"][sizes[0]]
            out.append(("So unstructured zeros bought no speed here: " if x < 1.1 else
                        f"Unstructured zeros gave {_x(x)} here, less than their share of "
                        f"zeros suggests: ") + "dense kernels multiply a zero like any "
                       "other number, and the file keeps every zero. Only sparse kernels at "
                       "high sparsity (or 2:4 patterns on large GPU batches) turn zeros into "
                       "time.")
    if len(gains) > 1:
        best = max(gains, key=gains.get)
        out.append(f"Of these, {best} gave the most speed ({_x(gains[best])} at the smallest "
                   f"batch): structure (whole heads, whole layers) is what kernels can skip.")
    return out


# --------------------------------------------------------------------------- 3 distillation


def depth_rows(found: dict[str, list[dict[str, Any]]], lesson: Lesson) -> pd.DataFrame:
    """{job, label, layers, retained, delta, speedup, batch_size} per done student, the
    shallowest first."""
    rows = []
    for step in lesson.steps:
        run = done(found, step.key)
        if run is None or run["metrics"].get("accuracy_retained") is None:
            continue
        m = run["metrics"]
        sizes = _bs(m)
        rows.append({"job": run["id"], "label": step.label,
                     "layers": m.get("layers") or step.values.get("student_layers"),
                     "retained": m["accuracy_retained"],
                     "delta": m.get("accuracy_delta_vs_parent"),
                     "speedup": m["speedup_vs_parent"][sizes[0]] if sizes else math.nan,
                     "batch_size": int(sizes[0]) if sizes else None})
    return pd.DataFrame(rows, columns=["job", "label", "layers", "retained", "delta",
                                       "speedup", "batch_size"]).sort_values("layers")


def distill_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    rows = depth_rows(found, BY_KEY["distill"])
    out = []
    for r in rows.itertuples():
        speed = (f" and ran {_x(r.speedup)} faster at batch {int(r.batch_size)}"
                 if pd.notna(r.speedup) else "")
        out.append(f"{where(origin)}, a {int(r.layers)}-layer student kept {r.retained:.1%} of "
                   f"the teacher's accuracy ({_points(r.delta)}){speed}.")
    if len(rows) > 1:
        kept = rows[rows["retained"] >= 0.98]
        if len(kept):
            out.append(f"The shallowest student that kept at least 98 % was the "
                       f"{int(kept.iloc[0]['layers'])}-layer one: the depth to start from.")
        else:
            best = rows.loc[rows["retained"].idxmax()]
            out.append(f"No student kept 98 %; the best, {int(best['layers'])} layers, kept "
                       f"{best['retained']:.1%}: train longer or keep more layers.")
    return out


# --------------------------------------------------------------------------- 4 frontier


def _short(run: dict[str, Any]) -> str:
    data = (run.get("config") or {}).get("data") or {}
    if run["method"] == "quantize":
        return data.get("scheme", "quantize") + (" + embeddings" if data.get("embeddings")
                                                 else "")
    if run["method"] == "prune":
        return f"prune {data.get('kind', '')} {float(data.get('amount', 0)):.0%}"
    if run["method"] == "distill":
        return f"distill to {data.get('student_layers')} layers"
    return run["method"]


def chain(run: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The run's chain down to the teacher, first step first, every step among `by_id` (one
    provenance); None when it does not reach the teacher that way."""
    steps = [run]
    while steps[-1]["model"] != TEACHER:
        parent = by_id.get(steps[-1].get("parent_id"))
        if parent is None or len(steps) > 20:
            return None
        if parent.get("alias") == TEACHER:  # the teacher named by its job's output
            break
        steps.append(parent)
    return steps[::-1]


def _first_steps(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["model"] == TEACHER and r["status"] == "done"
            and r["metrics"].get("parent_latency")]


def reference_length(runs: list[dict[str, Any]]) -> int | None:
    """The evaluation length (tokens) most first steps timed the teacher at: lesson 4 prices
    every chain at this one length."""
    lengths = [r["metrics"].get("seq_len") for r in _first_steps(runs)]
    lengths = [n for n in lengths if n]
    return max(set(lengths), key=lengths.count) if lengths else None


def teacher_ms(runs: list[dict[str, Any]], batch_size: int, seq_len: int) -> dict[str, float]:
    """{runtime: the teacher's median latency in ms at `batch_size` and `seq_len`}: the median
    over every first step's paired timing of its parent, the teacher, in `runs`."""
    seen: dict[str, list[float]] = {}
    for r in _first_steps(runs):
        for row in r["metrics"]["parent_latency"]:
            if row["batch_size"] == batch_size and row.get("seq_len") == seq_len:
                seen.setdefault(runtime_of(row), []).append(row["p50_ms"])
    return {rt: median(v) for rt, v in seen.items()}


def frontier_rows(runs: list[dict[str, Any]], batch_size: int) -> pd.DataFrame:
    """Every done model made from the teacher in `runs` (one provenance), with its latency at
    `batch_size` and the reference length: the teacher's (`teacher_ms`) divided by the
    product of the paired speedups along its chain, under each runtime every step and the
    teacher were timed in; the fastest runtime is kept. {job, label, accuracy, latency_ms,
    speedup, runtime}; the teacher is the row with job None. A reused job is its original's
    point, not a second one."""
    by_id = {r["id"]: r for r in runs if r["status"] == "done"}
    length = reference_length(runs)
    base = teacher_ms(runs, batch_size, length) if length else {}
    rows, teacher_acc = [], None
    for run in by_id.values():
        m = run["metrics"]
        if m.get("accuracy") is None or not m.get("speedup_vs_parent") or \
                m.get("accuracy_meaningful") is False or run.get("reused_from") in by_id:
            continue
        steps = chain(run, by_id)
        if steps is None or any(s["metrics"].get("seq_len") != length for s in steps):
            continue
        first = steps[0]["metrics"]
        if teacher_acc is None and first.get("accuracy_delta_vs_parent") is not None:
            teacher_acc = first["accuracy"] - first["accuracy_delta_vs_parent"]
        best = None
        for rt, ms in base.items():
            ratios = [paired_speedup(s, batch_size, rt)[0] for s in steps]
            if all(ratios):
                x = math.prod(ratios)
                if best is None or ms / x < best[0]:
                    best = (ms / x, x, rt)
        if best is not None:
            rows.append({"job": run["id"], "label": " → ".join(_short(s) for s in steps),
                         "accuracy": m["accuracy"], "latency_ms": best[0], "speedup": best[1],
                         "runtime": best[2]})
    if base and teacher_acc is not None:
        rt = min(base, key=base.get)
        rows.append({"job": None, "label": "teacher", "accuracy": teacher_acc,
                     "latency_ms": base[rt], "speedup": 1.0, "runtime": rt})
    return pd.DataFrame(rows, columns=["job", "label", "accuracy", "latency_ms", "speedup",
                                       "runtime"]).sort_values("latency_ms", ignore_index=True)


def pick(rows: pd.DataFrame, budget_ms: float) -> pd.Series | None:
    """The most accurate model within `budget_ms` (the faster of equals), or None."""
    fits = rows[rows["latency_ms"] <= budget_ms]
    if not len(fits):
        return None
    return fits.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]


def frontier_takeaways(rows: pd.DataFrame, budget_ms: float, batch_size: int,
                       found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    if not len(rows):
        return []
    out = []
    choice = pick(rows, budget_ms)
    teacher = rows[rows["job"].isna()]
    ref = teacher["accuracy"].iloc[0] if len(teacher) else None
    is_teacher = choice is not None and pd.isna(choice["job"])
    if choice is None:
        fastest = rows.iloc[0]
        out.append(f"Nothing measured fits {budget_ms:.1f} ms at batch {batch_size}: the "
                   f"fastest model, {fastest['label']}, takes about "
                   f"{fastest['latency_ms']:.1f} ms.")
    else:
        vs = (f" ({100 * (choice['accuracy'] - ref):+.1f} points against the teacher)"
              if ref is not None and not is_teacher else "")
        job = "" if is_teacher else f" (job {int(choice['job'])})"
        out.append(f"{where(origin)}, for {budget_ms:.1f} ms per batch of {batch_size}, ship "
                   f"**{choice['label']}**{job}: {choice['accuracy']:.1%} accuracy{vs}, about "
                   f"{choice['latency_ms']:.1f} ms ({_x(choice['speedup'])} the teacher's "
                   f"speed, {choice['runtime']}, from paired ratios along its chain).")
    quantized = done(found, "student_int8")
    student = next((r for r in found.get("student", []) if quantized is not None
                    and r["id"] == quantized.get("parent_id")), None)  # its own student
    chained = rows[rows["job"] == quantized["id"]] if quantized is not None else rows[:0]
    if student is not None and len(chained):
        rt = chained["runtime"].iloc[0]  # both ratios under the runtime the chain was priced in
        a, b = (paired_speedup(r, batch_size, rt)[0] for r in (student, quantized))
        if a and b:
            out.append(f"Chaining multiplies: the 3-layer student was {_x(a)} faster than the "
                       f"teacher and int8 made it {_x(b)} faster again, about {_x(a * b)} in "
                       f"all ({rt}, paired at each step), at "
                       f"{quantized['metrics']['accuracy']:.1%} accuracy.")
    on = rows[frontier_mask(rows)]
    out.append(f"{len(on)} of {len(rows)} models are on the frontier (no other is both faster "
               f"and more accurate): {', '.join(on['label'])}.")
    return out


def frontier_mask(rows: pd.DataFrame) -> pd.Series:
    """True for the rows no other row beats on both latency and accuracy."""
    return pd.Series(pareto_mask(rows["latency_ms"], rows["accuracy"]), index=rows.index)


# --------------------------------------------------------------------------- 5 sequence length


def sweep_rows(run: dict[str, Any] | None) -> pd.DataFrame:
    """The swept model's eager timings by length at the smallest batch: {seq_len, p50_ms,
    attention_ms, ffn_ms, other_ms (the split's full time less both), batch_size}."""
    cols = ["seq_len", "p50_ms", "attention_ms", "ffn_ms", "other_ms", "batch_size"]
    if run is None:
        return pd.DataFrame(columns=cols)
    m = run["metrics"]
    sweep = [e for e in m.get("seqlen_sweep") or [] if e["role"] == "self"
             and e["runtime"] == "eager"]
    if not sweep:
        return pd.DataFrame(columns=cols)
    bs = min(e["batch_size"] for e in sweep)
    split = {e["seq_len"]: e for e in m.get("attention_split") or []
             if e["role"] == "self" and e["batch_size"] == bs}
    rows = []
    for e in sorted((e for e in sweep if e["batch_size"] == bs), key=lambda e: e["seq_len"]):
        s = split.get(e["seq_len"])
        att, ffn = (s["attention_ms"], s["ffn_ms"]) if s else (math.nan, math.nan)
        other = max(s["full_ms"] - att - ffn, 0.0) if s else math.nan
        rows.append({"seq_len": e["seq_len"], "p50_ms": e["p50_ms"], "attention_ms": att,
                     "ffn_ms": ffn, "other_ms": other, "batch_size": bs})
    return pd.DataFrame(rows, columns=cols)


def seqlen_takeaways(rows: pd.DataFrame, origin: str | None) -> list[str]:
    if len(rows) < 2:
        return []
    first, last = rows.iloc[0], rows.iloc[-1]
    bs = int(first["batch_size"])
    out = [f"{where(origin)}, MiniLM-L6 (the base encoder) on BBC News texts took "
           f"{first['p50_ms']:.1f} ms at {int(first['seq_len'])} tokens and "
           f"{last['p50_ms']:.1f} ms at {int(last['seq_len'])} (batch {bs}): "
           f"{last['seq_len'] / first['seq_len']:.0f}x "
           f"the length, {last['p50_ms'] / first['p50_ms']:.1f}x the time."]
    per_token = rows["p50_ms"] / rows["seq_len"]
    low = int(per_token.idxmin())
    if low < len(rows) - 1:
        out.append(f"The time per token was lowest at {int(rows['seq_len'][low])} tokens "
                   f"({1000 * per_token[low]:.0f} µs); beyond that it grows with the length: "
                   f"there the quadratic term (every token against every other) takes over "
                   f"from the fixed costs.")
    else:
        out.append(f"Up to {int(last['seq_len'])} tokens the time per token kept falling: "
                   f"fixed costs still dominate, and the quadratic term has not taken over on "
                   f"this machine at batch {bs}.")
    split = rows.dropna(subset=["attention_ms"])
    if len(split) >= 2:
        a, b = split.iloc[0], split.iloc[-1]
        share = split["attention_ms"] / (split["attention_ms"] + split["ffn_ms"] +
                                         split["other_ms"])
        text = (f"Attention took {share.iloc[0]:.0%} of the time at {int(a['seq_len'])} "
                f"tokens and {share.iloc[-1]:.0%} at {int(b['seq_len'])}")
        over = split[split["attention_ms"] > split["ffn_ms"]]
        text += (f"; it overtook the feed-forward block at {int(over.iloc[0]['seq_len'])} "
                 f"tokens." if len(over) else "; the feed-forward block stayed the larger "
                 "part.")
        out.append(text)
        rate = (split["attention_ms"] / split["seq_len"]).min()
        linear = rate * b["seq_len"]
        if b["attention_ms"] > linear:
            total = b["attention_ms"] + b["ffn_ms"] + b["other_ms"]
            out.append(f"If attention grew only in proportion to the length (what sparse or "
                       f"linear attention aim for), its {b['attention_ms']:.0f} ms at "
                       f"{int(b['seq_len'])} tokens would be about {linear:.0f} ms and the "
                       f"model {_x(total / (total - b['attention_ms'] + linear))} faster there "
                       f"(an estimate from this sweep's best time per token, not a "
                       f"measurement).")
    return out


def frontier_batches(runs: list[dict[str, Any]]) -> list[int]:
    """Batch sizes at which some first step timed the teacher (lesson 4's choices)."""
    return sorted({row["batch_size"] for r in _first_steps(runs)
                   for row in r["metrics"]["parent_latency"]})
