"""``python -m kdci_core runs list|show|cancel|resume|delete|tag|export`` and ``worker`` (what backends start).

``runs`` commands read the run store (``$KDCI_HOME``) and reconcile it first, so a run whose
worker died shows as failed.
"""

from __future__ import annotations

import time

from ..common.errors import InputError
from .common import add_backend_arguments, add_output_arguments, reconciled_store, write_json


class _Terminated(BaseException):
    """SIGTERM while the worker starts (importing torch takes seconds), before ``execute``
    installs its own handler."""


def _terminated(signum, frame):
    raise _Terminated()


def cmd_worker(args) -> int:
    import signal

    signal.signal(signal.SIGTERM, _terminated)  # a SIGTERM'd worker ends cancelled, never queued
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # the launcher blocked it (local.py)
        from ..runs import execute_by_id

        execute_by_id(args.run_id, args.home, resume=args.resume, slots=args.slots or None,
                      backend=args.backend)
    except _Terminated:
        from ..runs.status import ACTIVE, CANCELLED, StatusConflict
        from ..runs.store import RunStore

        try:
            RunStore(args.home).get(args.run_id).set_status(
                CANCELLED, expect=ACTIVE, pid=None,
                error="cancelled: terminated (SIGTERM) while the worker started")
        except StatusConflict:  # already ended (the cancel that sent the SIGTERM marked it)
            pass
    return 0


def cmd_runs_list(args) -> int:
    from ..runs.table import format_seconds, table_rows

    store = reconciled_store()
    rows = store.rows(status=args.status, method=args.method, dataset=args.dataset, sort=args.sort,
                      limit=args.limit, tag=args.tag)
    table = {r["run"]: r for r in table_rows(store, status=args.status, method=args.method,
                                               dataset=args.dataset, sort=args.sort, limit=args.limit,
                                               tag=args.tag)}
    if rows:
        print(f"{'RUN':<44} {'STATUS':<9} {'METHOD':<8} {'KDCI':<4} {'SEED':>4} {'EPOCH':>7} "
              f"{'STEP':>11} {'ACC':>7} {'ETA/QUEUE':>12}  CREATED")
    for r in rows:
        t = table.get(r["run_id"], {})
        acc = "" if r["student_accuracy"] is None else f"{r['student_accuracy']:.2f}%"
        epoch = f"{r['last_epoch'] or 0}/{r['epochs']}"
        step = f"{t.get('step', 0)}/{t.get('total_steps') or '?'}"
        later = f"#{t['queue']} in queue" if t.get("queue") else format_seconds(t.get("eta_s"))
        when = time.strftime("%m-%d %H:%M", time.localtime(r["created_at"] or 0))
        print(f"{r['run_id']:<44} {r['status']:<9} {r['method'] or '':<8} "
              f"{'on' if r['kdci'] else 'off':<4} {r['seed']!s:>4} {epoch:>7} {step:>11} {acc:>7} "
              f"{later:>12}  {when}")
        if r["status"] == "corrupt":
            print(f"    {r['error']}")
        if t.get("collapsed"):  # runs.collapse: one class above 80% of the test predictions
            print(f"    collapsed: the student predicts {t['top_class']} for {100 * t['top_share']:.0f}% "
                  "of the test images")
    if not rows:
        print("no runs")
    write_json(args.json, {"runs": rows})
    return 0


def cmd_runs_show(args) -> int:
    summary = reconciled_store().get(args.run_id).summary()
    last = summary["history"][-1] if summary["history"] else {}
    print(f"{summary['run_id']}: {summary['status']} ({summary['config'].get('method')}, "
          f"kdci={'on' if summary['config'].get('kdci') else 'off'}, seed {summary['config'].get('seed')})")
    if last:
        print(f"  epoch {last.get('epoch')}  step {last.get('step')}  student {last.get('student_accuracy'):.2f}%")
    if summary["error"]:
        print(f"  error: {summary['error']}")
    write_json(args.json, summary)
    return 0


def cmd_runs_cancel(args) -> int:
    from ..runs import cancel

    state = cancel(reconciled_store(), args.run_id)
    print(f"{args.run_id}: {state}")
    write_json(args.json, {"run_id": args.run_id, "status": state})
    return 0


def cmd_runs_delete(args) -> int:
    store = reconciled_store()
    if not args.yes:
        raise InputError(f"runs delete {args.run_id}: deleting removes its folder for good; repeat with --yes")
    store.delete(args.run_id)
    print(f"{args.run_id}: deleted")
    write_json(args.json, {"run_id": args.run_id, "deleted": True})
    return 0


def cmd_runs_tag(args) -> int:
    if args.tags is None and args.notes is None:
        raise InputError("runs tag: give --tags and/or --notes")
    run = reconciled_store().get(args.run_id)
    tags = args.tags.split(",") if args.tags is not None else None
    out = run.annotate(tags=tags, notes=args.notes)
    print(f"{args.run_id}: tags {', '.join(out['tags']) or '(none)'}; notes {out['notes'] or '(none)'}")
    write_json(args.json, {"run_id": args.run_id, **out})
    return 0


def cmd_runs_export(args) -> int:
    from ..runs.tensorboard import export_tensorboard

    store = reconciled_store()
    runs = [store.get(r) for r in dict.fromkeys(args.run_ids)]  # unknown ids rejected before writing
    written = export_tensorboard(runs, args.tensorboard)
    for folder, n in written.items():
        print(f"{folder.name}: {n} scalars -> {folder}")
    print(f"view them with: tensorboard --logdir {args.tensorboard}")
    write_json(args.json, {"tensorboard": str(args.tensorboard),
                           "runs": {f.name: {"folder": str(f), "scalars": n} for f, n in written.items()}})
    return 0


def cmd_runs_resume(args) -> int:
    from ..runs import claim_resume, execute, get_backend, resume

    store = reconciled_store()
    if args.inline:
        run, _, plan = claim_resume(store, args.run_id)
        print(f"{run.run_id}: {plan}", flush=True)
        result = execute(run, home=store.home, resume=True, backend="inline")
        print(f"{run.run_id}: {run.status().get('status')}"
              + (f", student {result['student_accuracy']:.2f}%" if result else ""))
    else:
        backend = get_backend(args.backend, store, ray_address=args.ray_address) if args.backend else None
        run_id = store.get(args.run_id).run_id
        plan = resume(store, run_id, backend)
        print(f"{run_id}: {plan}; resumed in the background ({store.get(run_id).status().get('backend')})")
    write_json(args.json, store.get(args.run_id).summary())
    return 0


def add_parser(sub) -> None:
    w = sub.add_parser("worker", help="(internal) run one stored run in this process")
    w.add_argument("run_id", help="the stored run to execute")
    w.add_argument("--home", help="the run store (default: $KDCI_HOME)")
    w.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    w.add_argument("--slots", type=int, default=0, help="runs at once on this machine (0: no limit)")
    w.add_argument("--backend", default="local", help="the backend that started the worker, recorded "
                   "in the run's status")
    w.set_defaults(func=cmd_worker)

    runs = sub.add_parser("runs", help="list, show, cancel, resume, delete, tag or export runs").add_subparsers(
        dest="runs_command", required=True)
    ls = runs.add_parser("list", help="runs in the store, newest first")
    ls.add_argument("--status", help="only runs with this status: queued, running, finished, failed, "
                    "cancelled (default: all)")
    ls.add_argument("--method", help="only runs of this method (default: all)")
    ls.add_argument("--dataset", help="only runs on this dataset (default: all)")
    ls.add_argument("--tag", help="only the runs with this tag (tags: the Runs page or `runs tag`; "
                    "default: all)")
    ls.add_argument("--sort", default="created_at", help="the index column to sort by, newest or "
                    "largest first (student_accuracy, method, seed, status...)")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N runs (default: all)")
    add_output_arguments(ls)
    ls.set_defaults(func=cmd_runs_list)
    for name, func, helptext in (("show", cmd_runs_show, "one run: status, config, history, error"),
                                 ("cancel", cmd_runs_cancel, "stop a queued or running run")):
        p = runs.add_parser(name, help=helptext)
        p.add_argument("run_id", help="the run's id (or its name)")
        add_output_arguments(p)
        p.set_defaults(func=func)
    dl = runs.add_parser("delete", help="remove a finished, failed or cancelled run (with --yes)")
    dl.add_argument("run_id", help="the run's id (or its name)")
    dl.add_argument("--yes", action="store_true", help="confirm: the run folder is removed")
    add_output_arguments(dl)
    dl.set_defaults(func=cmd_runs_delete)
    tg = runs.add_parser("tag", help="set a run's tags and/or notes (shown and searchable in the run table)")
    tg.add_argument("run_id", help="the run's id (or its name)")
    tg.add_argument("--tags", help="comma-separated; replaces the run's tags ('' clears them; "
                    "default: kept)")
    tg.add_argument("--notes", help="replaces the run's notes (default: kept)")
    add_output_arguments(tg)
    tg.set_defaults(func=cmd_runs_tag)
    ex = runs.add_parser("export", help="write runs' scalars as TensorBoard event files (tensorboard "
                                        "--logdir DIR shows them); needs the optional tensorboard package")
    ex.add_argument("--tensorboard", required=True, metavar="DIR",
                    help="the folder to write into: one event-file folder per run, DIR/RUN_ID")
    ex.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids (or names) to export")
    add_output_arguments(ex)
    ex.set_defaults(func=cmd_runs_export)
    rs = runs.add_parser("resume", help="continue a failed or cancelled run from its checkpoint")
    rs.add_argument("run_id", help="the run's id (or its name)")
    rs.add_argument("--inline", action="store_true", help="run it in this process (default: background)")
    add_backend_arguments(rs, default=None)
    add_output_arguments(rs)
    rs.set_defaults(func=cmd_runs_resume)
