"""Distil the input model (the teacher) into a smaller student: fewer layers, a smaller shape,
or another checkpoint with the same tokenizer.

Loss: `alpha` x temperature-softened KL to the teacher's logits (times T^2, as Hinton et al.)
plus (1 - alpha) x cross-entropy on the labels, plus optional hidden-state matching (MSE,
through a learned projection where widths differ; TinyBERT) and attention-map matching (KL
between attention distributions; MiniLM). The best student by validation accuracy is kept.
On cancel, that best student so far is saved to `$LAB_HOME/artifacts/job-ID-best-on-cancel/`
(a model directory usable as a model id) before the job ends as cancelled. The student
builders, the shape table and the loss terms are in engine/methods/distill/students.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.methods.distill.students import SHAPES, build_student, make_loss
from engine.methods.registry import register
from engine.toolkit.config import ConfigError, LabError, MethodConfig, param

log = logging.getLogger("engine")

STUDENTS = ("teacher-layers", "shape", "checkpoint")


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    """Defaults: a 3-layer student made of the teacher's own layers (as DistilBERT initialised
    its student), logit distillation plus label cross-entropy, 2 epochs; on the embedded
    teacher about 5 minutes on 2 CPU cores."""

    method = "distill"
    version = 1

    student: str = param("teacher-layers", "What the student is: teacher-layers (a subset of "
                         "the teacher's layers, its weights copied), shape (a smaller "
                         "architecture, see student_shape), or checkpoint (student_model).",
                         choices=STUDENTS)
    student_layers: int | list[int] = param(
        3, "A count (spread evenly, first and last kept, as DistilBERT's 0,2,4,7,9,11 of 12) or"
           " a list of teacher layer indices from 0 (e.g. [0, 2, 4]). For a shape student: "
           "its layer count, and with init=truncate the teacher layers it starts from.",
        min=0, max=48)
    temperature: float = param(2.0, "Softmax temperature for the teacher/student logits; "
                               "above 1 exposes the teacher's ranking of wrong classes.",
                               min=0.1, max=20.0)
    alpha: float = param(0.5, "Weight of the distillation (KL) loss; 1 - alpha weighs the "
                         "cross-entropy on the true labels.", min=0.0, max=1.0)
    hidden_loss: float = param(0.0, "Weight of hidden-state matching (MSE of every student "
                               "layer's output to its teacher layer's; 0: off). Costs a "
                               "teacher forward per step.", min=0.0, max=100.0)
    attention_loss: float = param(0.0, "Weight of attention-map matching (KL between teacher "
                                  "and student attention distributions; 0: off). Needs eager "
                                  "attention: about 1.5x slower steps.", min=0.0, max=100.0)
    epochs: float = param(2.0, "Passes over the training split (ignored when max_steps > 0).",
                          min=0.01, max=100)
    max_steps: int = param(0, "Optimizer steps to run; 0: use epochs.", min=0)
    lr: float = param(1e-4, "Peak learning rate of AdamW (linear warm-up, then decay).",
                      min=1e-7, max=1e-2)
    batch_size: int = param(32, "Examples per optimizer step.", min=1, max=1024)
    max_length: int = param(64, "Tokens per example (also the evaluation length).",
                            min=8, max=512)
    seed: int = param(0, "Seed for new weights and the data order.", min=0)
    freeze_embeddings: bool = param(True, "Keep the student's word embeddings fixed (for "
                                    "teacher-layers and checkpoint students, whose embeddings "
                                    "are already trained): they are most of a small student's "
                                    "weights, so steps are about 1.5x faster.", advanced=True)
    student_shape: str = param("custom", "For student=shape: a small BERT shape (layers, "
                               "hidden, heads, intermediate), or custom to use student_layers,"
                               " hidden_size, heads and intermediate_size.",
                               choices=("custom", *SHAPES), advanced=True)
    hidden_size: int = param(0, "For a custom shape: hidden width; 0: the teacher's.", min=0,
                             max=4096, advanced=True)
    heads: int = param(0, "For a custom shape: attention heads per layer; 0: the teacher's.",
                       min=0, max=64, advanced=True)
    intermediate_size: int = param(0, "For a custom shape: feed-forward width; 0: the "
                                   "teacher's.", min=0, max=16384, advanced=True)
    init: str = param("truncate", "For a shape student: truncate (the teacher's chosen layers,"
                      " each weight cut to the smaller shape) or random.",
                      choices=("truncate", "random"), advanced=True)
    student_model: str = param("", "For student=checkpoint: a model id with the teacher's "
                               "tokenizer (minilm-l6, job:ID, a local directory).",
                               advanced=True)
    warmup_ratio: float = param(0.06, "Fraction of steps spent warming the learning rate up.",
                                min=0.0, max=0.5, advanced=True)
    weight_decay: float = param(0.01, "AdamW weight decay (not on biases and LayerNorm).",
                                min=0.0, max=1.0, advanced=True)
    eval_every: int = param(50, "Steps between validation passes (the best one is kept).",
                            min=1, advanced=True)
    patience: int = param(6, "Stop after this many validations without improvement; 0: "
                          "never.", min=0, advanced=True)

    def check(self) -> None:
        layers = self.student_layers
        if isinstance(layers, list):
            if not layers:
                raise ConfigError("distill: student_layers is an empty list; give a count "
                                  "(e.g. 3) or teacher layer indices (e.g. [0, 2, 4])")
            if any(b <= a for a, b in zip(layers, layers[1:])):
                raise ConfigError(f"distill: student_layers={layers} must be increasing "
                                  f"teacher layer indices without repeats, e.g. [0, 2, 4]")
        elif layers < 1:
            raise ConfigError("distill: student_layers=0; a student needs at least 1 layer")
        if self.student == "checkpoint" and not self.student_model.strip():
            raise ConfigError("distill: student=checkpoint needs student_model, a model id "
                              "with the teacher's tokenizer (e.g. minilm-l6 or job:ID)")
        if self.hidden_size and self.heads and self.hidden_size % self.heads:
            raise ConfigError(f"distill: hidden_size={self.hidden_size} is not a multiple of "
                              f"heads={self.heads}")


# --------------------------------------------------------------------------- the job


@register(DistillConfig)
def apply(cfg: DistillConfig, ctx):
    """Build the student, distil it with engine.toolkit.training's loop, keep the best validation
    step; the runner then saves, evaluates and times it against the teacher (paired)."""
    import numpy as np

    from engine.toolkit.checkpoints import read_meta
    from engine.toolkit.contract import JobCancelled, Produced
    from engine.toolkit.evaluation import classification_metrics, predict
    from engine.toolkit.training import TrainSettings, train_classifier

    need_attn = cfg.attention_loss > 0
    ctx.progress(0.0, "loading the teacher", force=True)
    if cfg.student != "checkpoint" and cfg.init != "random" and \
            ctx.input_ref.source != "hub" and read_meta(ctx.input_ref.path).get("loader"):
        raise LabError(f"distill: {ctx.job.model} is a {read_meta(ctx.input_ref.path)['method']}"
                       f" output whose weights cannot seed a student; distil from the float "
                       f"model and apply that method to the student afterwards")
    teacher = ctx.load_input(eager_attention=need_attn)
    data, tok = ctx.dataset, ctx.tokenizer
    student, layer_map = build_student(cfg, teacher, eager_attention=need_attn,
                                       label_names=data.label_names, tokenizer=tok,
                                       texts=data.train.texts)
    teacher.to(ctx.device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    settings = TrainSettings(lr=cfg.lr, epochs=cfg.epochs, max_steps=cfg.max_steps,
                             batch_size=cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed,
                             warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
                             eval_every=cfg.eval_every, patience=cfg.patience)
    # The teacher's accuracy on the same validation examples: the curve's reference line.
    ctx.progress(0.01, "measuring the teacher on the validation split", force=True)
    val_texts = data.val.texts[:settings.val_limit]
    preds, _ = predict(teacher, tok, val_texts, cfg.max_length, ctx.device, batch_size=128,
                       progress=lambda f: ctx.progress(0.01 + 0.04 * f))
    teacher_val = classification_metrics(data.val.labels[:settings.val_limit], preds,
                                         data.num_labels)["accuracy"]
    steps = settings.total_steps(len(data.train))
    ctx.curve(0, teacher_accuracy=teacher_val)
    ctx.curve(steps, teacher_accuracy=teacher_val)  # a flat line across the planned run

    if cfg.freeze_embeddings and cfg.student in ("teacher-layers", "checkpoint"):
        # No gradient at all (not just no update): the dense [vocab, hidden] embedding
        # gradient and its AdamW update cost about a third of a 3-layer student's step.
        student.get_input_embeddings().weight.requires_grad_(False)
    loss_fn = make_loss(cfg, teacher, student, layer_map, len(data.train), ctx.device)
    student.to(ctx.device)
    try:
        info = train_classifier(student, tok, data, settings, ctx, device=ctx.device,
                                loss_fn=loss_fn, span=(0.05, 1.0),
                                extra_params=loss_fn.extra_params)
    except JobCancelled:
        _save_best_on_cancel(ctx, student, tok, cfg)  # the runner's cancel message names it
        raise
    student.eval()
    sc = student.config
    notes = {**info, "teacher_val_accuracy": teacher_val,
             "val_accuracy_retained": round(info["best_val_accuracy"] / teacher_val, 5)
             if teacher_val else None,
             "student_kind": cfg.student, "teacher_layers_used": layer_map,
             "student_arch": {"layers": sc.num_hidden_layers, "hidden": sc.hidden_size,
                              "heads": sc.num_attention_heads,
                              "intermediate": sc.intermediate_size},
             **{f"final_{k}_loss": round(float(np.mean(v)), 5)
                for k, v in loss_fn.parts.items() if v}}
    return Produced(model=student, tokenizer=tok, notes=notes,
                    meta={"teacher_layers_used": layer_map})


def _save_best_on_cancel(ctx, student, tokenizer, cfg: DistillConfig) -> Path | None:
    """Keep the best student so far (training restored its weights) where the user can load
    it: `artifacts/job-ID-best-on-cancel`, a model directory. Never masks the cancel."""
    from engine.toolkit.checkpoints import save_model
    from storage.artifacts import job_dir

    out = job_dir(ctx.job_id, "best-on-cancel")
    try:
        save_model(student.eval(), tokenizer, out,
                   {"method": "distill", "job_id": ctx.job_id, "input_model": ctx.job.model,
                    "dataset": ctx.job.dataset, "max_length": cfg.max_length,
                    "label_names": ctx.dataset.label_names, "config": cfg.to_json(),
                    "cancelled": True})
        log.warning("distill job %s cancelled; best student so far saved in %s",
                    ctx.job_id, out)
        return out
    except Exception:
        log.warning("distill job %s: could not save the best student on cancel", ctx.job_id,
                    exc_info=True)
        return None
