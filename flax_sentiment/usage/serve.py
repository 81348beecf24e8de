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
                  words beyond the seq_len the model reads are grey); a
                  run of K > 2 classes: the most probable class and one
                  bar per class.
                  `/?text=...` fills the box and scores it at once.
  POST /predict   {"texts": [str, ...], "explain": false, "steps": 64} ->
                  {"results": [{"text", "probability_positive", "label",
                  "words", "unknown_words", "words_used", and with
                  "explain": "logit", "baseline_logit", "baseline",
                  "steps", "contributions": [{"word", "contribution",
                  "read", "known"}, ...]}, ...]} (see explain.Explanation).
                  K > 2 classes: "label" (the most probable class),
                  "probability" (its) and "probabilities" {class: p} in
                  place of "probability_positive", as predict --json.
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
and the page says so. For a run of K > 2 classes each text's words are
explained toward its predicted class (its log-probability). The first explanation for a `steps` value compiles
it (seconds for a large model). Requests run in threads of their own (a
slow one does not hold up /health); the model is called by one at a time.
"""

import argparse
import errno
import functools
import http.server
import importlib.resources
import ipaddress
import json
import signal
import socket
import sys
import threading
import traceback
import urllib.parse
from typing import Any, Sequence

from flax_sentiment.runtime.errors import UserError
# The service's names stay reachable here (serve.Service, serve.load_model).
from flax_sentiment.usage.service import (  # pylint: disable=unused-import
    MAX_BODY_BYTES, MAX_STEPS, MAX_TEXT_CHARS, MAX_TEXTS, BadRequest,
    ExportModel, ModelError, Service, WorkdirModel, load_model,
    parse_request)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_DRAIN_BYTES = 16 << 20  # a refused body up to this size is read first
REQUEST_TIMEOUT_S = 30  # a client silent this long is dropped

def json_bytes(value: Any) -> bytes:
  """One line of JSON (ASCII; a NaN raises ValueError, never sent)."""
  return json.dumps(value, allow_nan=False).encode() + b"\n"


@functools.cache
def page_template() -> str:
  """serve_page.html, shipped beside this module (package data)."""
  return importlib.resources.files(__package__).joinpath(
      "serve_page.html").read_text(encoding="utf-8")


def page(info: dict) -> bytes:
  """The demo page, self-contained (inline CSS and JS), for Service.info."""
  data = json.dumps(info).replace("<", "\\u003c").replace(">", "\\u003e")
  return page_template().replace("/*INFO*/null", data).encode("utf-8")


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
      "a trained run: P(positive) of your text (or of each class, for a run "
      "of more) and, with --workdir, the words that drove it.")
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



if __name__ == "__main__":
  main(sys.argv[1:])
