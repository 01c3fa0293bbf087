"""Class: every attendee's runs on one frontier, coloured by attendee, and who waits for what."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.reports import runs as analysis
from pages.ui import attendee, elapsed, fmt_seconds, plain, stage_eta_text
from storage import jobs as store
from storage import queries

st.title("Class")
st.caption("Everyone's runs in this lab: each marker is one run, its colour its owner; the "
           "black line joins the runs nothing beats on both accuracy and latency.")

# ------------------------------------------------------------------ one frontier for all
runs = queries.runs_table()
if not runs:
    st.info("No finished runs yet: they appear here as attendees' jobs finish.")
else:
    datasets = pd.Series([r["dataset"] for r in runs]).value_counts().index.tolist()
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Dataset", datasets, key="class_dataset",
                           help="Accuracy is only comparable on the same test split.")
    shown = [r for r in runs if r["dataset"] == dataset]
    sizes = analysis.batch_sizes(shown) or [None]
    batch = c2.selectbox("Batch size", sizes, index=sizes.index(1) if 1 in sizes else 0,
                         key="class_batch")
    frame = analysis.runs_frame(shown, batch)
    owners = {r["id"]: r.get("owner") or "(no name)" for r in shown}
    frame["owner"] = frame["job"].map(owners)
    points = frame.dropna(subset=["p50_ms", "accuracy"])
    if points.empty:
        st.info("These runs have no latency at this batch size or no meaningful accuracy.")
    else:
        fig = go.Figure()
        on = analysis.pareto_mask(points["p50_ms"], points["accuracy"])
        front = points[on].sort_values(["p50_ms", "accuracy"])
        fig.add_scatter(x=front["p50_ms"], y=front["accuracy"], mode="lines", name="frontier",
                        line={"shape": "hv", "color": "#222", "width": 1}, hoverinfo="skip")
        me = attendee()
        for owner, group in points.groupby("owner", sort=True):
            fig.add_scatter(
                x=group["p50_ms"], y=group["accuracy"], mode="markers", name=str(owner),
                marker={"size": 13 if owner == me else 10,
                        "line": {"width": 2 if owner == me else 1, "color": "white"}},
                customdata=group[["job", "method"]].values,
                hovertemplate=f"{owner}: job %{{customdata[0]}} (%{{customdata[1]}})<br>"
                              "%{x:.1f} ms, %{y:.1%}<extra></extra>")
        fig.update_layout(height=430, margin={"l": 60, "r": 10, "t": 30, "b": 50},
                          xaxis_title=f"median latency (ms) at batch {batch}",
                          yaxis_title="test accuracy", yaxis_tickformat=".0%",
                          legend_title_text="attendee")
        st.plotly_chart(fig, key="class_frontier")
        best = points[on].sort_values("p50_ms")
        st.caption("On the frontier: " + "; ".join(
            f"{plain(o)} (job {j}, {m})" for o, j, m in
            zip(best["owner"], best["job"], best["method"])))

# ------------------------------------------------------------------ who is waiting for what
st.subheader("Who is waiting for what")
waiting = store.list_jobs(statuses=("queued", "running"))
if not waiting:
    st.info("Nobody is waiting: the queue is empty.")
else:
    rows = [{"attendee": j.owner or "(no name)", "job": j.id, "what": f"{j.method} of {j.model}",
             "status": j.status,
             "progress": f"{j.progress:.0%}" + (f" · {stage_eta_text(j)}" if stage_eta_text(j)
                                                else ""),
             "waiting": fmt_seconds(elapsed(j.created_at))
             if j.status == "queued" else ""}
            for j in sorted(waiting, key=lambda j: (j.owner or "", j.id))]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="class_waiting",
                 column_config={"attendee": st.column_config.TextColumn(width="medium"),
                                "what": st.column_config.TextColumn(width="large")})
    per_owner = pd.DataFrame(rows).groupby("attendee")["status"].value_counts().unstack(
        fill_value=0)
    st.caption(" · ".join(f"{plain(o)}: " + ", ".join(f"{n} {s}" for s, n in row.items() if n)
                          for o, row in per_owner.iterrows()))
