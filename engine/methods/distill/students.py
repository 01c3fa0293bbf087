"""Distillation machinery shared by the distill method (engine/methods/distill/): building
the student (a subset of the teacher's layers, a smaller shape cut from the teacher, or another
checkpoint with the same tokenizer) and the loss (softened KL to the teacher's logits, label
cross-entropy, hidden-state and attention-map matching).

Importing this module does not import torch (the method module imports it, and pages build
forms from that); each function imports what it needs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.toolkit.config import LabError
from engine.toolkit.losses import soft_target_loss

__all__ = ["SHAPES", "build_student", "make_loss", "pick_layers", "soft_target_loss",
           "uniform_map"]

if TYPE_CHECKING:
    from engine.methods.distill.config import DistillConfig

# Small BERT shapes of Turc et al. 2019 ("Well-Read Students Learn Better"): layers, hidden,
# heads (hidden / 64), intermediate (4 x hidden).
SHAPES: dict[str, tuple[int, int, int, int]] = {
    "bert-tiny": (2, 128, 2, 512),
    "bert-mini": (4, 256, 4, 1024),
    "bert-small": (4, 512, 8, 2048),
    "bert-medium": (8, 512, 8, 2048),
}
# The first `.layer.N.` / `.layers.N.` in a parameter name is its encoder layer (BERT, RoBERTa,
# DistilBERT, MiniLM all name them so).
LAYER_KEY = re.compile(r"(\.layers?\.)(\d+)(\.)")


# --------------------------------------------------------------------------- students


def pick_layers(spec: int | list[int], n: int) -> list[int]:
    """Teacher layer indices for a student: a list as given, or a count spread evenly over
    the `n` teacher layers keeping the first and the last (12 -> 6 gives DistilBERT's
    0,2,4,7,9,11; 6 -> 3 gives 0,3,5)."""
    import numpy as np

    if isinstance(spec, list):
        bad = [i for i in spec if i >= n]
        if bad:
            raise LabError(f"distill: student_layers={spec}: the teacher has {n} layers, so "
                           f"indices run from 0 to {n - 1}")
        return list(spec)
    if spec > n:
        raise LabError(f"distill: student_layers={spec} but the teacher has only {n} layers; "
                       f"ask for 1 to {n}")
    if spec == 1:
        return [n - 1]  # the layer the classifier was trained on
    # Round half up, so that the middle picks lean to the top (closer to the classifier).
    return [int(np.floor(x + 0.5)) for x in np.linspace(0, n - 1, spec)]


def uniform_map(k: int, n: int) -> list[int]:
    """TinyBERT's uniform layer map: student layer i (of k) learns from teacher layer
    (i + 1) * n / k - 1 (of n), so the last student layer learns from the last teacher layer."""
    return [min(n - 1, max(0, round((i + 1) * n / k) - 1)) for i in range(k)]


def copy_from_teacher(student, teacher, layer_map: list[int]) -> None:
    """Load every student weight from the teacher: student layer i from teacher layer
    layer_map[i]; a tensor smaller than the teacher's takes its leading slice on every dim
    (the first rows, heads and columns), which is weight selection by truncation."""
    import torch

    t_sd = teacher.state_dict()
    new = {}
    for key, s in student.state_dict().items():
        tkey = LAYER_KEY.sub(lambda m: f"{m[1]}{layer_map[int(m[2])]}{m[3]}", key, count=1)
        assert tkey in t_sd, f"the teacher has no weight {tkey} for the student's {key}"
        t = t_sd[tkey]
        assert t.ndim == s.ndim and all(a <= b for a, b in zip(s.shape, t.shape)), \
            f"{key}: student shape {tuple(s.shape)} is not within teacher's {tuple(t.shape)}"
        new[key] = t[tuple(slice(0, d) for d in s.shape)].to(s.dtype).clone()
    with torch.no_grad():
        student.load_state_dict(new)


def _shape(cfg: DistillConfig, tc) -> tuple[int, int, int, int]:
    """(layers, hidden, heads, intermediate) of a shape student; 0 fields take the teacher's."""
    if cfg.student_shape != "custom":
        return SHAPES[cfg.student_shape]
    layers = cfg.student_layers
    n = len(layers) if isinstance(layers, list) else layers
    hidden = cfg.hidden_size or tc.hidden_size
    heads = cfg.heads or tc.num_attention_heads
    if hidden % heads:
        raise LabError(f"distill: hidden_size {hidden} is not a multiple of heads {heads}; "
                       f"set both so that hidden_size / heads is a whole head width")
    return n, hidden, heads, cfg.intermediate_size or tc.intermediate_size


def build_student(cfg: DistillConfig, teacher, eager_attention: bool = False,
                  label_names: list[str] | None = None, tokenizer=None,
                  texts: list[str] | None = None):
    """The student model (untrained, on the CPU) and its teacher layer per student layer
    (used for hidden/attention matching and, for built students, for initial weights)."""
    import copy

    import torch
    from transformers import AutoModelForSequenceClassification

    tc = teacher.config
    n = tc.num_hidden_layers
    attn = "eager" if eager_attention else "sdpa"
    if cfg.student == "checkpoint":
        student = _load_checkpoint_student(cfg.student_model, eager_attention, label_names,
                                           tokenizer, texts or [])
        k = student.config.num_hidden_layers
        return student, uniform_map(k, n)
    if getattr(tc, "pruned_heads", None):
        raise LabError("distill: the teacher has pruned heads; distil from the unpruned model "
                       "and prune the student afterwards (distill -> prune -> quantize)")
    scfg = copy.deepcopy(tc)
    if cfg.student == "teacher-layers":
        keep = pick_layers(cfg.student_layers, n)
        scfg.num_hidden_layers = len(keep)
        init = "truncate"
    else:
        layers, hidden, heads, inter = _shape(cfg, tc)
        scfg.num_hidden_layers, scfg.hidden_size = layers, hidden
        scfg.num_attention_heads, scfg.intermediate_size = heads, inter
        init = cfg.init
        if init == "truncate":
            too_big = [f"{name} {v} > {t}" for name, v, t in [
                ("layers", layers, n), ("hidden", hidden, tc.hidden_size),
                ("heads", heads, tc.num_attention_heads),
                ("intermediate", inter, tc.intermediate_size)] if v > t]
            if too_big:
                raise LabError(f"distill: init=truncate cuts the teacher's weights down, but "
                               f"the student is larger ({', '.join(too_big)}); use init=random"
                               f" or a smaller shape")
            # Heads keep the teacher's head width, so truncation keeps whole heads.
            if hidden // heads != tc.hidden_size // tc.num_attention_heads:
                raise LabError(f"distill: init=truncate keeps whole heads of width "
                               f"{tc.hidden_size // tc.num_attention_heads}; set heads = "
                               f"hidden_size / {tc.hidden_size // tc.num_attention_heads}, "
                               f"or use init=random")
        spec = cfg.student_layers if isinstance(cfg.student_layers, list) else layers
        keep = pick_layers(spec, n) if init == "truncate" else uniform_map(layers, n)
        if init == "truncate" and len(keep) != layers:
            raise LabError(f"distill: student_shape {cfg.student_shape} has {layers} layers "
                           f"but student_layers lists {len(keep)}; give a count or matching "
                           f"list")
    # Which teacher layers the student's are (the convention of prune's drop_layers, read by
    # the Attention page): original numbers of the teacher's own original model.
    original = list(getattr(tc, "kept_layers", None) or range(n))
    if init == "truncate":
        scfg.kept_layers = [int(original[i]) for i in keep]
        scfg.original_layers = int(getattr(tc, "original_layers", None) or n)
    else:
        scfg.kept_layers = scfg.original_layers = None
    torch.manual_seed(cfg.seed)
    student = AutoModelForSequenceClassification.from_config(scfg, attn_implementation=attn)
    from engine.toolkit.pooling import is_mean_pooled, use_mean_pooling

    if is_mean_pooled(teacher):  # the student reads its tokens as the teacher does
        use_mean_pooling(student)
    if init == "truncate":
        copy_from_teacher(student, teacher, keep)
    return student, keep


def _load_checkpoint_student(model_id: str, eager_attention: bool, label_names, tokenizer,
                             texts: list[str]):
    """Load `model_id` as a student classifier; refuse it unless it tokenizes like the teacher
    (both models read the same token ids)."""
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, read_meta, resolve

    ref = resolve(model_id.strip())
    if ref.source == "preset":
        raise LabError("distill: for an architecture student use student=shape; "
                       "student_model takes a trained checkpoint")
    from engine.toolkit.architecture import weight_changes

    if weight_changes(ref):
        raise LabError(f"distill: {model_id} is a {read_meta(ref.path).get('method')} output "
                       f"(not plain float weights); use a float checkpoint as the student")
    if tokenizer is not None:
        theirs = load_tokenizer(ref)
        sample = texts[:200] or ["a tokenizer check"]
        if len(theirs) != len(tokenizer) or \
                theirs(sample)["input_ids"] != tokenizer(sample)["input_ids"]:
            raise LabError(f"distill: {model_id} uses a different tokenizer from the teacher "
                           f"({len(theirs)} vs {len(tokenizer)} tokens); teacher and student "
                           f"read the same token ids, so pick a student with the teacher's "
                           f"tokenizer (for the default teacher: minilm-l6)")
    return load_classifier(ref, label_names=label_names, require_head=False,
                           eager_attention=eager_attention).to("cpu")


# --------------------------------------------------------------------------- the loss


def make_loss(cfg: DistillConfig, teacher, student, layer_map: list[int], n_train: int,
              device: str):
    """The distillation loss as a `loss_fn(student, batch, labels, idx) -> scalar` for
    engine.toolkit.training, with `.extra_params` (the projection, if any) and `.parts` (running
    means of each term, for the job's notes).

    The teacher's logits are cached by training example (the teacher is fixed), so only the
    first epoch pays for its forward pass, unless hidden or attention matching needs the
    teacher's internals every step."""
    import torch
    import torch.nn.functional as F

    T, alpha = cfg.temperature, cfg.alpha
    use_hidden, use_attn = cfg.hidden_loss > 0, cfg.attention_loss > 0
    n_labels = teacher.config.num_labels
    cache = torch.zeros(n_train, n_labels, device=device)
    cached = torch.zeros(n_train, dtype=torch.bool, device=device)
    hs, ht = student.config.hidden_size, teacher.config.hidden_size
    proj = torch.nn.Linear(hs, ht).to(device) if use_hidden and hs != ht else None
    parts: dict[str, list[float]] = {}

    def note(**values: Any) -> None:
        for k, v in values.items():
            parts.setdefault(k, []).append(float(v))
            del parts[k][:-50]  # running window: the last 50 steps

    def teacher_forward(batch: dict, idx) -> tuple[Any, Any]:
        """Teacher logits [B, C] (cached by example) and, when needed, its full output."""
        ids = torch.as_tensor(idx, device=device)
        if not (use_hidden or use_attn) and bool(cached[ids].all()):
            return cache[ids], None
        with torch.no_grad():
            out = teacher(**batch, output_hidden_states=use_hidden,
                          output_attentions=use_attn)
        logits = out.logits.float()
        cache[ids], cached[ids] = logits, True
        return logits, out

    def loss_fn(model, batch: dict, labels, idx):
        t_logits, t_out = teacher_forward(batch, idx)
        out = model(**batch, output_hidden_states=use_hidden, output_attentions=use_attn)
        s_logits = out.logits.float()
        kd = soft_target_loss(s_logits, t_logits, T)
        ce = F.cross_entropy(s_logits, labels)
        loss = alpha * kd + (1 - alpha) * ce
        values = {"kd": kd.detach(), "ce": ce.detach()}
        mask = batch["attention_mask"].float()  # [B, T]: 1 for real tokens
        if use_hidden:
            hidden = hidden_mse(out.hidden_states, t_out.hidden_states, layer_map, mask, proj)
            loss = loss + cfg.hidden_loss * hidden
            values["hidden"] = hidden.detach()
        if use_attn:
            attn = attention_kl(out.attentions, t_out.attentions, layer_map, mask)
            loss = loss + cfg.attention_loss * attn
            values["attention"] = attn.detach()
        note(**values)
        return loss

    loss_fn.extra_params = list(proj.parameters()) if proj is not None else []
    loss_fn.parts = parts
    return loss_fn


def hidden_mse(s_states, t_states, layer_map: list[int], mask, proj=None):
    """Mean squared error between the student's embeddings and layer outputs and the
    teacher's (student layer i against teacher layer layer_map[i]), over real tokens.

    s_states / t_states: tuples of [B, T, H_s] / [B, T, H_t] (embeddings first); mask [B, T].
    `proj` (Linear H_s -> H_t) maps the student's width onto the teacher's where they differ."""
    pairs = [(0, 0)] + [(i + 1, t + 1) for i, t in enumerate(layer_map)]
    denom = mask.sum() * t_states[0].shape[-1]
    total = 0.0
    for si, ti in pairs:
        s = s_states[si] if proj is None else proj(s_states[si])
        total = total + (((s - t_states[ti]) ** 2) * mask[..., None]).sum() / denom
    return total / len(pairs)


def attention_kl(s_attn, t_attn, layer_map: list[int], mask, eps: float = 1e-8):
    """KL(teacher || student) between attention distributions, averaged over heads, layers
    and real query tokens (MiniLM's attention transfer).

    s_attn / t_attn: tuples of [B, heads, T, T] per layer; mask [B, T]. When the head counts
    differ, each side's maps are averaged over its heads first (still distributions)."""
    total = 0.0
    for i, t in enumerate(layer_map):
        s, tt = s_attn[i], t_attn[t]
        if s.shape[1] != tt.shape[1]:
            s, tt = s.mean(1, keepdim=True), tt.mean(1, keepdim=True)
        kl = (tt * ((tt + eps).log() - (s + eps).log())).sum(-1)  # [B, heads, T]
        total = total + (kl.mean(1) * mask).sum() / mask.sum()
    return total / len(layer_map)
