"""amoCRM account webhooks: encoding (pure), sending (threads, TLS), sample dumps.

encode_hook(entity, action, records, account) -> bytes turns API-shaped records into the real
wire format: application/x-www-form-urlencoded with PHP bracket keys, brackets percent-encoded
(`leads%5Bstatus%5D%5B0%5D%5Bid%5D=5`), spaces as `+`, UTF-8 percent-encoded, null fields left
out (as PHP's http_build_query does), booleans "1"/"0", `account[subdomain|id|_links][self]`
appended. Field names are the legacy ones hooks use (last_modified, date_create,
created_user_id...), not the v4 ones (amoCRM's webhook format documentation:
https://www.amocrm.ru/developers/content/crm_platform/webhooks-format); see README.md.
Companies are sent the real way: as contacts[action][i][...] with [type]=company (captured
hooks 2016-2022 never carry a companies[...] key); contacts carry [type]=contact, deletes
included, and a note hook names its parent's type beside [note].
"""

import concurrent.futures
import json
import os
import ssl
import time
import urllib.parse
import urllib.request
import http.client

from amo_store import OpError

HOOK_ENTITIES = {"leads": "leads", "lead": "leads", "contacts": "contacts", "contact": "contacts",
                 "companies": "companies", "company": "companies", "customers": "customers",
                 "customer": "customers", "task": "task", "tasks": "task",
                 "unsorted": "unsorted", "talk": "talk", "talks": "talk", "message": "message",
                 "messages": "message", "catalogs": "catalogs", "catalog": "catalogs"}
ACTIONS = {"leads": ("add", "update", "delete", "restore", "status", "responsible", "note"),
           "contacts": ("add", "update", "delete", "restore", "responsible", "note"),
           "companies": ("add", "update", "delete", "restore", "responsible", "note"),
           "customers": ("add", "update", "delete", "responsible", "note"),
           "task": ("add", "update", "delete", "responsible"),
           "unsorted": ("add", "update", "delete"), "talk": ("add", "update"),
           "message": ("add",), "catalogs": ("add", "update", "delete")}
ELEMENT_TYPE = {"contacts": 1, "leads": 2, "companies": 3, "tasks": 4, "customers": 12,
                "contact": 1, "lead": 2, "company": 3, "customer": 12}
NOTE_TYPE = {"common": 4, "call_in": 10, "call_out": 11, "service_message": 25,
             "extended_service_message": 25, "sms_in": 102, "sms_out": 103, "attachment": 4,
             "geolocation": 4, "amomail_message": 4}
DATE_TYPES = ("date", "date_time", "birthday")
ENUM_TYPES = ("select", "multiselect", "radiobutton", "multitext", "category", "smart_address")
TZ_OFFSET = 3 * 3600    # account time zone (Europe/Moscow) for the note date strings


# The wire key of each entity: companies ride on contacts[...] and say [type]=company.
WIRE_NAME = {"companies": "contacts"}
WIRE_TYPE = {"contacts": "contact", "companies": "company"}


# ---- encoding -------------------------------------------------------------------------------

def _scalar(v):
    if v is True:
        return "1"
    if v is False:
        return "0"
    return str(v)


def flatten(prefix, obj, out):
    """Append (key, value) pairs of obj under prefix, PHP style; None is left out."""
    if obj is None:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten("%s[%s]" % (prefix, k), v, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten("%s[%d]" % (prefix, i), v, out)
    else:
        out.append((prefix, _scalar(obj)))
    return out


def _local(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((ts or 0) + TZ_OFFSET))


def _custom_fields(cfv, with_code):
    out = []
    for f in cfv or []:
        item = {"id": f.get("field_id"), "name": f.get("field_name")}
        vals = f.get("values") or []
        if f.get("field_type") in DATE_TYPES:
            item["values"] = [v.get("value") for v in vals]     # bare [values][0]
        else:
            item["values"] = []
            for v in vals:
                hv = {"value": v.get("value")}
                if f.get("field_type") in ENUM_TYPES and v.get("enum_id") is not None:
                    hv["enum"] = v.get("enum_id")
                item["values"].append(hv)
        if with_code and f.get("field_code"):
            item["code"] = f["field_code"]
        out.append(item)
    return out


def _tags(rec):
    return [{"id": t.get("id"), "name": t.get("name")}
            for t in (rec.get("_embedded") or {}).get("tags") or []]


def _emb_ids(rec, part):
    return [x.get("id") for x in (rec.get("_embedded") or {}).get(part) or []]


def hook_fields(entity, action, rec):
    """The nested hook form of one API-shaped record (a dict, PHP key order)."""
    entity = HOOK_ENTITIES.get(entity, entity)
    if action == "note":
        d = {"note": _note(entity, rec)}
        if entity in WIRE_TYPE:
            d["type"] = WIRE_TYPE[entity]
        return d
    if action == "delete" and entity in ("leads", "contacts", "companies", "customers",
                                         "task", "catalogs"):
        d = {"id": rec.get("id")}
        if entity == "leads":
            d["status_id"] = rec.get("status_id")
            d["pipeline_id"] = rec.get("pipeline_id")
        if entity in WIRE_TYPE:
            d["type"] = WIRE_TYPE[entity]
        return d
    if entity == "leads":
        d = {"id": rec.get("id"), "name": rec.get("name"), "status_id": rec.get("status_id")}
        if action == "status":
            d["old_status_id"] = rec.get("old_status_id", rec.get("status_id"))
        d.update({"price": rec.get("price") or 0,
                  "responsible_user_id": rec.get("responsible_user_id"),
                  "last_modified": rec.get("updated_at"),
                  "modified_user_id": rec.get("updated_by") or 0,
                  "created_user_id": rec.get("created_by") or 0,
                  "date_create": rec.get("created_at"),
                  "pipeline_id": rec.get("pipeline_id")})
        if action == "status":
            d["old_pipeline_id"] = rec.get("old_pipeline_id", rec.get("pipeline_id"))
        if action == "responsible":
            d["old_responsible_user_id"] = rec.get("old_responsible_user_id",
                                                   rec.get("responsible_user_id"))
        tags = _tags(rec)
        if tags:
            d["tags"] = tags
        d["account_id"] = rec.get("account_id")
        if rec.get("custom_fields_values"):
            d["custom_fields"] = _custom_fields(rec["custom_fields_values"], False)
        d["created_at"] = rec.get("created_at")
        d["updated_at"] = rec.get("updated_at")
        return d
    if entity in ("contacts", "companies"):
        d = {"id": rec.get("id"), "name": rec.get("name"),
             "responsible_user_id": rec.get("responsible_user_id"),
             "date_create": rec.get("created_at"), "last_modified": rec.get("updated_at"),
             "created_user_id": rec.get("created_by") or 0,
             "modified_user_id": rec.get("updated_by") or 0}
        if entity == "contacts":
            cos = (rec.get("_embedded") or {}).get("companies") or []
            if cos:
                d["company_name"] = cos[0].get("name", "")
                d["linked_company_id"] = cos[0].get("id")
        if action == "responsible":
            d["old_responsible_user_id"] = rec.get("old_responsible_user_id",
                                                   rec.get("responsible_user_id"))
        d["account_id"] = rec.get("account_id")
        if rec.get("custom_fields_values"):
            d["custom_fields"] = _custom_fields(rec["custom_fields_values"], True)
        tags = _tags(rec)
        if tags:
            d["tags"] = tags
        leads = _emb_ids(rec, "leads")
        if leads:
            d["linked_leads_id"] = {str(i): {"ID": i} for i in leads}
        d["created_at"] = rec.get("created_at")
        d["updated_at"] = rec.get("updated_at")
        d["type"] = "contact" if entity == "contacts" else "company"
        return d
    if entity == "customers":
        d = {"id": rec.get("id"), "name": rec.get("name"),
             "responsible_user_id": rec.get("responsible_user_id"),
             "date_create": rec.get("created_at"), "last_modified": rec.get("updated_at"),
             "created_user_id": rec.get("created_by") or 0,
             "modified_user_id": rec.get("updated_by") or 0,
             "next_price": rec.get("next_price"), "next_date": rec.get("next_date"),
             "periodicity": rec.get("periodicity"), "status_id": rec.get("status_id"),
             "account_id": rec.get("account_id")}
        if rec.get("custom_fields_values"):
            d["custom_fields"] = _custom_fields(rec["custom_fields_values"], False)
        tags = _tags(rec)
        if tags:
            d["tags"] = tags
        d["created_at"] = rec.get("created_at")
        d["updated_at"] = rec.get("updated_at")
        return d
    if entity == "task":
        return {"id": rec.get("id"), "element_id": rec.get("entity_id"),
                "element_type": ELEMENT_TYPE.get(rec.get("entity_type")),
                "task_type": rec.get("task_type_id"), "text": rec.get("text"),
                "status": 1 if rec.get("is_completed") else 0,
                "account_id": rec.get("account_id"),
                "created_user_id": rec.get("created_by") or 0,
                "modified_user_id": rec.get("updated_by") or 0,
                "responsible_user_id": rec.get("responsible_user_id"),
                "date_create": rec.get("created_at"), "last_modified": rec.get("updated_at"),
                "complete_till": rec.get("complete_till"),
                "created_at": rec.get("created_at"), "updated_at": rec.get("updated_at")}
    if entity == "unsorted":
        return _unsorted(action, rec)
    if entity == "talk":
        return {k: rec.get(k) for k in ("talk_id", "created_at", "updated_at", "rate",
                                        "contact_id", "chat_id", "entity_id", "entity_type",
                                        "is_in_work", "is_read", "origin")}
    if entity == "message":
        return _message(rec)
    if entity == "catalogs":
        return {"id": rec.get("id"), "name": rec.get("name"), "catalog_id": rec.get("catalog_id"),
                "created_user_id": rec.get("created_by") or 0,
                "modified_user_id": rec.get("updated_by") or 0,
                "date_create": rec.get("created_at"), "last_modified": rec.get("updated_at"),
                "custom_fields": _custom_fields(rec.get("custom_fields_values"), True) or None,
                "account_id": rec.get("account_id"),
                "created_at": rec.get("created_at"), "updated_at": rec.get("updated_at")}
    raise ValueError("unknown hook entity %r" % entity)


def _note(entity, rec):
    p = rec.get("params") or {}
    text = p.get("text")
    if text is None:
        text = json.dumps(p, ensure_ascii=False)
    return {"id": rec.get("id"), "element_id": rec.get("entity_id"),
            "element_type": ELEMENT_TYPE.get(entity, 2),
            "note_type": NOTE_TYPE.get(rec.get("note_type"), 4), "text": text,
            "account_id": rec.get("account_id"),
            "date_create": _local(rec.get("created_at")),
            "timestamp_x": _local(rec.get("updated_at")),
            "created_by": rec.get("created_by") or 0, "modified_by": rec.get("updated_by") or 0,
            "main_user_id": rec.get("responsible_user_id"), "group_id": rec.get("group_id") or 0,
            "created_at": rec.get("created_at"), "updated_at": rec.get("updated_at")}


def _unsorted(action, rec):
    leads = _emb_ids(rec, "leads")
    if action == "delete":
        d = {"action": rec.get("action", "accept"), "uid": rec.get("uid"),
             "category": rec.get("category"), "created_at": rec.get("created_at"),
             "modified_user_id": rec.get("modified_user_id", 0)}
        key = "decline_result" if d["action"] == "decline" else "accept_result"
        d[key] = {"leads": leads}
        return d
    meta = dict(rec.get("metadata") or {})
    return {"uid": rec.get("uid"), "source": rec.get("source_name"),
            "source_uid": rec.get("source_uid"), "category": rec.get("category"),
            "source_data": meta, "date_create": rec.get("created_at"),
            "data": {"contacts": [{"id": i} for i in _emb_ids(rec, "contacts")],
                     "leads": [{"id": i} for i in leads]},
            "pipeline_id": rec.get("pipeline_id"), "account_id": rec.get("account_id"),
            "lead_id": leads[0] if leads else None, "created_at": rec.get("created_at")}


def _message(rec):
    """A message hook from a talk record (or a record already shaped as a message)."""
    if "chat_id" in rec and "talk_id" in rec and "text" not in rec:
        t = rec
        mid = t["chat_id"].replace("-", "")[::-1]
        rec = {"id": "%s-%s-%s-%s-%s" % (mid[:8], mid[8:12], mid[12:16], mid[16:20], mid[20:32]),
               "chat_id": t["chat_id"],
               "talk_id": t["talk_id"], "contact_id": t.get("contact_id"),
               "text": "Здравствуйте! Есть ли места в группе на субботу? 🙂",
               "created_at": t.get("updated_at"), "element_type": 2 if t.get("entity_id") else 1,
               "entity_type": "lead" if t.get("entity_id") else "contact",
               "element_id": t.get("entity_id") or t.get("contact_id"),
               "entity_id": t.get("entity_id") or t.get("contact_id"), "type": "incoming",
               "author": {"id": "a-%d" % t["talk_id"], "type": "external",
                          "name": "Клиент %d" % t["talk_id"], "avatar_url": ""},
               "origin": t.get("origin")}
    return rec


def encode_hooks(groups, account):
    """groups: [(entity, action, [records])] in order; one body. Returns bytes."""
    pairs, next_index = [], {}
    for entity, action, records in groups:
        ent = HOOK_ENTITIES.get(entity, entity)
        if ent not in ACTIONS:
            raise ValueError("unknown hook entity %r" % entity)
        if action not in ACTIONS[ent]:
            raise ValueError("action %r not valid for %s" % (action, ent))
        wire = WIRE_NAME.get(ent, ent)
        base = next_index.get((wire, action), 0)    # contacts and companies share indexes
        for i, rec in enumerate(records):
            flatten("%s[%s][%d]" % (wire, action, base + i), hook_fields(ent, action, rec), pairs)
        next_index[(wire, action)] = base + len(records)
    sub = account.get("subdomain", "")
    pairs.append(("account[subdomain]", str(sub)))
    pairs.append(("account[id]", str(account.get("id", ""))))
    pairs.append(("account[_links][self]",
                  account.get("self") or "https://%s.amocrm.ru" % sub))
    return "&".join("%s=%s" % (urllib.parse.quote_plus(k, safe=""),
                               urllib.parse.quote_plus(v, safe="")) for k, v in pairs).encode()


def encode_hook(entity, action, records, account):
    """One entity[action] group of records plus the account keys, as a form body (bytes)."""
    return encode_hooks([(entity, action, records)], account)


# ---- building records from the store ----------------------------------------------------------

def account_of(ref):
    return {"subdomain": ref.subdomain, "id": ref.account_id}


def store_record(store, entity, action, ident):
    """The API-shaped record a hook about (entity, ident) carries. Caller holds store.lock."""
    ent = HOOK_ENTITIES.get(entity, entity)
    tname = {"task": "tasks", "talk": "talks", "message": "talks"}.get(ent, ent)
    if ent == "catalogs":
        for name, t in store.tables.items():
            if name.startswith("catalog:") and (t.live(int(ident)) or int(ident) in t.graveyard):
                tname = name
                break
        else:
            raise OpError("no catalog element %r" % ident)
    if action == "note":
        # a note of that entity: some generated note, re-pointed at it (cheap at any scale)
        t = store.tables[ent + "/notes"]
        key = t.base + (int(ident) - 1) % max(t.n, 1) + 1
        rec = t.get(key) or t.graveyard.get(key) or t.spec.gen(key)
        return dict(rec, entity_id=int(ident))
    t = store.table(tname)
    key = ident
    if tname == "unsorted" and isinstance(ident, str) and len(ident) == 40:
        key = int(ident[32:], 16)
    key = int(key)
    rec = t.get(key)
    if rec is None:
        rec = t.graveyard.get(key)
    if rec is None:
        if t.spec.n == 0:
            raise OpError("%s has no rows" % tname)
        rec = t.spec.gen(key)       # never existed or long gone: still encodable
    rec = store.view(t, rec, {"leads", "contacts", "companies", "customers"})
    if tname == "contacts":
        rec = _with_company_names(store, rec)
    if action == "status" and tname == "leads":
        prev = getattr(t, "prev_status", {}).get(key)
        if prev:
            rec = dict(rec, old_status_id=prev[0], old_pipeline_id=prev[1])
    return rec


def _with_company_names(store, rec):
    cos = (rec.get("_embedded") or {}).get("companies") or []
    if not cos:
        return rec
    named = []
    for c in cos:
        co = store.tables["companies"].get(c.get("id"))
        named.append(dict(c, name=co["name"] if co else ""))
    return dict(rec, _embedded=dict(rec["_embedded"], companies=named))


def bodies_from_events(store, events, per_request):
    """Group [{"entity","action","id"}] into per_request-sized bodies."""
    acc = account_of(store.ref)
    per_request = max(1, int(per_request))
    out = []
    with store.lock:
        for i in range(0, len(events), per_request):
            chunk = events[i:i + per_request]
            groups = []
            for ev in chunk:
                ent = HOOK_ENTITIES.get(ev.get("entity", "leads"))
                if ent is None:
                    raise ValueError("unknown entity %r" % ev.get("entity"))
                action = ev.get("action", "update")
                rec = store_record(store, ent, action, ev.get("id", 1))
                if groups and groups[-1][0] == ent and groups[-1][1] == action:
                    groups[-1][2].append(rec)
                else:
                    groups.append((ent, action, [rec]))
            out.append(encode_hooks(groups, acc))
    return out


# ---- sending ----------------------------------------------------------------------------------

def _context(url, cafile, insecure):
    if not url.startswith("https:"):
        return None
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()


def send_bodies(url, bodies, cafile=None, insecure=False, concurrency=4, timeout=10.0,
                keepalive=False):
    """POST every body to url; returns a summary dict with one entry per request."""
    u = urllib.parse.urlsplit(url)
    ctx = _context(url, cafile, insecure)
    target = (u.path or "/") + ("?" + u.query if u.query else "")
    port = u.port or (443 if u.scheme == "https" else 80)

    def conn():
        if ctx is not None:
            return http.client.HTTPSConnection(u.hostname, port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(u.hostname, port, timeout=timeout)

    import threading
    local = threading.local()

    def one(i):
        body = bodies[i]
        t0 = time.perf_counter()
        res = {"i": i, "bytes": len(body)}
        c = getattr(local, "c", None) if keepalive else None
        try:
            if c is None:
                c = conn()
            c.request("POST", target, body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "amoCRM-Webhooks/3.0", "Accept": "*/*",
                "Connection": "keep-alive" if keepalive else "close"})
            r = c.getresponse()
            r.read()
            res["status"] = r.status
            if keepalive:
                local.c = c
            else:
                c.close()
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            res["status"] = 0
            res["error"] = "%s: %s" % (type(e).__name__, e)
            try:
                c.close()
            except Exception:
                pass
            local.c = None
        res["ms"] = round((time.perf_counter() - t0) * 1000, 3)
        return res

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as ex:
        results = list(ex.map(one, range(len(bodies))))
    elapsed = time.perf_counter() - t0
    lat = sorted(r["ms"] for r in results)
    statuses = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0
    return {"requests": len(results), "ok": sum(1 for r in results if 200 <= r["status"] < 300),
            "statuses": statuses, "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(len(results) / elapsed, 1) if elapsed > 0 else 0,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
                           "max": lat[-1] if lat else 0},
            "results": results}


def settings_code(entity, action):
    """The subscription settings code of a hook event: leads/update -> update_lead."""
    one = {"leads": "lead", "contacts": "contact", "companies": "company", "customers": "customer",
           "catalogs": "catalog"}.get(entity, entity)
    return "%s_%s" % (action, one)


def send_to_subscriptions(store, doc, subscriptions):
    """As amoCRM does: each event to every enabled subscription whose settings name it; a
    disabled subscription gets nothing (counted in skipped_disabled)."""
    out = {"requests": 0, "ok": 0, "statuses": {}, "skipped_disabled": 0, "subscriptions": 0,
           "results": []}
    for w in subscriptions:
        if w.get("disabled"):
            out["skipped_disabled"] += 1
            continue
        evs = [e for e in doc.get("events") or []
               if settings_code(e.get("entity", "leads"), e.get("action", "update")) in w["settings"]]
        if not evs:
            continue
        out["subscriptions"] += 1
        res = send_from_store(store, dict(doc, url=w["destination"], events=evs))
        out["requests"] += res["requests"]
        out["ok"] += res["ok"]
        for k, v in res["statuses"].items():
            out["statuses"][k] = out["statuses"].get(k, 0) + v
        out["results"].extend(res["results"])
    return out


def send_from_store(store, doc, subscriptions=None):
    """POST /_fake/send_hooks body -> summary (see README); without a url, to the
    subscriptions (send_to_subscriptions)."""
    url = doc.get("url")
    if not url and subscriptions is not None:
        return send_to_subscriptions(store, doc, subscriptions)
    if not url:
        raise ValueError("url is required")
    events = []
    for ev in doc.get("events") or []:
        if "ids" in ev:
            for i in ev["ids"]:
                events.append(dict(ev, id=i))
        else:
            events.append(ev)
    if not events:
        raise ValueError("events is empty")
    bodies = bodies_from_events(store, events, doc.get("per_request", 1))
    return send_bodies(url, bodies, doc.get("cafile"), bool(doc.get("insecure")),
                       int(doc.get("concurrency", 4)), float(doc.get("timeout", 10)),
                       bool(doc.get("keepalive")))


def parse_ids(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part) if part.isdigit() else part)
    return out


def cli_send(args, app_factory):
    """The send-hooks subcommand."""
    ids = parse_ids(args.ids)
    n = args.count or len(ids)
    events = [{"entity": args.entity, "action": args.action, "id": ids[i % len(ids)]}
              for i in range(n)]
    doc = {"url": args.url, "cafile": args.cafile, "insecure": args.insecure, "events": events,
           "per_request": args.per_request, "concurrency": args.concurrency,
           "timeout": args.timeout, "keepalive": args.keepalive}
    if args.from_url:
        req = urllib.request.Request(args.from_url.rstrip("/") + "/_fake/send_hooks",
                                     data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=max(60, args.timeout * n)) as r:
            res = json.loads(r.read())
    else:
        res = send_from_store(app_factory(args).store, doc)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        errors = [r.get("error") for r in res["results"] if r.get("error")]
        print("requests=%d ok=%d statuses=%s elapsed_s=%s rate_per_s=%s p50_ms=%s p95_ms=%s "
              "p99_ms=%s max_ms=%s" % (res["requests"], res["ok"], json.dumps(res["statuses"]),
                                       res["elapsed_s"], res["rate_per_s"],
                                       res["latency_ms"]["p50"], res["latency_ms"]["p95"],
                                       res["latency_ms"]["p99"], res["latency_ms"]["max"]))
        if errors:
            print("first error: %s" % errors[0])
    return 0 if res["ok"] == res["requests"] else 1


# ---- samples ----------------------------------------------------------------------------------

def _rich(store, tname, pred, limit=400):
    t = store.tables[tname]
    for k in range(t.base + 1, t.base + min(t.n, limit) + 1):
        rec = t.get(k)
        if rec is not None and pred(rec):
            return store.view(t, rec, {"leads", "contacts", "companies", "customers"})
    return store.view(t, t.get(t.base + 1), {"leads"}) if t.n else {}


def dump_samples(app, outdir):
    """Write one body per entity x action kind (+ batches) into outdir. Returns 0."""
    store = app.store
    acc = account_of(store.ref)
    os.makedirs(outdir, exist_ok=True)

    def many_fields(rec):
        return len(rec.get("custom_fields_values") or []) >= 5 and (rec.get("_embedded") or {}).get("tags")
    recs = {
        "leads": _rich(store, "leads", many_fields),
        "contacts": _with_company_names(store, _rich(
            store, "contacts", lambda r: len(r.get("custom_fields_values") or []) >= 3
            and (r.get("_embedded") or {}).get("leads") and (r.get("_embedded") or {}).get("companies"))),
        "companies": _rich(store, "companies", lambda r: len(r.get("custom_fields_values") or []) >= 3),
        "customers": _rich(store, "customers", lambda r: r.get("custom_fields_values")),
        "task": _rich(store, "tasks", lambda r: r.get("entity_id")),
        "unsorted": _rich(store, "unsorted", lambda r: True),
        "talk": _rich(store, "talks", lambda r: r.get("entity_id")),
        "catalogs": _rich(store, "catalog:1001", lambda r: r.get("custom_fields_values")),
    }
    recs["message"] = recs["talk"]
    notes = {e: _rich(store, e + "/notes", lambda r: r.get("note_type") == "common")
             for e in ("leads", "contacts", "companies", "customers")}
    written = []
    for ent, actions in ACTIONS.items():
        for action in actions:
            if action == "note":
                rec = notes[ent]
            elif action == "status":
                rec = dict(recs[ent], old_status_id=recs[ent].get("status_id", 0) + 1)
            elif ent == "unsorted" and action == "delete":
                rec = dict(recs[ent], action="decline")
            else:
                rec = recs[ent]
            name = "%s_%s.form" % (ent, action)
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(encode_hook(ent, action, [rec], acc))
            written.append(name)
    lt = store.tables["leads"]
    batch = [store.view(lt, lt.get(k), set()) for k in range(1, min(lt.n, 3) + 1)]
    extra = {
        "batch_leads_update_3.form": [("leads", "update", batch)],
        "batch_mixed.form": [("leads", "status", batch[:1]), ("leads", "update", batch[1:]),
                             ("contacts", "update", [recs["contacts"]]),
                             ("task", "add", [recs["task"]])],
        "unsorted_delete_accept.form": [("unsorted", "delete", [dict(recs["unsorted"], action="accept")])],
    }
    for name, groups in extra.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(encode_hooks(groups, acc))
        written.append(name)
    print("wrote %d samples to %s" % (len(written), outdir), flush=True)
    return 0
