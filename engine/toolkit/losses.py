"""Loss terms two methods share: the soft-target (knowledge distillation) loss used by
distill, prune's recovery and lowrank's recovery."""

from __future__ import annotations


def soft_target_loss(student_logits, teacher_logits, temperature: float):
    """Hinton et al. 2015: KL(teacher || student) of the temperature-softened distributions,
    times T^2 (keeps its gradients on the scale of the cross-entropy's). Logits [B, C]."""
    import torch.nn.functional as F

    T = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / T, -1),
                    F.log_softmax(teacher_logits.float() / T, -1),
                    reduction="batchmean", log_target=True) * T * T


def recovery_loss(parent, weight: float, temperature: float):
    """`loss_fn(student, batch, labels, idx)` for engine.toolkit.training: (1 - weight) x label
    cross-entropy + weight x soft-target loss to the (frozen) `parent`'s logits."""
    import torch
    import torch.nn.functional as F

    def loss_fn(student, batch, labels, idx):
        logits = student(**batch).logits
        ce = F.cross_entropy(logits, labels)
        with torch.no_grad():
            target = parent(**batch).logits
        return (1 - weight) * ce + weight * soft_target_loss(logits, target, temperature)

    return loss_fn
