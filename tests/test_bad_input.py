"""The bad-input matrix: every entry point gets bad values, answers with a clear message and a
non-zero exit, and leaves the database as it was (or with one failed job, for errors that only
show when the job runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.methods.registry import methods
from storage import jobs as store


def bad_dirs(base: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """Model folders that must be refused."""
    corrupt = base / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    truncated = base / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    gpt = base / "gpt2"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    empty = base / "empty"
    empty.mkdir()
    return {"corrupt": corrupt, "truncated": truncated, "gpt2": gpt, "empty": empty}


def bad_csvs(base: Path) -> dict[str, Path]:
    files = {
        "columns": b"sentence,target\nhello,a\nbye,b\n",
        "one-label": b"text,label\n" + b"fine,a\n" * 20,
        "not-text": b"text,label\n\x00\x01\xfa bad bytes,\x00\x28\n" * 10,
        "empty-texts": b"text,label\n" + b",a\n,b\n" * 50_000,
    }
    out = {}
    for name, data in files.items():
        out[name] = base / f"{name}.csv"
        out[name].write_bytes(data)
    return out


def submit_cases(base: Path, tiny_model_dir: Path) -> list[tuple[list[str], str]]:
    dirs, csvs = bad_dirs(base, tiny_model_dir), bad_csvs(base)
    cases = [
        (["--model", "nope"], "unknown model"),
        (["--model", "job:abc"], "job: followed by a job number"),
        (["--model", "job:999"], "no job 999"),
        (["--model", "preset:huge"], "unknown preset"),
        (["--model", str(dirs["corrupt"])], "corrupt or truncated"),
        (["--model", str(dirs["truncated"])], "corrupt or truncated"),
        (["--model", str(dirs["gpt2"])], "BERT-architecture"),
        (["--model", str(dirs["empty"])], "not a model directory"),
        (["--from-job", "999"], "no job 999"),
        (["--dataset", "imdb"], "unknown dataset"),
        (["--dataset", f"csv:{base / 'missing.csv'}"], "no such file"),
        (["--dataset", f"csv:{csvs['columns']}"], "needs the columns text and label"),
        (["--dataset", f"csv:{csvs['one-label']}"], "only one label"),
        (["--dataset", f"csv:{csvs['not-text']}"], "save it as UTF-8 CSV"),
        (["--dataset", f"csv:{csvs['empty-texts']}"], "empty"),
        (["--set", "max_steps=-1"], "minimum"),
        (["--set", "batch_size=0"], "minimum"),
        (["--set", "lr=fast"], "should be float"),
        (["--set", "colour=blue"], "unknown setting"),
        (["--set", "novalue"], "key=value"),
        (["--set", "lr=.nan"], "lr=nan is not a finite number"),
        (["--set", "epochs=.inf"], "epochs=inf is not a finite number"),
        (["--set", "lr=nan"], "lr=nan is not a finite number"),
        (["--set", "seed=99999999999999"], "seed=99999999999999 is too large"),
    ]
    return [(["submit", "finetune", "--model", "minilm-l6", *args], words)
            for args, words in cases]


METHOD_CASES: dict[str, list[tuple[list[str], str]]] = {
    "quantize": [(["--set", "scheme=int3"], "not one of")],
    "prune": [(["--set", "amount=1.5"], "maximum"), (["--set", "amount=-0.1"], "minimum"),
              (["--set", "kind=everything"], "not one of")],
    "distill": [(["--set", "temperature=0"], "minimum")],
}


def test_cli_submit_matrix(tmp_path, tiny_model_dir, capsys) -> None:
    cases = submit_cases(tmp_path, tiny_model_dir)
    for method, extra in METHOD_CASES.items():
        if method in methods():
            cases += [(["submit", method, *args], words) for args, words in extra]
    for argv, words in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert words in err, (argv, err)
        assert "Traceback" not in err
    assert store.list_jobs() == [], "no half-written rows"


def test_from_job_that_failed(tiny_csv, capsys) -> None:
    job_id = store.enqueue("finetune", {"data": {}}, "minilm-l6", "rotten-tomatoes")
    store.claim(None, job_id=job_id)
    store.fail(job_id, "boom")
    assert main(["submit", "evaluate", "--from-job", str(job_id)]) == 2
    assert "failed, so it has no model" in capsys.readouterr().err
    assert len(store.list_jobs()) == 1


def test_a_10000_token_text_is_truncated_not_fatal(tmp_path, tiny_model_dir, capsys) -> None:
    csv = tmp_path / "long.csv"
    rows = ["text,label"] + [r for i in range(5)
                             for r in (f"{'word ' * 10_000}{i},a", f"short and fine {i},b")]
    csv.write_text("\n".join(rows) + "\n")
    code = main(["submit", "evaluate", "--model", str(tiny_model_dir), "--dataset", f"csv:{csv}",
                 "--set", "max_length=32", "--set", "batch_sizes=[1]", "--wait", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["metrics"]["seq_len"] == 32


@pytest.mark.parametrize("value, words", [("abc", "should be"), ("[1, -4]", "minimum")])
def test_compress_form_bad_list_value(value: str, words: str) -> None:
    """A list field typed as text on the generated form: a bad value disables the launch."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    found = [(name, f["name"]) for name, spec in methods().items() if name != "evaluate"
             for f in spec.config.fields_info()
             if f["type"] == "list[int]" and (f.get("min") or 0) >= 0 and not f.get("advanced")]
    if not found:
        pytest.skip("no compression method with a list field is registered")
    method, name = found[0]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/compress.py")
    at.session_state["method"] = method
    at.run()
    at.text_input(key=f"cfg_{method}_{name}").set_value(value).run()
    assert not at.exception
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.button(key="launch").disabled


def test_lab_device_cuda_without_a_gpu(monkeypatch, tiny_model_dir, capsys) -> None:
    """The CLI probes the device for quantize's schemes: a wrong LAB_DEVICE is a clear error."""
    import torch

    from engine.toolkit import device as device

    monkeypatch.setenv("LAB_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device.setup.cache_clear()
    try:
        code = main(["submit", "quantize", "--model", str(tiny_model_dir)])
    finally:
        device.setup.cache_clear()  # later tests set the device up again, as configured
    err = capsys.readouterr().err
    assert code == 2 and "LAB_DEVICE=cuda but no CUDA GPU" in err and "Traceback" not in err
    assert store.list_jobs() == []


def three_label_csv(base: Path) -> Path:
    path = base / "three.csv"
    path.write_text("text,label\n" + "\n".join(f"text number {i},{'abc'[i % 3]}"
                                                for i in range(30)) + "\n")
    return path


def model_cases(base: Path, tiny: Path) -> list[tuple[list[str], str]]:
    """Checks that need the model's facts (2 layers x 4 heads, 2 labels) but no model run."""
    m = ["--model", str(tiny)]
    return [
        (["prune", *m, "--set", "kind=layers", "--set", "layers=[9]"],
         "names layer 9, but the model has 2 layers (0 to 1)"),
        (["prune", *m, "--set", "kind=layers", "--set", "layers=[0, 1]"],
         "would drop all 2 layers"),
        (["prune", *m, "--set", "kind=layers", "--set", "layers=[1, 1]"],
         "lists 1 more than once"),
        (["prune", *m, "--set", "kind=layers", "--set", "amount=0.1"],
         "amount=0.1 of 2 layers rounds to none"),
        (["prune", *m, "--set", "heads=1:20"], "each layer has 4 heads (0 to 3)"),
        (["prune", *m, "--set", "heads=5:1"], "names layer 5, but the model has 2 layers"),
        (["prune", *m, "--set", "heads=0:1,0:1"], "lists 0:1 more than once"),
        (["prune", *m, "--set", "amount=0.05"], "amount=0.05 of 8 heads rounds to none"),
        (["distill", *m, "--set", "student_layers=5"], "the teacher has only 2 layers"),
        (["distill", *m, "--set", "student_layers=[0, 3]"], "names teacher layer 3"),
        (["distill", *m, "--set", "student=shape", "--set", "hidden_size=64",
          "--set", "student_layers=2"],
         "the student is larger (hidden 64 > 32)"),
        (["distill", *m, "--set", "student=checkpoint", "--set", "student_model=nowhere"],
         "student_model='nowhere'"),
        (["evaluate", *m, "--set", "batch_sizes=[1, 1]"], "lists 1 more than once"),
        (["evaluate", *m, "--dataset", f"csv:{three_label_csv(base)}"],
         "predicts 2 labels (negative, positive) but three.csv has 3"),
        (["quantize", *m, "--dataset", f"csv:{three_label_csv(base)}"], "predicts 2 labels"),
        (["evaluate", "--model", "minilm-l6"], "has no classification head; fine-tune it"),
        # the teacher is not built: its facts are the embedded encoder's (6 layers x 12 heads)
        (["prune", "--model", "default", "--set", "heads=5:20"],
         "each layer has 12 heads (0 to 11)"),
        (["distill", "--set", "student_layers=[0, 9]"], "the teacher has 6 layers"),
    ]


def test_checks_against_the_model_run_at_submit(tmp_path, tiny_model_dir, capsys) -> None:
    """Refused at submit with a message that says what to do; no row is written (not even
    the teacher's finetune for --model default)."""
    for args, words in model_cases(tmp_path, tiny_model_dir):
        if args[0] not in methods():
            continue
        code = main(["submit", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert words in err, (args, err)
        assert "Traceback" not in err and str(tmp_path) not in err.replace(str(tiny_model_dir), "")
    assert store.list_jobs() == [], "no half-written rows"


def test_good_values_still_pass(tiny_model_dir, tiny_csv) -> None:
    from engine.submit import submit

    m, d = str(tiny_model_dir), f"csv:{tiny_csv}"
    ok = [("prune", ["kind=layers", "layers=[1]"]), ("prune", ["heads=0:1,1:3"]),
          ("distill", ["student_layers=[0, 1]"]), ("distill", ["student_layers=1"]),
          ("evaluate", ["batch_sizes=[1, 4]"]), ("quantize", []), ("finetune", ["lr=1e-4"])]
    for method, sets in ok:
        if method in methods():
            assert submit(method, model=m, dataset=d, sets=sets) > 0, (method, sets)


def test_a_pruned_models_removed_heads_are_refused(tmp_path, tiny_model_dir) -> None:
    from engine.submit import submit
    from engine.toolkit.config import ConfigError

    if "prune" not in methods():
        pytest.skip("no prune method")
    pruned = tmp_path / "pruned"
    shutil.copytree(tiny_model_dir, pruned)
    cfg = json.loads((pruned / "config.json").read_text())
    cfg["pruned_heads"] = {"1": [2]}
    (pruned / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="head 1:2 was removed already"):
        submit("prune", model=str(pruned), sets=["heads=1:2"])


def test_checkpoint_card_needs_no_torch(tiny_model_dir, lab_home) -> None:
    """The facts the submit checks use come without importing torch: for a local folder,
    job:ID, the built default and the teacher not built yet."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    store.register_model("job:7", str(tiny_model_dir), "job", job_id=None, alias=None)
    code = f"""
import sys
from engine.submit import input_card
from storage import jobs as store
cards = [input_card({str(tiny_model_dir)!r}), input_card("job:7"), input_card("default")]
store.register_model("job:7", {str(tiny_model_dir)!r}, "job", alias="default")
cards.append(input_card("default"))
assert [c["layers"] for c in cards] == [2, 2, 6, 2], cards
assert [c["heads_per_layer"] for c in cards] == [4, 4, 12, 4], cards
assert cards[2]["labels"] == ["negative", "positive"] and cards[2]["classifier"]
heavy = [m for m in ("torch", "transformers") if m in sys.modules]
assert not heavy, heavy
"""
    env = {**os.environ, "LAB_HOME": str(lab_home)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
