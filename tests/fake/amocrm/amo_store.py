"""Live state of the fake amoCRM: generated base rows plus an overlay of changes.

A Table serves the rows of one Spec (amo_gen): base rows are rebuilt on demand from their key;
edited and added rows live in `over`, deleted keys in `deleted`. select() answers filters and
ordering with lazily built per-table arrays (updated_at, created_at, keys sorted by updated_at)
and caches the resulting key lists until the next change, so paging a 50,000-row table costs
one slice per page. The Store owns every table, the strictly increasing fake clock, the
mutation ops of POST /_fake/mutate and the events they leave behind. One lock guards it all.
"""

import bisect
import itertools
import json
import threading
import time
from array import array

from amo_gen import BASE, SINGULAR
from amo_ref import LOST, WON
from amo_util import dumps

# entity names accepted by /_fake/* -> table name
ALIASES = {"lead": "leads", "contact": "contacts", "company": "companies",
           "customer": "customers", "task": "tasks", "note": "leads/notes",
           "notes": "leads/notes", "event": "events", "talk": "talks",
           "transaction": "transactions", "customers/transactions": "transactions",
           "leads/unsorted": "unsorted"}
for _e in ("leads", "contacts", "companies", "customers"):
    ALIASES[_e + "_notes"] = _e + "/notes"

# which `_embedded` parts a list shows without / only with `with=`
EMBED_ALWAYS = {"leads": ("tags", "companies"), "contacts": ("tags", "companies"),
                "companies": ("tags",), "customers": ("tags", "segments")}
EMBED_WITH = {"leads": ("contacts", "catalog_elements", "loss_reason", "source"),
              "contacts": ("leads", "customers", "catalog_elements"),
              "companies": ("contacts", "leads", "customers", "catalog_elements"),
              "customers": ("contacts", "companies", "catalog_elements")}
FIELDS_WITH = {"leads": ("is_price_modified_by_robot", "source_id")}
REF_TABLE = {"contacts": "contacts", "companies": "companies", "leads": "leads",
             "customers": "customers"}
DELETE_EVENT = {"leads": "lead_deleted", "contacts": "contact_deleted",
                "companies": "company_deleted", "customers": "customer_deleted",
                "tasks": "task_deleted"}
ADD_EVENT = {"leads": "lead_added", "contacts": "contact_added", "companies": "company_added",
             "customers": "customer_added", "tasks": "task_added"}


class OpError(Exception):
    pass


def _copy(rec):
    return json.loads(json.dumps(rec))


class Table:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.n = spec.n
        self.base = spec.id_base
        self.over = {}          # key -> full record (edited or added)
        self.deleted = set()
        self.graveyard = {}     # key -> record at deletion (for delete hooks)
        self.prev_status = {}   # key -> (status_id, pipeline_id) before the last move
        self.next_key = self.base + self.n + 1
        self._cre = self._upd = self._by_upd = None
        self._arrays_lock = threading.Lock()

    # ---- rows ------------------------------------------------------------------------------
    def is_base(self, key):
        return self.base < key <= self.base + self.n

    def live(self, key):
        return key not in self.deleted and (key in self.over or self.is_base(key))

    def get(self, key):
        """The full record of a live row, or None. The caller must not modify it."""
        if key in self.deleted:
            return None
        rec = self.over.get(key)
        if rec is not None:
            return rec
        if self.is_base(key):
            return self.spec.gen(key)
        return None

    def count(self):
        return self.n - sum(1 for k in self.deleted if self.is_base(k)) + \
            sum(1 for k in self.over if not self.is_base(k))

    def ts(self, key):
        rec = self.over.get(key)
        if rec is not None:
            return rec.get("created_at") or 0, rec.get("updated_at") or rec.get("created_at") or 0
        return self.spec.times(key)

    # ---- lazily built per-table arrays (base rows only; safe to build from any thread) ----
    def arrays(self):
        if self._by_upd is None:
            with self._arrays_lock:
                if self._by_upd is None:
                    times = self.spec.times
                    base = self.base
                    cre, upd = array("q"), array("q")
                    for k in range(base + 1, base + self.n + 1):
                        c, u = times(k)
                        cre.append(c)
                        upd.append(u)
                    by = array("q", sorted(range(self.n), key=upd.__getitem__))
                    self._cre, self._upd = cre, upd
                    self._by_upd = by
        return self._cre, self._upd, self._by_upd

    def fast_value(self, field, key, rec=None):
        """A field of a row for filtering; base rows use the cheap per-field function."""
        if rec is None and key not in self.over:
            f = self.spec.fast.get(field)
            if f is not None and self.is_base(key):
                return f(key)
            rec = self.get(key)
        if rec is None:
            rec = self.over.get(key) or {}
        return rec.get(field)

    # ---- queries -----------------------------------------------------------------------
    def select(self, ids=None, ranges=None, eq=None, order=None, match=None):
        """Keys of the live rows that pass every filter, in order.

        ids: iterable of keys or None; ranges: {"updated_at"|"created_at": (lo, hi)} with None
        for an open end; eq: {field: set of accepted str values}; order: (field, "asc"|"desc")
        with field id|created_at|updated_at; match: optional predicate on the full record.
        """
        ranges = ranges or {}
        field, direction = order or self.spec.default_order
        if field not in ("id", "created_at", "updated_at"):
            field = "id"
        if field == "created_at":
            # created_at rises with the key for base rows, and rows added later get later
            # keys and times, so created_at order is key order (ties broken by key).
            field = "id"
        ulo, uhi = ranges.get("updated_at", (None, None))
        clo, chi = ranges.get("created_at", (None, None))
        has_u = ulo is not None or uhi is not None
        has_c = clo is not None or chi is not None
        base, n = self.base, self.n
        sorted_by = "id"
        if ids is not None:
            keys = sorted({k for k in ids if self.live(k)})
            keys = [k for k in keys if _in(self.ts(k), clo, chi, ulo, uhi)]
        else:
            if field == "updated_at":
                cre, upd, by_upd = self.arrays()
                lo_i, hi_i = 0, n
                if has_u:
                    vals = _Proj(upd, by_upd)
                    lo_i = 0 if ulo is None else bisect.bisect_left(vals, ulo)
                    hi_i = n if uhi is None else bisect.bisect_right(vals, uhi)
                keys = [base + 1 + by_upd[j] for j in range(lo_i, hi_i)]
                if has_c:
                    keys = [k for k in keys if _rng(cre[k - base - 1], clo, chi)]
                sorted_by = "updated_at"
            elif has_u or has_c:
                cre, upd, _ = self.arrays()
                lo_i, hi_i = 0, n
                if clo is not None:
                    lo_i = bisect.bisect_left(cre, clo)
                if chi is not None:
                    hi_i = bisect.bisect_right(cre, chi)
                keys = range(base + 1 + lo_i, base + 1 + hi_i)
                if has_u:
                    keys = [k for k in keys if _rng(upd[k - base - 1], ulo, uhi)]
            else:
                keys = range(base + 1, base + n + 1)       # no arrays needed
            if self.deleted or self.over:
                keys = [k for k in keys if k not in self.deleted and k not in self.over]
                extra = [k for k in self.over if _in(self.ts(k), clo, chi, ulo, uhi)]
                if sorted_by == "updated_at":
                    extra.sort(key=lambda k: (self.ts(k)[1], k))
                    keys = _merge(keys, extra, lambda k: self.ts(k)[1])
                else:
                    keys = sorted(keys + extra)
        for f, accepted in (eq or {}).items():
            keys = [k for k in keys if _norm(self.fast_value(f, k)) in accepted]
        if match is not None:
            keys = [k for k in keys if match(self.get(k))]
        if field == "updated_at" and sorted_by != "updated_at":
            keys = sorted(keys, key=lambda k: (self.ts(k)[1], k))
        if direction == "desc":
            keys = keys[::-1]
        return keys


class _Proj:
    """upd values in by_upd order, as a sequence bisect can search."""
    __slots__ = ("upd", "by")

    def __init__(self, upd, by):
        self.upd, self.by = upd, by

    def __len__(self):
        return len(self.by)

    def __getitem__(self, j):
        return self.upd[self.by[j]]


def _rng(v, lo, hi):
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _in(ts, clo, chi, ulo, uhi):
    return _rng(ts[0], clo, chi) and _rng(ts[1], ulo, uhi)


def _norm(v):
    if v is True:
        return "1"
    if v is False:
        return "0"
    return "" if v is None else str(v)


def _merge(a, b, keyf):
    """Merge two lists sorted by keyf (b is small)."""
    if not b:
        return a
    out, j = [], 0
    for k in a:
        kv = keyf(k)
        while j < len(b) and (keyf(b[j]), b[j]) < (kv, k):
            out.append(b[j])
            j += 1
        out.append(k)
    out.extend(b[j:])
    return out


class Store:
    def __init__(self, ref, gen, real_clock=False):
        self.ref, self.gen = ref, gen
        self.lock = threading.RLock()
        self.tables = {name: Table(spec) for name, spec in gen.spec_list().items()}
        self.version = 0
        self.clock = ref.now
        self.real_clock = real_clock
        self._cache = {}
        self.warmed = 0             # 1 once warm() has built every table's arrays
        self.rows = {}              # (table, key, with) -> serialised row, FIFO-bounded
        self.rows_max = 20000

    # ---- names, clock ------------------------------------------------------------------
    def table(self, entity):
        name = ALIASES.get(entity, entity)
        if name.startswith("catalogs/") and name.endswith("/elements"):
            name = "catalog:" + name.split("/")[1]
        t = self.tables.get(name)
        if t is None:
            raise OpError("unknown entity %r" % entity)
        return t

    def tick(self):
        """The next fake-clock second: strictly above every timestamp handed out so far."""
        nxt = self.clock + 1
        if self.real_clock:
            nxt = max(nxt, int(time.time()))
        self.clock = nxt
        return nxt

    def changed(self):
        self.version += 1
        self._cache.clear()

    def cached_select(self, table, cache_key, **kw):
        ck = (table.name, cache_key)
        keys = self._cache.get(ck)
        if keys is None:
            keys = table.select(**kw)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[ck] = keys
        return keys

    def warm(self):
        """Build the per-table arrays of the big tables (run in a background thread)."""
        for t in sorted(self.tables.values(), key=lambda t: t.n):
            t.arrays()
        self.warmed = 1

    # ---- views ---------------------------------------------------------------------------
    def view(self, table, rec, with_set):
        """The record as a list returns it for `with=with_set` (shallow copy when trimmed)."""
        name = table.name
        if name not in EMBED_ALWAYS:
            return rec
        out = dict(rec)
        for f in FIELDS_WITH.get(name, ()):
            if f not in with_set:
                out.pop(f, None)
        emb = rec.get("_embedded") or {}
        keep = {}
        any_deleted = self.any_ref_deleted()
        for part in EMBED_ALWAYS[name] + tuple(p for p in EMBED_WITH[name] if p in with_set):
            if part not in emb:
                continue
            v = emb[part]
            if any_deleted and part in REF_TABLE and isinstance(v, list):
                t = self.tables[REF_TABLE[part]]
                if t.deleted:
                    v = [x for x in v if x.get("id") not in t.deleted]
            keep[part] = v
        out["_embedded"] = keep
        return out

    def row_json(self, table, key, with_key, with_set):
        """The row as list JSON (BASE hrefs), cached; None if it is not live."""
        rk = (table.name, key)
        variants = self.rows.get(rk)
        s = variants.get(with_key) if variants else None
        if s is None:
            text = table.spec.text
            if (text is not None and table.is_base(key) and key not in table.over
                    and key not in table.deleted and not self.any_ref_deleted()):
                s = text(key, with_set)         # fast path: no dict, no json.dumps
            else:
                rec = table.get(key)
                if rec is None:
                    return None
                s = dumps(self.view(table, rec, with_set))
            if self.rows_max:
                rows = self.rows
                if variants is None:
                    if len(rows) >= self.rows_max:      # FIFO: drop the oldest tenth
                        for old in list(itertools.islice(rows, self.rows_max // 10 + 1)):
                            del rows[old]
                    variants = rows[rk] = {}
                variants[with_key] = s
        return s

    def any_ref_deleted(self):
        t = self.tables
        return bool(t["leads"].deleted or t["contacts"].deleted or t["companies"].deleted
                    or t["customers"].deleted)

    def forget(self, table, key):
        """Drop the cached JSON of one row (every with= variant)."""
        self.rows.pop((table.name, key), None)

    def record(self, entity, key, with_set=frozenset()):
        t = self.table(entity)
        rec = t.get(key)
        return None if rec is None else self.view(t, rec, with_set)

    # ---- events left by changes ------------------------------------------------------------
    def add_event(self, typ, entity_type, entity_id, before=None, after=None, at=None):
        from amo_util import event_id
        t = self.tables["events"]
        key = t.next_key
        t.next_key += 1
        at = at or self.tick()
        eid = event_id(self.gen.salt["events"], key, at)
        plural = {"lead": "leads", "contact": "contacts", "company": "companies",
                  "customer": "customers", "task": "tasks"}.get(entity_type, entity_type)
        t.over[key] = {
            "id": eid, "type": typ, "entity_id": entity_id, "entity_type": entity_type,
            "created_by": 0, "created_at": at,
            "value_after": after or [], "value_before": before or [],
            "account_id": self.ref.account_id,
            "_links": {"self": {"href": "%s/api/v4/events/%s" % (BASE, eid)}},
            "_embedded": {"entity": {"id": entity_id, "_links": {"self": {
                "href": "%s/api/v4/%s/%d" % (BASE, plural, entity_id)}}}}}
        return eid

    def external_id(self, table, key):
        """The id a client sees for a row key (event id string, unsorted uid, or the key)."""
        if table.name == "events":
            rec = table.over.get(key)
            if rec is not None:
                return rec["id"]
            from amo_util import event_id
            return event_id(self.gen.salt["events"], key, table.spec.times(key)[0])
        if table.name == "unsorted":
            rec = table.over.get(key)
            return rec["uid"] if rec is not None else self.gen.unsorted_uid(key)
        return key

    def event_key(self, eid):
        from amo_util import event_index
        return event_index(eid)

    # ---- mutations (POST /_fake/mutate) --------------------------------------------------
    def mutate(self, ops):
        """Apply ops in order; returns one result dict per op. Raises OpError on a bad op."""
        results = []
        with self.lock:
            try:
                for op in ops:
                    results.append(self._op(op))
            finally:
                self.changed()
        return results

    def _key(self, t, op):
        k = op.get("id", op.get("uid"))
        if t.name == "unsorted" and isinstance(k, str):
            try:
                k = int(k[32:], 16)
            except ValueError:
                raise OpError("bad uid %r" % k)
        if t.name == "events" and isinstance(k, str):
            k = self.event_key(k)
        if not isinstance(k, int) or not t.live(k):
            raise OpError("%s %r does not exist" % (t.name, op.get("id")))
        return k

    def _restore(self, t, op, ent_single):
        """Bring a deleted row back (as it was, with a new updated_at) + a *_restored event."""
        key = op.get("id")
        if not isinstance(key, int) or key not in t.deleted:
            raise OpError("%s %r is not deleted" % (t.name, key))
        t.deleted.discard(key)
        rec = _copy(t.graveyard.pop(key, None) or t.spec.gen(key))
        at = self.tick()
        if "updated_at" in rec:
            rec["updated_at"] = at
        t.over[key] = rec
        if t.name in REF_TABLE:
            self.rows.clear()
        if t.name in ("leads", "contacts", "companies"):
            self.add_event(ent_single + "_restored", ent_single, key, at=at)
        return {"op": "restore", "entity": t.name, "id": key, "updated_at": at}

    def _op(self, op):
        kind = op.get("op")
        t = self.table(op.get("entity", ""))
        ent_single = SINGULAR.get(t.name)
        if kind == "add":
            count = int(op.get("count", 1))
            if not 0 < count <= 100000:
                raise OpError("count must be 1..100000")
            ids = []
            for _ in range(count):
                key = t.next_key
                t.next_key += 1
                at = self.tick()
                rec = _copy(t.spec.gen(key))
                rec["created_at"] = at
                if "updated_at" in rec:
                    rec["updated_at"] = at
                rec.update(op.get("set") or {})
                t.over[key] = rec
                ids.append(rec.get(t.spec.key_name, key))
                if t.name in ADD_EVENT:
                    after = []
                    if t.name == "leads":
                        after = [{"lead_status": {"id": rec["status_id"], "pipeline_id": rec["pipeline_id"]}}]
                    self.add_event(ADD_EVENT[t.name], ent_single, key, after=after, at=at)
                elif t.name.endswith("/notes"):
                    self.add_event("common_note_added", SINGULAR[t.name.split("/")[0]],
                                   rec["entity_id"], after=[{"note": {"id": key}}], at=at)
            return {"op": "add", "entity": t.name, "ids": ids}
        if kind == "restore":
            return self._restore(t, op, ent_single)
        key = self._key(t, op)
        self.forget(t, key)
        if kind == "delete":
            if t.name in REF_TABLE:
                self.rows.clear()       # other rows embed this one
            rec = t.get(key)
            t.graveyard[key] = rec
            t.deleted.add(key)
            t.over.pop(key, None)
            at = self.tick()
            eid = None
            if t.name in DELETE_EVENT:
                eid = self.add_event(DELETE_EVENT[t.name], ent_single, key, at=at)
            elif t.name.endswith("/notes"):
                eid = self.add_event("common_note_deleted", SINGULAR[t.name.split("/")[0]],
                                     rec.get("entity_id") or 0, before=[{"note": {"id": key}}], at=at)
            return {"op": "delete", "entity": t.name, "id": op.get("id"), "event_id": eid}
        rec = _copy(t.get(key))
        at = self.tick()
        events = []
        if kind == "move":
            if "status_id" not in op:
                raise OpError("move needs status_id")
            old = {"id": rec.get("status_id"), "pipeline_id": rec.get("pipeline_id")}
            t.prev_status[key] = (old["id"], old["pipeline_id"])
            pid = int(op.get("pipeline_id", rec.get("pipeline_id") or 0))
            sid = int(op["status_id"])
            if t.name == "leads":
                p = self.ref.pipeline_by_id.get(pid)
                if p is None or all(s["id"] != sid for s in p["_embedded"]["statuses"]):
                    raise OpError("no status %d in pipeline %d" % (sid, pid))
                rec["pipeline_id"] = pid
                rec["closed_at"] = at if sid in (WON, LOST) else None
                if sid != LOST:
                    rec["loss_reason_id"] = None
            rec["status_id"] = sid
            if t.name == "leads":
                events.append(("lead_status_changed", [{"lead_status": old}],
                               [{"lead_status": {"id": sid, "pipeline_id": pid}}]))
            else:
                events.append(("customer_status_changed", [{"customer_status": {"id": old["id"]}}],
                               [{"customer_status": {"id": sid}}]))
        elif kind == "edit":
            changes = op.get("set") or {}
            if not isinstance(changes, dict) or not changes:
                raise OpError("edit needs a non-empty set")
            for f, v in changes.items():
                if f in ("id", "_links"):
                    raise OpError("cannot set %s" % f)
                old = rec.get(f)
                rec[f] = v
                if f == "name":
                    events.append(("name_field_changed", [{"name_field_value": {"name": old}}],
                                   [{"name_field_value": {"name": v}}]))
                elif f == "price":
                    events.append(("sale_field_changed", [{"sale_field_value": {"sale": old}}],
                                   [{"sale_field_value": {"sale": v}}]))
                elif f == "responsible_user_id":
                    events.append(("entity_responsible_changed",
                                   [{"responsible_user": {"id": old}}],
                                   [{"responsible_user": {"id": v}}]))
                elif f == "status_id" and t.name == "leads":
                    events.append(("lead_status_changed",
                                   [{"lead_status": {"id": old, "pipeline_id": rec.get("pipeline_id")}}],
                                   [{"lead_status": {"id": v, "pipeline_id": rec.get("pipeline_id")}}]))
        else:
            raise OpError("unknown op %r" % kind)
        if "updated_at" in rec:
            rec["updated_at"] = at
        t.over[key] = rec
        if ent_single and ent_single != "task":
            for typ, before, after in events:
                self.add_event(typ, ent_single, key, before, after, at=at)
        return {"op": kind, "entity": t.name, "id": op.get("id"), "updated_at": at}
