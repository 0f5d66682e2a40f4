"""What stands in front of the fake amoCRM's API: OAuth2 tokens, the rate limit, stats, faults.

Auth      POST /oauth2/access_token (authorization_code, refresh_token grants; refresh tokens
          single use), bearer checks, revoke, --long-lived-token.
Limiter   strict 1-second sliding window (--rps); 429 body html|empty (never JSON: amoCRM's
          429 and 403 bodies are not JSON), Retry-After in seconds or as an HTTP-date;
          --ban-after N consecutive 429s turns every later call into 403 HTML.
Stats     per-path counts, list requests per entity, filter[id] use, status counts, and the
          most requests that arrived in any 1-second and any 10-second window.
Faults    injected failures for matching paths (POST /_fake/faults).
All of it is thread-safe behind one lock per object; times are wall-clock (time.time()).
"""

import base64
import collections
import email.utils
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse

from amo_api import Resp, problem
from amo_util import dumps

HTML_429 = (b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
            b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")
HTML_403 = (b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
            b"<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")
HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")
HTML = "text/html"


def _b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Auth:
    def __init__(self, args, account_id, subdomain):
        self.lock = threading.Lock()
        self.client_id = args.client_id
        self.client_secret = args.client_secret
        self.redirect_uri = args.redirect_uri
        self.auth_code = args.auth_code
        self.ttl = args.token_ttl
        self.long_lived = set(args.long_lived_token or [])
        self.enabled = not args.no_auth
        self.account_id, self.subdomain = account_id, subdomain
        self.access = {}            # token -> expiry (unix float)
        self.refresh = args.refresh_token
        self.generation = 0
        self.code_used = False
        self.revoked = False
        self.key = secrets.token_bytes(32)
        self.grants = collections.Counter()

    def _jwt(self, exp):
        head = _b64(dumps({"typ": "JWT", "alg": "RS256"}).encode())
        now = int(time.time())
        body = _b64(dumps({"aud": self.client_id, "jti": secrets.token_hex(20), "iat": now,
                           "nbf": now, "exp": int(exp), "sub": "7000001",
                           "grant_type": "", "account_id": self.account_id,
                           "base_domain": "amocrm.ru", "version": 2,
                           "scopes": ["crm", "files", "notifications"],
                           "api_domain": "api-b.amocrm.ru"}).encode())
        sig = _b64(hmac.new(self.key, (head + "." + body).encode(), hashlib.sha256).digest())
        return head + "." + body + "." + sig

    def _issue(self):
        exp = time.time() + self.ttl
        access = self._jwt(exp)
        self.access[access] = exp
        self.generation += 1
        self.refresh = "def50200" + secrets.token_hex(60)
        return Resp(200, dumps({"token_type": "Bearer", "expires_in": self.ttl,
                                "access_token": access, "refresh_token": self.refresh}).encode(),
                    "application/json")

    def token(self, body, ctype):
        """POST /oauth2/access_token."""
        try:
            if "json" in (ctype or "") or (body or b"").lstrip().startswith(b"{"):
                doc = json.loads(body or b"{}")
            else:
                doc = dict(urllib.parse.parse_qsl((body or b"").decode()))
        except (ValueError, UnicodeDecodeError):
            return problem(400, "Request body is not valid JSON")
        if not isinstance(doc, dict):
            return problem(400, "Request body must be an object")
        with self.lock:
            grant = doc.get("grant_type")
            self.grants[str(grant)] += 1
            if doc.get("client_id") != self.client_id or doc.get("client_secret") != self.client_secret:
                return problem(401, "Client authentication failed",
                               {"hint": "Check client_id and client_secret"})
            if doc.get("redirect_uri") != self.redirect_uri:
                return problem(400, "Invalid redirect_uri", {"hint": "redirect_uri mismatch"})
            if grant == "authorization_code":
                if self.revoked or self.code_used or doc.get("code") != self.auth_code:
                    return problem(400, "Authorization code has expired or was used",
                                   {"hint": "Authorization code has been revoked"})
                self.code_used = True
                return self._issue()
            if grant == "refresh_token":
                tok = doc.get("refresh_token")
                if self.revoked or not tok or tok != self.refresh:
                    return problem(400, "Refresh token is invalid",
                                   {"hint": "Token has been revoked"})
                return self._issue()
            return problem(400, "Unsupported grant_type %r" % grant,
                           {"hint": "grant_type must be authorization_code or refresh_token"})

    def check(self, header):
        """None if the Authorization header may call the API, else a 401 Resp."""
        if not self.enabled:
            return None
        tok = ""
        if header and header[:7].lower() == "bearer ":
            tok = header[7:].strip()
        with self.lock:
            if not self.revoked:
                if tok in self.long_lived:
                    return None
                exp = self.access.get(tok)
                if exp is not None and exp > time.time():
                    return None
        return problem(401, "Неверный логин или пароль" if tok else "Authorization header missing")

    def revoke(self):
        with self.lock:
            self.revoked = True
            self.access.clear()

    def expire(self):
        with self.lock:
            for t in self.access:
                self.access[t] = 0

    def state(self):
        with self.lock:
            now = time.time()
            return {"refresh_token": None if self.revoked else self.refresh,
                    "generation": self.generation, "revoked": self.revoked,
                    "auth_code_used": self.code_used,
                    "valid_access_tokens": sum(1 for e in self.access.values() if e > now),
                    "grants": dict(self.grants)}


class Limiter:
    def __init__(self, rps, body_kind, retry_after, ban_after, retry_after_form="seconds"):
        self.lock = threading.Lock()
        self.rps, self.body_kind = rps, body_kind
        self.retry_after, self.ban_after = retry_after, ban_after
        self.retry_after_form = retry_after_form
        self.window = collections.deque()       # accepted request times, last second
        self.in_a_row = 0
        self.banned = False

    def too_many(self):
        """The 429 response in the configured shape."""
        headers = []
        if self.retry_after:
            v = str(self.retry_after)
            if self.retry_after_form == "date":
                v = email.utils.formatdate(time.time() + self.retry_after, usegmt=True)
            headers.append(("Retry-After", v))
        if self.body_kind == "empty":
            return Resp(429, b"", "text/plain", headers)
        return Resp(429, HTML_429, HTML, headers)

    def admit(self, now):
        """None if the request may pass, else the 429/403 Resp."""
        with self.lock:
            if self.banned:
                return Resp(403, HTML_403, HTML)
            if self.rps <= 0:
                return None
            w = self.window
            while w and w[0] <= now - 1.0:
                w.popleft()
            if len(w) >= self.rps:
                self.in_a_row += 1
                if self.ban_after and self.in_a_row >= self.ban_after:
                    self.banned = True
                return self.too_many()
            w.append(now)
            self.in_a_row = 0
            return None

    def unban(self):
        with self.lock:
            self.banned = False
            self.in_a_row = 0
            self.window.clear()


class Stats:
    MAX_IDS = 20000

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.paths = collections.Counter()
            self.lists = collections.Counter()
            self.status = collections.Counter()
            self.filter_id_requests = 0
            self.filter_ids = []
            self.arrivals = collections.deque()
            self.max_window = 0
            # The rate over 10 s: a client's long-run rate, which a late arrival (a stalled
            # thread on either side) cannot push over the limit as it can a 1-s window.
            self.arrivals10 = collections.deque()
            self.max_window10 = 0
            self.requests = 0
            self.timing = {}        # path -> [n, wall ms sum, wall ms max, cpu ms sum]
            self.started = time.time()

    def arrival(self, path, now):
        """An API request (not /_fake) arrived."""
        with self.lock:
            self.requests += 1
            self.paths[path] += 1
            a = self.arrivals
            a.append(now)
            while a and a[0] <= now - 1.0:
                a.popleft()
            if len(a) > self.max_window:
                self.max_window = len(a)
            a = self.arrivals10
            a.append(now)
            while a and a[0] <= now - 10.0:
                a.popleft()
            if len(a) > self.max_window10:
                self.max_window10 = len(a)

    def done(self, status, meta, path=None, wall_ms=0.0, cpu_ms=0.0):
        with self.lock:
            self.status[status] += 1
            if path is not None:
                t = self.timing.get(path)
                if t is None:
                    t = self.timing[path] = [0, 0.0, 0.0, 0.0]
                t[0] += 1
                t[1] += wall_ms
                t[2] = max(t[2], wall_ms)
                t[3] += cpu_ms
            ent = meta.get("entity") if meta else None
            if ent and status in (200, 204):
                self.lists[ent] += 1
            if meta and "filter_ids" in meta:
                self.filter_id_requests += 1
                if len(self.filter_ids) < self.MAX_IDS:
                    self.filter_ids.append([_num(x) for x in meta["filter_ids"]])

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "paths": dict(self.paths),
                    "lists": dict(self.lists), "status": {str(k): v for k, v in self.status.items()},
                    "429": self.status[429], "403": self.status[403], "401": self.status[401],
                    "filter_id_requests": self.filter_id_requests, "filter_ids": self.filter_ids,
                    "max_requests_in_1s": self.max_window,
                    "max_requests_in_10s": self.max_window10,
                    "timing": {p: {"n": t[0], "avg_ms": round(t[1] / t[0], 3),
                                   "max_ms": round(t[2], 3), "avg_cpu_ms": round(t[3] / t[0], 3)}
                               for p, t in self.timing.items()},
                    "since": self.started}


def _num(x):
    try:
        return int(x)
    except ValueError:
        return x


FAULT_KINDS = ("http500", "http502", "http503", "http504", "slow", "late", "drop", "ratelimit",
               "unauthorized", "forbidden", "body", "dup_key", "no_key", "loop")
# What a fault of those kinds may carry besides path/kind/count/after/delay_ms.
FAULT_FIELDS = ("status", "body", "ctype", "row", "key", "value", "period")


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []

    def set(self, faults, replace=False):
        """Add (or replace all with) fault dicts; raises ValueError on a bad one."""
        new = []
        for f in faults:
            kind = f.get("kind")
            if kind not in FAULT_KINDS:
                raise ValueError("unknown fault kind %r (one of %s)" % (kind, ", ".join(FAULT_KINDS)))
            nf = {"path": f.get("path", "*"), "kind": kind,
                  "count": int(f.get("count", 1)), "after": int(f.get("after", 0)),
                  "delay_ms": int(f.get("delay_ms", 3000)), "seen": 0, "fired": 0}
            nf.update({k: f[k] for k in FAULT_FIELDS if k in f})
            if kind == "loop" and int(nf.get("period", 0)) < 1:
                raise ValueError("a loop fault needs period >= 1 (pages)")
            new.append(nf)
        with self.lock:
            if replace:
                self.faults = []
            self.faults.extend(new)

    def clear(self):
        with self.lock:
            self.faults = []

    def match(self, path):
        """The fault to apply to this request, or None. count -1 = forever."""
        with self.lock:
            for f in self.faults:
                p = f["path"]
                if p == "*" or p == path or (p.endswith("*") and path.startswith(p[:-1])):
                    f["seen"] += 1
                    if f["seen"] > f["after"] and (f["count"] < 0 or f["fired"] < f["count"]):
                        f["fired"] += 1
                        return dict(f)
            return None

    def list(self):
        with self.lock:
            return [dict(f) for f in self.faults]
