"""The command line (a contract, see DESIGN.md):

    python -m engine worker [--once] [--name NAME]
    python -m engine submit METHOD [--model M] [--dataset D] [--from-job ID] [--set k=v ...]
                            [--owner NAME] [--fresh] [--wait] [--json]
    python -m engine run RECIPE.yaml [--wait] [--json]
    python -m engine jobs [--owner NAME] [--json]
    python -m engine show JOB_ID [--json]
    python -m engine cancel|delete JOB_ID [--owner NAME] [--token TOKEN]
    python -m engine search --model M --max-drop 0.01 [--min-retained R] --batch 32
                            --minutes 60 [--max-latency-ms X] [--max-size-mb Y]
                            [--objective speed|size] [--owner NAME] [--json]

Readers (jobs, show, submit) reap first: a job whose worker stopped responding shows as
re-queued or failed, with the reason.

Exit code 0 when the job ended done (or was queued, without --wait); 1 when it failed or was
cancelled; 2 for bad input. Errors go to stderr without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from typing import Any

from engine.toolkit.config import LabError
from storage import jobs as store
from storage.models import DONE, QUEUED, RUNNING

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    from engine.methods.registry import methods

    p = argparse.ArgumentParser(prog="python -m engine",
                                description="Compression Lab engine: jobs from the command line.")
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run the background worker")
    w.add_argument("--once", action="store_true", help="run queued jobs, then exit when none "
                   "is left")
    w.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs (recycling)")
    w.add_argument("--name", default=None, help="the worker's name in `jobs` and on the Jobs "
                   "page (default HOST:PID)")

    specs = methods()
    epilog = "\n".join(
        f"{name}: " + ", ".join(f"{f['name']}={f['default']}" for f in spec.config.fields_info())
        for name, spec in specs.items())
    s = sub.add_parser("submit", help="queue a job", epilog="settings and defaults:\n" + epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("method", choices=list(specs))
    s.add_argument("--model", default="default", help="default, minilm-l6, job:ID, preset:NAME, "
                   "a model directory or a hub id (default: default)")
    s.add_argument("--dataset", default="rotten-tomatoes",
                   help="rotten-tomatoes, bbc-news or csv:PATH (default: rotten-tomatoes)")
    s.add_argument("--from-job", type=int, default=None, help="use that job's output model")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field (repeatable)")
    _owner_arg(s)
    s.add_argument("--fresh", action="store_true", help="run it again even when identical "
                   "work was done or is under way (otherwise its result is reused)")
    _wait_args(s)

    r = sub.add_parser("run", help="replay a recipe (a chain of configs) from YAML")
    r.add_argument("recipe")
    _wait_args(r)

    j = sub.add_parser("jobs", help="list jobs")
    j.add_argument("--json", action="store_true")
    j.add_argument("--limit", type=int, default=50)
    j.add_argument("--owner", default=None, help="only this owner's jobs (default: everyone's)")

    sh = sub.add_parser("show", help="one job with its metrics")
    sh.add_argument("job_id", type=int)
    sh.add_argument("--json", action="store_true")

    c = sub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job_id", type=int)
    _owner_arg(c, token=True)

    d = sub.add_parser("delete", help="delete a finished job, its results and its artifacts")
    d.add_argument("job_id", type=int)
    _owner_arg(d, token=True)

    _search_parser(sub)

    pk = sub.add_parser("pack", help="carry runs to another lab: one checked file")
    pk_sub = pk.add_subparsers(dest="pack_command", required=True)
    pe = pk_sub.add_parser("export", help="write chosen runs (and their lineage) to FILE")
    pe.add_argument("file")
    pe.add_argument("--jobs", type=int, nargs="*", default=None,
                    help="job ids (default: every finished run)")
    pe.add_argument("--with-models", action="store_true", help="include the model folders")
    pi = pk_sub.add_parser("import", help="load a pack into this lab")
    pi.add_argument("file")
    return p


def _search_parser(sub) -> None:
    se = sub.add_parser("search", help="the fastest (or smallest) model within an accuracy "
                        "budget: plans, runs and compares candidate chains")
    se.add_argument("--model", default="default", help="the starting model (default: default)")
    se.add_argument("--dataset", default="rotten-tomatoes")
    se.add_argument("--max-drop", type=float, default=None, help="accuracy points lost at "
                    "most, as a fraction (0.01 = one point), on the validation split")
    se.add_argument("--min-retained", type=float, default=None, help="share of the "
                    "validation accuracy kept at least (0.99 = 99 %%)")
    se.add_argument("--batch", type=int, default=32, help="batch size the speed is judged at "
                    "(1 or 32)")
    se.add_argument("--minutes", type=float, default=60.0, help="time budget (default 60)")
    se.add_argument("--max-latency-ms", type=float, default=None, help="latency ceiling at "
                    "--batch (the candidate's fastest runtime)")
    se.add_argument("--max-size-mb", type=float, default=None, help="size ceiling on disk")
    se.add_argument("--objective", choices=("speed", "size"), default="speed")
    se.add_argument("--methods", default=None, help="comma-separated subset of distill, "
                    "prune-layers, prune-heads, prune-ffn, lowrank, quantize (default: all)")
    se.add_argument("--train-steps", type=int, default=0, help="training steps of each "
                    "distill / recovery step (default: each method's own)")
    se.add_argument("--max-candidates", type=int, default=None, help="run at most N chains")
    se.add_argument("--search-id", type=int, default=None, help=argparse.SUPPRESS)
    se.add_argument("--cancel", type=int, default=None, metavar="SEARCH_ID",
                    help="cancel a running search (it keeps what it finished)")
    _owner_arg(se)
    se.add_argument("--json", action="store_true", help="print one JSON object")


def _run_search(args: argparse.Namespace) -> int:
    """The `search` verb: runs in this process (its jobs through the worker's executor step);
    `--search-id` runs a search the Search page recorded; `--cancel` stops one."""
    from engine import search as S
    from engine.reports.search_plan import Constraints

    if args.cancel is not None:
        print(S.cancel(args.cancel, owner=args.owner))
        return EXIT_OK
    _quiet_libraries()
    if args.search_id is not None:
        rec = S.records.load(args.search_id)
        cons = Constraints(**rec["constraints"])
        model, dataset, owner = rec["model"], rec["dataset"], rec["owner"]
        methods, steps = tuple(rec["methods"]), rec["train_steps"]
        limit = rec.get("max_candidates")
    else:
        cons = Constraints(max_drop=args.max_drop, min_retained=args.min_retained,
                           batch=args.batch, minutes=args.minutes,
                           max_latency_ms=args.max_latency_ms, max_size_mb=args.max_size_mb,
                           objective=args.objective)
        model, dataset, owner = args.model, args.dataset, args.owner
        methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods \
            else S.METHODS
        steps, limit = args.train_steps, args.max_candidates

    said: list[str] = []

    def show(rec: dict[str, Any]) -> None:  # progress on stderr, each new message once
        if rec.get("message") and rec["message"] not in said[-1:]:
            said.append(rec["message"])
            print(f"search {rec['id']}: {rec['message']}", file=sys.stderr)

    try:
        rec = S.search(model, dataset, cons, owner=owner, methods=methods, train_steps=steps,
                       max_candidates=limit, search_id=args.search_id, on_update=show)
    except KeyboardInterrupt:  # the search recorded itself as cancelled, with what it kept
        print("\nsearch interrupted: cancelled, it keeps the candidates it finished",
              file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(S.result_json(rec), default=str))
    else:
        for c in rec["candidates"]:
            acc = c["val_accuracy"]
            print(f"  {c['chain']:<48} job {c['id'] or '-':>4}  val "
                  f"{'-' if acc is None else f'{acc:.4f}'}  {c['status']}")
        print(rec["message"])
    return EXIT_OK if rec.get("winner") else EXIT_FAILED


def _owner_arg(p: argparse.ArgumentParser, token: bool = False) -> None:
    p.add_argument("--owner", default=None, help="who you are (default: the OS user); "
                   "attendees touch only their own jobs")
    if token:
        p.add_argument("--token", default=None, help="the instructor token "
                       "(LAB_INSTRUCTOR_TOKEN): touch anyone's jobs")


def _wait_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="block until the job ends (runs it "
                   "in this process when no worker is alive)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torchao (imported by transformers when installed) warns about CUDA-only kernels it
    # cannot load on a CPU machine, and torch about deprecated pytree registrations: noise here.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except store.JobNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from engine.worker import worker_loop

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        _quiet_libraries()
        worker_loop(once=args.once, max_jobs=args.max_jobs, name=args.name)
        return EXIT_OK
    if args.command == "submit":
        from engine.methods.registry import get_method
        from engine.submit import submit
        from engine.worker import job_device

        # only methods with device-dependent schemes pay for probing the device (torch import)
        probe = get_method(args.method).availability is not None
        job_id = submit(args.method, model=args.model, dataset=args.dataset,
                        from_job=args.from_job, sets=args.set, device=job_device(probe),
                        owner=args.owner, fresh=args.fresh)
        return _after_submit([job_id], args)
    if args.command == "run":
        from engine.recipes import submit_recipe

        ids = submit_recipe(args.recipe)
        return _after_submit(ids, args)
    if args.command == "jobs":
        rows = store.list_jobs(limit=args.limit, owner=args.owner)  # reaps first
        names = store.worker_names([j.worker_id for j in rows])
        if args.json:
            print(json.dumps([{**store.job_as_dict(j), "worker": names.get(j.worker_id)}
                              for j in rows], default=str))
        else:
            _print_jobs(rows, names)
        return EXIT_OK
    if args.command == "show":
        job = store.get_job(args.job_id)  # reaps first
        data = store.job_as_dict(job)
        print(json.dumps(data, default=str, indent=None if args.json else 2))
        return EXIT_OK if job.status in (DONE, QUEUED, RUNNING) else EXIT_FAILED
    if args.command == "cancel":
        from engine.submit import cancel_job

        print(cancel_job(args.job_id, owner=args.owner, token=args.token))
        return EXIT_OK
    if args.command == "delete":
        from engine.submit import delete_run

        delete_run(args.job_id, owner=args.owner, token=args.token)
        print(f"deleted job {args.job_id}")
        return EXIT_OK
    if args.command == "search":
        return _run_search(args)
    if args.command == "pack":
        from engine import packs

        if args.pack_command == "export":
            m = packs.export_pack(args.file, args.jobs, args.with_models)
            print(f"wrote {args.file}: {m['runs']} runs"
                  + (" with their models" if args.with_models else ""))
        else:
            ids = packs.import_pack(args.file)
            print(f"imported {len(ids)} runs as jobs {', '.join(map(str, ids.values()))}")
        return EXIT_OK
    raise AssertionError(args.command)


def _after_submit(job_ids: list[int], args: argparse.Namespace) -> int:
    last = job_ids[-1]
    if not args.wait:
        if args.json:
            print(json.dumps(store.job_as_dict(store.get_job(last)), default=str))
        else:
            print(f"queued job {last}" + (f" (chain {job_ids})" if len(job_ids) > 1 else ""))
        return EXIT_OK
    job = wait_for(last)
    if args.json:
        print(json.dumps(store.job_as_dict(job), default=str))
    else:
        _print_summary(job)
    if job.status != DONE:
        print(f"error: job {job.id} {job.status}: {job.error or job.message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def wait_for(job_id: int, poll_s: float = 0.5):
    """Block until the job ends, with a progress bar on stderr. With no live worker, run the
    job (and the unfinished jobs it waits on) in this process: the worker's one loop for that,
    engine.worker.run_to_end."""
    from tqdm import tqdm

    from engine.worker import run_to_end

    _quiet_libraries()
    bar = tqdm(total=100, file=sys.stderr, unit="%", dynamic_ncols=True,
               bar_format="{desc} |{bar}| {n:.0f}% [{elapsed}<{remaining}]")
    stop = threading.Event()
    watched = {"id": job_id}

    def watch() -> None:
        while not stop.is_set():
            try:
                j = store.load_job(watched["id"])
                bar.set_description(f"job {j.id} {j.method}: {(j.message or '')[:50]:<50}",
                                    refresh=False)
                bar.n = round(100 * j.progress, 1)
                bar.refresh()
            except Exception:  # noqa: BLE001 (shown to the user, never raised)
                pass
            stop.wait(poll_s)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return run_to_end(job_id, poll_s=poll_s, on_job=lambda i: watched.update(id=i))
    except KeyboardInterrupt:
        store.request_cancel(watched["id"])
        print(f"\ncancel requested for job {watched['id']}", file=sys.stderr)
        raise
    finally:
        stop.set()
        watcher.join(timeout=2)
        bar.close()


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_jobs(rows: list, workers: dict[int, str]) -> None:
    print(f"{'id':>4}  {'method':<9} {'status':<9} {'progress':>8}  {'owner':<12} "
          f"{'worker':<16} {'model':<14} {'dataset':<16} {'accuracy':>8}  message")
    for j in rows:
        acc = j.metrics.accuracy if j.metrics is not None else None
        worker = workers.get(j.worker_id, "-") if j.worker_id is not None else "-"
        print(f"{j.id:>4}  {j.method:<9} {j.status:<9} {100 * j.progress:>7.0f}%  "
              f"{(j.owner or '-')[:12]:<12} {worker[:16]:<16} {j.model[:14]:<14} "
              f"{j.dataset[:16]:<16} {_fmt(acc):>8}  {(j.message or '')[:50]}")


def _print_summary(job) -> None:
    d = store.job_as_dict(job)
    m = d["metrics"]
    print(f"job {d['id']} {d['method']} {d['status']}; output model: {d['output_model'] or '-'}")
    if m:
        print(f"  accuracy {_fmt(m.get('accuracy'))}  macro-F1 {_fmt(m.get('macro_f1'))}  "
              f"size {_fmt(m.get('size_mb'), '.1f')} MB  params {m.get('params')}  "
              f"device {m.get('device')}")
        for row in m.get("latency", []):
            print(f"  batch {row['batch_size']:>3} x {row['seq_len']} tokens: "
                  f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms, "
                  f"{row['throughput_per_s']:.1f}/s")
        if m.get("speedup_vs_parent"):
            print(f"  vs parent: speedup {m['speedup_vs_parent']}, size ratio "
                  f"{m.get('size_ratio_vs_parent')}, accuracy delta "
                  f"{_fmt(m.get('accuracy_delta_vs_parent'), '+.4f')}")
