"""The fake amoCRM speaks reality: every key, type and nesting it serves (REST answers, error
bodies, webhook bodies) is supported by real traffic or listed, with its reason, in
FAKE_ASSUMPTIONS below.

Real traffic, as kept in the repository (shapes only, our own values): real_shapes/ beside
this file (real_shapes/index.py names the source of every file). The fake runs in-process at
tiny scale; it is asked what amo-sync asks (lib/catalog_amo.c endpoints with their with=), every
page read; its webhook bodies are the ones `fake_amocrm.py --dump-hooks` writes.

    python3 -m unittest tests/fake/amocrm/test_fake_shapes.py      (from the repo root)
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "real_shapes")
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, REAL)
import fake_amocrm as F  # noqa: E402
import amo_hooks  # noqa: E402
import index as EV  # noqa: E402

# ---------------------------------------------------------------------------------------------
# THE list of what the fake serves without evidence from real traffic, and why. One entry:
# (family, path or "*", type or None = any type, reason). family: an endpoint family of
# REQUESTS ("leads", "{entity}/custom_fields", ...) or a hook kind ("hook leads[status]").
# Every entry must still match something the fake serves (stale entries fail), so this list
# is the fake's exact debt to reality.
# ---------------------------------------------------------------------------------------------
_UNSEEN = "no real response of this endpoint has been published; the shape follows amoCRM's " \
          "API documentation (docs pages and the official SDK's models)"
_WITH = "asked for with %s (amo-sync's params): amoCRM's docs describe the with= parts; " \
        "no captured response asked for them"
_NULL_ONLY = "every captured row has null here; the documented type when set (int, unix " \
             "time or id) is served for rows where it is set"
_HOOK = "no captured webhook of this entity exists; fields as amoCRM's webhook docs and the " \
        "public handlers that parse them (docs/api notes in the fake README)"
FAKE_ASSUMPTIONS = [
    # Endpoints nobody has published a response of: the whole shape is an assumption.
    ("account", "*", None, _UNSEEN),
    ("users", "*", None, _UNSEEN),
    ("roles", "*", None, _UNSEEN),
    ("leads/pipelines", "*", None, _UNSEEN + " (unpaged, with _total_items)"),
    ("leads/loss_reasons", "*", None, _UNSEEN),
    ("sources", "*", None, _UNSEEN),
    ("catalogs", "*", None, _UNSEEN),
    ("catalogs/{id}/elements", "*", None, _UNSEEN + "; paged as amocrm-api-php#528 reports"),
    ("{entity}/custom_fields/groups", "*", None, _UNSEEN),
    ("customers/statuses", "*", None, _UNSEEN),
    ("customers/segments", "*", None, _UNSEEN),
    ("customers/transactions", "*", None, _UNSEEN),
    ("customers", "*", None, _UNSEEN),
    ("companies", "*", None, _UNSEEN + " (rows as contacts' without the person fields)"),
    ("leads/unsorted", "*", None, _UNSEEN),
    ("{entity}/notes", "*", None, _UNSEEN + "; note_type strings and params per type"),
    ("talks", "*", None, _UNSEEN + "; even the list endpoint is unconfirmed"),
    ("webhooks", "*", None, _UNSEEN + ": amoCRM's webhooks API page lists id, destination, "
     "created_at, updated_at, account_id, created_by, sort, disabled (bool), settings (event "
     "codes) under _embedded.webhooks with _total_items, as the official SDK's WebhookModel "
     "reads them; amo-sync reads only destination, disabled and settings, and takes an absent "
     "disabled as enabled"),
    # Keys of evidenced endpoints that no captured answer shows.
    ("leads", "_embedded.leads[]._embedded.contacts*", None, _WITH % "contacts"),
    ("leads", "_embedded.leads[]._embedded.catalog_elements*", None, _WITH % "catalog_elements"),
    ("leads", "_embedded.leads[]._embedded.loss_reason*", None, _WITH % "loss_reason"),
    ("leads", "_embedded.leads[].is_price_modified_by_robot", None,
     _WITH % "is_price_modified_by_robot"),
    ("contacts", "_embedded.contacts[]._embedded.catalog_elements*", None,
     _WITH % "catalog_elements"),
    ("contacts", "_embedded.contacts[]._embedded.customers*", None, _WITH % "customers"),
    ("leads", "_embedded.leads[].closed_at", "int", _NULL_ONLY),
    ("leads", "_embedded.leads[].closest_task_at", "int", _NULL_ONLY),
    ("leads", "_embedded.leads[].loss_reason_id", "int", _NULL_ONLY),
    ("leads", "_embedded.leads[].source_id", "int", _NULL_ONLY),
    ("contacts", "_embedded.contacts[].closest_task_at", "int", _NULL_ONLY),
    ("leads", "_embedded.leads[]._embedded.tags[].color", None,
     "the captured tags are empty arrays and the docs example shows {id, name}; amoCRM's tags "
     "API documents color (null or a hex string), served on embedded tags too"),
    ("contacts", "_embedded.contacts[]._embedded.tags[].color", None, "as leads' embedded tags color"),
    ("{entity}/tags", "_embedded.tags[].color", None, "as leads' embedded tags color"),
    ("leads", "_embedded.leads[].custom_fields_values[].values[].value", "int",
     "date, birthday and date_time fields: a unix time (real hooks carry epochs; the docs "
     "example's date string is the one doc shape, handled too)"),
    ("contacts", "_embedded.contacts[].custom_fields_values[].values[].value", "int",
     "as leads' date fields"),
    ("leads", "_embedded.leads[].custom_fields_values[].values[].value", "bool",
     "checkbox fields: true/false per the custom fields docs"),
    ("tasks", "_embedded.tasks[].entity_id", "null", "a task linked to no entity (docs: int|null)"),
    ("tasks", "_embedded.tasks[].entity_type", "null", "as tasks' entity_id: no entity"),
    ("tasks", "_embedded.tasks[].result", "object",
     "a completed task's result {\"text\": ...}; the docs example shows [] when there is none"),
    ("tasks", "_embedded.tasks[].result.text", None, "as tasks' result object"),
    ("events", "_embedded.events[].value_after[].*", None,
     "value_after payloads other than note are guesses (docs name lead_status, "
     "responsible_user, sale_field_value, name_field_value, custom_field_value, message, "
     "task_result); crmsync stores them in raw only"),
    ("events", "_embedded.events[].value_before[]*", None,
     "as value_after; the docs example's value_before is []; crmsync reads "
     "value_before[].note.id of common_note_deleted, shaped as value_after's note"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].enums*", None,
     "select/multiselect/radiobutton fields: enums [{id, value, sort}] per the docs (the "
     "one captured field is a text field, enums null)"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].code", "str",
     "predefined fields (PHONE, EMAIL, POSITION) have a code: the contacts capture's "
     "custom_fields_values carry these field_codes"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].currency", "str",
     "monetary fields: a currency code (docs)"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].group_id", "null",
     "a field outside any group (docs: string|null)"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].search_in", None,
     "the capture is cut after chained_lists; docs list search_in next (catalog fields)"),
    ("{entity}/custom_fields", "_embedded.custom_fields[].catalog_id", None,
     "catalog custom fields (/api/v4/catalogs/{id}/custom_fields) name their catalog (docs)"),
    # Webhooks: entities and actions no captured hook shows.
    ("hook customers[*]", "*", None, _HOOK),
    ("hook customers[note]", "*", None, _HOOK),
    ("hook customers[delete]", "*", None, _HOOK),
    ("hook task[*]", "*", None, _HOOK),
    ("hook task[delete]", "*", None, _HOOK),
    ("hook catalogs[*]", "*", None, _HOOK),
    ("hook catalogs[delete]", "*", None, _HOOK),
    ("hook talk[*]", "*", None, _HOOK),
    ("hook unsorted[delete]", "*", None, _HOOK + " (only unsorted[add] was captured)"),
    ("hook unsorted[*]", "unsorted[*][][source_data]*", None,
     "sip/forms source_data (the captured item is a chat); fields per the unsorted docs"),
    ("hook unsorted[*]", "unsorted[*][][data][leads][][id]", None,
     "the lead an unsorted item made (unsorted[update]); no capture"),
    ("hook contacts[*]", "contacts[*][][created_at]", None,
     "captured contact hooks are 2016-2018; lead hooks since 2022 carry created_at/updated_at "
     "next to date_create/last_modified, assumed for contacts too"),
    ("hook contacts[*]", "contacts[*][][updated_at]", None, "as contacts' created_at"),
    ("hook contacts[*]", "contacts[*][][account_id]", None,
     "lead hooks carry account_id (2016-2022); assumed for contacts"),
    ("hook contacts[*]", "contacts[*][][old_responsible_user_id]", None,
     "UNSURE: responsible hooks with the previous responsible, as status hooks carry "
     "old_status_id; no capture shows it"),
    ("hook leads[note]", "leads[note][][note][id]", None,
     "UNSURE: the 2017 note hooks have no [note][id]; the fake sends one (crmsync fetches the "
     "note by id when there is one, and must cope without: the contract tests' case)"),
    ("hook leads[note]", "leads[note][][note][created_at]", None,
     "as the lead hooks' created_at/updated_at since 2022"),
    ("hook leads[note]", "leads[note][][note][updated_at]", None, "as the note's created_at"),
    ("hook contacts[note]", "contacts[note][][note][id]", None, "as leads[note][][note][id]"),
    ("hook contacts[note]", "contacts[note][][note][created_at]", None, "as leads[note]'s created_at"),
    ("hook contacts[note]", "contacts[note][][note][updated_at]", None, "as leads[note]'s updated_at"),
    ("hook leads[delete]", "leads[delete][][status_id]", None,
     "UNSURE, likely invented: the 2017 capture's lead delete has only [id]; the fake adds "
     "status_id and pipeline_id (crmsync needs only the id)"),
    ("hook leads[delete]", "leads[delete][][pipeline_id]", None, "as leads[delete] status_id"),
    ("hook message[*]", "message[*][][author][avatar_url]", "empty",
     "an author without an avatar: the key with an empty value (captures show it filled)"),
]

# What amo-sync requests (lib/catalog_amo.c: endpoint and params; {placeholders} resolved
# as the fake's data allow). test_requests_cover_the_catalogue keeps this in step.
REQUESTS = [
    ("account", "/api/v4/account",
     "with=amojo_id,uuid,users_groups,task_types,version,datetime_settings"),
    ("users", "/api/v4/users", "with=role,group,uuid,amojo_id,user_rank,phone_number"),
    ("roles", "/api/v4/roles", ""),
    ("leads/pipelines", "/api/v4/leads/pipelines", ""),
    ("leads/loss_reasons", "/api/v4/leads/loss_reasons", ""),
    ("sources", "/api/v4/sources", ""),
    ("catalogs", "/api/v4/catalogs", ""),
    ("catalogs/{id}/elements", "/api/v4/catalogs/1001/elements", ""),
    ("{entity}/custom_fields", "/api/v4/leads/custom_fields", ""),
    ("{entity}/custom_fields", "/api/v4/contacts/custom_fields", ""),
    ("{entity}/custom_fields", "/api/v4/companies/custom_fields", ""),
    ("{entity}/custom_fields", "/api/v4/customers/custom_fields", ""),
    ("{entity}/custom_fields", "/api/v4/customers/segments/custom_fields", ""),
    ("{entity}/custom_fields", "/api/v4/catalogs/1001/custom_fields", ""),
    ("{entity}/custom_fields/groups", "/api/v4/leads/custom_fields/groups", ""),
    ("{entity}/tags", "/api/v4/leads/tags", ""),
    ("{entity}/tags", "/api/v4/contacts/tags", ""),
    ("customers/statuses", "/api/v4/customers/statuses", ""),
    ("customers/segments", "/api/v4/customers/segments", ""),
    ("leads", "/api/v4/leads",
     "with=contacts,catalog_elements,loss_reason,source_id,is_price_modified_by_robot"),
    ("leads/unsorted", "/api/v4/leads/unsorted", ""),
    ("contacts", "/api/v4/contacts", "with=catalog_elements,customers"),
    ("companies", "/api/v4/companies", "with=contacts,leads,customers"),
    ("customers", "/api/v4/customers", "with=contacts,companies,catalog_elements,segments"),
    ("customers/transactions", "/api/v4/customers/transactions", ""),
    ("tasks", "/api/v4/tasks", ""),
    ("{entity}/notes", "/api/v4/leads/notes", ""),
    ("{entity}/notes", "/api/v4/contacts/notes", ""),
    ("{entity}/notes", "/api/v4/companies/notes", ""),
    ("{entity}/notes", "/api/v4/customers/notes", ""),
    ("talks", "/api/v4/talks", ""),
    ("events", "/api/v4/events", ""),
    # not a catalogue entity: the webhook subscription check (services/amo-sync/webhook.c)
    ("webhooks", "/api/v4/webhooks", ""),
]


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "object"


def walk(v, prefix, out):
    """(path, types) of every member below v; array elements as 'arr[]'."""
    if isinstance(v, dict):
        for k, x in v.items():
            p = f"{prefix}.{k}" if prefix else k
            out.setdefault(p, set()).add(jtype(x))
            walk(x, p, out)
    elif isinstance(v, list):
        for x in v:
            out.setdefault(prefix + "[]", set()).add(jtype(x))
            walk(x, prefix + "[]", out)


def list_key(family):
    """The _embedded key of a family's rows, as the real pages name it."""
    last = [p for p in family.split("/") if not p.startswith("{")][-1]
    return {"elements": "elements", "pipelines": "pipelines"}.get(last, last)


# Subtrees with one shape wherever they sit (amoCRM's API docs describe each once): a
# custom_fields_values array of a lead is a contact's, an _embedded.tags array or a _links
# object is the same everywhere. The real samples of any entity support them for all.
SHARED = ("custom_fields_values", "_embedded.tags", "_links")


def shared_tail(path):
    for s in SHARED:
        i = path.find(s)
        if i == 0 or i > 0 and path[i - 1] == ".":
            return path[i:]
    return None


def real_shapes():
    """family -> {path: types} from real_shapes/responses; "*shared" -> {tail: types}."""
    out = {}
    for name, family, how, _ in EV.RESPONSES:
        with open(os.path.join(REAL, "responses", name), encoding="utf-8") as f:
            doc = json.load(f)
        got = out.setdefault(family, {})
        if how == "rows":
            doc = {"_embedded": {list_key(family): doc}}
        elif how == "row":
            doc = {"_embedded": {list_key(family): [doc]}}
        walk(doc, "", got)
    shared = out.setdefault("*shared", {})
    envelope = out.setdefault("*envelope", {})     # a page's own keys: one HAL envelope
    for fam, paths in list(out.items()):
        for p, types in paths.items():
            tail = shared_tail(p)
            if tail is not None:
                shared.setdefault(tail, set()).update(types)
            if not p.startswith("_embedded.") and fam not in ("401", "*shared", "*envelope"):
                envelope.setdefault(p, set()).update(types)
    return out


def fake_app():
    args = F.build_parser().parse_args(["--scale", "tiny", "--seed", "3", "--rps", "0",
                                        "--no-auth"])
    return F.App(args)


def served(app):
    """family -> {path: types served}, reading every page of every request in REQUESTS."""
    out = {}
    base = "https://example.amocrm.ru"
    # one subscription, as amo-sync's repair makes it, so GET /api/v4/webhooks has a row
    r = app.api.handle("POST", "/api/v4/webhooks", "", base,
                       json.dumps({"destination": "https://gw.example.org:8443/hooks/amo/s",
                                   "settings": ["add_lead", "update_lead"]}).encode())
    assert r.status == 201, r.body
    for family, path, qs in REQUESTS:
        got = out.setdefault(family, {})
        for page in range(1, 1000):
            q = "&".join(x for x in (qs, "limit=10&page=%d" % page) if x)   # pages 2+ too
            r = app.api.handle("GET", path, q, base)
            if r.status == 204:
                break
            if r.status != 200:
                raise AssertionError("%s?%s -> %d %r" % (path, q, r.status, r.body[:200]))
            doc = json.loads(r.body)
            if family == "account":
                doc = {"_embedded": {"account": [doc]}}
            walk(doc, "", got)
            if "_page" not in doc:
                break
    return out


# ---- hooks ----------------------------------------------------------------------------------

_IDX = re.compile(r"\[\d+\]")
_KIND = re.compile(r"^(\w+)\[(\w+)\]")
# Actions whose rows are the entity's record (one shape): add, update, status, responsible,
# restore... pooled as entity[*]; note and delete rows have shapes of their own.
OWN_SHAPE = ("note", "delete")


def form_shape(body, out):
    """Add the key paths (indexes as []) of one webhook body to out, by kind: 'account',
    'leads[*]' (the record actions), 'leads[note]', 'leads[delete]'. Values: num/text/empty."""
    for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True):
        p = _IDX.sub("[]", k)
        m = _KIND.match(p)
        if k.startswith("account[") or m is None:
            kind = "account"
        else:
            action = m.group(2) if m.group(2) in OWN_SHAPE else "*"
            kind = "%s[%s]" % (m.group(1), action)
            p = kind + p[m.end():]
        vk = "empty" if v == "" else "num" if re.fullmatch(r"-?\d+(\.\d+)?", v) else "text"
        out.setdefault(kind, {}).setdefault(p, set()).add(vk)


def real_hooks():
    out = {}
    for name in sorted(os.listdir(os.path.join(REAL, "hooks"))):
        with open(os.path.join(REAL, "hooks", name), encoding="utf-8") as f:
            form_shape(f.read().strip(), out)
    return out


def fake_hooks(app):
    """The fake's webhook bodies, every entity x action it sends (fake_amocrm.py --dump-hooks)."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        with contextlib.redirect_stdout(io.StringIO()):
            amo_hooks.dump_samples(app, d)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                form_shape(f.read(), out)
    return out


def _covers(ap, path):
    """An assumption's path: exact, "*" (everything), or "prefix*" (a subtree)."""
    return ap == "*" or ap == path or ap.endswith("*") and path.startswith(ap[:-1])


def _match(family, path, t, used):
    hit = [i for i, (af, ap, at, _) in enumerate(FAKE_ASSUMPTIONS)
           if af == family and _covers(ap, path) and (at is None or at == t)]
    used.update(hit)
    return bool(hit)


class FakeShapeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = fake_app()
        cls.real = real_shapes()
        cls.served = served(cls.app)
        cls.real_hooks = real_hooks()
        cls.fake_hooks = fake_hooks(cls.app)

    def _compare(self, fake, real, prefix, used):
        problems = []
        for fam, paths in sorted(fake.items()):
            r = real.get(fam, {})
            for p, types in sorted(paths.items()):
                for t in sorted(types):
                    if p in r and t in r[p]:
                        continue
                    tail = shared_tail(p)
                    if tail is not None and t in real.get("*shared", {}).get(tail, ()):
                        continue
                    if t in real.get("*envelope", {}).get(p, ()) and not p.startswith("_embedded."):
                        continue
                    if _match(prefix + fam, p, t, used):
                        continue
                    why = "type %s not seen (real: %s)" % (t, sorted(r[p])) if p in r \
                        else "not in any real sample"
                    problems.append(f"{prefix}{fam} {p}: {why}")
        return problems

    def test_fake_answers_and_hooks_are_real_or_assumed(self):
        used = set()
        problems = self._compare(self.served, self.real, "", used)
        problems += self._compare(self.fake_hooks, self.real_hooks, "hook ", used)
        self.assertEqual(problems, [], "the fake serves what reality does not:\n  " +
                         "\n  ".join(problems))
        stale = ["%s %s %s" % a[:3] for i, a in enumerate(FAKE_ASSUMPTIONS) if i not in used]
        self.assertEqual(stale, [], "FAKE_ASSUMPTIONS entries the fake no longer needs")

    def test_assumptions_give_reasons(self):
        for fam, p, t, why in FAKE_ASSUMPTIONS:
            self.assertTrue(len(why) > 20, (fam, p))

    def test_error_bodies_are_what_amocrm_sends(self):
        """401: problem+json with the real keys; 403 (ban) and 429: never JSON (the 403 is
        nginx's page); a client must decide on the status (issue 10 item 7)."""
        app = self.app
        with open(os.path.join(REAL, "responses", "error_401.json"), encoding="utf-8") as f:
            real401 = json.load(f)
        app.limiter.retry_after = 1
        r = app.limiter.too_many()
        self.assertEqual(r.status, 429)
        self.assertRaises(ValueError, json.loads, r.body or b"x")
        self.assertIn(("Retry-After", "1"), r.headers)
        fake403 = F.HTML_403
        self.assertRaises(ValueError, json.loads, fake403)
        with open(os.path.join(REAL, "responses", EV.ERRORS_NOT_JSON[403][0]), "rb") as f:
            real403 = f.read()
        text = lambda b: re.sub(rb"\s+", b" ", re.sub(rb"<[^>]*>", b" ", b)).strip()  # noqa: E731
        self.assertEqual(text(fake403), text(real403))
        # the fake's 401 (a bad bearer token)
        bad = F.Auth(argparse.Namespace(client_id="c", client_secret="s", redirect_uri="r",
                                        auth_code="a", refresh_token=None, long_lived_token=[],
                                        token_ttl=60, no_auth=False), 1, "x").check("Bearer x")
        self.assertEqual(bad.status, 401)
        self.assertEqual(list(json.loads(bad.body).keys()), list(real401.keys()))

    def test_requests_cover_the_catalogue(self):
        with open(os.path.join(ROOT, "lib", "catalog_amo.c"), encoding="utf-8") as f:
            endpoints = set(re.findall(r'\.endpoint = "(/api/v4/[^"]*)"', f.read()))
        asked = {re.sub(r"/(leads|contacts|companies|customers|customers/segments)/"
                        r"(custom_fields|tags|notes)", r"/{entity_type}/\2", p) for _, p, _ in REQUESTS}
        asked = {re.sub(r"/catalogs/1001/", "/catalogs/{catalog_id}/", p) for p in asked}
        asked = {p.replace("/api/v4/{entity_type}/custom_fields/groups",
                           "/api/v4/{entity_type}/custom_fields/groups") for p in asked}
        self.assertEqual(sorted(endpoints - asked), [], "catalogue endpoints this test does not ask")


if __name__ == "__main__":
    unittest.main()
