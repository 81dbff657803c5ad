"""`mltui import tensorboard|mlflow`: history recorded by other tools, brought into the workspace."""

from __future__ import annotations

import argparse

from mltui.cli.output import emit, safe


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="bring in runs from TensorBoard event files or MLflow",
                       description="Import runs recorded by other tools. Importing again adds only what is new.")
    verbs = p.add_subparsers(title="sources", metavar="SOURCE", required=True, parser_class=type(p))
    tb = verbs.add_parser(
        "tensorboard", parents=[common], help="event files under a folder: one run per folder of event files",
        description="Each folder under DIR that holds event files (events.out.tfevents.*) becomes one run, as "
        "TensorBoard groups them: scalars become metrics at their steps and wall times (the tag is the key), "
        "hparams become params, the first and last event give the start and end. Running it again imports only "
        "the events written since. Needs the tensorboard package: pip install 'mltui[tensorboard]'.")
    tb.add_argument("dir", metavar="DIR", help="the log folder (what SummaryWriter or TensorBoard's --logdir got)")
    tb.add_argument("--name-from", choices=("dir", "tag"), default="dir",
                    help="dir: name each run by its folder under DIR (default); tag: by the run_name or name "
                    "hparam the script logged, else its folder")
    tb.add_argument("--json", action="store_true", help="print JSON")
    tb.set_defaults(handler=cmd_tensorboard)
    ml = verbs.add_parser(
        "mlflow", parents=[common], help="an MLflow store: a mlruns/ folder, a .db file or a tracking URI",
        description="Each MLflow run becomes a run here, with its name, experiment (tag mlflow.experiment), "
        "params, tags, status, start and end times, every metric point and its artifacts (copied, with their "
        "sha256). MLflow's run id is kept (tag mlflow.run_id): importing again skips runs already imported. "
        "Reads through MLflow's own client: pip install 'mltui[mlflow]'.")
    ml.add_argument("source", metavar="PATH_OR_URI",
                    help="a mlruns/ folder, an mlflow.db file, or a URI such as sqlite:///mlflow.db")
    ml.add_argument("--experiment", "-e", metavar="NAME", help="only this experiment's runs")
    ml.add_argument("--where", "-w", metavar="FILTER",
                    help="MLflow's search filter, e.g. \"params.lr = '0.01'\" or \"metrics.acc > 0.9\"")
    ml.add_argument("--json", action="store_true", help="print JSON")
    ml.set_defaults(handler=cmd_mlflow)


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.workspace import find_workspace
    from mltui.integrations.tensorboard import import_tensorboard

    ws = find_workspace()
    with progress_bar("Reading event files", quiet=args.json) as update:
        report = import_tensorboard(ws, args.dir, name_from=args.name_from, progress=update)

    def text() -> None:
        for entry in report["runs"]:
            where = safe(entry["folder"])
            if entry["run"] is None:
                print(f"{where}: no records yet, nothing imported")
            else:
                verb = "imported as" if entry["new"] else "added to"
                extra = f", {entry['params']} params" if entry["params"] else ""
                print(f"{where}: {entry['points']:,} points{extra} {verb} run {entry['run']} ({safe(entry['name'])})")
            if entry["bad"]:
                print(f"  {entry['bad']} damaged record{'s' if entry['bad'] != 1 else ''} (CRC mismatch) skipped and "
                      "counted on the run (tag tensorboard.bad_records)")
            for cut in entry["waiting"]:
                print(f"  {safe(cut['file'])}: the last record is incomplete ({cut['bytes']} bytes); it is left for "
                      "the next import")
        runs = report["runs"]
        print(f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {report['points']:,} points from {safe(report['folder'])}")

    return emit(args, report, text)


def cmd_mlflow(args: argparse.Namespace) -> int:
    from mltui.cli.progress import progress_bar
    from mltui.core.workspace import find_workspace
    from mltui.integrations.mlflow import import_mlflow

    ws = find_workspace()
    with progress_bar("Importing MLflow runs", unit="runs", quiet=args.json) as update:
        report = import_mlflow(ws, args.source, experiment=args.experiment, where=args.where, progress=update)

    def text() -> None:
        for entry in report["imported"]:
            print(f"{entry['mlflow_run_id']} -> {entry['run']} ({safe(entry['name'])}, {entry['status']}): "
                  f"{entry['params']} params, {entry['tags']} tags, {entry['points']:,} points, "
                  f"{entry['artifacts']} artifacts")
        imported, skipped = len(report["imported"]), len(report["skipped"])
        line = f"Imported {imported} run{'s' if imported != 1 else ''} from {safe(report['uri'])}"
        if skipped:
            line += f"; skipped {skipped} already imported"
        print(line + ".")

    return emit(args, report, text)
