"""Distillation on a tiny random BERT teacher: students, the loss, best checkpoint, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from engine.methods.distill import DistillConfig
from engine.methods.distill.students import build_student, make_loss, pick_layers
from engine.submit import submit
from engine.toolkit.config import ConfigError, LabError
from engine.worker import run_claimed
from storage import jobs as store

FAST = ["max_steps=12", "eval_every=2", "batch_size=8", "max_length=32", "lr=3e-3"]


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def run_cancelling(job_id: int, ready) -> tuple[str, float]:
    """Run a claimed job here while a second thread requests its cancel once `ready(job)`;
    return its final status and the seconds it ran."""
    def watch() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not ready(store.get_job(job_id)):
            time.sleep(0.05)
        store.request_cancel(job_id)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.time()
    status = run_claimed(job_id)
    watcher.join()
    return status, time.time() - start


def teacher(tiny_model_dir, eager: bool = False):
    from engine.toolkit.checkpoints import ModelRef, load_classifier

    return load_classifier(ModelRef("tiny", str(tiny_model_dir), "local"),
                           eager_attention=eager)


def cfg(*sets: str) -> DistillConfig:
    return DistillConfig.from_sets(list(sets))


def test_config_contract() -> None:
    assert cfg("student_layers=3").student_layers == 3
    assert cfg("student_layers=[0, 2, 4]").student_layers == [0, 2, 4]
    c = cfg("temperature=4", "alpha=0.9", "epochs=1", "max_steps=5", "hidden_loss=1",
            "attention_loss=0.5")
    assert (c.temperature, c.alpha, c.epochs, c.max_steps) == (4.0, 0.9, 1.0, 5)
    assert (c.hidden_loss, c.attention_loss) == (1.0, 0.5)
    for bad, words in [("student_layers=0", "at least 1 layer"),
                       ("student_layers=[2, 1]", "increasing"),
                       ("alpha=1.5", "maximum"),
                       ("student=checkpoint", "student_model")]:
        with pytest.raises(ConfigError, match=words):
            cfg(bad)


def test_pick_layers_spreads_evenly_like_distilbert() -> None:
    assert pick_layers(6, 12) == [0, 2, 4, 7, 9, 11]
    assert pick_layers(3, 6) == [0, 3, 5]
    assert pick_layers(1, 6) == [5]
    assert pick_layers([1, 4], 6) == [1, 4]
    with pytest.raises(LabError, match="only 6 layers"):
        pick_layers(7, 6)
    with pytest.raises(LabError, match="0 to 5"):
        pick_layers([0, 6], 6)


def test_student_has_the_teacher_layers_asked_for(tiny_model_dir) -> None:
    import torch

    t = teacher(tiny_model_dir)
    student, layers = build_student(cfg("student_layers=[1]"), t)
    assert layers == [1] and student.config.num_hidden_layers == 1
    assert len(student.bert.encoder.layer) == 1
    ts = t.state_dict()
    for key, value in student.state_dict().items():
        source = key.replace("layer.0.", "layer.1.")
        assert torch.equal(value, ts[source]), key
    # All layers kept: the same network, so the same logits.
    whole, _ = build_student(cfg("student_layers=2"), t)
    batch = {"input_ids": torch.tensor([[101, 2307, 2143, 102]])}
    torch.testing.assert_close(whole.eval()(**batch).logits, t(**batch).logits)


def test_shape_student_truncates_or_starts_random(tiny_model_dir) -> None:
    import torch

    t = teacher(tiny_model_dir)
    shape = ["student=shape", "student_layers=1", "hidden_size=16", "heads=2",
             "intermediate_size=32"]
    student, layers = build_student(cfg(*shape), t)
    assert layers == [1]
    assert (student.config.hidden_size, student.config.num_attention_heads,
            student.config.intermediate_size) == (16, 2, 32)
    q = student.bert.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(q, t.bert.encoder.layer[1].attention.self.query.weight[:16, :16])
    rand, _ = build_student(cfg(*shape, "init=random"), t)
    assert not torch.equal(rand.bert.encoder.layer[0].attention.self.query.weight, q)
    with pytest.raises(LabError, match="init=random"):
        build_student(cfg("student=shape", "student_layers=1", "hidden_size=64", "heads=8"), t)


def test_checkpoint_student_must_share_the_tokenizer(tiny_model_dir, tmp_path) -> None:
    from transformers import BertTokenizerFast

    from engine.toolkit.checkpoints import ModelRef, load_tokenizer

    t = teacher(tiny_model_dir)
    tok = load_tokenizer(ModelRef("tiny", str(tiny_model_dir), "local"))
    texts = ["a wonderful film", "a dull mess"]
    student, layers = build_student(cfg("student=checkpoint", f"student_model={tiny_model_dir}"),
                                    t, tokenizer=tok, texts=texts)
    assert layers == [0, 1] and student.config.num_hidden_layers == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                "a", "film"]))
    BertTokenizerFast(vocab_file=str(other / "vocab.txt")).save_pretrained(other)
    t.save_pretrained(other)
    with pytest.raises(LabError, match="different tokenizer"):
        build_student(cfg("student=checkpoint", f"student_model={other}"), t, tokenizer=tok,
                      texts=texts)


@pytest.mark.parametrize("extra", [[], ["hidden_loss=1", "attention_loss=1"]])
def test_loss_falls_on_a_fixed_batch(tiny_model_dir, extra) -> None:
    import torch

    torch.manual_seed(0)
    t = teacher(tiny_model_dir, eager=True)
    c = cfg("student=shape", "student_layers=1", "hidden_size=16", "heads=2",
            "intermediate_size=32", "init=random", *extra)
    student, layers = build_student(c, t, eager_attention=True)
    loss_fn = make_loss(c, t.eval(), student, layers, n_train=8, device="cpu")
    assert bool(loss_fn.extra_params) == bool(extra), "a projection only for hidden matching"
    tok = __import__("transformers").AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["a wonderful, moving film", "a dull, lifeless mess", "i loved every minute",
             "boring and far too long"] * 2
    batch = dict(tok(texts, padding=True, return_tensors="pt"))
    labels = torch.tensor([1, 0, 1, 0] * 2)
    opt = torch.optim.AdamW(list(student.parameters()) + loss_fn.extra_params, lr=1e-2)
    losses = []
    student.eval()  # no dropout: the same loss for the same weights
    for _ in range(20):
        loss = loss_fn(student, batch, labels, list(range(8)))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses
    assert set(loss_fn.parts) == {"kd", "ce"} | ({"hidden", "attention"} if extra else set())


def test_job_keeps_the_best_validation_student(tiny_model_dir, tiny_csv) -> None:
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import classification_metrics, predict

    job = run(submit("distill", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["student_layers=[1]", *FAST]))
    assert job["status"] == "done", job["error"]
    m = job["metrics"]
    assert m["layers"] == 1 and m["teacher_layers_used"] == [1]
    assert m["speedup_vs_parent"].keys() == {"1", "32"}, "paired against the teacher"
    assert "accuracy_retained" in m and "size_ratio_vs_parent" in m
    curves = store.get_job(job["id"]).curves
    assert {"train_loss", "val_accuracy", "teacher_accuracy"} <= set(curves)
    assert [p[1] for p in curves["teacher_accuracy"]] == [m["teacher_val_accuracy"]] * 2
    vals = {int(s): v for s, v in curves["val_accuracy"]}
    assert len(set(vals.values())) > 1 and m["best_step"] != max(vals), "a meaningful test"
    assert m["best_val_accuracy"] == max(vals.values()) == vals[m["best_step"]]
    # The stored student is the best one: its validation accuracy is the best seen.
    ref = resolve(job["output_model"])
    data = load_dataset(f"csv:{tiny_csv}")
    preds, _ = predict(load_classifier(ref), load_tokenizer(ref), data.val_select.texts, 32)
    assert classification_metrics(data.val_select.labels, preds, 2)["accuracy"] == \
        m["best_val_accuracy"]


def test_cancel_mid_run_keeps_the_best_student(tiny_model_dir, tiny_csv, lab_home) -> None:
    from engine.toolkit.checkpoints import ModelRef, load_classifier

    job_id = submit("distill", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["student_layers=1", "max_steps=100000", "eval_every=5", "patience=0",
                          "batch_size=8", "max_length=32"])
    store.claim(None, job_id=job_id)
    # Cancel once a validation has kept a best student, then time how long the job takes to stop.
    status, seconds = run_cancelling(job_id, lambda job: "val_accuracy" in job.curves)
    assert status == "cancelled" and seconds < 60
    job = store.get_job(job_id)
    assert job.status == "cancelled"
    assert not list((lab_home / "artifacts").glob(f"job-{job_id}.partial"))
    best = lab_home / "artifacts" / f"job-{job_id}-best-on-cancel"
    assert str(best) in job.message, "the Jobs page tells where the best student is"
    model = load_classifier(ModelRef("best", str(best), "local"))
    assert model.config.num_hidden_layers == 1
    from engine.submit import delete_run

    delete_run(job_id)
    assert not best.exists(), "deleting the run removes every folder it wrote"


def test_compress_page_launches_distill() -> None:
    from tests.test_pages import app, seed

    seed()
    at = app("pages/compress.py")
    at.session_state["method"] = "distill"
    at.run()
    at.text_input(key="cfg_distill_student_layers").set_value("0, 2, 4").run()
    at.number_input(key="cfg_distill_temperature").set_value(4.0).run()
    at.button(key="launch").click().run()
    assert any("Queued job" in s.value for s in at.success), [e.value for e in at.error]
    job = store.list_jobs(limit=1)[0]
    assert job.method == "distill" and job.model == "default"
    assert job.config["data"]["student_layers"] == [0, 2, 4]
    assert job.config["data"]["temperature"] == 4.0


def test_student_records_which_teacher_layers_it_kept(tiny_model_dir) -> None:
    """The Attention page lines student layer i up with teacher layer kept_layers[i]."""
    t = teacher(tiny_model_dir)
    student, layers = build_student(cfg("student_layers=[1]"), t)
    assert student.config.kept_layers == [1] and student.config.original_layers == 2
    random_shape, _ = build_student(cfg("student=shape", "init=random", "student_layers=1"), t)
    assert not getattr(random_shape.config, "kept_layers", None)


def test_dropout_reaches_the_training_loop(tiny_model_dir, tiny_csv, monkeypatch) -> None:
    """distill's dropout is the loop's (TrainSettings.dropout: set while training, the model's
    own restored after, tested in test_training.py)."""
    import engine.toolkit.training as T

    seen: list[float | None] = []
    real = T.train_classifier

    def spy(model, tokenizer, dataset, settings, *args, **kwargs):
        seen.append(settings.dropout)
        return real(model, tokenizer, dataset, settings, *args, **kwargs)

    monkeypatch.setattr(T, "train_classifier", spy)
    for p in ("0.0", "0.3"):
        job = run(submit("distill", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                         sets=["student_layers=1", f"dropout={p}", *FAST[:1], "eval_every=6",
                               *FAST[2:]]))
        assert job["status"] == "done", job["error"]
    assert seen == [0.0, 0.3]
