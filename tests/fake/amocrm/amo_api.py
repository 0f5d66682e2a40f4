"""The REST v4 surface of the fake amoCRM: GET /api/v4/... answered from amo_store.

Api.handle(method, path, query, base) -> Resp. Lists are HAL (`_page`, `_links`, `_embedded`)
as application/hal+json; an empty page or a filter matching nothing is 204 with an empty body;
`_links.next` appears only when the page is full (so a last page that is exactly full points at
an empty page, like the real API). Errors are application/problem+json. PHP-style query
parameters: filter[x][]=1&filter[x][0]=1&filter[x]=1,2, filter[x][from|to], order[x]=asc|desc,
with=a,b, page (1-based), limit (clamped to the endpoint's maximum).
"""

import email.utils
import json
import re
import urllib.parse

from amo_gen import BASE
from amo_ref import ENTITY_TYPES
from amo_util import dumps, event_index

HAL = "application/hal+json"
PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
          404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Entity",
          429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

# table -> (embedded key, max limit, filterable equality fields {query name: record field})
TABLES = {
    "leads": ("leads", 250, {"pipeline_id": "pipeline_id", "status_id": "status_id",
                             "responsible_user_id": "responsible_user_id",
                             "created_by": "created_by", "updated_by": "updated_by"}),
    "contacts": ("contacts", 250, {"responsible_user_id": "responsible_user_id",
                                   "created_by": "created_by", "updated_by": "updated_by"}),
    "companies": ("companies", 250, {"responsible_user_id": "responsible_user_id",
                                     "created_by": "created_by", "updated_by": "updated_by"}),
    "customers": ("customers", 250, {"responsible_user_id": "responsible_user_id",
                                     "status_id": "status_id"}),
    "tasks": ("tasks", 250, {"entity_type": "entity_type", "entity_id": "entity_id",
                             "is_completed": "is_completed", "task_type": "task_type_id",
                             "responsible_user_id": "responsible_user_id"}),
    "events": ("events", 100, {"type": "type", "entity": "entity_type",
                               "entity_id": "entity_id", "created_by": "created_by"}),
    "unsorted": ("unsorted", 250, {"category": "category", "pipeline_id": "pipeline_id"}),
    "talks": ("talks", 250, {}),
    "transactions": ("transactions", 250, {"customer_id": "customer_id"}),
}
for _e in ENTITY_TYPES:
    TABLES[_e + "/notes"] = ("notes", 250, {"entity_id": "entity_id", "note_type": "note_type"})
# List (catalog) elements come ELEMENTS_PAGE a page whatever `limit` asks, and never with
# `_links.next` (amocrm/amocrm-api-php#528: a list of 137 elements answers 100 on page 1 and
# no next link; page 2 holds the other 37).
ELEMENTS_PAGE = 100
# lists that honour If-Modified-Since (as updated_at >= it), even with --ignore-filters
SINCE_TABLES = ("leads", "contacts", "companies", "customers", "tasks")
EVENT_ENTITY = {"leads": "lead", "contacts": "contact", "companies": "company",
                "customers": "customer", "tasks": "task", "lead": "lead", "contact": "contact",
                "company": "company", "customer": "customer", "task": "task"}
LINK_TARGETS = {"leads": ("contacts", "companies", "catalog_elements"),
                "contacts": ("companies", "customers", "catalog_elements"),
                "companies": ("contacts", "leads", "customers"),
                "customers": ("contacts", "companies", "catalog_elements")}


class Resp:
    __slots__ = ("status", "ctype", "body", "headers", "meta")

    def __init__(self, status, body=b"", ctype=HAL, headers=None, meta=None):
        self.status, self.body, self.ctype = status, body, ctype
        self.headers = headers or []
        self.meta = meta or {}


def problem(status, detail, extra=None):
    doc = {"title": TITLES.get(status, "Error"), "type": "https://httpstatus.es/%d" % status,
           "status": status, "detail": detail}
    if extra:
        doc.update(extra)
    return Resp(status, dumps(doc).encode(), PROBLEM)


class Query:
    """A parsed PHP-style query string."""

    def __init__(self, qs):
        self.pairs = urllib.parse.parse_qsl(qs, keep_blank_values=True)
        self.params, self.filters, self.order, self.with_ = {}, {}, None, set()
        for k, v in self.pairs:
            m = _KEY.match(k)
            if not m:
                continue
            name, parts = m.group(1), _PART.findall(m.group(2))
            if name == "filter" and parts:
                f = self.filters.setdefault(parts[0], {"list": [], "from": None, "to": None,
                                                       "sub": {}})
                rest = parts[1:]
                if not rest:
                    f["list"].extend(x for x in v.split(",") if x != "")
                elif rest[0] in ("from", "to") and len(rest) == 1:
                    f[rest[0]] = v
                elif len(rest) == 1:              # [] or [0]
                    f["list"].append(v)
                else:                             # filter[statuses][0][pipeline_id]
                    f["sub"].setdefault(rest[0], {})[rest[1]] = v
            elif name == "order" and parts and self.order is None:
                self.order = (parts[0], "desc" if v.lower() == "desc" else "asc")
            elif name == "with":
                self.with_.update(x.strip() for x in v.split(",") if x.strip())
            else:
                self.params[name] = v

    def int_param(self, name, default):
        try:
            return int(self.params.get(name, default))
        except ValueError:
            return default

    def drop_filters(self):
        self.filters = {}


def _ints(values):
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            pass
    return out


def _int_or_none(v):
    try:
        return None if v in (None, "") else int(v)
    except ValueError:
        return None


class Api:
    def __init__(self, store, ignore_filters=False, row_cache=20000):
        self.store, self.ref = store, store.ref
        self.ignore_filters = ignore_filters
        store.rows_max = row_cache
        self.webhooks = []
        self.next_webhook_id = 0

    # ---- helpers -----------------------------------------------------------------------
    def _links(self, base, path, q, page, limit, full, page_count=None):
        def href(p):
            pairs = [(k, v) for k, v in q.pairs if k not in ("page", "limit")]
            pairs += [("limit", str(limit)), ("page", str(p))]
            return {"href": "%s%s?%s" % (base, path, urllib.parse.urlencode(pairs, safe=","))}
        links = {"self": href(page)}
        if full:
            links["next"] = href(page + 1)
        if page_count:
            links["last"] = href(page_count)
        return links

    def _paging(self, q, max_limit, default=50):
        page = max(1, q.int_param("page", 1))
        limit = q.int_param("limit", default)
        if limit < 1:
            limit = default
        return page, min(limit, max_limit)

    def _body(self, base, head, key, rows_json, tail=None):
        doc = dumps(head)[:-1]
        out = '%s,"_embedded":{"%s":[%s]}%s}' % (doc, key, ",".join(rows_json),
                                                 (tail or ""))
        return out.replace(BASE, base).encode()

    def _row(self, table, key, with_key, with_set):
        return self.store.row_json(table, key, with_key, with_set)

    def list_small(self, base, path, q, key, items, max_limit=250, totals=False, default=50):
        """Page an in-memory list (reference data)."""
        if not self.ignore_filters:
            f = q.filters.get("id")
            if f and f["list"]:
                ids = set(_ints(f["list"]))
                items = [x for x in items if x.get("id") in ids]
            f = q.filters.get("name")
            if f and f["list"]:
                items = [x for x in items if x.get("name") in f["list"]]
        qq = q.params.get("query")
        if qq:
            items = [x for x in items if qq.lower() in str(x.get("name", "")).lower()]
        page, limit = self._paging(q, max_limit, default)
        rows = items[(page - 1) * limit: page * limit]
        if not rows:
            return Resp(204)
        head = {"_page": page}
        pc = None
        if totals:
            pc = max(1, -(-len(items) // limit))
            head = {"_total_items": len(items), "_page": page, "_page_count": pc}
        head["_links"] = self._links(base, path, q, page, limit, len(rows) == limit, pc)
        return Resp(200, self._body(base, head, key, [dumps(r) for r in rows]))

    def whole(self, base, path, key, items, extra=None):
        """An unpaged list with _total_items (pipelines, statuses)."""
        if not items:
            return Resp(204)
        head = {"_total_items": len(items), "_links": {"self": {"href": base + path}}}
        if extra:
            head.update(extra)
        return Resp(200, self._body(base, head, key, [dumps(r) for r in items]))

    def one(self, base, obj):
        return Resp(200, dumps(obj).replace(BASE, base).encode())

    # ---- big tables ----------------------------------------------------------------------
    def list_table(self, base, path, q, tname, with_set=None):
        st = self.store
        table = st.tables[tname]
        emb_key, max_limit, eq_fields = TABLES.get(tname, ("elements", 250, {}))
        if with_set is None:
            with_set = q.with_
        meta = {"entity": tname}
        ids = ranges = None
        eq, ck, match = {}, [], None
        filters = {} if self.ignore_filters else q.filters
        for fname, f in sorted(filters.items()):
            if fname in ("id", "uid"):
                vals = f["list"]
                if tname == "events":
                    keys = [event_index(v) for v in vals]
                    keys = [k for k in keys if k is not None]
                elif tname == "unsorted":
                    keys = []
                    for v in vals:
                        try:
                            keys.append(int(v[32:], 16) if len(v) == 40 else -1)
                        except ValueError:
                            pass
                else:
                    keys = _ints(vals)
                meta["filter_ids"] = vals
                ids = set(keys) if ids is None else ids & set(keys)
                ck.append(("id", tuple(sorted(ids))))
            elif fname in ("updated_at", "created_at"):
                lo, hi = _int_or_none(f["from"]), _int_or_none(f["to"])
                if f["list"]:
                    if tname == "events" and fname == "created_at" and len(f["list"]) >= 2:
                        lo, hi = _int_or_none(f["list"][0]), _int_or_none(f["list"][1])
                    elif lo is None:
                        lo = _int_or_none(f["list"][0])
                ranges = ranges or {}
                ranges[fname] = (lo, hi)
                ck.append((fname, lo, hi))
            elif fname == "statuses" and tname == "leads" and f["sub"]:
                pairs = set()
                for sub in f["sub"].values():
                    pairs.add((_int_or_none(sub.get("pipeline_id")), _int_or_none(sub.get("status_id"))))
                match = lambda r, p=pairs: (r["pipeline_id"], r["status_id"]) in p or \
                    (None, r["status_id"]) in p
                ck.append(("statuses", tuple(sorted(pairs, key=str))))
            elif fname in eq_fields and f["list"]:
                vals = set(f["list"])
                if tname == "events" and fname == "entity":
                    vals = {EVENT_ENTITY.get(v, v) for v in vals}
                if fname == "is_completed":
                    vals = {"1" if v in ("1", "true") else "0" for v in vals}
                eq[eq_fields[fname]] = vals
                ck.append((fname, tuple(sorted(vals))))
        since = getattr(q, "since", None)
        if since is not None and tname in SINCE_TABLES:
            lo, hi = (ranges or {}).get("updated_at", (None, None))
            ranges = dict(ranges or {}, updated_at=(max(lo or since, since), hi))
            ck.append(("since", since))
        qq = q.params.get("query")
        if qq and match is None:
            low = qq.lower()
            match = lambda r: low in str(r.get("name", "")).lower()
            ck.append(("query", low))
        order = q.order
        if order and order[0] not in ("id", "updated_at", "created_at"):
            order = None
        keys = st.cached_select(table, (tuple(ck), order), ids=ids, ranges=ranges, eq=eq,
                                order=order, match=match)
        default = 100 if tname == "events" else 50
        page, limit = self._paging(q, max_limit, default)
        if tname.startswith("catalog:"):
            limit = ELEMENTS_PAGE       # whatever was asked (#528)
        meta["page"], meta["limit"] = page, limit
        page_keys = keys[(page - 1) * limit: page * limit]
        if not page_keys:
            return Resp(204, meta=meta)
        with_key = tuple(sorted(with_set))
        rows = [self._row(table, k, with_key, with_set) for k in page_keys]
        full = len(rows) == limit and not tname.startswith("catalog:")
        head = {"_page": page, "_links": self._links(base, path, q, page, limit, full)}
        return Resp(200, self._body(base, head, emb_key, [r for r in rows if r]), meta=meta)

    def get_one(self, base, tname, key, q):
        table = self.store.tables[tname]
        rec = table.get(key)
        if rec is None:
            return Resp(204)
        return self.one(base, self.store.view(table, rec, q.with_))

    # ---- links -------------------------------------------------------------------------
    def links(self, base, path, q, ent):
        st = self.store
        table = st.tables[ent]
        f = None if self.ignore_filters else q.filters.get("entity_id")
        if f and f["list"]:
            ids = [k for k in sorted(set(_ints(f["list"]))) if table.live(k)]
        else:
            ids = st.cached_select(table, ((), None))
        targets = LINK_TARGETS[ent]
        tf = None if self.ignore_filters else q.filters.get("to_entity_type")
        if tf and tf["list"]:
            targets = tuple(t for t in targets if t in tf["list"])
        out = []
        for k in ids:
            rec = st.view(table, table.get(k), set(targets))
            emb = rec.get("_embedded", {})
            for t in targets:
                for x in emb.get(t, []):
                    md = None
                    if t == "contacts" and ent == "leads":
                        md = {"main_contact": bool(x.get("is_main")), "updated_by": 0}
                    elif t == "catalog_elements":
                        md = dict(x.get("metadata") or {})
                    out.append({"entity_id": k, "entity_type": ent, "to_entity_id": x["id"],
                                "to_entity_type": t, "metadata": md})
        page, limit = self._paging(q, 250, 250)
        rows = out[(page - 1) * limit: page * limit]
        if not rows:
            return Resp(204, meta={"entity": ent + "/links"})
        head = {"_total_items": len(out), "_page": page,
                "_links": self._links(base, path, q, page, limit, len(rows) == limit)}
        return Resp(200, self._body(base, head, "links", [dumps(r) for r in rows]),
                    meta={"entity": ent + "/links"})

    # ---- dispatch ------------------------------------------------------------------------
    def handle(self, method, path, qs, base, body=None, if_modified_since=None):
        q = Query(qs)
        q.since = None
        if if_modified_since:
            try:
                q.since = int(email.utils.parsedate_to_datetime(if_modified_since).timestamp())
            except (TypeError, ValueError, IndexError):
                q.since = None
        parts = [p for p in path.split("/") if p][2:]     # after api/v4
        with self.store.lock:
            if method == "GET":
                return self._get(base, path, q, parts)
            if parts == ["webhooks"]:
                return self._webhooks(method, base, body)
        return problem(405, "Method not allowed in the fake (read-only API)")

    def _get(self, base, path, q, p):
        ref, st = self.ref, self.store
        n = len(p)
        if not p:
            return problem(404, "Not found")
        head = p[0]
        if p == ["account"]:
            return self.one(base, self._account(q.with_))
        if head == "users":
            if n == 1:
                return self.list_small(base, path, q, "users", [self._user(u, q.with_) for u in ref.users],
                                       totals=True)
            return self._by_id(base, ref.users, p[1], lambda u: self._user(u, q.with_))
        if head == "roles":
            roles = [dict(r, _links={"self": {"href": "%s/api/v4/roles/%d" % (BASE, r["id"])}}) for r in ref.roles]
            if n == 1:
                return self.list_small(base, path, q, "roles", roles, totals=True)
            return self._by_id(base, roles, p[1])
        if head == "sources" and n == 1:
            return self.list_small(base, path, q, "sources", ref.sources)
        if head == "catalogs":
            if n == 1:
                return self.list_small(base, path, q, "catalogs", ref.catalogs)
            cat = _int_or_none(p[1])
            tname = "catalog:%s" % cat
            if tname not in st.tables:
                return problem(404, "Catalog not found")
            if n == 2:
                return self._by_id(base, ref.catalogs, p[1])
            if p[2] == "elements":
                if n == 3:
                    return self.list_table(base, path, q, tname)
                return self.get_one(base, tname, _int_or_none(p[3]) or 0, q)
            if p[2] == "custom_fields" and n == 3:
                return self.list_small(base, path, q, "custom_fields", self._fields("catalog:%d" % cat),
                                       max_limit=50, totals=True)
            return problem(404, "Not found")
        if head == "events":
            if n == 1:
                return self.list_table(base, path, q, "events")
            if p[1] == "types":
                return self.list_small(base, path, q, "events_types", ref.event_types, max_limit=250,
                                       default=250)
            k = event_index(p[1])
            return self.get_one(base, "events", k, q) if k else Resp(204)
        if head == "tasks":
            return self.list_table(base, path, q, "tasks") if n == 1 else \
                self.get_one(base, "tasks", _int_or_none(p[1]) or 0, q)
        if head == "talks":
            return self.list_table(base, path, q, "talks") if n == 1 else \
                self.get_one(base, "talks", _int_or_none(p[1]) or 0, q)
        if head == "webhooks" and n == 1:
            return self._webhooks_list(base, path, q)
        if head == "leads" and n >= 2 and p[1] in ("pipelines", "loss_reasons", "unsorted"):
            return self._leads_sub(base, path, q, p)
        if head == "customers" and n >= 2 and p[1] in ("statuses", "segments", "transactions"):
            return self._customers_sub(base, path, q, p)
        if head in ENTITY_TYPES:
            return self._entity(base, path, q, p)
        return problem(404, "Not found")

    def _entity(self, base, path, q, p):
        ent, n = p[0], len(p)
        if n == 1:
            return self.list_table(base, path, q, ent)
        sub = p[1]
        if sub == "custom_fields":
            if n == 2:
                return self.list_small(base, path, q, "custom_fields", self._fields(ent),
                                       max_limit=50, totals=True)
            if p[2] == "groups":
                return self.list_small(base, path, q, "custom_field_groups",
                                       self.ref.field_groups.get(ent, []), totals=True)
            return self._by_id(base, self._fields(ent), p[2])
        if sub == "tags" and n == 2:
            return self.list_small(base, path, q, "tags", self.ref.tags[ent])
        if sub == "links" and n == 2:
            return self.links(base, path, q, ent)
        if sub == "notes":
            if n == 2:
                return self.list_table(base, path, q, ent + "/notes")
            return self.get_one(base, ent + "/notes", _int_or_none(p[2]) or 0, q)
        key = _int_or_none(sub)
        if key is None:
            return problem(404, "Not found")
        if n == 2:
            return self.get_one(base, ent, key, q)
        if p[2] == "notes" and n == 3:
            q.filters = dict(q.filters, entity_id={"list": [str(key)], "from": None, "to": None,
                                                    "sub": {}})
            saved, self.ignore_filters = self.ignore_filters, False
            try:
                return self.list_table(base, path, q, ent + "/notes")
            finally:
                self.ignore_filters = saved
        if p[2] == "links" and n == 3:
            q.filters = dict(q.filters, entity_id={"list": [str(key)], "from": None, "to": None,
                                                    "sub": {}})
            return self.links(base, path, q, ent)
        if p[2] == "transactions" and ent == "customers":
            q.filters = dict(q.filters, customer_id={"list": [str(key)], "from": None, "to": None,
                                                      "sub": {}})
            return self.list_table(base, path, q, "transactions")
        return problem(404, "Not found")

    def _leads_sub(self, base, path, q, p):
        ref, n = self.ref, len(p)
        if p[1] == "pipelines":
            if n == 2:
                return self.whole(base, path, "pipelines", ref.pipelines)
            pipe = ref.pipeline_by_id.get(_int_or_none(p[2]))
            if pipe is None:
                return problem(404, "Pipeline not found")
            if n == 3:
                return self.one(base, pipe)
            if p[3] == "statuses":
                sts = pipe["_embedded"]["statuses"]
                if n == 4:
                    return self.whole(base, path, "statuses", sts)
                return self._by_id(base, sts, p[4])
            return problem(404, "Not found")
        if p[1] == "loss_reasons":
            return self.list_small(base, path, q, "loss_reasons", ref.loss_reasons) if n == 2 \
                else self._by_id(base, ref.loss_reasons, p[2])
        # unsorted
        if n == 2:
            return self.list_table(base, path, q, "unsorted")
        if p[2] == "summary":
            t = self.store.tables["unsorted"]
            keys = t.select()
            cats = {"sip": 0, "mail": 0, "forms": 0, "chats": 0}
            for k in keys:
                cats[t.fast_value("category", k)] += 1
            return self.one(base, {"total": len(keys), "accepted": 0, "declined": 0,
                                   "average_sort_time": 0,
                                   "categories": {c: {"total": v} for c, v in cats.items()}})
        try:
            key = int(p[2][32:], 16) if len(p[2]) == 40 else 0
        except ValueError:
            key = 0
        return self.get_one(base, "unsorted", key, q)

    def _customers_sub(self, base, path, q, p):
        ref, n = self.ref, len(p)
        if p[1] == "statuses":
            return self.list_small(base, path, q, "statuses", ref.customer_statuses) if n == 2 \
                else self._by_id(base, ref.customer_statuses, p[2])
        if p[1] == "segments":
            if n == 2:
                return self.list_small(base, path, q, "segments", ref.segments)
            if p[2] == "custom_fields":
                return self.list_small(base, path, q, "custom_fields",
                                       self._fields("customers/segments"), max_limit=50, totals=True)
            return self._by_id(base, ref.segments, p[2])
        if n == 2:
            return self.list_table(base, path, q, "transactions")
        return self.get_one(base, "transactions", _int_or_none(p[2]) or 0, q)

    def _by_id(self, base, items, sid, conv=None):
        k = _int_or_none(sid)
        for x in items:
            if x.get("id") == k:
                return self.one(base, conv(x) if conv else x)
        return Resp(204)

    def _fields(self, ent):
        out = []
        for f in self.ref.fields.get(ent, []):
            path = "catalogs/%d" % f["catalog_id"] if "catalog_id" in f else ent
            out.append(dict(f, _links={"self": {"href": "%s/api/v4/%s/custom_fields/%d" % (BASE, path, f["id"])}}))
        return out

    def _account(self, with_set):
        ref = self.ref
        acc = dict(ref.account)
        for f in ("amojo_id", "uuid", "version"):
            if f not in with_set:
                acc.pop(f, None)
        emb = {}
        if "users_groups" in with_set:
            emb["users_groups"] = ref.user_groups
        if "task_types" in with_set:
            emb["task_types"] = ref.task_types
        if "datetime_settings" in with_set:
            emb["datetime_settings"] = ref.datetime_settings
        if "amojo_rights" in with_set:
            emb["amojo_rights"] = {"can_direct": True, "can_create_groups": True}
        if "entity_names" in with_set:
            emb["entity_names"] = {"leads": {"ru": {"gender": "f", "plural_form": {
                "dative": "сделкам", "default": "сделки", "genitive": "сделок",
                "accusative": "сделки", "instrumental": "сделками", "prepositional": "сделках"}}}}
        if "is_api_filter_enabled" in with_set:
            acc["is_api_filter_enabled"] = not self.ignore_filters
        if "drive_url" in with_set:
            acc["drive_url"] = "https://drive-b.amocrm.ru"
        acc["_links"] = {"self": {"href": BASE + "/api/v4/account"}}
        acc["_embedded"] = emb
        return acc

    def _user(self, u, with_set):
        out = dict(u)
        for f in ("uuid", "amojo_id", "user_rank", "phone_number"):
            if f not in with_set:
                out.pop(f, None)
        emb = {}
        if "role" in with_set:
            emb["roles"] = u["_embedded"]["roles"]
        if "group" in with_set:
            emb["groups"] = u["_embedded"]["groups"]
        out["_embedded"] = emb
        out["_links"] = {"self": {"href": "%s/api/v4/users/%d" % (BASE, u["id"])}}
        return out

    def _webhooks_list(self, base, path, q):
        """GET /api/v4/webhooks: unpaged, with _total_items; filter[destination] exact (docs)."""
        items = self.webhooks
        f = q.filters.get("destination")
        if f and f["list"]:
            items = [w for w in items if w["destination"] in f["list"]]
        return self.whole(base, path, "webhooks", items)

    def _webhooks(self, method, base, body):
        """POST {destination, settings[, sort]} subscribes; a destination is subscribed once, so
        a POST for a known one replaces its settings and enables it again (UNSURE: amoCRM
        documents the update of settings; that it also clears "disabled" is assumed, and
        amo-sync checks the result). DELETE {destination} unsubscribes."""
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return problem(400, "Body is not JSON")
        dest = doc.get("destination")
        if not dest or not isinstance(dest, str):
            return problem(400, "destination is required")
        old = next((w for w in self.webhooks if w["destination"] == dest), None)
        if method == "DELETE":
            self.webhooks = [w for w in self.webhooks if w is not old]
            return Resp(204)
        settings = doc.get("settings", [])
        if not isinstance(settings, list) or not all(isinstance(x, str) for x in settings):
            return problem(400, "settings must be a list of event codes")
        st = self.store
        if old is None:
            self.next_webhook_id += 1
            old = {"id": self.next_webhook_id, "destination": dest, "created_at": st.clock,
                   "updated_at": st.clock, "account_id": self.ref.account_id, "created_by": 0,
                   "sort": 1, "disabled": False, "settings": []}
            self.webhooks.append(old)
        old.update(updated_at=st.clock, disabled=False, settings=list(settings),
                   sort=doc.get("sort", old["sort"]))
        return Resp(201, dumps(old).encode())

    def webhook_disable(self, dest=None):
        """What amoCRM does after failed deliveries (control API); the ones disabled."""
        out = []
        for w in self.webhooks:
            if dest is None or w["destination"] == dest:
                w["disabled"] = True
                out.append(w["destination"])
        return out
