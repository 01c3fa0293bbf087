"""distill's submit-time checks against the teacher's facts (no torch): student layers
within the teacher's, a shape the chosen init can build, a classifier that fits the data."""

from __future__ import annotations

from typing import Any

from engine.toolkit.config import ConfigError, LabError, card_config, check_head_fits


def check_input(cfg: Any, card: dict[str, Any], dataset: Any) -> None:
    """Raise ConfigError for what the job would refuse after loading the teacher."""
    check_head_fits("distill", card, dataset)
    if cfg.student == "checkpoint":
        _check_student_model(cfg.student_model)
    n = card.get("layers")
    if not n:
        return  # facts unknown (a hub model, a job not finished yet): the job checks
    layers = cfg.student_layers
    if cfg.student != "checkpoint":
        per_layer = card.get("heads_per_layer")
        if per_layer and card.get("heads") is not None and card["heads"] < n * per_layer:
            raise ConfigError("distill: the teacher has pruned heads; distil from the unpruned "
                              "model and prune the student afterwards (distill -> prune -> "
                              "quantize)")
        uses_teacher_layers = cfg.student == "teacher-layers" or cfg.init == "truncate"
        if isinstance(layers, list) and uses_teacher_layers:
            bad = [i for i in layers if i >= n]
            if bad:
                raise ConfigError(f"distill: student_layers={layers} names teacher layer "
                                  f"{', '.join(map(str, bad))}, but the teacher has {n} layers "
                                  f"(0 to {n - 1}); pick indices of those")
        elif isinstance(layers, int) and cfg.student == "teacher-layers" and layers > n:
            raise ConfigError(f"distill: student_layers={layers} but the teacher has only {n} "
                              f"layers; ask for 1 to {n}")
    if cfg.student == "shape":
        _check_shape(cfg, card)


def _check_student_model(model_id: str) -> None:
    """A student checkpoint id that can never resolve (unknown id, a folder that is not a
    BERT model) is refused now; job outputs are checked when the job runs."""
    from engine.toolkit.checkpoints import resolve

    model_id = model_id.strip()
    if model_id == "default" or model_id.startswith("job:"):
        return
    try:
        resolve(model_id)
    except LabError as exc:
        raise ConfigError(f"distill: student_model={model_id!r}: {exc}") from exc


def _check_shape(cfg: Any, card: dict[str, Any]) -> None:
    """The shape student's arithmetic, as students.build_student does it."""
    from engine.methods.distill.students import SHAPES

    teacher = card_config(card)
    n = card["layers"]
    t_hidden = card.get("hidden") or teacher.get("hidden_size")
    t_heads = card.get("heads_per_layer") or teacher.get("num_attention_heads")
    t_inter = teacher.get("intermediate_size")
    if not (t_hidden and t_heads):
        return
    if cfg.student_shape != "custom":
        layers, hidden, heads, inter = SHAPES[cfg.student_shape]
    else:
        spec = cfg.student_layers
        layers = len(spec) if isinstance(spec, list) else spec
        hidden, heads = cfg.hidden_size or t_hidden, cfg.heads or t_heads
        inter = cfg.intermediate_size or t_inter
        if hidden % heads:
            raise ConfigError(f"distill: hidden_size {hidden} is not a multiple of heads "
                              f"{heads}; set both so that hidden_size / heads is a whole head "
                              f"width")
    if cfg.init != "truncate":
        return
    too_big = [f"{name} {v} > {t}" for name, v, t in [
        ("layers", layers, n), ("hidden", hidden, t_hidden), ("heads", heads, t_heads),
        ("intermediate", inter, t_inter)] if v and t and v > t]
    if too_big:
        raise ConfigError(f"distill: init=truncate cuts the teacher's weights down, but the "
                          f"student is larger ({', '.join(too_big)}); use init=random or a "
                          f"smaller shape")
    if hidden // heads != t_hidden // t_heads:
        raise ConfigError(f"distill: init=truncate keeps whole heads of width "
                          f"{t_hidden // t_heads}; set heads = hidden_size / "
                          f"{t_hidden // t_heads}, or use init=random")
    spec = cfg.student_layers
    if isinstance(spec, list) and len(spec) != layers:
        raise ConfigError(f"distill: student_shape {cfg.student_shape} has {layers} layers but "
                          f"student_layers lists {len(spec)}; give a count or a matching list")
