"""Helpers shared by the pages (not a page itself): start-up, formatting, who is using the
lab (attendee name, instructor token), result summaries."""

from __future__ import annotations

import hmac
import re
import sys
from datetime import datetime
from typing import Any

import streamlit as st

from engine.toolkit.config import LabError
from storage import jobs as store
from storage import settings
from storage.models import utcnow

DATASETS = ["rotten-tomatoes", "bbc-news"]


def start_background_work() -> None:
    """Queue the default teacher's finetune on first start and keep a worker alive."""
    from engine.submit import ensure_teacher
    from engine.worker import ensure_worker, reap

    try:
        reap()  # a job whose worker died says so, even before a new worker starts
        if settings.build_teacher() and not st.session_state.get("teacher_checked"):
            job_id = ensure_teacher()
            st.session_state["teacher_checked"] = True
            if job_id is not None:
                st.toast(f"Preparing the default teacher (job {job_id}); see the Jobs page.")
        st.session_state["worker_state"] = ensure_worker()
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        st.error(f"The lab could not start its background work: {exc}")


def elapsed(start: datetime | None, end: datetime | None = None) -> float | None:
    if start is None:
        return None
    return ((end or utcnow()) - start).total_seconds()


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# Below this fraction of a stage the rate is noise: no ETA is shown at all.
MIN_STAGE_PROGRESS = 0.05


def _get(job: Any, name: str) -> Any:
    """A field of a Job row or of its `job_as_dict` dict."""
    return job.get(name) if isinstance(job, dict) else getattr(job, name, None)


def stage_eta(job: Any, now: datetime | None = None) -> float | None:
    """Seconds left in the job's current stage (linear in `stage_progress` since
    `stage_started_at`), or None: not running, no stage clock, or too early to say.

    Stages run at very different speeds (training, evaluating, compiling, timing), so the
    whole job's progress says nothing about the time left; one stage's progress does."""
    started, frac = _get(job, "stage_started_at"), _get(job, "stage_progress")
    if _get(job, "status") != "running" or started is None or frac is None:
        return None
    if frac < MIN_STAGE_PROGRESS or frac >= 1:
        return None
    if isinstance(started, str):
        started = datetime.fromisoformat(started)
    spent = elapsed(started, now)
    if spent is None or spent <= 0:
        return None
    return spent * (1 - frac) / frac


def stage_eta_text(job: Any, now: datetime | None = None) -> str:
    """"this stage: about 1:20 left (training)", or "" when there is no honest estimate."""
    left = stage_eta(job, now)
    if left is None:
        return ""
    stage = _get(job, "stage")
    return f"this stage: about {fmt_seconds(left)} left" + (f" ({stage})" if stage else "")


def show_error(exc: Exception, hide: dict[str, str] | None = None) -> None:
    """A user-facing error: the message, never a traceback; `hide` ({server path: shown as})
    keeps server paths (an uploaded file's) out of it."""
    text = str(exc) if isinstance(exc, (LabError, ValueError)) else f"{type(exc).__name__}: {exc}"
    st.error(without_paths(text, hide or {}), icon=":material/error:")


def plain(text: Any) -> str:
    """User text shown inside markdown as text (no emphasis, links or HTML)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", str(text))


def first_sentence(text: str) -> str:
    """The whole first sentence of a docstring (its first line may stop mid-sentence)."""
    flat = " ".join((text or "").split())
    match = re.search(r"(.+?[.!?])(\s|$)", flat)
    return match.group(1) if match else flat


def method_summary(spec: Any) -> str:
    """A method's summary: the full first sentence of its module's docstring."""
    module = sys.modules.get(getattr(spec.apply, "__module__", ""))
    return first_sentence(getattr(module, "__doc__", None) or spec.summary)


# --------------------------------------------------------------------------- preset sizes


def bert_params(layers: int, hidden: int, intermediate: int, num_labels: int = 2,
                vocab: int = 30522, positions: int = 512, token_types: int = 2) -> int:
    """Parameters of a BertForSequenceClassification of this shape (BertConfig defaults for
    the vocabulary and positions), counted by formula: no torch.

    embeddings (V+P+T)*H + LayerNorm 2H; each layer 4H^2+4H (attention) + 2H (LayerNorm)
    + 2HI+I+H (feed-forward) + 2H (LayerNorm); pooler H^2+H; classifier H*L+L."""
    h, i = hidden, intermediate
    embeddings = (vocab + positions + token_types) * h + 2 * h
    layer = 4 * h * h + 2 * h * i + 9 * h + i
    return embeddings + layers * layer + h * h + h + h * num_labels + num_labels


def preset_facts(shape: dict[str, int], num_labels: int = 2) -> dict[str, float]:
    """{"params": n, "size_mb": fp32 weights in MB (1e6 bytes)} of a preset's shape."""
    n = bert_params(shape["num_hidden_layers"], shape["hidden_size"],
                    shape["intermediate_size"], num_labels)
    return {"params": n, "size_mb": n * 4 / 1e6}


# --------------------------------------------------------------------------- who is here

NAME_KEY, TOKEN_KEY = "attendee", "instructor_token"


def attendee() -> str | None:
    """This browser session's name (asked once in the sidebar), or None before it is given."""
    return st.session_state.get(NAME_KEY) or None


def check_name(text: str) -> str:
    """The name cleaned, or LabError with what is wrong: the submit layer's rule when it has
    one (engine.submit.check_owner), else the same rule here (not empty, at most 100
    characters, plain text)."""
    from engine import submit as submit_module

    checker = getattr(submit_module, "check_owner", None)
    if checker is not None:
        return checker(text)
    name = (text or "").strip()
    if not name:
        raise LabError("Give a name (yours or a nickname): it marks your runs as yours.")
    if len(name) > 100:
        raise LabError(f"A name is at most 100 characters; this one has {len(name)}.")
    if re.search(r"[<>\x00-\x1f\x7f]", name):
        raise LabError("A name is plain text: no < > or control characters.")
    return name


def _set_name() -> None:
    try:
        st.session_state[NAME_KEY] = check_name(st.session_state.get("attendee_input", ""))
        st.session_state.pop("attendee_error", None)
    except LabError as exc:
        st.session_state["attendee_error"] = str(exc)


def _check_token() -> None:
    token = st.session_state.get("instructor_input", "")
    if is_instructor_token(token):
        st.session_state[TOKEN_KEY] = token
        st.session_state.pop("token_error", None)
    else:
        st.session_state["token_error"] = "That is not the instructor token."


def expected_token() -> str | None:
    """LAB_INSTRUCTOR_TOKEN (declared by the queue's settings), or None when unset."""
    getter = getattr(settings, "instructor_token", None)
    return getter() if getter is not None else None


def is_instructor_token(token: str | None) -> bool:
    expected = expected_token()
    return bool(expected and token) and hmac.compare_digest(str(token), expected)


def instructor_token() -> str | None:
    """The instructor token this session entered (and that is right), else None."""
    token = st.session_state.get(TOKEN_KEY)
    return token if is_instructor_token(token) else None


def who_is_here() -> None:
    """Sidebar: ask this session's name once; the instructor's token once (when one is set)."""
    side = st.sidebar
    name = attendee()
    if name is None:
        side.markdown("**Your name**")
        side.text_input("Your name", key="attendee_input", max_chars=100,
                        label_visibility="collapsed", placeholder="name or nickname",
                        on_change=_set_name)
        side.button("Use this name", key="attendee_set", on_click=_set_name)
        if st.session_state.get("attendee_error"):
            side.error(st.session_state["attendee_error"])
        side.caption("Your jobs carry this name; the lab asks once per browser session.")
    else:
        side.caption(f"You: **{plain(name)}**" + (" · instructor" if instructor_token() else ""))
        side.button("Change name", key="attendee_change",
                    on_click=lambda: st.session_state.pop(NAME_KEY, None))
    if expected_token() and instructor_token() is None:
        with side.expander("Instructor"):
            st.text_input("Instructor token", type="password", key="instructor_input",
                          on_change=_check_token)
            st.button("Unlock", key="instructor_unlock", on_click=_check_token)
            if st.session_state.get("token_error"):
                st.error(st.session_state["token_error"])
            st.caption("Lets you cancel and delete anyone's jobs.")


def can_change(owner: str | None) -> bool:
    """May this session cancel or delete a job of `owner`? Its own and unowned ones, anyone's
    with the instructor token (engine.submit.can_touch's rule; the submit layer checks again)."""
    return instructor_token() is not None or not owner or owner == attendee()


def owner_filter(key: str) -> str | None:
    """A "my runs / everyone's" switch (default: mine). Returns the owner to keep, or None
    for everyone's (also when this session has no name yet). For Jobs and Results."""
    name = attendee()
    everyone = st.toggle("Everyone's runs", key=key, value=False,
                         help="Off: only your runs. On: the whole lab's."
                         + ("" if name else " Shows everyone's until you give your name."))
    return None if everyone or name is None else name


def only_owner(runs: list[dict[str, Any]], owner: str | None) -> list[dict[str, Any]]:
    """Runs (dicts with "owner", e.g. storage.queries.runs_table) of `owner`; all for None."""
    return runs if owner is None else [r for r in runs if r.get("owner") == owner]


def submit_job(method: str, **kwargs: Any) -> int:
    """engine.submit.submit with this session's name as the owner."""
    from engine.submit import submit

    name = attendee()
    if name is None:
        raise LabError("Enter your name in the sidebar first: it marks your runs as yours.")
    return submit(method, owner=name, **kwargs)


# --------------------------------------------------------------------------- results


def _speed(metrics: dict[str, Any]) -> str | None:
    """"2.10x faster at batch 32 (95 % interval 1.95-2.26x), 1.80x at batch 1"."""
    speed = metrics.get("speedup_vs_parent") or {}
    if not speed:
        return None
    ci = metrics.get("speedup_vs_parent_ci") or {}
    parts = []
    for bs in sorted(speed, key=lambda b: -int(b)):
        text = f"{speed[bs]:.2f}x at batch {bs}"
        if ci.get(bs):
            lo, hi = ci[bs]
            text += f" (95 % interval {lo:.2f}-{hi:.2f}x)"
        parts.append(text)
    runtime = metrics.get("parent_runtime")
    return "paired speedup " + ", ".join(parts) + (f" ({runtime})" if runtime else "")


def result_lines(job: dict[str, Any]) -> list[str]:
    """A finished job's result in plain sentences (accuracy, delta, paired speedup with its
    interval, size ratio), from its `job_as_dict` dict. Empty when it measured nothing."""
    m = job.get("metrics") or {}
    out = []
    if m.get("accuracy") is not None and m.get("accuracy_meaningful", True) is not False:
        text = f"accuracy {m['accuracy']:.1%}"
        if m.get("accuracy_delta_vs_parent") is not None:
            text += f" ({100 * m['accuracy_delta_vs_parent']:+.1f} points vs its input)"
        out.append(text)
    speed = _speed(m)
    if speed:
        out.append(speed)
    if m.get("size_ratio_vs_parent"):
        out.append(f"{m['size_ratio_vs_parent']:.2f}x smaller")
    return out


def provenance(job: dict[str, Any]) -> str | None:
    """"result reused from job 4 (run at 2026-12-01 20:31)" and/or where an import came from."""
    parts = []
    if job.get("reused_from"):
        when = ""
        try:
            source = store.get_job(job["reused_from"])
            if source.finished_at is not None:
                when = f" (run at {source.finished_at:%Y-%m-%d %H:%M} UTC)"
        except store.JobNotFound:
            pass
        parts.append(f"result reused from job {job['reused_from']}{when}")
    if job.get("origin"):
        parts.append(f"imported: {job['origin']}")
    return "; ".join(parts) or None


def result_summary(job: dict[str, Any]) -> None:
    """Render a finished job's result: one line of figures, why it is not faster, where the
    result came from."""
    lines = result_lines(job)
    if lines:
        st.markdown(" · ".join(lines))
    m = job.get("metrics") or {}
    if m.get("why_not_faster"):
        st.caption(f":material/speed: {plain(m['why_not_faster'])}")
    if m.get("timing_unreliable"):
        st.caption(f":material/warning: timing may be off: {plain(m['timing_unreliable'])}")
    where = provenance(job)
    if where:
        st.caption(plain(where))


# --------------------------------------------------------------------------- datasets, teacher

UPLOADS_KEY = "uploads"  # {dataset id "csv:PATH": the file's name as uploaded}


def remember_upload(dataset_id: str, name: str) -> None:
    """Offer an uploaded CSV on the other pages of this session (Compress, Heads)."""
    st.session_state.setdefault(UPLOADS_KEY, {})[dataset_id] = name


def dataset_choices() -> list[str]:
    """The built-in datasets, then the CSVs uploaded in this session."""
    return DATASETS + list(st.session_state.get(UPLOADS_KEY, {}))


def dataset_label(dataset_id: str) -> str:
    """A dataset as the user knows it: an uploaded CSV by its file name, never a server path."""
    uploads = st.session_state.get(UPLOADS_KEY, {})
    if dataset_id in uploads:
        return f"{uploads[dataset_id]} (your CSV)"
    if dataset_id.startswith("csv:"):  # someone's file: its name only (uploads: HASH-name)
        return "CSV " + re.sub(r"^[0-9a-f]{12}-", "", dataset_id.replace("\\", "/")
                               .rsplit("/", 1)[-1])
    return dataset_id


def without_paths(message: str, replacements: dict[str, str]) -> str:
    """`message` with every server path in `replacements` ({path: shown as}) replaced."""
    for path, shown in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(path, shown)
    return message


def teacher_pending():  # -> Job | None
    """The job building the default teacher while it does not exist yet, else None."""
    if store.find_model("default") is not None:
        return None
    pending = store.pending_alias_job("default")
    return store.get_job(pending) if pending is not None else None
