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
        "not-utf8": b"text,label\n\xff\xfe\xfa bad bytes,\xc3\x28\n" * 10,
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
        (["--dataset", f"csv:{csvs['not-utf8']}"], "not a readable CSV"),
        (["--dataset", f"csv:{csvs['empty-texts']}"], "empty"),
        (["--set", "max_steps=-1"], "minimum"),
        (["--set", "batch_size=0"], "minimum"),
        (["--set", "lr=fast"], "should be float"),
        (["--set", "colour=blue"], "unknown setting"),
        (["--set", "novalue"], "key=value"),
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
    rows = ["text,label"] + [f"{'word ' * 10_000},a", "short and fine,b"] * 5
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
