"""The demo server over real HTTP: the page, POST /predict (scores equal
predict's, explanations complete), every refused request a one-line JSON
error with its status, non-finite scores a 500, concurrent requests, an
export, the command line (loopback by default, one `error:` line, Ctrl-C)."""

import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import jax
import numpy as np
import pytest

from flax_sentiment.usage import serve, trained
from tests.conftest import REPO, run_fake, tiny_flags

SEQ_LEN = 16  # tiny_flags'
TEXTS = ["great wonderful superb film", "awful boring dull movie",
         "zzzunknownzzz qqqq", "", "a " * 5 + "good " * 20 + "bad",
         "Ünïcode ✓ <br />film\x1b[2J"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A 1-epoch fake-data run (tiny sizes, seq_len 16)."""
  root = tmp_path_factory.mktemp("serve")
  proc = run_fake(tiny_flags(root / "run", root / "cache", num_epochs=1))
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  return root / "run"


@pytest.fixture(scope="module")
def predictor(workdir):
  return trained.load_predictor(workdir)


class Running:
  """A Server serving in a background thread of this process."""

  def __init__(self, service, **kwargs):
    self.server = serve.make_server(service, port=0, quiet=True, **kwargs)
    self.url = self.server.url
    self.thread = threading.Thread(target=self.server.serve_forever,
                                   daemon=True)
    self.thread.start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()
    self.thread.join(10)


@pytest.fixture(scope="module")
def server(predictor):
  running = Running(serve.Service(serve.WorkdirModel(predictor)))
  yield running
  running.close()


def request(url, body=None, method=None, headers=None, timeout=60):
  """(status, headers, body bytes) of one HTTP request; errors too."""
  data = body if body is None or isinstance(body, bytes) else json.dumps(
      body).encode()
  req = urllib.request.Request(url, data=data, method=method,
                               headers=headers or {})
  try:
    with urllib.request.urlopen(req, timeout=timeout) as response:
      return response.status, response.headers, response.read()
  except urllib.error.HTTPError as e:
    return e.code, e.headers, e.read()


def post(server, body, **kwargs):
  return request(server.url + "predict", body, "POST", **kwargs)


def one_line_error(status_headers_body, status: int) -> str:
  """The message of a one-line JSON error with this status (asserted)."""
  got, headers, body = status_headers_body
  assert got == status, body
  assert headers["Content-Type"].startswith("application/json")
  text = body.decode()
  assert text.endswith("\n") and "\n" not in text[:-1], text
  error = json.loads(text)
  assert list(error) == ["error"] and error["error"], error
  return error["error"]


def test_page_has_text_box_button_legend_and_no_external_assets(server):
  status, headers, body = request(server.url)
  assert status == 200
  assert headers["Content-Type"] == "text/html; charset=utf-8"
  assert "default-src 'none'" in headers["Content-Security-Policy"]
  page = body.decode()
  assert "<textarea" in page and "<button" in page
  assert 'fetch("predict"' in page and "legend" in page
  assert "not read" in page and "URLSearchParams" in page  # /?text=...
  assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
  assert "<link" not in page and "@import" not in page
  info = json.loads(re.search(r"const INFO = (.*);", page).group(1))
  assert info["can_explain"] and info["seq_len"] == SEQ_LEN
  assert request(server.url + "?text=great+film")[0] == 200
  status, _, body = request(server.url, method="HEAD")
  assert status == 200 and not body


def test_health(server):
  status, headers, body = request(server.url + "health")
  assert status == 200 and json.loads(body) == {"ok": True}
  assert headers["Content-Type"] == "application/json"


def test_scores_equal_the_predictors(server, predictor):
  status, _, body = post(server, {"texts": TEXTS})
  assert status == 200
  results = json.loads(body)["results"]
  want = predictor(TEXTS)
  assert [r["text"] for r in results] == TEXTS
  np.testing.assert_allclose([r["probability_positive"] for r in results],
                             want, rtol=0, atol=1e-6)
  for r, p, (words, unknown) in zip(results, want, trained.word_counts(
      TEXTS, predictor.word_ids)):
    assert r["label"] == ("positive" if p > 0.5 else "negative")
    assert (r["words"], r["unknown_words"]) == (words, unknown)
    assert r["words_used"] == min(words, SEQ_LEN)
    assert "contributions" not in r and "logit" not in r
  assert "no words" in results[3]["warning"]
  assert "vocabulary" in results[2]["warning"]
  assert "warning" not in results[0]


def test_explanations_add_up_to_the_logit(server, predictor):
  status, _, body = post(server, {"texts": TEXTS, "explain": True,
                                  "steps": 32})
  assert status == 200
  results = json.loads(body)["results"]
  logits = predictor.logits(TEXTS)
  direct = predictor.explain(TEXTS, steps=32)
  for r, logit, want in zip(results, logits, direct):
    assert r["steps"] == 32 and r["baseline"] == "zero"
    assert r["contributions"] == want.as_json()["contributions"]
    assert r["logit"] == pytest.approx(float(logit), abs=1e-5)
    total = sum(w["contribution"] for w in r["contributions"] if w["read"])
    assert total == pytest.approx(r["logit"] - r["baseline_logit"],
                                  rel=0.02, abs=2e-3)
    assert len(r["contributions"]) == r["words"]
    assert sum(w["read"] for w in r["contributions"]) == r["words_used"]
  long = results[4]["contributions"]  # 26 words: the first 10 not read
  assert [w["read"] for w in long] == [False] * 10 + [True] * 16
  assert all(w["contribution"] is None for w in long[:10])
  assert [w["known"] for w in results[2]["contributions"]] == [False, False]
  default = json.loads(post(server, {"texts": TEXTS[:1],
                                     "explain": True})[2])["results"][0]
  assert default["steps"] == 64


def test_an_oversize_body_is_413(server):
  body = json.dumps({"texts": ["great film " * 1000] * 100}).encode()
  assert len(body) > serve.MAX_BODY_BYTES
  message = one_line_error(post(server, body), 413)
  assert f"at most {serve.MAX_BODY_BYTES:,}" in message


@pytest.mark.parametrize("body, words", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"", "not JSON"),
    (b"[" * 100_000, "not JSON"),  # nested too deep for the parser
    (["great film"], "JSON object"),
    ({}, 'no "texts"'),
    ({"text": ["great film"]}, "unknown field(s) 'text'"),
    ({"texts": "great film"}, "list of strings"),
    ({"texts": ["great", 3]}, "list of strings"),
    ({"texts": [None]}, "list of strings"),
    ({"texts": []}, "empty"),
    ({"texts": ["film"] * (serve.MAX_TEXTS + 1)}, "at most 64"),
    ({"texts": ["a" * (serve.MAX_TEXT_CHARS + 1)]}, "at most 20,000"),
    ({"texts": ["film"], "explain": "yes"}, '"explain" must be true or'),
    ({"texts": ["film"], "steps": 0}, '"steps" must be an integer'),
    ({"texts": ["film"], "steps": serve.MAX_STEPS + 1}, "from 1 to 256"),
    ({"texts": ["film"], "steps": 8.0}, '"steps" must be an integer'),
    ({"texts": ["film"], "steps": True}, '"steps" must be an integer'),
    ({"texts": ["film"], "steps": "64"}, '"steps" must be an integer'),
], ids=lambda v: None if isinstance(v, str) else repr(v)[:30])
def test_bad_requests_are_400(server, body, words):
  assert words in one_line_error(post(server, body), 400)


def test_a_body_without_or_with_a_bad_length_is_refused(server):
  host, port = server.server.server_address
  for head, status in ((b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n", 411),
                       (b"POST /predict HTTP/1.1\r\nContent-Length: -3\r\n"
                        b"\r\n", 400),
                       (b"POST /predict HTTP/1.1\r\nContent-Length: 50\r\n"
                        b"\r\n{}", 400),  # then the client stops sending
                       (b"GET / extra HTTP/1.1\r\n\r\n", 400)):
    with socket.create_connection((host, port), timeout=30) as s:
      s.sendall(head)
      s.shutdown(socket.SHUT_WR)
      reply = b"".join(iter(lambda: s.recv(1 << 16), b""))
    status_line, _, body = reply.partition(b"\r\n\r\n")
    assert status_line.split()[1] == str(status).encode(), reply
    assert body.count(b"\n") == 1 and "error" in json.loads(body), reply


def test_unknown_paths_are_404_and_wrong_methods_405(server):
  assert "no '/nope' here" in one_line_error(
      request(server.url + "nope"), 404)
  one_line_error(request(server.url + "predict/x", b"{}", "POST"), 404)
  for url, method, allowed in ((server.url + "predict", "GET", "POST"),
                               (server.url + "predict", "DELETE", "POST"),
                               (server.url + "predict", "PUT", "POST"),
                               (server.url, "POST", "GET, HEAD"),
                               (server.url + "health", "OPTIONS", "GET, HEAD")):
    reply = request(url, b"{}" if method in ("POST", "PUT") else None,
                    method)
    assert f"not {method}" in one_line_error(reply, 405)
    assert reply[1]["Allow"] == allowed


def test_health_answers_while_a_request_waits_for_the_model(server,
                                                            predictor):
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    with server.server.service.lock:  # as if a slow request held the model
      waiting = pool.submit(post, server, {"texts": TEXTS[:2]})
      start = time.monotonic()
      status, _, body = request(server.url + "health", timeout=10)
      assert status == 200 and json.loads(body) == {"ok": True}
      assert time.monotonic() - start < 5
      assert request(server.url, timeout=10)[0] == 200
      assert not waiting.done()
    status, _, body = waiting.result(timeout=60)
  assert status == 200
  np.testing.assert_allclose(
      [r["probability_positive"] for r in json.loads(body)["results"]],
      predictor(TEXTS[:2]), atol=1e-6)


def test_sixteen_concurrent_requests_all_get_their_own_scores(server,
                                                              predictor):
  texts = [[f"{'great ' * i}film {'dull ' * (15 - i)}", TEXTS[i % 3]]
           for i in range(16)]
  want = [predictor(t) for t in texts]
  start = threading.Barrier(16)

  def ask(i):
    start.wait(30)
    return post(server, {"texts": texts[i], "explain": i % 4 == 0,
                         "steps": 8})

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    replies = list(pool.map(ask, range(16)))
  for i, (status, _, body) in enumerate(replies):
    assert status == 200, body
    results = json.loads(body)["results"]
    assert [r["text"] for r in results] == texts[i]
    np.testing.assert_allclose([r["probability_positive"] for r in results],
                               want[i], atol=1e-6)
    assert ("contributions" in results[0]) == (i % 4 == 0)


def test_non_finite_scores_are_500_never_a_nan(workdir, predictor):
  nan = jax.tree.map(lambda x: np.full_like(x, np.nan), predictor.params)
  broken = trained.Predictor(workdir, predictor.config,
                             predictor.vocabulary, nan)
  running = Running(serve.Service(serve.WorkdirModel(broken)))
  try:
    for explaining in (False, True):
      message = one_line_error(post(running, {"texts": TEXTS[:2],
                                              "explain": explaining}), 500)
      assert "NaN or infinite" in message and str(workdir) in message
    assert request(running.url + "health")[0] == 200
  finally:
    running.close()


def test_an_export_is_scored_and_says_it_cannot_explain(workdir, predictor,
                                                        tmp_path):
  from flax_sentiment.usage import export, exported  # here: it may change
  out = export.export_model(workdir, tmp_path / "export", say=lambda _: None)
  model = serve.load_model(export=str(out))
  running = Running(serve.Service(model))
  try:
    page = request(running.url)[2].decode()
    info = json.loads(re.search(r"const INFO = (.*);", page).group(1))
    assert not info["can_explain"] and "--workdir" in info[
        "explanations_unavailable"]
    status, _, body = post(running, {"texts": TEXTS, "explain": True})
    assert status == 200
    reply = json.loads(body)
    assert "--workdir" in reply["explanations_unavailable"]
    scores = [r["probability_positive"] for r in reply["results"]]
    np.testing.assert_allclose(scores, exported.load(out).predict(TEXTS),
                               atol=1e-6)
    np.testing.assert_allclose(scores, predictor(TEXTS), atol=1e-5)
    assert all("contributions" not in r for r in reply["results"])
    assert [r["words"] for r in reply["results"]] == [
        w for w, _ in trained.word_counts(TEXTS, predictor.word_ids)]
    assert "explanations_unavailable" not in json.loads(
        post(running, {"texts": TEXTS})[2])
  finally:
    running.close()


def test_the_default_host_is_loopback():
  running = Running(serve.Service(None))  # serve.make_server's default
  try:
    assert running.server.server_address[0] == "127.0.0.1"
    assert running.url.startswith("http://127.0.0.1:")
  finally:
    running.close()


@pytest.mark.parametrize("flags, words", [
    (["--workdir", "{tmp}/missing"], "does not exist"),
    (["--workdir", "{tmp}"], "is not a training workdir"),
    (["--export", "{tmp}"], "is not a flax-sentiment export"),
    (["--workdir", "{workdir}", "--port", "{busy}"], "cannot listen on"),
    (["--workdir", "{workdir}", "--host", "no-such-host.invalid"],
     "--host no-such-host.invalid"),
])
def test_startup_errors_are_one_error_line(workdir, tmp_path, flags, words):
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    argv = [f.format(tmp=tmp_path, workdir=workdir,
                     busy=busy.getsockname()[1]) for f in flags]
    with pytest.raises(SystemExit) as exit_:
      serve.main(argv)
  message = str(exit_.value.code)
  assert message.startswith("error: ") and "\n" not in message
  assert words in message


def test_command_line_serves_on_loopback_and_stops_on_ctrl_c(workdir,
                                                             predictor):
  proc = subprocess.Popen(
      [sys.executable, "-m", "flax_sentiment.cli", "serve",
       f"--workdir={workdir}", "--port=0"], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    line = proc.stdout.readline()
    match = re.fullmatch(r"Serving on (http://127\.0\.0\.1:(\d+)/)\n", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None
                   else "")
    url = match.group(1)
    assert json.loads(request(url + "health")[2]) == {"ok": True}
    status, _, body = request(url + "predict", {"texts": TEXTS[:2]}, "POST")
    assert status == 200
    np.testing.assert_allclose(
        [r["probability_positive"] for r in json.loads(body)["results"]],
        predictor(TEXTS[:2]), atol=1e-5)  # another process: no "highest"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  assert proc.returncode == 0, err
  assert "Traceback" not in err and "Stopped." in err
  assert '"POST /predict HTTP/1.1" 200' in err  # a line per request
