"""`mltui monitor check|watch|show|alerts`: the promoted model watched on its live predictions."""

from __future__ import annotations

import argparse
import sys
import time

from mltui.cli.output import emit, safe, table, when


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("monitor", parents=[common], help="watch models on their prediction logs: drift, quality, alerts",
                       description="Read the prediction logs that serving code writes (JSON lines or Parquet in "
                       ".mltui/monitor/, or [monitor] logs = PATH), fold them into time windows, compare each window "
                       "with the model's reference data, join labels that arrive later, and apply the rules of "
                       "[[monitor.rules]] in .mltui/config.toml.",
                       epilog="Serving code logs with `from mltui.monitor import PredictionLog`.")
    verbs = p.add_subparsers(title="verbs", metavar="VERB", parser_class=type(p))
    ck = verbs.add_parser("check", parents=[common], help="read the logs since the last check and apply the rules",
                          description="Read what the logs gained since the last check (streaming, in bounded memory), "
                          "update the windows, join labels, and open or close alerts.")
    ck.add_argument("model", nargs="?", help="only this model")
    ck.add_argument("--json", action="store_true", help="print JSON")
    ck.set_defaults(handler=cmd_check)
    wa = verbs.add_parser("watch", parents=[common], help="check again every N seconds until Ctrl-C")
    wa.add_argument("model", nargs="?", help="only this model")
    wa.add_argument("--every", type=float, default=60.0, metavar="SECONDS", help="seconds between checks (default 60)")
    wa.add_argument("--json", action="store_true", help="print one JSON line per check")
    wa.set_defaults(handler=cmd_watch)
    sh = verbs.add_parser("show", parents=[common], help="a model's windows: traffic, drift, quality",
                          description="The history of a model's windows, newest last, with the most drifted features.")
    sh.add_argument("model", help="the model's name")
    sh.add_argument("--window", metavar="DURATION", help="merge windows into this size (e.g. 1d); default: as checked")
    sh.add_argument("-n", "--last", type=int, default=24, metavar="N", help="how many windows (default 24)")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(handler=cmd_show)
    al = verbs.add_parser("alerts", parents=[common], help="alerts, open first, with what each did")
    al.add_argument("model", nargs="?", help="only this model")
    al.add_argument("--json", action="store_true", help="print JSON")
    al.set_defaults(handler=cmd_alerts)
    p.set_defaults(handler=lambda args: (p.print_help(), 0)[1])


def _check_once(args) -> tuple[int, dict]:
    from mltui.cli.progress import progress_bar
    from mltui.core.monitor.check import check
    from mltui.core.workspace import find_workspace

    ws = find_workspace()
    with progress_bar("reading prediction logs", quiet=bool(getattr(args, "json", False))) as update:
        report = check(ws, args.model, update)
    data = report.as_dict()
    for model, sentence in report.problems.items():
        sys.stderr.write(f"mltui: {sentence}\n")
    return (1 if report.problems else 0), data


def _say(data: dict) -> None:
    print(f"Read {data['records']:,} prediction(s) into {data['windows']} window update(s) in {data['seconds']:.2f}s; "
          f"{data['labels']:,} label(s) joined, {data['labels_waiting']:,} waiting; "
          f"{data['malformed']:,} malformed line(s) skipped.")
    for model, features in data["schema_changes"].items():
        print(safe(f"Schema change: {model}'s logs have feature(s) its reference lacks: {', '.join(features)}."))
    for alert in data["alerts_opened"]:
        print(safe(f"ALERT {alert['id']} opened: {alert['rule']} ({alert['value']})"))
    for alert in data["alerts_closed"]:
        print(safe(f"Alert {alert['id']} closed: {alert['rule']}"))
    for action in data["actions"]:
        print(safe(f"  alert {action['alert']}: {action['action']} -> {action['outcome']}"))


def cmd_check(args: argparse.Namespace) -> int:
    code, data = _check_once(args)
    return emit(args, data, lambda: _say(data), code=code)


def cmd_watch(args: argparse.Namespace) -> int:
    if args.every <= 0:
        from mltui.base.errors import UsageError

        raise UsageError("--every takes a positive number of seconds.")
    code = 0
    while True:
        code, data = _check_once(args)
        emit(args, data, lambda: _say(data), lines=True)
        sys.stdout.flush()
        time.sleep(args.every)
    return code


def cmd_show(args: argparse.Namespace) -> int:
    from mltui.core.monitor.view import history
    from mltui.core.workspace import find_workspace

    ws = find_workspace()
    rows = history(ws, args.model, args.window, args.last)

    def text() -> None:
        if not rows:
            print(safe(f"No windows for {args.model} yet: serving code logs predictions with PredictionLog, "
                       "and `mltui monitor check` reads them."))
            return
        body = []
        for r in rows:
            h = r["health"]
            worst = ", ".join(f"{f} {h['features'][f]['psi']:.2f}" for f in h["drifted"][:3]) or "-"
            quality = " ".join(f"{k} {h[k]:.3f}" + (f" (eval {r['evaluated'][k]:.3f})" if k in r["evaluated"] else "")
                               for k in ("accuracy", "f1", "roc_auc", "mae", "rmse") if k in h)
            p95 = f"{h['latency_p95']:.1f}ms" if h.get("latency_p95") is not None else "-"
            body.append([when(r["start"]), f"v{r['version']}", f"{h['volume']:,}", p95,
                         f"{h['drift_share']:.0%}", worst, f"{h['missing_share']:.1%}", quality or "-"])
        print(table(["window", "ver", "volume", "p95", "drift", "most drifted (PSI)", "missing", "quality"], body))

    return emit(args, rows, text)


def cmd_alerts(args: argparse.Namespace) -> int:
    from mltui.core.monitor.view import alert_list
    from mltui.core.workspace import find_workspace

    items = alert_list(find_workspace(), args.model)

    def text() -> None:
        if not items:
            print("No alerts.")
            return
        rows = [[str(a["id"]), "open" if a["closed"] is None else "closed", a["model"], a["rule"].split(": ", 1)[-1],
                 when(a["opened"]), "; ".join(f"{x['action']}: {x['outcome']}" for x in a["actions"]) or "-"]
                for a in items]
        print(table(["id", "state", "model", "rule", "opened", "actions"], rows))

    return emit(args, items, text)
