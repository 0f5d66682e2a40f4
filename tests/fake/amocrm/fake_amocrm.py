#!/usr/bin/env python3
"""Fake amoCRM (REST v4 + OAuth2 + webhooks) for crmsync tests, benchmarks and demos.

    python3 fake_amocrm.py --port 0 --scale tiny --seed 1
    python3 fake_amocrm.py send-hooks --url https://127.0.0.1:8443/hook --cafile ca.pem \\
        --entity leads --action update --ids 1-300 --count 1000 --concurrency 8
    python3 fake_amocrm.py --dump-hooks DIR

The first stdout line is `listening port=<N>` (127.0.0.1 only). Python 3.11 standard library
only. Modules beside this file: amo_util (draws, names), amo_ref (reference data), amo_gen (row
generators), amo_store (state, filters, mutations), amo_api (REST v4), amo_guard (OAuth, rate
limit, stats, faults), amo_control (/_fake/ control API), amo_hooks (webhook encoding/sending).
See README.md for the options, the control API and what is UNSURE about the real API.
"""

import argparse
import http.server
import itertools
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from amo_api import Api, Resp, problem                          # noqa: E402
from amo_control import Control                                 # noqa: E402
from amo_gen import Gen                                         # noqa: E402
from amo_guard import HTML, HTML_403, HTML_502, Auth, Faults, Limiter, Stats  # noqa: E402
from amo_ref import SCALES, build_ref                           # noqa: E402
from amo_store import Store                                     # noqa: E402
from amo_util import DEFAULT_NOW, dumps                         # noqa: E402

COUNT_OPTS = ("users", "leads", "contacts", "companies", "customers", "tasks", "notes", "events",
              "unsorted", "talks", "elements", "transactions", "pipelines", "extra_fields")
MAX_BODY = 16 * 1024 * 1024


class App:
    """Everything one server instance holds."""

    def __init__(self, args):
        counts = dict(SCALES[args.scale])
        for k in COUNT_OPTS:
            v = getattr(args, k, None)
            if v is not None:
                counts[k] = v
        now = int(time.time()) if args.now == "real" else int(args.now)
        cfg = types.SimpleNamespace(seed=args.seed, now=now, counts=counts,
                                    subdomain=args.subdomain, account_id=args.account_id)
        self.args = args
        self.ref = build_ref(cfg)
        self.store = Store(self.ref, Gen(self.ref), real_clock=args.now == "real")
        self.api = Api(self.store, ignore_filters=args.ignore_filters, row_cache=args.row_cache)
        self.auth = Auth(args, self.ref.account_id, args.subdomain)
        self.limiter = Limiter(args.rps, args.body_429, args.retry_after, args.ban_after,
                               args.retry_after_form)
        self.stats = Stats()
        self.faults = Faults()
        self.control = Control(self)
        self.verbose = args.verbose
        self.req_ids = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""
    app = None          # set on the subclass made by serve()

    def log_message(self, fmt, *a):
        if self.app.verbose:
            sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % a))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _body(self):
        n = self.headers.get("Content-Length")
        if not n:
            return b""
        n = int(n)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def _send(self, r):
        body = r.body if r.status != 204 else b""
        self.send_response(r.status)
        if r.status != 204:
            self.send_header("Content-Type", r.ctype + ("; charset=utf-8" if r.ctype == HTML else ""))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", "%016x" % next(self.app.req_ids))
        for k, v in r.headers:
            self.send_header(k, v)
        # headers and body in one write: two small writes meet Nagle + delayed ACK (40 ms)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()

    def _base(self):
        a = self.app.args
        if a.base_url:
            return a.base_url.rstrip("/")
        return "http://" + (self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_port)

    def _dispatch(self, method):
        try:
            self._dispatch2(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:                    # a bug in the fake: say so, keep serving
            import traceback
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self._send(problem(500, "fake_amocrm internal error (see its stderr)"))
            except OSError:
                pass

    def _dispatch2(self, method):
        app = self.app
        path, _, qs = self.path.partition("?")
        try:
            body = self._body()
        except ValueError:
            self.close_connection = True
            return self._send(problem(400, "Bad Content-Length"))
        if path.startswith("/_fake/"):
            return self._send(app.control.handle(method, path, qs, body, self._base()))
        f = app.faults.match(path)
        if f and f["kind"] == "late":
            # Arrives late (a stalled network path or client thread): unlike "slow", the
            # arrival itself, which the rate limit and stats see, is delay_ms later.
            time.sleep(f["delay_ms"] / 1000.0)
        now = time.time()
        app.stats.arrival(path, now)
        t0, c0 = time.perf_counter(), time.thread_time()
        r = self._guarded(method, path, qs, body, now, f)
        if r is None:                       # dropped connection
            app.stats.done(0, None)
            return
        self._send(r)
        app.stats.done(r.status, r.meta, path, (time.perf_counter() - t0) * 1000,
                       (time.thread_time() - c0) * 1000)

    def _guarded(self, method, path, qs, body, now, f):
        app = self.app
        if f:
            kind = f["kind"]
            if kind == "slow":
                time.sleep(f["delay_ms"] / 1000.0)
            elif kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            elif kind == "http500":
                return problem(500, "Internal server error (injected)", {"trace_id": "fake"})
            elif kind == "http502":
                return Resp(502, HTML_502, HTML)
            elif kind in ("http503", "http504"):
                return problem(int(kind[4:]), "Injected %s" % kind)
            elif kind == "ratelimit":
                return app.limiter.too_many()
            elif kind == "unauthorized":
                return problem(401, "Неверный логин или пароль (injected)")
            elif kind == "forbidden":
                return Resp(403, HTML_403, HTML)
            elif kind == "body":
                # Any answer, e.g. {"Error": ...} with 200: what a client must not take for a page.
                return Resp(int(f.get("status", 200)), str(f.get("body", "")).encode("utf-8"),
                            f.get("ctype", "application/hal+json"))
            elif kind == "loop":
                # Pages past `period` come back as pages 1..period again (next links that loop).
                period = int(f["period"])
                m = re.search(r"(^|&)page=(\d+)", qs)
                if m and int(m.group(2)) > period:
                    p = (int(m.group(2)) - 1) % period + 1
                    qs = qs[:m.start(2)] + str(p) + qs[m.end(2):]
        r = app.limiter.admit(now)
        if r is not None:
            return r
        if path == "/oauth2/access_token":
            if method != "POST":
                return problem(405, "Use POST")
            return app.auth.token(body, self.headers.get("Content-Type"))
        if not path.startswith("/api/v4/"):
            return problem(404, "Not found")
        r = app.auth.check(self.headers.get("Authorization"))
        if r is not None:
            return r
        r = app.api.handle(method, path, qs, self._base(), body,
                           self.headers.get("If-Modified-Since"))
        if f and f["kind"] in ("dup_key", "no_key") and r.status == 200:
            r.body = mangle_row(r.body, f)
        return r


def mangle_row(body, f):
    """One row of a list page broken on purpose: `dup_key` writes `key` (default "id") a
    second time at the end of row `row` (default 0) with `value` (default: the id + 1,000,000),
    so a reader taking the first occurrence and jsonb (the last) disagree; `no_key` removes
    `key` from that row."""
    doc = json.loads(body)
    emb = doc.get("_embedded") if isinstance(doc, dict) else None
    lk = next((k for k, v in (emb or {}).items() if isinstance(v, list)), None)
    if lk is None:
        return body
    rows, i, key = emb[lk], int(f.get("row", 0)), f.get("key", "id")
    if i >= len(rows):
        return body
    texts = [dumps(x) for x in rows]
    if f["kind"] == "no_key":
        rows[i].pop(key, None)
        texts[i] = dumps(rows[i])
    else:
        val = f.get("value", rows[i].get(key, 0) + 1000000 if isinstance(rows[i].get(key), int) else "x")
        texts[i] = texts[i][:-1] + "," + dumps(key) + ":" + dumps(val) + "}"
    emb[lk] = "__CRMSYNC_ROWS__"
    return dumps(doc).replace('"__CRMSYNC_ROWS__"', "[" + ",".join(texts) + "]", 1).encode("utf-8")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def build_parser():
    p = argparse.ArgumentParser(
        prog="fake_amocrm.py",
        description="Fake amoCRM REST v4 server (127.0.0.1 only). Prints 'listening port=N' "
                    "first. Control API under /_fake/ (see README.md).")
    g = p.add_argument_group("server")
    g.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one (default 0)")
    g.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    g.add_argument("--base-url", default=None,
                   help="scheme://host used in _links hrefs (default: http:// + the request's Host header)")
    g.add_argument("--row-cache", type=int, default=20000,
                   help="serialised rows kept in memory, 0 = none (default 20000)")
    g.add_argument("--dump-hooks", metavar="DIR", default=None,
                   help="write one sample webhook body per entity x action into DIR and exit")
    d = p.add_argument_group("data")
    d.add_argument("--scale", choices=sorted(SCALES), default="tiny", help="data size preset (default tiny)")
    d.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    d.add_argument("--now", default=str(DEFAULT_NOW),
                   help="unix time the generated data end at, or 'real' for the wall clock "
                        "(default %d = 2024-06-01 UTC); changes get timestamps above it" % DEFAULT_NOW)
    d.add_argument("--subdomain", default="crmsync-test", help="account subdomain (default crmsync-test)")
    d.add_argument("--account-id", type=int, default=31234567, help="account id (default 31234567)")
    for k in COUNT_OPTS:
        d.add_argument("--" + k.replace("_", "-"), dest=k, type=int, default=None,
                       help="override the scale's number of %s%s" % (
                           k.replace("_", " "),
                           " (total over the 4 entity types)" if k == "notes" else
                           " (per catalog)" if k == "elements" else
                           " (extra text custom fields of leads; others get 1/6)" if k == "extra_fields" else ""))
    a = p.add_argument_group("auth (OAuth2)")
    a.add_argument("--client-id", default="fake-client-id", help="integration id checked on /oauth2/access_token")
    a.add_argument("--client-secret", default="fake-client-secret", help="integration secret")
    a.add_argument("--redirect-uri", default="https://example.com/oauth", help="registered redirect_uri")
    a.add_argument("--auth-code", default="fake-auth-code", help="the authorization code (single use)")
    a.add_argument("--refresh-token", default=None, help="a refresh token valid from the start")
    a.add_argument("--long-lived-token", action="append", default=[],
                   help="a bearer token always accepted (until /_fake/revoke); repeatable")
    a.add_argument("--token-ttl", type=int, default=86400, help="access token lifetime, seconds (default 86400)")
    a.add_argument("--no-auth", action="store_true", help="accept API calls without a bearer token")
    r = p.add_argument_group("limits and traps")
    r.add_argument("--rps", type=float, default=7, help="requests per 1-s sliding window, 0 = off (default 7)")
    r.add_argument("--429-body", dest="body_429", choices=("html", "empty"), default="html",
                   help="body of a 429: an nginx HTML page or nothing (default html; never JSON)")
    r.add_argument("--retry-after", type=int, default=1,
                   help="send Retry-After: N seconds on 429 (default 1; 0 = no header)")
    r.add_argument("--retry-after-form", choices=("seconds", "date"), default="seconds",
                   help="Retry-After as delay-seconds or as an HTTP-date N seconds ahead")
    r.add_argument("--ban-after", type=int, default=0,
                   help="after N 429s in a row every call answers 403 HTML (default 0 = never)")
    r.add_argument("--ignore-filters", action="store_true",
                   help="silently ignore filter[...] (an account without API filtering)")
    sub = p.add_subparsers(dest="cmd", metavar="send-hooks")
    s = sub.add_parser("send-hooks", help="POST webhooks to a URL and print a summary",
                       description="POST amoCRM-format webhooks (x-www-form-urlencoded) to --url.")
    s.add_argument("--url", required=True, help="receiver URL (http or https)")
    s.add_argument("--cafile", default=None, help="CA bundle to verify an https receiver")
    s.add_argument("--insecure", action="store_true", help="do not verify the receiver's certificate")
    s.add_argument("--entity", default="leads",
                   help="leads|contacts|companies|customers|task|unsorted|talk|message|catalogs")
    s.add_argument("--action", default="update", help="add|update|delete|restore|status|responsible|note")
    s.add_argument("--ids", default="1-10", help="id list/ranges, e.g. 1-300,512 (default 1-10)")
    s.add_argument("--count", type=int, default=0, help="hooks to send, cycling over --ids (default: one per id)")
    s.add_argument("--per-request", type=int, default=1, help="hooks batched into one POST (default 1)")
    s.add_argument("--concurrency", type=int, default=4, help="parallel senders (default 4)")
    s.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s (default 10)")
    s.add_argument("--keepalive", action="store_true",
                   help="reuse one connection per sender (default: a new connection per hook, as amoCRM)")
    s.add_argument("--from", dest="from_url", default=None,
                   help="ask a running fake (http://127.0.0.1:PORT) to send, using its live data")
    s.add_argument("--json", action="store_true", help="print the full per-request result as JSON")
    return p


def serve(args):
    app = App(args)
    handler = type("BoundHandler", (Handler,), {"app": app})
    httpd = Server(("127.0.0.1", args.port), handler)

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening port=%d" % httpd.server_address[1], flush=True)
    threading.Thread(target=app.store.warm, name="warm", daemon=True).start()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "send-hooks":
        import amo_hooks
        return amo_hooks.cli_send(args, App)
    if args.dump_hooks:
        import amo_hooks
        return amo_hooks.dump_samples(App(args), args.dump_hooks)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
