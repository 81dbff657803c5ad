"""Serve classifier@production over HTTP on 127.0.0.1, logging every prediction for `mltui monitor`.

    python serve.py [PORT]          # default: a free port, printed on start

    POST /predict  {"inputs": {"age": 31, "tenure": 4, "charges": 91.5, "plan": "basic"}, "id": "r-1"}
               ->  {"id": "r-1", "model": "classifier@1", "output": "yes", "scores": {...}, "latency_ms": 0.05}
    GET  /health   {"model": "classifier@1"}

The model file is read from the registry (the version now in production, its bytes checked against
the registered sha256). Every answer is logged through mltui's PredictionLog as "classifier@N", the
version that answered, into the workspace's .mltui/monitor/. The registry is looked at again every
--reload seconds: a newly approved production version is served from then on. A request may carry
"ts" (seconds since the epoch) for replays of past traffic; otherwise the time is now. "id" defaults
to a fresh one, returned so the caller can send the label later.
"""

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mltui.base.errors import MltuiError
from mltui.core.models.files import version_file
from mltui.monitor import PredictionLog

import model as logreg

MAX_BODY = 1 << 20


class Served:
    """The model being served and its prediction log, swapped whole when production changes."""

    def __init__(self, spec: str, flush_seconds: float = 1.0) -> None:
        self.spec = spec
        self.flush_seconds = flush_seconds
        self.lock = threading.Lock()
        self.version = None
        self.model = None
        self.log = None
        self.logs = []  # every version's log; closed (flushed) at exit, never under a request still using it
        self.load()

    def load(self) -> bool:
        mv, path = version_file(self.spec)
        if mv.label == self.version:
            return False
        model = json.loads(path.read_text())
        log = PredictionLog(mv.label, flush_seconds=self.flush_seconds)
        with self.lock:
            self.version, self.model, self.log = mv.label, model, log
            self.logs.append(log)
        return True

    def predict(self, inputs: dict, request_id: str, ts) -> dict:
        started = time.perf_counter()
        with self.lock:
            model, version, log = self.model, self.version, self.log
        p = logreg.probability(model, inputs)
        classes = model["classes"]
        output = classes[1] if p >= 0.5 else classes[0]
        scores = {classes[1]: round(p, 6), classes[0]: round(1 - p, 6)}
        latency = (time.perf_counter() - started) * 1000
        log.log(inputs, output, id=request_id, latency_ms=latency, scores=scores, ts=ts)
        return {"id": request_id, "model": version, "output": output, "scores": scores, "latency_ms": latency}

    def watch(self, every: float) -> None:
        while True:
            time.sleep(every)
            try:
                if self.load():
                    print(f"now serving {self.version}", flush=True)
            except MltuiError as exc:
                print(f"kept {self.version}: {exc}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client may send many requests on one connection
    disable_nagle_algorithm = True  # headers and body are two writes: without this each answer waits ~40 ms
    served: Served

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"model": self.served.version})
        else:
            self._answer(404, {"error": f"no such path {self.path}; POST /predict or GET /health"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._answer(404, {"error": f"no such path {self.path}; POST /predict"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._answer(400, {"error": "send a JSON body (with Content-Length, at most 1 MiB)"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, dict):
            self._answer(400, {"error": "the body needs \"inputs\": an object of features"})
            return
        ts = body.get("ts")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
            self._answer(400, {"error": "\"ts\" is seconds since the epoch"})
            return
        request_id = str(body.get("id") or uuid.uuid4().hex[:12])
        self._answer(200, self.served.predict(inputs, request_id, ts))

    def log_message(self, format, *args) -> None:  # one line per request would drown the output
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", nargs="?", type=int, default=0, help="the port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--model", default="classifier@production", help="what to serve (default: %(default)s)")
    parser.add_argument("--reload", type=float, default=5.0, metavar="SECONDS",
                        help="look for a new production version this often (default 5; 0: never)")
    parser.add_argument("--flush-seconds", type=float, default=1.0, metavar="SECONDS",
                        help="write the logged predictions to disk at least this often (default 1)")
    args = parser.parse_args()
    try:
        served = Served(args.model, args.flush_seconds)
    except MltuiError as exc:
        print(f"serve.py: {exc}", file=sys.stderr)
        return 1
    Handler.served = served
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.reload > 0:
        threading.Thread(target=served.watch, args=(args.reload,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {served.version} on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for log in served.logs:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
