"""The lessons' catalogue: each lesson's words and the jobs (steps) it needs, and the names
the other modules share (the teacher, the base encoder, the statuses that answer a step, the
runtimes a run is timed under)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEACHER, BASE = "default", "minilm-l6"
LIVE = ("queued", "running", "done")  # a failed or cancelled job answers nothing
RUNTIMES = ("eager", "compiled")


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
