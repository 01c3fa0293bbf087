"""The pages for a workshop's attendees: the name asked once, the instructor token, owners
on submit, "my runs" on Jobs, the instructor's power over everyone's jobs and the Class page
(issue 14 item 3). Rows come from the helpers of test_pages_workshop."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from storage import jobs as store
from tests.test_pages import app, own
from tests.test_pages_workshop import finished, running


def sidebar_app() -> AppTest:
    """The sidebar on its own (AppTest drops an entrypoint's elements on reruns of an
    st.navigation app, so its flow is driven here; the pages read the same session keys)."""

    def script() -> None:
        from pages.ui import who_is_here

        who_is_here()

    at = AppTest.from_function(script, default_timeout=30)
    at.run()
    return at


def test_the_name_is_asked_once_and_validated() -> None:
    assert app(name=None).text_input(key="attendee_input"), "the dashboard asks"
    at = sidebar_app()
    at.text_input(key="attendee_input").set_value("   ").run()
    at.button(key="attendee_set").click().run()
    assert at.session_state["attendee_error"], "an empty name is refused"
    assert any(e.value for e in at.sidebar.error)
    at.text_input(key="attendee_input").set_value("<b>" + "x" * 496 + "</b>").run()
    at.button(key="attendee_set").click().run()
    assert "attendee" not in at.session_state or not at.session_state["attendee"]
    at.text_input(key="attendee_input").set_value("Ada").run()  # Enter takes it
    assert at.session_state["attendee"] == "Ada"
    assert not [w for w in at.text_input if w.key == "attendee_input"], "asked once"


def test_the_token_is_checked_once(monkeypatch) -> None:
    monkeypatch.setenv("LAB_INSTRUCTOR_TOKEN", "s3cret")
    assert app().text_input(key="instructor_input"), "the dashboard offers it"
    at = sidebar_app()
    at.text_input(key="instructor_input").set_value("wrong").run()
    at.button(key="instructor_unlock").click().run()
    assert any("not the instructor token" in e.value for e in at.sidebar.error)
    assert "instructor_token" not in at.session_state
    at.text_input(key="instructor_input").set_value("s3cret").run()
    assert at.session_state["instructor_token"] == "s3cret"
    assert not [w for w in at.text_input if w.key == "instructor_input"], "asked once"


def test_submitting_needs_a_name_and_stores_it_as_owner() -> None:
    at = app("pages/compress.py", name=None)
    at.button(key="launch").click().run()
    assert any("name" in e.value for e in at.error)
    assert not store.list_jobs(statuses=("queued",), method="quantize")
    at = app("pages/compress.py", name="Ada")
    at.button(key="launch").click().run()
    job = store.list_jobs(limit=1, method="quantize")[0]
    assert job.owner == "Ada"


def test_jobs_default_to_my_runs_and_only_mine_can_be_cancelled() -> None:
    mine, theirs = running("Ada"), running("Bob")
    at = app("pages/jobs.py", name="Ada")
    keys = {b.key for b in at.button}
    assert f"cancel_{mine}" in keys and f"cancel_{theirs}" not in keys
    assert not any(f"Job {theirs}" in m.value for m in at.markdown), "my runs by default"
    at.toggle(key="jobs_everyone").set_value(True).run()
    assert any(f"Job {theirs}" in m.value for m in at.markdown)
    assert f"cancel_{theirs}" not in {b.key for b in at.button}, "not Bob's jobs"
    at.button(key=f"cancel_{mine}").click().run()
    assert store.get_job(mine).cancel_requested


def test_the_instructor_token_unlocks_everyones_jobs(monkeypatch) -> None:
    monkeypatch.setenv("LAB_INSTRUCTOR_TOKEN", "s3cret")
    theirs = running("Bob")
    done = finished("quantize", owner="Bob")
    at = app("pages/jobs.py", name="Ada")
    at.toggle(key="jobs_everyone").set_value(True).run()
    assert f"cancel_{theirs}" not in {b.key for b in at.button}
    at.session_state["instructor_token"] = "wrong"  # as if a wrong one got stored: no power
    at.run()
    assert f"cancel_{theirs}" not in {b.key for b in at.button}
    at.session_state["instructor_token"] = "s3cret"  # what the sidebar stores once checked
    at.run()
    at.button(key=f"cancel_{theirs}").click().run()
    assert store.get_job(theirs).cancel_requested
    at.button(key=f"delete_{done}").click().run()
    at.button(key=f"delete_yes_{done}").click().run()
    assert done not in {j.id for j in store.list_jobs()}


def test_without_a_token_setting_there_is_no_instructor_box() -> None:
    at = app("pages/jobs.py")
    assert not [w for w in at.text_input if w.key == "instructor_input"]


def test_class_page_colours_runs_by_attendee_and_lists_who_waits() -> None:
    finished("quantize", owner="Ada", p50=5.0)
    finished("prune", owner="Bob", p50=8.0)
    waiting = store.enqueue("distill", {"data": {}}, "default", "rotten-tomatoes")
    own(waiting, "Bob")
    at = app("pages/class_.py")
    assert not at.exception
    chart = at.get("plotly_chart")[0]
    names = {t.get("name") for t in json.loads(chart.proto.spec)["data"]}
    assert {"Ada", "Bob", "frontier"} <= names
    table = at.dataframe[0].value
    assert list(table["attendee"]) == ["Bob"] and list(table["job"]) == [waiting]
