"""Self-test of the fake amoCRM: real server subprocesses on port 0, spoken to with urllib.

    python3 -m unittest tests/fake/amocrm/test_fake_amocrm.py      (from the repo root)
"""

import email.utils
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_amocrm.py")
sys.path.insert(0, HERE)

import amo_hooks  # noqa: E402

LLT = "test-long-lived-token"


class Fake:
    """One fake_amocrm.py subprocess."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, SERVER, "--port", "0", "--scale", "tiny",
                                      "--seed", "1", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening port="):
            self.proc.kill()
            raise RuntimeError("bad first line %r: %s" % (line, self.proc.stderr.read()))
        self.port = int(line.strip().split("=")[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def req(self, method, path, body=None, token=LLT, headers=None):
        """(status, headers, body bytes); never raises on HTTP errors."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def json(self, path, **kw):
        st, h, b = self.req("GET", path, **kw)
        if st != 200:
            raise AssertionError("GET %s -> %d %r" % (path, st, b[:300]))
        return json.loads(b)

    def post(self, path, body=None, **kw):
        st, h, b = self.req("POST", path, body if body is not None else {}, **kw)
        return st, (json.loads(b) if b else None)


LISTS = [
    ("/api/v4/users?with=role,group", "users"), ("/api/v4/roles", "roles"),
    ("/api/v4/leads", "leads"), ("/api/v4/leads/unsorted", "unsorted"),
    ("/api/v4/leads/pipelines", "pipelines"),
    ("/api/v4/leads/pipelines/1000001/statuses", "statuses"),
    ("/api/v4/leads/loss_reasons", "loss_reasons"), ("/api/v4/contacts", "contacts"),
    ("/api/v4/companies", "companies"), ("/api/v4/catalogs", "catalogs"),
    ("/api/v4/catalogs/1001/elements", "elements"),
    ("/api/v4/leads/links?filter[entity_id][]=1&filter[entity_id][]=2", "links"),
    ("/api/v4/contacts/links?filter[entity_id][]=1", "links"),
    ("/api/v4/companies/links?filter[entity_id][]=1", "links"),
    ("/api/v4/customers/links?filter[entity_id][]=2", "links"),
    ("/api/v4/tasks", "tasks"), ("/api/v4/catalogs/1001/custom_fields", "custom_fields"),
    ("/api/v4/events", "events"), ("/api/v4/events/types", "events_types"),
    ("/api/v4/customers", "customers"), ("/api/v4/customers/statuses", "statuses"),
    ("/api/v4/customers/segments", "segments"),
    ("/api/v4/customers/transactions", "transactions"), ("/api/v4/talks", "talks"),
    ("/api/v4/sources", "sources"),
    ("/api/v4/customers/segments/custom_fields", "custom_fields"),
]
for _e in ("leads", "contacts", "companies", "customers"):
    LISTS += [("/api/v4/%s/custom_fields" % _e, "custom_fields"),
              ("/api/v4/%s/custom_fields/groups" % _e, "custom_field_groups"),
              ("/api/v4/%s/tags" % _e, "tags"), ("/api/v4/%s/notes" % _e, "notes")]


def q(path):
    """Percent-encode brackets the way a careful client does (the server accepts both)."""
    return path.replace("[", "%5B").replace("]", "%5D")


class ReadTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.f = Fake("--rps", "0", "--long-lived-token", LLT)

    @classmethod
    def tearDownClass(cls):
        assert cls.f.stop() == 0

    def test_every_list_endpoint(self):
        for path, key in LISTS:
            with self.subTest(path=path):
                st, h, b = self.f.get(path)
                self.assertEqual(st, 200, b[:200])
                self.assertEqual(h["Content-Type"], "application/hal+json")
                self.assertEqual(int(h["Content-Length"]), len(b))
                doc = json.loads(b)
                self.assertIsInstance(doc["_embedded"][key], list)
                self.assertTrue(doc["_embedded"][key])
                self.assertIn("self", doc["_links"])
        acc = self.f.json("/api/v4/account?with=task_types,users_groups,datetime_settings")
        self.assertEqual(acc["subdomain"], "crmsync-test")
        self.assertTrue(acc["_embedded"]["task_types"])
        self.assertEqual(acc["_embedded"]["datetime_settings"]["timezone"], "Europe/Moscow")
        talk = self.f.json("/api/v4/talks/1")
        self.assertEqual(talk["talk_id"], 1)

    def test_shapes(self):
        users = self.f.json("/api/v4/users?with=role,group")
        self.assertIn("_total_items", users)
        self.assertIn("_page_count", users)
        self.assertIn("roles", users["_embedded"]["users"][0]["_embedded"])
        pipes = self.f.json("/api/v4/leads/pipelines")["_embedded"]["pipelines"]
        for p in pipes:
            ids = {s["id"] for s in p["_embedded"]["statuses"]}
            self.assertTrue({142, 143} <= ids)
        leads = self.f.json("/api/v4/leads?limit=250&with=contacts")["_embedded"]["leads"]
        self.assertTrue(any(x["custom_fields_values"] is None for x in leads))
        self.assertTrue(any(x["closed_at"] is None for x in leads))
        self.assertTrue(any(x["closed_at"] is not None for x in leads))
        self.assertTrue(any(x["_embedded"]["contacts"] for x in leads))
        types = {f["field_type"] for x in leads for f in (x["custom_fields_values"] or [])}
        self.assertTrue({"select", "multiselect", "numeric", "checkbox", "date"} <= types)
        for x in leads:
            for f in x["custom_fields_values"] or []:
                if f["field_type"] == "numeric":
                    self.assertIsInstance(f["values"][0]["value"], str)
                if f["field_type"] == "checkbox":
                    self.assertIsInstance(f["values"][0]["value"], bool)
                if f["field_type"] == "date":
                    self.assertIsInstance(f["values"][0]["value"], int)
        contacts = self.f.json("/api/v4/contacts?limit=250")["_embedded"]["contacts"]
        phones = [v for c in contacts for f in (c["custom_fields_values"] or [])
                  if f["field_code"] == "PHONE" for v in f["values"]]
        self.assertTrue(phones and all("enum_code" in v and "enum_id" in v for v in phones))
        st, h, raw = self.f.get("/api/v4/contacts?limit=1")
        self.assertIn(b"\xd0", raw)                 # raw UTF-8 Cyrillic, not \u escapes
        self.assertNotIn(b"\\u04", raw)
        tasks = self.f.json("/api/v4/tasks?limit=250")["_embedded"]["tasks"]
        self.assertTrue(any(t["result"] == [] for t in tasks))
        self.assertTrue(any(isinstance(t["result"], dict) for t in tasks))
        ev = self.f.json("/api/v4/events?limit=5")["_embedded"]["events"]
        self.assertIsInstance(ev[0]["id"], str)
        uns = self.f.json("/api/v4/leads/unsorted")["_embedded"]["unsorted"]
        self.assertIsInstance(uns[0]["uid"], str)
        els = self.f.json("/api/v4/catalogs/1001/elements?limit=250")["_embedded"]["elements"]
        self.assertTrue(any(e["is_deleted"] is None for e in els))
        cf = self.f.json("/api/v4/leads/custom_fields?limit=500")
        self.assertLessEqual(len(cf["_embedded"]["custom_fields"]), 50)
        notes = self.f.json("/api/v4/leads/notes?limit=250")["_embedded"]["notes"]
        self.assertTrue(all(isinstance(n["note_type"], str) and "params" in n for n in notes))

    def test_list_rows_equal_records(self):
        # lists of leads/contacts/companies are written as text (amo_rows); /_fake/record goes
        # through the dict path: both must agree for every with= variant
        for ent, withs in (("leads", ["", "contacts,catalog_elements,loss_reason,source_id,source"]),
                           ("contacts", ["", "leads,customers"]),
                           ("companies", ["", "contacts,leads,customers"])):
            for w in withs:
                rows = self.f.json("/api/v4/%s?limit=250&with=%s" % (ent, w))["_embedded"][ent]
                for row in rows:
                    rec = self.f.json("/_fake/record?entity=%s&id=%d&with=%s" % (ent, row["id"], w))
                    self.assertEqual(row, rec)

    def _walk(self, path, limit):
        ids, url, pages = [], "%s?limit=%d" % (path, limit), 0
        while True:
            st, h, b = self.f.get(url)
            if st == 204:
                self.assertEqual(b, b"")
                break
            self.assertEqual(st, 200)
            doc = json.loads(b)
            key = next(iter(doc["_embedded"]))
            rows = doc["_embedded"][key]
            ids += [r.get("id", r.get("uid")) for r in rows]
            pages += 1
            if "next" not in doc["_links"]:
                self.assertLess(len(rows), limit)
                break
            url = doc["_links"]["next"]["href"][len(self.f.base):]
            self.assertLess(pages, 1000)
        return ids

    def test_paging_until_204(self):
        for ent, path in [("leads", "/api/v4/leads"), ("contacts", "/api/v4/contacts"),
                          ("companies", "/api/v4/companies"), ("tasks", "/api/v4/tasks"),
                          ("leads/notes", "/api/v4/leads/notes"), ("events", "/api/v4/events"),
                          ("customers", "/api/v4/customers")]:
            with self.subTest(ent=ent):
                count = self.f.json("/_fake/count?entity=" + ent)["count"]
                ids = self._walk(path, 7)
                self.assertEqual(len(ids), count)
                self.assertEqual(sorted(ids, key=str),
                                 sorted(self.f.json("/_fake/ids?entity=" + ent)["ids"], key=str))
        # 30 leads, limit 10: the third page is exactly full, so it has next -> 204
        doc = self.f.json("/api/v4/leads?limit=10&page=3")
        self.assertEqual(len(doc["_embedded"]["leads"]), 10)
        self.assertIn("next", doc["_links"])
        st, h, b = self.f.get(doc["_links"]["next"]["href"][len(self.f.base):])
        self.assertEqual((st, b), (204, b""))
        # limit above the maximum is clamped
        self.assertEqual(len(self.f.json("/api/v4/events?limit=1000")["_embedded"]["events"]), 60)
        doc = self.f.json("/api/v4/leads?limit=999")
        self.assertIn("limit=250", doc["_links"]["self"]["href"])

    def test_filters(self):
        for form in ("filter[id][]=3&filter[id][]=8", "filter[id][0]=3&filter[id][1]=8",
                     "filter[id]=3,8"):
            for enc in (form, q(form)):
                doc = self.f.json("/api/v4/leads?" + enc)
                self.assertEqual([x["id"] for x in doc["_embedded"]["leads"]], [3, 8])
        st, _, b = self.f.get("/api/v4/leads?filter[id][]=99999")
        self.assertEqual((st, b), (204, b""))
        allrows = self.f.json("/api/v4/leads?limit=250")["_embedded"]["leads"]
        times = sorted(x["updated_at"] for x in allrows)
        lo, hi = times[5], times[20]
        doc = self.f.json("/api/v4/leads?limit=250&filter[updated_at][from]=%d"
                          "&filter[updated_at][to]=%d&order[updated_at]=asc" % (lo, hi))
        got = [x["updated_at"] for x in doc["_embedded"]["leads"]]
        self.assertEqual(got, sorted(got))
        self.assertEqual(len(got), sum(1 for t in times if lo <= t <= hi))
        doc = self.f.json("/api/v4/leads?limit=250&order[id]=desc")
        ids = [x["id"] for x in doc["_embedded"]["leads"]]
        self.assertEqual(ids, sorted(ids, reverse=True))
        ev = self.f.json("/api/v4/events?filter[type]=lead_deleted,contact_deleted&limit=100")
        self.assertTrue(all(e["type"] in ("lead_deleted", "contact_deleted")
                            for e in ev["_embedded"]["events"]))
        stats = self.f.json("/_fake/stats")
        self.assertGreater(stats["filter_id_requests"], 0)
        self.assertIn([3, 8], stats["filter_ids"])
        # The background warm-up ends, and says so (benchmarks wait for it, not a fixed time).
        end = time.monotonic() + 20
        while self.f.json("/_fake/stats")["warm"] != 1:
            self.assertLess(time.monotonic(), end, "the fake never said it was warm")
            time.sleep(0.05)

    def test_keepalive_and_unknown(self):
        c = http.client.HTTPConnection("127.0.0.1", self.f.port, timeout=5)
        for _ in range(3):
            c.request("GET", "/api/v4/leads?limit=1", headers={"Authorization": "Bearer " + LLT})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        c.request("GET", "/api/v4/nothing", headers={"Authorization": "Bearer " + LLT})
        r = c.getresponse()
        doc = json.loads(r.read())
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers["Content-Type"], "application/problem+json")
        self.assertEqual(doc["type"], "https://httpstatus.es/404")
        c.close()
        st, h, b = self.f.get("/api/v4/leads", token="wrong")
        self.assertEqual(st, 401)
        self.assertEqual(json.loads(b)["status"], 401)

    def test_faults(self):
        st, _ = self.f.post("/_fake/faults", {"faults": [
            {"path": "/api/v4/companies", "kind": "http500", "count": 1},
            {"path": "/api/v4/roles", "kind": "drop", "count": 1}]})
        self.assertEqual(st, 200)
        self.assertEqual(self.f.get("/api/v4/companies")[0], 500)
        self.assertEqual(self.f.get("/api/v4/companies")[0], 200)
        with self.assertRaises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(urllib.request.Request(
                self.f.base + "/api/v4/roles", headers={"Authorization": "Bearer " + LLT}), timeout=5)
        self.assertEqual(self.f.get("/api/v4/roles")[0], 200)
        self.assertEqual(self.f.req("DELETE", "/_fake/faults")[0], 200)

    def test_late_fault_delays_the_arrival(self):
        # "late" answers normally, but the request counts as arrived only after the delay.
        self.f.post("/_fake/faults", {"faults": [{"path": "/api/v4/roles", "kind": "late",
                                                   "delay_ms": 300}]})
        t0 = time.time()
        self.assertEqual(self.f.get("/api/v4/roles")[0], 200)
        self.assertGreaterEqual(time.time() - t0, 0.3)
        self.assertEqual(self.f.json("/_fake/faults")["faults"][0]["fired"], 1)
        self.assertEqual(self.f.req("DELETE", "/_fake/faults")[0], 200)

    def test_faults_that_misread(self):
        """Answers a client must not take for data: another shape, a key twice or missing,
        pages that loop."""
        self.f.post("/_fake/faults", {"faults": [
            {"path": "/api/v4/users", "kind": "body", "body": '{"Error":"x"}'}]})
        self.assertEqual(self.f.json("/api/v4/users"), {"Error": "x"})
        self.f.post("/_fake/faults", {"faults": [{"path": "/api/v4/leads", "kind": "dup_key"}]})
        st, _, body = self.f.get("/api/v4/leads?limit=2")
        self.assertIn(b'{"id":1,', body)
        self.assertIn(b',"id":1000001}', body)
        self.assertEqual(json.loads(body)["_embedded"]["leads"][0]["id"], 1000001)  # the last wins
        self.f.post("/_fake/faults", {"faults": [{"path": "/api/v4/leads", "kind": "no_key", "row": 1}]})
        rows = self.f.json("/api/v4/leads?limit=2")["_embedded"]["leads"]
        self.assertIn("id", rows[0])
        self.assertNotIn("id", rows[1])
        self.f.post("/_fake/faults", {"faults": [
            {"path": "/api/v4/leads", "kind": "loop", "period": 2, "count": -1}]})
        p = [self.f.json("/api/v4/leads?limit=3&page=%d" % k)["_embedded"]["leads"] for k in (1, 2, 3)]
        self.assertNotEqual(p[0], p[1])
        self.assertEqual(p[0], p[2])
        self.assertEqual(self.f.req("DELETE", "/_fake/faults")[0], 200)
        self.assertEqual(self.f.post("/_fake/faults", {"faults": [{"kind": "loop"}]})[0], 400)


class MutateTests(unittest.TestCase):
    def setUp(self):
        self.f = Fake("--rps", "0", "--no-auth")

    def tearDown(self):
        self.assertEqual(self.f.stop(), 0)

    def test_edit_move_delete_add(self):
        before = self.f.json("/_fake/record?entity=leads&id=5")
        n_leads = self.f.json("/_fake/count?entity=leads")["count"]
        n_contacts = self.f.json("/_fake/count?entity=contacts")["count"]
        st, res = self.f.post("/_fake/mutate", {"ops": [
            {"op": "edit", "entity": "leads", "id": 5, "set": {"name": "Новое имя"}},
            {"op": "move", "entity": "leads", "id": 6, "pipeline_id": 1000001, "status_id": 142},
            {"op": "delete", "entity": "contacts", "id": 7},
            {"op": "add", "entity": "leads", "count": 3}]})
        self.assertEqual(st, 200, res)
        after = self.f.json("/_fake/record?entity=leads&id=5")
        self.assertEqual(after["name"], "Новое имя")
        self.assertGreater(after["updated_at"], before["updated_at"])
        listed = self.f.json("/api/v4/leads?filter[id][]=5")["_embedded"]["leads"][0]
        self.assertEqual(listed, after)
        moved = self.f.json("/api/v4/leads?filter[id][]=6")["_embedded"]["leads"][0]
        self.assertEqual((moved["pipeline_id"], moved["status_id"]), (1000001, 142))
        self.assertIsNotNone(moved["closed_at"])
        self.assertGreater(moved["updated_at"], after["updated_at"])
        fresh = self.f.json("/api/v4/leads?filter[updated_at][from]=%d&order[updated_at]=asc"
                            % after["updated_at"])["_embedded"]["leads"]
        self.assertEqual([x["id"] for x in fresh][:2], [5, 6])
        self.assertEqual(len(fresh), 5)          # 5, 6 and the 3 added
        st, _, b = self.f.get("/api/v4/contacts?filter[id][]=7")
        self.assertEqual(st, 204)
        self.assertEqual(self.f.json("/_fake/count?entity=contacts")["count"], n_contacts - 1)
        self.assertEqual(self.f.json("/_fake/count?entity=leads")["count"], n_leads + 3)
        self.assertNotIn(7, self.f.json("/_fake/ids?entity=contacts")["ids"])
        ev = self.f.json("/api/v4/events?filter[type]=contact_deleted&filter[entity_id]=7")
        self.assertEqual([e["entity_id"] for e in ev["_embedded"]["events"]], [7])
        ev = self.f.json("/api/v4/events?filter[type][]=lead_status_changed&filter[entity_id]=6")
        e = ev["_embedded"]["events"][0]
        self.assertEqual(e["value_after"], [{"lead_status": {"id": 142, "pipeline_id": 1000001}}])
        st, res = self.f.post("/_fake/mutate", {"ops": [
            {"op": "delete", "entity": "leads", "id": 3}, {"op": "delete", "entity": "leads/notes", "id": 4},
            {"op": "delete", "entity": "tasks", "id": 2}, {"op": "restore", "entity": "leads", "id": 3}]})
        self.assertEqual(st, 200, res)
        self.assertEqual(len(self.f.json("/api/v4/leads?filter[id][]=3")["_embedded"]["leads"]), 1)
        types = [e["type"] for e in self.f.json("/api/v4/events?limit=100")["_embedded"]["events"]]
        for t in ("lead_deleted", "common_note_deleted", "task_deleted", "lead_restored"):
            self.assertIn(t, types)
        self.assertEqual(self.f.get("/api/v4/tasks?filter[id][]=2")[0], 204)
        self.assertEqual(self.f.post("/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads",
                                                                "id": 99999, "set": {"name": "x"}}]})[0], 400)


class IgnoreFilterTests(unittest.TestCase):
    def test_ignore_filters(self):
        f = Fake("--rps", "0", "--no-auth", "--ignore-filters")
        try:
            doc = f.json("/api/v4/leads?filter[id][]=1&limit=250")
            self.assertEqual(len(doc["_embedded"]["leads"]), 30)
            doc = f.json("/api/v4/leads?filter[updated_at][from]=1900000000&limit=5")
            self.assertEqual(len(doc["_embedded"]["leads"]), 5)
            doc = f.json("/api/v4/leads?order[updated_at]=desc&limit=250")
            got = [x["updated_at"] for x in doc["_embedded"]["leads"]]
            self.assertEqual(got, sorted(got, reverse=True))     # order still works
            since = got[10]
            hdr = {"If-Modified-Since": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(since))}
            doc = json.loads(f.req("GET", "/api/v4/leads?limit=250", token=None, headers=hdr)[2])
            self.assertEqual(sorted(x["updated_at"] for x in doc["_embedded"]["leads"]),
                             sorted(t for t in got if t >= since))
        finally:
            self.assertEqual(f.stop(), 0)


class ElementPagingTests(unittest.TestCase):
    def test_elements_come_100_a_page_without_next(self):
        """amocrm/amocrm-api-php#528: 137 elements, limit 250 -> 100 rows on page 1 and no
        next link; page 2 holds the other 37; page 3 is 204."""
        f = Fake("--rps", "0", "--no-auth", "--elements", "137")
        try:
            for limit in (250, 50):
                p1 = f.json("/api/v4/catalogs/1001/elements?limit=%d&page=1" % limit)
                self.assertEqual(len(p1["_embedded"]["elements"]), 100)
                self.assertNotIn("next", p1["_links"])
                self.assertNotIn("_page_count", p1)
            p2 = f.json("/api/v4/catalogs/1001/elements?limit=250&page=2")
            self.assertEqual(len(p2["_embedded"]["elements"]), 37)
            self.assertNotIn("next", p2["_links"])
            self.assertEqual(f.get("/api/v4/catalogs/1001/elements?limit=250&page=3")[0], 204)
        finally:
            self.assertEqual(f.stop(), 0)


class AuthTests(unittest.TestCase):
    def test_oauth(self):
        f = Fake("--rps", "0", "--token-ttl", "1", "--client-id", "cid", "--client-secret", "sec",
                 "--redirect-uri", "https://r.example/cb", "--auth-code", "CODE",
                 "--long-lived-token", LLT)
        try:
            cred = {"client_id": "cid", "client_secret": "sec", "redirect_uri": "https://r.example/cb"}
            st, t = f.post("/oauth2/access_token", dict(cred, grant_type="authorization_code", code="CODE"), token=None)
            self.assertEqual(st, 200, t)
            self.assertEqual(set(t), {"token_type", "expires_in", "access_token", "refresh_token"})
            self.assertEqual((t["token_type"], t["expires_in"]), ("Bearer", 1))
            st, b = f.post("/oauth2/access_token", dict(cred, grant_type="authorization_code", code="CODE"), token=None)
            self.assertEqual(st, 400)                                   # code is single use
            st, b = f.post("/oauth2/access_token", dict(cred, client_secret="bad", grant_type="authorization_code",
                                                        code="CODE"), token=None)
            self.assertEqual(st, 401)
            self.assertEqual(f.get("/api/v4/account", token=t["access_token"])[0], 200)
            st, t2 = f.post("/oauth2/access_token", dict(cred, grant_type="refresh_token",
                                                         refresh_token=t["refresh_token"]), token=None)
            self.assertEqual(st, 200)
            st, h, b = f.req("POST", "/oauth2/access_token", dict(cred, grant_type="refresh_token",
                                                                  refresh_token=t["refresh_token"]), token=None)
            self.assertIn(st, (400, 401))                               # refresh tokens are single use
            self.assertEqual(h["Content-Type"], "application/problem+json")
            tok = f.json("/_fake/tokens")
            self.assertEqual((tok["refresh_token"], tok["generation"]), (t2["refresh_token"], 2))
            time.sleep(1.2)
            self.assertEqual(f.get("/api/v4/account", token=t2["access_token"])[0], 401)   # expired
            self.assertEqual(f.get("/api/v4/account", token=LLT)[0], 200)
            self.assertEqual(f.get("/api/v4/account", token=None)[0], 401)
            st, t3 = f.post("/oauth2/access_token", dict(cred, grant_type="refresh_token",
                                                         refresh_token=t2["refresh_token"]), token=None)
            self.assertEqual(st, 200)
            self.assertEqual(f.post("/_fake/revoke")[0], 200)
            self.assertEqual(f.get("/api/v4/account", token=t3["access_token"])[0], 401)
            self.assertEqual(f.get("/api/v4/account", token=LLT)[0], 401)
            st, b = f.post("/oauth2/access_token", dict(cred, grant_type="refresh_token",
                                                        refresh_token=t3["refresh_token"]), token=None)
            self.assertIn(st, (400, 401))
        finally:
            self.assertEqual(f.stop(), 0)


class RateLimitTests(unittest.TestCase):
    def test_429_and_counter(self):
        f = Fake("--rps", "7", "--no-auth", "--429-body", "html", "--retry-after", "2")
        try:
            codes = [f.get("/api/v4/roles")[0] for _ in range(20)]
            self.assertGreaterEqual(codes.count(200), 7)
            self.assertGreater(codes.count(429), 0)
            st, h, b = f.get("/api/v4/roles")
            if st == 429:
                self.assertEqual(h["Retry-After"], "2")
                self.assertIn(b"429", b)
            stats = f.json("/_fake/stats")
            self.assertEqual(stats["429"], codes.count(429) + (st == 429))
            self.assertGreaterEqual(stats["max_requests_in_1s"], 8)
            self.assertGreaterEqual(stats["max_requests_in_10s"], stats["max_requests_in_1s"])
            self.assertEqual(stats["paths"]["/api/v4/roles"], 21)
            time.sleep(1.05)
            self.assertEqual(f.get("/api/v4/roles")[0], 200)
            self.assertEqual(f.post("/_fake/reset_stats")[0], 200)
            self.assertEqual(f.json("/_fake/stats")["requests"], 0)
        finally:
            self.assertEqual(f.stop(), 0)

    def test_error_bodies_are_not_json_and_retry_after_may_be_a_date(self):
        """amoCRM's 429 and 403 (ban) bodies are not JSON (issue 10 item 7); Retry-After
        comes by default, in seconds or as an HTTP-date."""
        f = Fake("--rps", "0", "--no-auth")
        try:
            self.assertEqual(f.post("/_fake/faults", {"faults": [
                {"path": "/api/v4/leads", "kind": "ratelimit", "count": 2},
                {"path": "/api/v4/contacts", "kind": "forbidden", "count": 1}]})[0], 200)
            st, h, b = f.get("/api/v4/leads")
            self.assertEqual((st, h["Retry-After"]), (429, "1"))
            self.assertTrue(h["Content-Type"].startswith("text/html"))
            self.assertRaises(ValueError, json.loads, b)
            st, h, b = f.get("/api/v4/contacts")
            self.assertEqual(st, 403)
            self.assertTrue(h["Content-Type"].startswith("text/html"))
            self.assertRaises(ValueError, json.loads, b)
            self.assertEqual(f.post("/_fake/config", {"retry_after": 30,
                                                      "retry_after_form": "date"})[0], 200)
            st, h, b = f.get("/api/v4/leads")
            self.assertEqual(st, 429)
            at = email.utils.parsedate_to_datetime(h["Retry-After"]).timestamp()
            self.assertLess(abs(at - time.time() - 30), 3)
            self.assertEqual(f.post("/_fake/config", {"retry_after_form": "x"})[0], 400)
        finally:
            self.assertEqual(f.stop(), 0)

    def test_ban(self):
        f = Fake("--rps", "2", "--no-auth", "--ban-after", "3")
        try:
            codes = [f.get("/api/v4/roles")[0] for _ in range(8)]
            self.assertEqual(codes[:2], [200, 200])
            self.assertEqual(codes[2:5], [429, 429, 429])
            st, h, b = f.get("/api/v4/roles")
            self.assertEqual(st, 403)
            self.assertTrue(h["Content-Type"].startswith("text/html"))
            time.sleep(1.05)
            self.assertEqual(f.get("/api/v4/roles")[0], 403)        # bans do not heal
            self.assertEqual(f.json("/_fake/stats")["403"], codes.count(403) + 2)
        finally:
            self.assertEqual(f.stop(), 0)


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


ACC = {"subdomain": "sub", "id": 42}


class HookTests(unittest.TestCase):
    def test_encode_lead_status(self):
        rec = {"id": 5, "name": "Курс английского", "status_id": 142, "old_status_id": 40000001,
               "pipeline_id": 1000001, "price": 1000, "responsible_user_id": 7, "updated_at": 100,
               "created_at": 50, "created_by": 0, "updated_by": 0, "account_id": 42,
               "custom_fields_values": [
                   {"field_id": 1, "field_name": "Курс", "field_code": None, "field_type": "select",
                    "values": [{"value": "IELTS", "enum_id": 11}]},
                   {"field_id": 2, "field_name": "Дата", "field_code": None, "field_type": "date",
                    "values": [{"value": 1542067200}]}],
               "_embedded": {"tags": [{"id": 9, "name": "горячий"}]}}
        body = amo_hooks.encode_hook("leads", "status", [rec], ACC)
        self.assertIn(b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=5", body)
        self.assertNotIn(b"[", body)
        self.assertIn(b"+", body)                                   # spaces as +
        d = dict(urllib.parse.parse_qsl(body.decode("ascii"), strict_parsing=True))
        self.assertEqual(d["leads[status][0][name]"], "Курс английского")
        self.assertEqual(d["leads[status][0][old_status_id]"], "40000001")
        self.assertEqual(d["leads[status][0][custom_fields][0][values][0][value]"], "IELTS")
        self.assertEqual(d["leads[status][0][custom_fields][0][values][0][enum]"], "11")
        self.assertEqual(d["leads[status][0][custom_fields][1][values][0]"], "1542067200")
        self.assertEqual(d["leads[status][0][tags][0][name]"], "горячий")
        self.assertEqual(d["account[subdomain]"], "sub")
        self.assertEqual(d["account[id]"], "42")
        self.assertEqual(d["account[_links][self]"], "https://sub.amocrm.ru")
        body = amo_hooks.encode_hook("leads", "delete", [rec], ACC)
        keys = {k for k, _ in urllib.parse.parse_qsl(body.decode())}
        self.assertEqual({k for k in keys if k.startswith("leads")},
                         {"leads[delete][0][id]", "leads[delete][0][status_id]",
                          "leads[delete][0][pipeline_id]"})

    def test_encode_other_kinds(self):
        note = {"id": 3, "entity_id": 5, "note_type": "common", "params": {"text": "Привет"},
                "created_at": 0, "updated_at": 0, "account_id": 42}
        d = dict(urllib.parse.parse_qsl(amo_hooks.encode_hook("leads", "note", [note], ACC).decode()))
        self.assertEqual(d["leads[note][0][note][text]"], "Привет")
        self.assertEqual(d["leads[note][0][note][date_create]"], "1970-01-01 03:00:00")
        self.assertEqual(d["leads[note][0][note][note_type]"], "4")
        task = {"id": 9, "entity_id": 5, "entity_type": "leads", "text": "Позвонить",
                "is_completed": False}
        d = dict(urllib.parse.parse_qsl(amo_hooks.encode_hook("tasks", "add", [task], ACC).decode()))
        self.assertEqual((d["task[add][0][id]"], d["task[add][0][element_type]"],
                          d["task[add][0][status]"]), ("9", "2", "0"))
        contact = {"id": 7, "name": "Анна", "_embedded": {"leads": [{"id": 5}, {"id": 8}]}}
        d = dict(urllib.parse.parse_qsl(amo_hooks.encode_hook("contacts", "update", [contact], ACC).decode()))
        self.assertEqual(d["contacts[update][0][linked_leads_id][8][ID]"], "8")
        self.assertEqual(d["contacts[update][0][type]"], "contact")

    def test_encode_company_as_contacts(self):
        """Companies are contacts[...] with [type]=company, as every captured hook (2016-2022)."""
        co = {"id": 11, "name": "Школа", "updated_at": 5, "account_id": 42}
        for action in ("add", "update", "delete", "restore", "responsible"):
            keys = dict(urllib.parse.parse_qsl(
                amo_hooks.encode_hook("companies", action, [co], ACC).decode()))
            self.assertFalse([k for k in keys if k.startswith("companies")], action)
            self.assertEqual(keys["contacts[%s][0][id]" % action], "11")
            self.assertEqual(keys["contacts[%s][0][type]" % action], "company")
        d = dict(urllib.parse.parse_qsl(amo_hooks.encode_hook("contacts", "delete", [co], ACC).decode()))
        self.assertEqual(d["contacts[delete][0][type]"], "contact")
        note = {"id": 3, "entity_id": 11, "note_type": "common", "params": {"text": "x"}}
        d = dict(urllib.parse.parse_qsl(amo_hooks.encode_hook("companies", "note", [note], ACC).decode()))
        self.assertEqual((d["contacts[note][0][type]"], d["contacts[note][0][note][element_type]"]),
                         ("company", "3"))
        # one body with a contact and a company: one index sequence under contacts[update]
        body = amo_hooks.encode_hooks([("contacts", "update", [dict(co, id=7)]),
                                       ("companies", "update", [co])], ACC)
        d = dict(urllib.parse.parse_qsl(body.decode()))
        self.assertEqual((d["contacts[update][0][id]"], d["contacts[update][0][type]"]), ("7", "contact"))
        self.assertEqual((d["contacts[update][1][id]"], d["contacts[update][1][type]"]), ("11", "company"))

    def test_send_hooks_and_dump(self):
        Receiver.got = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        f = Fake("--rps", "0", "--no-auth")
        try:
            url = "http://127.0.0.1:%d/hook" % srv.server_address[1]
            st, res = f.post("/_fake/send_hooks", {"url": url, "per_request": 2, "concurrency": 3,
                                                   "events": [{"entity": "leads", "action": "status", "id": 5},
                                                              {"entity": "leads", "action": "update", "id": 6},
                                                              {"entity": "contacts", "action": "update", "id": 7},
                                                              {"entity": "task", "action": "add", "id": 2},
                                                              {"entity": "leads", "action": "delete", "id": 9}]})
            self.assertEqual(st, 200, res)
            self.assertEqual((res["requests"], res["ok"]), (3, 3))
            self.assertEqual(len(Receiver.got), 3)
            keys = set()
            for ctype, body in Receiver.got:
                self.assertEqual(ctype, "application/x-www-form-urlencoded")
                keys |= {k for k, _ in urllib.parse.parse_qsl(body.decode("ascii"))}
            for k in ("leads[status][0][id]", "leads[update][0][id]", "contacts[update][0][id]",
                      "task[add][0][id]", "leads[delete][0][id]", "account[id]"):
                self.assertIn(k, keys)
        finally:
            self.assertEqual(f.stop(), 0)
            srv.shutdown()
            srv.server_close()
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, SERVER, "--dump-hooks", d], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            names = set(os.listdir(d))
            for n in ("leads_add.form", "leads_status.form", "leads_note.form", "task_add.form",
                      "contacts_update.form", "unsorted_add.form", "talk_add.form",
                      "message_add.form", "leads_delete.form"):
                self.assertIn(n, names)
                with open(os.path.join(d, n), "rb") as fh:
                    pairs = urllib.parse.parse_qsl(fh.read().decode("ascii"), strict_parsing=True)
                self.assertIn("account[subdomain]", dict(pairs))


class WebhookTests(unittest.TestCase):
    def test_subscribe_disable_reenable_and_send(self):
        """GET/POST/DELETE /api/v4/webhooks; /_fake/webhooks/disable stops deliveries to it as
        amoCRM's auto-disable does; a POST for the same destination enables it again."""
        Receiver.got = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        f = Fake("--rps", "0", "--long-lived-token", LLT)
        url = "http://127.0.0.1:%d/hooks/amo/s3cret" % srv.server_address[1]
        ev = {"events": [{"entity": "leads", "action": "update", "id": 5},
                         {"entity": "leads", "action": "status", "id": 6}]}
        try:
            self.assertEqual(f.get("/api/v4/webhooks", token=LLT)[0], 204)
            st, w = f.post("/api/v4/webhooks", {"destination": url, "settings": ["update_lead"]},
                           token=LLT)
            self.assertEqual(st, 201, w)
            doc = f.json("/api/v4/webhooks", token=LLT)
            self.assertEqual(doc["_total_items"], 1)
            got = doc["_embedded"]["webhooks"][0]
            self.assertEqual(list(got), ["id", "destination", "created_at", "updated_at", "account_id",
                                         "created_by", "sort", "disabled", "settings"])
            self.assertEqual((got["destination"], got["disabled"], got["settings"]),
                             (url, False, ["update_lead"]))
            st, res = f.post("/_fake/send_hooks", ev)
            self.assertEqual((res["requests"], res["ok"], len(Receiver.got)), (1, 1, 1))  # update only
            self.assertEqual(f.post("/_fake/webhooks/disable", {"destination": url})[1]["disabled"], 1)
            self.assertTrue(f.json("/api/v4/webhooks", token=LLT)["_embedded"]["webhooks"][0]["disabled"])
            st, res = f.post("/_fake/send_hooks", ev)
            self.assertEqual((res["requests"], res["skipped_disabled"], len(Receiver.got)), (0, 1, 1))
            f.post("/api/v4/webhooks", {"destination": url, "settings": ["update_lead", "status_lead"]},
                   token=LLT)
            again = f.json("/api/v4/webhooks", token=LLT)["_embedded"]["webhooks"]
            self.assertEqual((len(again), again[0]["id"], again[0]["disabled"]), (1, got["id"], False))
            st, res = f.post("/_fake/send_hooks", ev)
            self.assertEqual((res["requests"], res["ok"], len(Receiver.got)), (2, 2, 3))
            st, _, _ = f.req("DELETE", "/api/v4/webhooks", {"destination": url}, token=LLT)
            self.assertEqual(st, 204)
            self.assertEqual(f.get("/api/v4/webhooks", token=LLT)[0], 204)
        finally:
            self.assertEqual(f.stop(), 0)
            srv.shutdown()
            srv.server_close()


class CliTests(unittest.TestCase):
    def test_help_documents_options(self):
        out = subprocess.run([sys.executable, SERVER, "--help"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0)
        for opt in ("--port", "--scale", "--seed", "--rps", "--429-body", "--retry-after",
                    "--ban-after", "--ignore-filters", "--auth-code", "--client-id",
                    "--client-secret", "--redirect-uri", "--token-ttl", "--long-lived-token",
                    "--leads", "--contacts", "--notes", "--dump-hooks", "send-hooks"):
            self.assertIn(opt, out.stdout)
        out = subprocess.run([sys.executable, SERVER, "send-hooks", "--help"], capture_output=True,
                             text=True, timeout=30)
        for opt in ("--url", "--cafile", "--entity", "--action", "--ids", "--count",
                    "--concurrency", "--from"):
            self.assertIn(opt, out.stdout)

    def test_sigint_exits_cleanly(self):
        f = Fake()
        f.proc.send_signal(signal.SIGINT)
        self.assertEqual(f.proc.wait(5), 0)
        f.stop()


if __name__ == "__main__":
    unittest.main()
