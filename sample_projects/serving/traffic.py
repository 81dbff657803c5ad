"""Send replayed traffic to serve.py, whose customers change half-way; the labels follow late.

    python traffic.py --url http://127.0.0.1:PORT            # 8 windows of an hour, ending now

Window i covers [start + i*window, start + (i+1)*window) and its requests carry those times ("ts"),
so hours of traffic replay in seconds (--live sends them as they come instead, without "ts"). From
window --shift-at on, the customers are the new ones of world.py. Whether each customer churned is
known only later: the labels of window i are written (through mltui's PredictionLog.label, into the
workspace's .mltui/monitor/) once window i + --label-delay has been sent, and those of the last
windows at the end, unless --leave-labels says to leave them for a later run.

Everything is drawn from --seed and the window's number, so a later run with --from sends the labels
of earlier windows without sending their requests again. Prints, per window, the model's accuracy on
it as the truth has it (what `mltui monitor show` should find once the labels are in).
"""

import argparse
import http.client
import json
import math
import random
import sys
import time
from urllib.parse import urlsplit

from mltui.monitor import PredictionLog

from world import churns, customer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--url", required=True, help="serve.py's address, e.g. http://127.0.0.1:8000")
parser.add_argument("--windows", type=int, default=8, help="how many windows to send (default 8)")
parser.add_argument("--from", dest="first", type=int, default=0, metavar="I", help="the first window's number")
parser.add_argument("--per-window", type=int, default=120, help="requests per window (default 120)")
parser.add_argument("--window", type=float, default=3600.0, metavar="SECONDS",
                    help="the window's length, as [monitor] window says (default 3600)")
parser.add_argument("--start", type=float, help="when window 0 starts, in seconds since the epoch "
                    "(default: so that the last window sent has just ended)")
parser.add_argument("--shift-at", type=int, default=4, metavar="I", help="the first window of new customers")
parser.add_argument("--label-delay", type=int, default=1, metavar="W", help="labels come W windows late (default 1)")
parser.add_argument("--leave-labels", action="store_true", help="do not send the last windows' labels at the end")
parser.add_argument("--live", action="store_true", help="send in real time, spread over each window, without ts")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--json", action="store_true", help="print one JSON line per window")
args = parser.parse_args()

if args.start is None:
    args.start = math.floor(time.time() / args.window) * args.window - (args.first + args.windows) * args.window


def window_customers(i: int) -> list[tuple[str, dict, str]]:
    """(request id, inputs, truth) of window i, the same on every run."""
    rng = random.Random(f"{args.seed}:{i}")
    out = []
    for j in range(args.per_window):
        x = customer(rng, shifted=i >= args.shift_at)
        out.append((f"s{args.seed}-w{i}-{j}", x, churns(rng, x)))
    return out


url = urlsplit(args.url)
if url.scheme != "http" or not url.hostname:
    sys.exit("traffic.py: --url must look like http://127.0.0.1:PORT")
conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
labels = PredictionLog("classifier")


def predict(request_id: str, x: dict, ts: float | None) -> dict:
    body = {"id": request_id, "inputs": x, **({"ts": ts} if ts is not None else {})}
    conn.request("POST", "/predict", json.dumps(body), {"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = json.loads(answer.read())
    if answer.status != 200:
        sys.exit(f"traffic.py: the server answered {answer.status}: {data.get('error')}")
    return data


def send_labels(i: int) -> int:
    if i < 0:
        return 0
    for request_id, _, truth in window_customers(i):
        labels.label(request_id, truth)
    labels.flush()
    return args.per_window


last = args.first + args.windows - 1
for i in range(args.first, last + 1):
    right = 0
    models = set()
    begin = args.start + i * args.window
    for j, (request_id, x, truth) in enumerate(window_customers(i)):
        if args.live:
            time.sleep(max(0.0, begin + j * args.window / args.per_window - time.time()) if j else 0)
        answer = predict(request_id, x, None if args.live else begin + (j + 0.5) * args.window / args.per_window)
        right += answer["output"] == truth
        models.add(answer["model"])
    labelled = send_labels(i - args.label_delay)
    line = {"window": i, "start": begin, "shifted": i >= args.shift_at, "requests": args.per_window,
            "models": sorted(models), "accuracy": right / args.per_window,
            "labels_sent_for": i - args.label_delay if labelled else None}
    print(json.dumps(line) if args.json else
          f"window {i} ({'new' if line['shifted'] else 'old'} customers): {args.per_window} requests to "
          f"{', '.join(line['models'])}, accuracy {line['accuracy']:.3f}"
          + (f"; labels of window {line['labels_sent_for']} sent" if labelled else ""), flush=True)
if not args.leave_labels:
    for i in range(max(args.first, last - args.label_delay + 1), last + 1):
        send_labels(i)
    if not args.json:
        print(f"labels of windows {max(args.first, last - args.label_delay + 1)}..{last} sent at the end")
labels.close()
