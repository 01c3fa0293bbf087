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


class Snapshots(Ctx):
    """Records the model's weights, attention implementation and dropout at each validation
    (the loop reports val_accuracy right after validating that step's weights)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.weights: dict[int, dict] = {}
        self.during: list[tuple[str, set[float]]] = []

    def curve(self, step: int, **values: float) -> None:
        import torch

        super().curve(step, **values)
        if "val_accuracy" in values:
            self.weights[step] = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.during.append((self.model.config._attn_implementation,
                                {m.p for m in self.model.modules()
                                 if isinstance(m, torch.nn.Dropout)}))


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_kept_weights_are_the_best_steps_or_the_last(tiny_model_dir, tiny_csv,
                                                         keep: str) -> None:
    model, tok, data = tiny(tiny_model_dir, tiny_csv)
    ctx = Snapshots(model)
    s = TrainSettings(lr=1e-3, max_steps=9, batch_size=8, max_length=32, eval_every=3,
                      keep=keep)
    info = train_classifier(model, tok, data, s, ctx)
    assert sorted(ctx.weights) == [3, 6, 9]
    vals = {step: v["val_accuracy"] for step, v in ctx.curves if "val_accuracy" in v}
    assert info["best_val_accuracy"] == max(vals.values())
    assert info["kept_step"] == (9 if keep == "last" else info["best_step"])
    assert info["kept_val_accuracy"] == vals[info["kept_step"]]
    assert same_weights(model.state_dict(), ctx.weights[info["kept_step"]])


def test_a_tie_keeps_the_later_step(tiny_model_dir, tiny_csv) -> None:
    model, tok, data = tiny(tiny_model_dir, tiny_csv)
    # lr 0: the weights never move, every validation scores the same
    s = TrainSettings(lr=0.0, max_steps=6, batch_size=8, max_length=32, eval_every=3)
    info = train_classifier(model, tok, data, s, Ctx())
    assert info["best_step"] == info["kept_step"] == 6


def test_dropout_and_matmul_attention_hold_while_training_only(tiny_model_dir,
                                                               tiny_csv) -> None:
    import torch

    model, tok, data = tiny(tiny_model_dir, tiny_csv)
    attention = model.config._attn_implementation
    before = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert attention == "sdpa" and set(before) == {0.1}, "the tiny model's own settings"
    ctx = Snapshots(model)
    s = TrainSettings(lr=1e-3, max_steps=4, batch_size=8, max_length=32, eval_every=2,
                      dropout=0.0)
    train_classifier(model, tok, data, s, ctx)
    assert ctx.during == [("eager", {0.0})] * 2, "while training on the CPU"
    assert model.config._attn_implementation == attention, "handed back with its own"
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == before
    ctx = Snapshots(model)
    train_classifier(model, tok, data, TrainSettings(max_steps=2, batch_size=8, eval_every=2,
                                                     cpu_matmul_attention=False), ctx)
    assert ctx.during == [(attention, {0.1})], "dropout None: the model's own"
