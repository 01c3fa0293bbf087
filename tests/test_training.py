"""The shared training loop's options: frozen word embeddings and bf16 autocast (the teacher's
recipe uses them, issue 15) on a tiny random BERT."""

from __future__ import annotations

import pytest

from engine.toolkit.training import TrainSettings, train_classifier


class Ctx:
    """The part of the job context the loop uses: progress, curves (recorded)."""

    def __init__(self) -> None:
        self.curves: list[tuple[int, dict]] = []

    def progress(self, *args, **kwargs) -> None:
        pass

    def curve(self, step: int, **values: float) -> None:
        self.curves.append((step, values))


def tiny(tiny_model_dir, tiny_csv):
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset

    ref = resolve(str(tiny_model_dir))
    data = load_dataset(f"csv:{tiny_csv}")
    return load_classifier(ref, label_names=data.label_names), load_tokenizer(ref), data


@pytest.mark.parametrize("bf16", [False, True])
def test_frozen_embeddings_stay_as_pretrained_and_the_rest_trains(tiny_model_dir, tiny_csv,
                                                                  bf16: bool) -> None:
    import torch

    model, tok, data = tiny(tiny_model_dir, tiny_csv)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = TrainSettings(lr=1e-3, max_steps=6, batch_size=8, max_length=32, eval_every=3,
                      freeze_embeddings=True, bf16=bf16)
    info = train_classifier(model, tok, data, s, Ctx())
    after = model.state_dict()
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[emb], after[emb]), "the word embeddings were not updated"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert info["best_step"] in (3, 6), "validated at steps 3 and 6; a trained step kept"
    assert any("encoder.layer" in k for k in changed), "the encoder trained"
    assert model.get_input_embeddings().weight.requires_grad, "handed back trainable"
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point()), \
        "bf16 autocast leaves the weights in fp32"


def test_without_freezing_the_embeddings_train_too(tiny_model_dir, tiny_csv) -> None:
    import torch

    model, tok, data = tiny(tiny_model_dir, tiny_csv)
    emb = model.get_input_embeddings().weight.detach().clone()
    s = TrainSettings(lr=1e-3, max_steps=4, batch_size=8, max_length=32, eval_every=100)
    train_classifier(model, tok, data, s, Ctx())  # validates at the last step only
    assert not torch.equal(emb, model.get_input_embeddings().weight), \
        "the embeddings moved (the best step is the last, the only validation)"
