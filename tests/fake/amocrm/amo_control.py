"""The fake amoCRM's control API under /_fake/ (no auth, no rate limit, not counted in stats).

GET  /_fake/stats  POST /_fake/reset_stats          request counters (amo_guard.Stats)
GET  /_fake/tokens POST /_fake/revoke|expire_tokens  OAuth state (amo_guard.Auth)
POST /_fake/unban                                    lift a --ban-after ban
POST /_fake/config {"rps":..,"ignore_filters":..,"429_body":..,"retry_after":..,"retry_after_form":..,"ban_after":..}
POST /_fake/mutate {"ops":[...]}                     changes (amo_store.Store.mutate)
GET  /_fake/record?entity=leads&id=5[&with=contacts] the record as the list API shows it
GET  /_fake/count?entity=leads  GET /_fake/ids?entity=leads
GET|POST|DELETE /_fake/faults                        injected failures (amo_guard.Faults)
POST /_fake/send_hooks {...}                         POST webhooks somewhere (amo_hooks); without
                                                     "url": to every enabled subscription
GET  /_fake/webhooks                                 the subscriptions (as GET /api/v4/webhooks)
POST /_fake/webhooks/disable {"destination":..}      disable one (or all), as amoCRM does after failures
GET  /_fake/info                                     counts of every table, options in force
"""

import json
import urllib.parse

from amo_api import Resp, problem
from amo_gen import BASE
from amo_store import OpError
from amo_util import dumps


def _json(obj, status=200):
    return Resp(status, dumps(obj).encode(), "application/json")


def _key_of(store, table, raw):
    """A row key from an id given on the control API (int, event id, unsorted uid)."""
    if table.name == "events":
        return store.event_key(raw)
    if table.name == "unsorted" and isinstance(raw, str) and len(raw) == 40:
        try:
            return int(raw[32:], 16)
        except ValueError:
            return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class Control:
    def __init__(self, app):
        self.app = app

    def handle(self, method, path, qs, body, base):
        app = self.app
        q = dict(urllib.parse.parse_qsl(qs, keep_blank_values=True))
        name = path[len("/_fake/"):].strip("/")
        doc = None
        if method in ("POST", "PUT") and body:
            try:
                doc = json.loads(body)
            except ValueError:
                return problem(400, "Body is not JSON")
        if name == "stats" and method == "GET":
            return _json(dict(app.stats.snapshot(), warm=app.store.warmed))
        if name == "reset_stats" and method == "POST":
            app.stats.reset()
            return _json({"ok": True})
        if name == "tokens" and method == "GET":
            return _json(app.auth.state())
        if name == "revoke" and method == "POST":
            app.auth.revoke()
            return _json({"ok": True, "revoked": True})
        if name == "expire_tokens" and method == "POST":
            app.auth.expire()
            return _json({"ok": True})
        if name == "unban" and method == "POST":
            app.limiter.unban()
            return _json({"ok": True})
        if name == "config" and method == "POST":
            return self._config(doc or {})
        if name == "info" and method == "GET":
            return _json(self._info())
        if name == "faults":
            if method == "GET":
                return _json({"faults": app.faults.list()})
            if method == "DELETE":
                app.faults.clear()
                return _json({"ok": True})
            try:
                app.faults.set((doc or {}).get("faults", []), replace=bool((doc or {}).get("replace")))
            except (ValueError, TypeError, AttributeError) as e:
                return problem(400, str(e))
            return _json({"ok": True, "faults": app.faults.list()})
        if name == "mutate" and method == "POST":
            ops = (doc or {}).get("ops")
            if not isinstance(ops, list):
                return problem(400, 'Body must be {"ops":[...]}')
            try:
                res = app.store.mutate(ops)
            except (OpError, ValueError, TypeError, KeyError) as e:
                return problem(400, "mutate: %s" % e)
            return _json({"ok": True, "results": res, "clock": app.store.clock})
        if name in ("record", "count", "ids") and method == "GET":
            return self._rows(name, q, base)
        if name == "webhooks" and method == "GET":
            with app.store.lock:
                return _json({"webhooks": app.api.webhooks})
        if name == "webhooks/disable" and method == "POST":
            with app.store.lock:
                done = app.api.webhook_disable((doc or {}).get("destination"))
            return _json({"ok": True, "disabled": len(done)})
        if name == "send_hooks" and method == "POST":
            import amo_hooks
            try:
                with app.store.lock:
                    subs = [dict(w) for w in app.api.webhooks]
                res = amo_hooks.send_from_store(app.store, doc or {}, subs)
            except (ValueError, KeyError, TypeError, OpError) as e:
                return problem(400, "send_hooks: %s" % e)
            return _json(res)
        return problem(404, "No such control endpoint: %s %s" % (method, path))

    def _rows(self, name, q, base):
        st = self.app.store
        try:
            t = st.table(q.get("entity", ""))
        except OpError as e:
            return problem(400, str(e))
        with st.lock:
            if name == "count":
                return _json({"entity": t.name, "count": t.count()})
            if name == "ids":
                keys = t.select(order=("id", "asc"))
                ids = [st.external_id(t, k) for k in keys]
                return _json({"entity": t.name, "ids": ids})
            key = _key_of(st, t, q.get("id"))
            with_set = {w for w in q.get("with", "").split(",") if w}
            rec = t.get(key) if key is not None else None
            if rec is None:
                return problem(404, "%s %s not found" % (t.name, q.get("id")))
            return Resp(200, dumps(st.view(t, rec, with_set)).replace(BASE, base).encode())

    def _config(self, doc):
        app = self.app
        lim = app.limiter
        if "rps" in doc:
            lim.rps = float(doc["rps"])
        if "429_body" in doc:
            lim.body_kind = doc["429_body"]
        if "retry_after" in doc:
            lim.retry_after = int(doc["retry_after"])
        if "retry_after_form" in doc:
            if doc["retry_after_form"] not in ("seconds", "date"):
                return problem(400, "retry_after_form is seconds or date")
            lim.retry_after_form = doc["retry_after_form"]
        if "ban_after" in doc:
            lim.ban_after = int(doc["ban_after"])
        if "ignore_filters" in doc:
            app.api.ignore_filters = bool(doc["ignore_filters"])
        if "token_ttl" in doc:
            app.auth.ttl = int(doc["token_ttl"])
        return _json(self._info())

    def _info(self):
        app = self.app
        st = app.store
        with st.lock:
            counts = {name: t.count() for name, t in st.tables.items()}
        return {"account_id": st.ref.account_id, "subdomain": st.ref.subdomain,
                "seed": st.ref.seed, "now": st.ref.now, "clock": st.clock, "counts": counts,
                "rps": app.limiter.rps, "ignore_filters": app.api.ignore_filters,
                "auth": app.auth.enabled, "banned": app.limiter.banned}
