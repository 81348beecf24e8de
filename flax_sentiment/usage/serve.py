"""A local demo of a trained model: a web page and a JSON endpoint.

  flax-sentiment serve --workdir runs/lstm64            # http://127.0.0.1:8000/
  flax-sentiment serve --workdir runs/lstm64 --port 0   # any free port
  flax-sentiment serve --export exports/lstm64          # scores, no words
  python -m flax_sentiment.usage.serve --workdir runs/lstm64 --host 0.0.0.0

It prints `Serving on http://HOST:PORT/` once the model is loaded and has
scored a first text (compiled), and serves until Ctrl-C (or SIGTERM), which
stops it cleanly (exit 0). Standard library only (`http.server`): a demo
for one machine, with no authentication. It listens on 127.0.0.1 unless
`--host` says otherwise (then anyone who can reach the port can use it).

Endpoints:

  GET  /          the page: a text box; P(positive), the label, and each
                  word highlighted by its contribution to the logit (green
                  raises P(positive), red lowers it, stronger the larger;
                  words beyond the seq_len the model reads are grey).
                  `/?text=...` fills the box and scores it at once.
  POST /predict   {"texts": [str, ...], "explain": false, "steps": 64} ->
                  {"results": [{"text", "probability_positive", "label",
                  "words", "unknown_words", "words_used", and with
                  "explain": "logit", "baseline_logit", "baseline",
                  "steps", "contributions": [{"word", "contribution",
                  "read", "known"}, ...]}, ...]} (see explain.Explanation).
  GET  /health    {"ok": true}

  curl -s localhost:8000/predict -d '{"texts": ["A wonderful film."]}'

Limits: a body of at most MAX_BODY_BYTES (1 MiB; else 413), MAX_TEXTS (64)
texts of at most MAX_TEXT_CHARS (20,000) characters each, `steps` from 1 to
MAX_STEPS (256; else 400). Every error is a one-line JSON {"error": "..."}:
400 a bad request, 404 an unknown path, 405 a method the path does not
take, 413 a body too large, 500 a score that is NaN or infinite (the model
diverged: never a NaN in a result) or a fault of the server.

Explanations (integrated gradients, `flax_sentiment.usage.explain`) need the
workdir: with `--export` (`flax_sentiment.usage.export`) a request asking for
them gets the scores and an "explanations_unavailable" field saying why,
and the page says so. The first explanation for a `steps` value compiles
it (seconds for a large model). Requests run in threads of their own (a
slow one does not hold up /health); the model is called by one at a time.
"""

import argparse
import errno
import http.server
import ipaddress
import json
import math
import signal
import socket
import sys
import threading
import traceback
import urllib.parse
from typing import Any, Sequence

import numpy as np

from flax_sentiment.model import scoring
from flax_sentiment.usage import explain, exported
from flax_sentiment.runtime.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_BODY_BYTES = 1 << 20  # a larger POST body gets 413
MAX_DRAIN_BYTES = 16 << 20  # a refused body up to this size is read first
MAX_TEXTS = 64  # texts per request
MAX_TEXT_CHARS = 20_000  # characters per text
MAX_STEPS = 256  # integration steps per explanation
REQUEST_TIMEOUT_S = 30  # a client silent this long is dropped
REQUEST_FIELDS = ("texts", "explain", "steps")
WARM_UP_TEXT = "a good film"
EXPORT_CANNOT_EXPLAIN = (
    "word contributions need the trained workdir (integrated gradients "
    "differentiate the model; an export only scores): start the server "
    "with --workdir RUN instead of --export")


class BadRequest(ValueError):
  """A request this server refuses (HTTP `status`, 400 by default)."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class ModelError(RuntimeError):
  """The model cannot answer a request it accepted (a NaN or infinite
  score): HTTP 500."""


def parse_request(body: bytes) -> dict[str, Any]:
  """A POST /predict body -> {"texts": list[str], "explain": bool,
  "steps": int}; BadRequest naming what is wrong."""
  try:
    request = json.loads(body.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise BadRequest(f"the body is not UTF-8 (byte {e.start}); send JSON "
                     f'like {{"texts": ["A wonderful film."]}}') from None
  except (ValueError, RecursionError) as e:
    raise BadRequest(f"the body is not JSON ({str(e)[:100]}); send JSON "
                     f'like {{"texts": ["A wonderful film."]}}') from None
  if not isinstance(request, dict):
    raise BadRequest(f"the body must be a JSON object, got "
                     f'{type(request).__name__}; send {{"texts": [...]}}')
  unknown = sorted(set(request) - set(REQUEST_FIELDS))
  if unknown:
    raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                     f"the fields are {', '.join(REQUEST_FIELDS)}")
  if "texts" not in request:
    raise BadRequest('no "texts"; send {"texts": ["A wonderful film."]}')
  texts = request["texts"]
  if not isinstance(texts, list) or not all(isinstance(t, str)
                                            for t in texts):
    raise BadRequest('"texts" must be a list of strings, e.g. '
                     '["A wonderful film.", "Dull."]')
  if not texts:
    raise BadRequest('"texts" is empty; send at least one text')
  if len(texts) > MAX_TEXTS:
    raise BadRequest(f'"texts" holds {len(texts)} texts, at most '
                     f"{MAX_TEXTS} are scored per request; send fewer")
  for i, text in enumerate(texts):
    if len(text) > MAX_TEXT_CHARS:
      raise BadRequest(f"text {i} has {len(text):,} characters, at most "
                       f"{MAX_TEXT_CHARS:,} are allowed; shorten it")
  explaining = request.get("explain", False)
  if not isinstance(explaining, bool):
    raise BadRequest(f'"explain" must be true or false, got '
                     f"{json.dumps(explaining)[:40]}")
  steps = request.get("steps", explain.DEFAULT_STEPS)
  if (not isinstance(steps, int) or isinstance(steps, bool)
      or not 1 <= steps <= MAX_STEPS):
    raise BadRequest(f'"steps" must be an integer from 1 to {MAX_STEPS}, '
                     f"got {json.dumps(steps)[:40]}")
  return {"texts": texts, "explain": explaining, "steps": steps}


def _reads(truncating: str, seq_len: int) -> str:
  which = "last" if truncating == "pre" else "first"
  return f"reads the {which} {seq_len} words"


class WorkdirModel:
  """A trained workdir's `trained.Predictor`: scores and explanations."""

  kind = "workdir"
  explanations_unavailable = None

  def __init__(self, predictor):
    self.predictor = predictor
    self.seq_len = int(predictor.config.seq_len)
    cell = str(predictor.config.cell).upper()
    self.description = (f"{predictor.workdir} ({cell}, "
                        f"{_reads(predictor.config.truncating, self.seq_len)})")

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    try:
      return self.predictor(texts)
    except (UserError, scoring.NonFiniteScoreError) as e:
      raise ModelError(str(e)) from e

  def word_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
    from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
    return trained.word_counts(texts, self.predictor.word_ids)

  def explain(self, texts: Sequence[str], steps: int) -> list[dict]:
    """explain.Explanation.as_json() of each text."""
    try:
      return [e.as_json() for e in self.predictor.explain(texts, steps)]
    except (UserError, scoring.NonFiniteScoreError) as e:
      raise ModelError(str(e)) from e


class ExportModel:
  """An export's `exported.ExportedModel`: scores only."""

  kind = "export"
  explanations_unavailable = EXPORT_CANNOT_EXPLAIN

  def __init__(self, model):
    self.model = model
    self.seq_len = int(model.seq_len)
    cell = str(model.config.get("cell", "model")).upper()
    self.description = (f"export {model.path} ({cell}, "
                        f"{_reads(model.truncating, self.seq_len)})")

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    p = np.asarray(self.model.predict(list(texts)))
    bad = np.flatnonzero(~np.isfinite(p))
    if len(bad):
      raise ModelError(
          f"the export in {self.model.path} scores a NaN for {len(bad)} of "
          f"{len(p)} texts: its weights are not finite (the run diverged); "
          f"retrain it with a smaller --config.learning_rate and export it "
          f"again")
    return p

  def word_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
    return [self.model.word_counts(t) for t in texts]

  def explain(self, texts: Sequence[str], steps: int) -> list[dict]:
    raise ModelError(EXPORT_CANNOT_EXPLAIN)


def _finite_contributions(why: dict) -> bool:
  values = [why["logit"], why["baseline_logit"]] + [
      w["contribution"] for w in why["contributions"]
      if w["contribution"] is not None]
  return all(math.isfinite(v) for v in values)


class Service:
  """What the endpoints answer, for a WorkdirModel or an ExportModel; the
  model is called under `lock`, by one request at a time."""

  def __init__(self, model):
    self.model = model
    self.lock = threading.Lock()

  @property
  def can_explain(self) -> bool:
    return self.model.explanations_unavailable is None

  def info(self) -> dict:
    """What the page shows about the model and the limits."""
    return {"model": self.model.description, "kind": self.model.kind,
            "seq_len": self.model.seq_len, "can_explain": self.can_explain,
            "explanations_unavailable": self.model.explanations_unavailable,
            "max_texts": MAX_TEXTS, "max_text_chars": MAX_TEXT_CHARS,
            "max_steps": MAX_STEPS, "default_steps": explain.DEFAULT_STEPS}

  def warm_up(self) -> None:
    """Scores one text (compiles the scoring; ModelError if not finite)."""
    self.predict([WARM_UP_TEXT])

  def predict(self, texts: Sequence[str],
              explain: bool = False,  # pylint: disable=redefined-outer-name
              steps: int = explain.DEFAULT_STEPS) -> dict:
    """The POST /predict response for parsed fields (`parse_request`);
    ModelError if a score or contribution is not finite."""
    explaining = explain and self.can_explain
    with self.lock:
      probabilities = self.model.probabilities(texts)
      explanations = (self.model.explain(texts, steps) if explaining
                      else [None] * len(texts))
    results = []
    for text, p, (words, unknown), why in zip(
        texts, probabilities, self.model.word_counts(texts), explanations):
      p = float(p)
      if not math.isfinite(p) or (why and not _finite_contributions(why)):
        raise ModelError(f"the model scored a NaN or infinite value for "
                         f"{text[:60]!r}")
      result = exported.prediction_record(
          text, p, words, unknown, min(words, self.model.seq_len))
      if why:
        result.update(why)
      results.append(result)
    response = {"results": results}
    if explain and not self.can_explain:
      response["explanations_unavailable"] = (
          self.model.explanations_unavailable)
    return response


def json_bytes(value: Any) -> bytes:
  """One line of JSON (ASCII; a NaN raises ValueError, never sent)."""
  return json.dumps(value, allow_nan=False).encode() + b"\n"


def page(info: dict) -> bytes:
  """The demo page, self-contained (inline CSS and JS), for Service.info."""
  data = json.dumps(info).replace("<", "\\u003c").replace(">", "\\u003e")
  return PAGE.replace("/*INFO*/null", data).encode("utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
  """The endpoints (module docstring); `self.server` is a `Server`."""

  server_version = "flax-sentiment"
  timeout = REQUEST_TIMEOUT_S
  ROUTES = {"/": ("GET", "HEAD"), "/health": ("GET", "HEAD"),
            "/predict": ("POST",)}

  def do_GET(self) -> None:  # pylint: disable=invalid-name
    self._route()

  do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET
  do_TRACE = do_CONNECT = do_GET

  def version_string(self) -> str:
    return self.server_version

  def _route(self) -> None:
    path = urllib.parse.urlsplit(self.path).path
    if path not in self.ROUTES:
      self._error(404, f"no {path!r} here; the paths are "
                  f"{', '.join(self.ROUTES)}")
      return
    allowed = self.ROUTES[path]
    if self.command not in allowed:
      self._error(405, f"{path} takes {' or '.join(allowed)}, not "
                  f"{self.command}", [("Allow", ", ".join(allowed))])
      return
    if path == "/":
      self._send(200, page(self.server.service.info()),
                 "text/html; charset=utf-8",
                 [("Content-Security-Policy", CSP)])
    elif path == "/health":
      self._send(200, json_bytes({"ok": True}))
    else:
      self._predict()

  def _predict(self) -> None:
    try:
      request = parse_request(self._body())
      response = json_bytes(self.server.service.predict(**request))
    except BadRequest as e:
      self._error(e.status, str(e))
      return
    except ModelError as e:
      self.log_message("error: %s", e)
      self._error(500, str(e))
      return
    except Exception as e:  # pylint: disable=broad-except
      self.log_message("error: %s", traceback.format_exc().strip())
      self._error(500, f"the server failed ({type(e).__name__}: "
                  f"{str(e)[:200]}); see its log")
      return
    self._send(200, response)

  def _body(self) -> bytes:
    """The request body (BadRequest if too large or not as announced)."""
    if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
      raise BadRequest("chunked bodies are not read; send a Content-Length",
                       411)
    given = self.headers.get("Content-Length")
    if given is None:
      raise BadRequest("no Content-Length; send the JSON body with one", 411)
    try:
      length = int(given)
    except ValueError:
      length = -1
    if length < 0:
      raise BadRequest(f"Content-Length {given[:40]!r} is not a byte count")
    if length > MAX_BODY_BYTES:
      self._drain(length)
      raise BadRequest(f"the body has {length:,} bytes, at most "
                       f"{MAX_BODY_BYTES:,} are read; send fewer or shorter "
                       f"texts", 413)
    body = self.rfile.read(length)
    if len(body) < length:
      raise BadRequest(f"the body ended after {len(body):,} of the "
                       f"{length:,} bytes its Content-Length announced")
    return body

  def _drain(self, length: int) -> None:
    """Reads a refused body (up to MAX_DRAIN_BYTES), so that the client,
    still sending it, reads the error instead of a reset connection."""
    self.close_connection = True
    left = min(length, MAX_DRAIN_BYTES)
    try:
      while left > 0:
        chunk = self.rfile.read(min(left, 1 << 16))
        if not chunk:
          break
        left -= len(chunk)
    except OSError:
      pass

  def _send(self, status: int, body: bytes,
            content_type: str = "application/json",
            headers: Sequence[tuple[str, str]] = ()) -> None:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Cache-Control", "no-store")
    self.send_header("X-Content-Type-Options", "nosniff")
    for name, value in headers:
      self.send_header(name, value)
    if status >= 400:
      self.send_header("Connection", "close")
      self.close_connection = True
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _error(self, status: int, message: str,
             headers: Sequence[tuple[str, str]] = ()) -> None:
    self._send(status, json_bytes({"error": message}), headers=headers)

  def send_error(self, code: int, message: str | None = None,
                 explain: str | None = None  # pylint: disable=redefined-outer-name
                 ) -> None:
    """http.server's own errors (a malformed request line, headers too
    long, ...) as one-line JSON too."""
    del explain
    self.log_error("code %d, message %s", code, message)
    short, _ = self.responses.get(code, ("error", ""))
    self._error(code, message or short)

  def log_message(self, fmt: str, *args) -> None:  # pylint: disable=arguments-renamed
    if not self.server.quiet:
      super().log_message(fmt, *args)


class Server(http.server.ThreadingHTTPServer):
  """A thread per request (daemon threads: they end with the process)."""

  daemon_threads = True
  request_queue_size = 128  # connections waiting to be accepted (5: resets)

  def __init__(self, address: tuple[str, int], service: Service | None,
               quiet: bool = False):
    self.service, self.quiet = service, quiet
    super().__init__(address, Handler)

  def handle_error(self, request, client_address) -> None:
    if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
      return  # the client went away
    if not self.quiet:
      super().handle_error(request, client_address)

  @property
  def url(self) -> str:
    host, port = self.server_address[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class Server6(Server):
  address_family = socket.AF_INET6


def make_server(service: Service | None, host: str = DEFAULT_HOST,
                port: int = DEFAULT_PORT, quiet: bool = False) -> Server:
  """A Server for `service` (or None, set `.service` before serving),
  bound (port 0: a free one; `.url` says which) but not yet serving: call
  `.serve_forever()`. UserError if it cannot listen there."""
  cls = Server6 if ":" in host else Server
  try:
    return cls((host, port), service, quiet)
  except socket.gaierror as e:
    raise UserError(f"--host {host}: {e.strerror}; pass an address of this "
                    f"machine, e.g. 127.0.0.1") from None
  except OSError as e:
    fix = {errno.EADDRINUSE: "pass another --port, or --port 0 for a free "
                             "one",
           errno.EACCES: "pass a --port from 1024 up, or --port 0",
           errno.EADDRNOTAVAIL: "pass an address of this machine, e.g. "
                                "127.0.0.1"}.get(e.errno, "pass another "
                                                 "--host or --port")
    raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                    f"{fix}") from None


def load_model(workdir: str | None = None, export: str | None = None,
               fall_back: bool = False):
  """The WorkdirModel of a workdir or the ExportModel of an export
  directory (UserError if it cannot be loaded)."""
  if workdir is not None:
    from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
    return WorkdirModel(trained.load_predictor(workdir, fall_back=fall_back))
  try:
    return ExportModel(exported.load(export))
  except exported.ExportError as e:
    raise UserError(str(e)) from None


def _port(value: str) -> int:
  try:
    port = int(value)
  except ValueError:
    port = -1
  if not 0 <= port <= 65535:
    raise argparse.ArgumentTypeError(
        f"must be a port from 0 to 65535 (0: a free one), got {value!r}")
  return port


def _is_loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      prog="flax-sentiment serve",
      description="A local demo page and JSON endpoint (POST /predict) for "
      "a trained run: P(positive) of your text and, with --workdir, the "
      "words that drove it.")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--workdir", help="a run.py workdir (scores and word "
                      "contributions)")
  source.add_argument("--export", help="an export directory "
                      "(flax-sentiment export; scores only)")
  parser.add_argument("--host", default=DEFAULT_HOST,
                      help=f"address to listen on (default {DEFAULT_HOST}: "
                      f"this machine only; 0.0.0.0: every network)")
  parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                      help=f"port (default {DEFAULT_PORT}; 0: a free one, "
                      f"printed)")
  parser.add_argument("--fallback", action="store_true",
                      help="with --workdir: if the newest checkpoint is "
                      "unreadable, use the previous one (said on stderr)")
  parser.add_argument("--quiet", action="store_true",
                      help="no line per request on stderr")
  args = parser.parse_args(argv)
  if args.fallback and args.export:
    parser.error("--fallback applies to --workdir only")
  try:
    server = make_server(None, args.host, args.port, args.quiet)
  except UserError as e:
    sys.exit(f"error: {e}")
  try:  # requests wait in the socket's backlog until serve_forever
    server.service = Service(load_model(args.workdir, args.export,
                                        args.fallback))
    server.service.warm_up()
  except (UserError, ModelError) as e:
    server.server_close()
    sys.exit(f"error: {e}")
  except KeyboardInterrupt:
    server.server_close()
    sys.exit(130)
  if not _is_loopback(args.host):
    print(f"warning: listening on {args.host}: anyone who can reach port "
          f"{server.server_address[1]} can use this demo", file=sys.stderr)
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  try:
    print(f"Serving on {server.url}", flush=True)
    server.serve_forever()
  except KeyboardInterrupt:
    print("Stopped.", file=sys.stderr)
  finally:
    server.server_close()


CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src "
       "'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action "
       "'none'; frame-ancestors 'none'")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flax-sentiment</title>
<style>
  body { margin: 0; background: #f5f6f8; color: #1c2026;
    font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
    "DejaVu Sans", sans-serif; }
  main { max-width: 900px; margin: 0 auto; padding: 22px 24px; }
  h1 { font-size: 22px; margin: 0; }
  .model { color: #59616c; font-size: 14px; margin: 2px 0 14px; }
  textarea { width: 100%; box-sizing: border-box; min-height: 96px;
    padding: 10px 12px; font: inherit; border: 1px solid #c3c8d0;
    border-radius: 6px; resize: vertical; background: #fff; }
  .row { display: flex; gap: 14px; align-items: center; margin: 10px 0 16px; }
  button { font: inherit; font-weight: 600; padding: 7px 22px; border: 0;
    border-radius: 6px; background: #2456d3; color: #fff; cursor: pointer; }
  button:disabled { background: #8ea4dc; cursor: progress; }
  .hint { color: #6b727c; font-size: 13px; }
  #result { background: #fff; border: 1px solid #dadee4; border-radius: 8px;
    padding: 14px 18px; }
  #result[hidden] { display: none; }
  .score { display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; }
  .prob { font-size: 30px; font-weight: 700;
    font-variant-numeric: tabular-nums; }
  .label { font-size: 18px; font-weight: 600; padding: 1px 12px;
    border-radius: 14px; }
  .label.positive { background: #d8f1de; color: #13682c; }
  .label.negative { background: #fadada; color: #a11c1c; }
  .stats { color: #59616c; font-size: 14px; }
  .bar { position: relative; height: 8px; margin: 8px 0 14px;
    border-radius: 4px;
    background: linear-gradient(90deg, #d23a3a, #e3e5e8 50%, #1f9d4c); }
  .bar b { position: absolute; top: -5px; width: 4px; height: 18px;
    margin-left: -2px; border-radius: 2px; background: #1c2026; }
  .words { line-height: 2.15; font-size: 17px; }
  .w { padding: 2px 4px; border-radius: 4px; }
  .w.unread { color: #a3a9b1; }
  .w.unknown { text-decoration: underline dotted #7a818b; }
  .note { color: #6a4b00; background: #fff4d6; border-radius: 6px;
    padding: 6px 10px; font-size: 14px; margin-top: 10px; }
  .error { color: #a11c1c; font-weight: 600; }
  .legend { display: flex; gap: 18px; flex-wrap: wrap; font-size: 13px;
    color: #59616c; margin-top: 14px; padding-top: 10px;
    border-top: 1px solid #eceef1; }
  .chip { display: inline-block; width: 40px; height: 12px; border-radius: 3px;
    vertical-align: -1px; margin-right: 6px; }
</style>
</head>
<body>
<main>
  <h1>flax-sentiment</h1>
  <div class="model" id="model"></div>
  <textarea id="text" aria-label="review text"
    placeholder="Type or paste a movie review..."></textarea>
  <div class="row">
    <button id="go" type="button">Score</button>
    <span class="hint" id="hint">Ctrl+Enter scores too</span>
  </div>
  <section id="result" hidden aria-live="polite"></section>
</main>
<script>
"use strict";
const INFO = /*INFO*/null;
const $ = (id) => document.getElementById(id);
const box = $("text"), button = $("go"), out = $("result");
$("model").textContent = "Model: " + INFO.model;
box.maxLength = INFO.max_text_chars;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function color(c, scale) {
  const a = scale > 0 ? 0.1 + 0.8 * Math.min(1, Math.abs(c) / scale) : 0.1;
  return c >= 0 ? `rgba(31, 157, 76, ${a.toFixed(3)})`
                : `rgba(210, 58, 58, ${a.toFixed(3)})`;
}

function chip(style, text) {
  const s = el("span");
  const c = el("span", "chip");
  c.style.background = style;
  s.append(c, text);
  return s;
}

function legend() {
  const l = el("div", "legend");
  l.append(
    chip("linear-gradient(90deg, rgba(31,157,76,.1), rgba(31,157,76,.9))",
         "raises P(positive), weak to strong"),
    chip("linear-gradient(90deg, rgba(210,58,58,.1), rgba(210,58,58,.9))",
         "lowers it"));
  const grey = el("span", "w unread", "grey");
  const under = el("span", "w unknown", "dotted");
  const g = el("span"), u = el("span");
  g.append(grey, ` not read (beyond the ${INFO.seq_len} words the model`
                 + " reads)");
  u.append(under, " not in the vocabulary");
  l.append(g, u);
  l.append(el("span", "", "Colour strength is relative to the text's "
                          + "strongest word; hover a word for its "
                          + "contribution to the logit."));
  return l;
}

function show(r, unavailable) {
  out.replaceChildren();
  const p = r.probability_positive;
  const score = el("div", "score");
  score.append(el("span", "prob", p.toFixed(3)), el("span", "", "P(positive)"),
               el("span", "label " + r.label, r.label));
  const stats = [`${r.words} word${r.words === 1 ? "" : "s"}`];
  if (r.unknown_words) stats.push(`${r.unknown_words} not in the vocabulary`);
  if (r.words > r.words_used) stats.push(`${r.words - r.words_used} not read`);
  if (r.contributions) {
    const total = r.contributions.reduce(
        (sum, w) => sum + (w.read ? w.contribution : 0), 0);
    stats.push(`logit ${r.logit.toFixed(3)} = baseline `
               + `${r.baseline_logit.toFixed(3)} + words `
               + `${total >= 0 ? "+" : ""}${total.toFixed(3)}`);
  }
  score.append(el("span", "stats", stats.join(" \\u00b7 ")));
  const bar = el("div", "bar"), mark = el("b");
  mark.style.left = (100 * p).toFixed(1) + "%";
  bar.append(mark);
  out.append(score, bar);
  if (r.contributions) {
    const words = el("div", "words");
    const scale = Math.max(0, ...r.contributions.filter((w) => w.read)
                                  .map((w) => Math.abs(w.contribution)));
    r.contributions.forEach((w, i) => {
      const s = el("span", "w" + (w.read ? "" : " unread")
                           + (w.known ? "" : " unknown"), w.word);
      if (w.read) {
        s.style.background = color(w.contribution, scale);
        s.title = (w.contribution >= 0 ? "+" : "")
                  + w.contribution.toFixed(4)
                  + (w.known ? "" : " (not in the vocabulary)");
      } else {
        s.title = "not read: beyond the model's " + INFO.seq_len + " words";
      }
      if (i) words.append(" ");
      words.append(s);
    });
    if (!r.contributions.length) {
      words.append(el("span", "stats", "(no words)"));
    }
    out.append(words);
  }
  if (r.warning) out.append(el("div", "note", "Note: " + r.warning + "."));
  if (unavailable) {
    out.append(el("div", "note", `Note: ${unavailable}.`));
  }
  if (r.contributions) out.append(legend());
  out.hidden = false;
}

function fail(message) {
  out.replaceChildren(el("div", "error", "Error: " + message));
  out.hidden = false;
}

async function score() {
  const text = box.value;
  if (!text.trim()) { fail("type a review first"); return; }
  button.disabled = true;
  $("hint").textContent = "Scoring...";
  try {
    const response = await fetch("predict", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({texts: [text], explain: INFO.can_explain})});
    let body;
    try { body = await response.json(); } catch (e) { body = {}; }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    show(body.results[0], body.explanations_unavailable
                          || INFO.explanations_unavailable);
  } catch (e) {
    fail(e.message);
  } finally {
    button.disabled = false;
    $("hint").textContent = "Ctrl+Enter scores too";
  }
}

button.addEventListener("click", score);
box.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    score();
  }
});
const given = new URLSearchParams(location.search).get("text");
if (given) { box.value = given; score(); } else { box.focus(); }
</script>
</body>
</html>
"""


if __name__ == "__main__":
  main(sys.argv[1:])
