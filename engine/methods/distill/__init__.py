"""Distil the input model (the teacher) into a smaller student: fewer layers, a smaller shape,
or another checkpoint with the same tokenizer.

Loss: `alpha` x temperature-softened KL to the teacher's logits (times T^2, as Hinton et al.)
plus (1 - alpha) x cross-entropy on the labels, plus optional hidden-state matching (MSE,
through a learned projection where widths differ; TinyBERT) and attention-map matching (KL
between attention distributions; MiniLM). The best student by validation accuracy is kept.
On cancel, that best student so far is saved to `$LAB_HOME/artifacts/job-ID-best-on-cancel/`
(a model directory usable as a model id) before the job ends as cancelled. The student
builders, the shape table and the loss terms are in engine/methods/distill/students.py, the
config in config.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.methods.distill.checks import check_input  # noqa: F401
from engine.methods.distill.config import DistillConfig
from engine.methods.distill.students import build_student, make_loss
from engine.methods.registry import register
from engine.toolkit.config import LabError

__all__ = ["DistillConfig", "apply"]

log = logging.getLogger("engine")

# --------------------------------------------------------------------------- the job


@register(DistillConfig)
def apply(cfg: DistillConfig, ctx):
    """Build the student, distil it with engine.toolkit.training's loop, keep the best validation
    step; the runner then saves, evaluates and times it against the teacher (paired)."""
    import numpy as np

    from engine.toolkit.architecture import weight_changes
    from engine.toolkit.checkpoints import read_meta
    from engine.toolkit.contract import JobCancelled, Produced
    from engine.toolkit.evaluation import classification_metrics, predict
    from engine.toolkit.training import TrainSettings, train_classifier

    need_attn = cfg.attention_loss > 0
    ctx.progress(0.0, "loading the teacher", force=True)
    # a mean-pooled teacher's weights are plain (build_student gives the student its pooling)
    if cfg.student != "checkpoint" and cfg.init != "random" and weight_changes(ctx.input_ref):
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
                             eval_every=cfg.eval_every, patience=cfg.patience,
                             dropout=cfg.dropout)
    # The teacher's accuracy on the same validation examples: the curve's reference line.
    ctx.progress(0.01, "measuring the teacher on the validation split", force=True)
    val = settings.selection(data)
    preds, _ = predict(teacher, tok, val.texts, cfg.max_length, ctx.device, batch_size=128,
                       progress=lambda f: ctx.progress(0.01 + 0.04 * f))
    teacher_val = classification_metrics(val.labels, preds, data.num_labels)["accuracy"]
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
    from engine.toolkit.pooling import pooling_changes

    return Produced(model=student, tokenizer=tok, notes=notes,
                    meta={"teacher_layers_used": layer_map,
                          "changes": pooling_changes(student)})


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
