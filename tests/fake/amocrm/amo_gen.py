"""Row generators of the fake amoCRM's bulk entities (leads, contacts, notes, events...).

A Spec describes one table: its base size n, its id range (id_base+1 .. id_base+n), a gen(key)
that rebuilds the full API record of row `key` from the seed alone, cheap per-row functions
(times, "fast" fields) that filters use without building whole rows, and the default order.
Records carry every `_embedded` part; amo_store trims them to what `with=` asked for. Links
between entities are arithmetic (lead i -> contact (i-1) % NC + 1 ...), so the reverse
direction (a contact's leads) is computed, not stored. Item hrefs start with BASE, which
amo_api replaces with the real scheme://host of the request.
"""

import json

from amo_ref import ENTITY_TYPES, LOST, WON
from amo_rows import ALL_WITH, RowText
from amo_util import (CITIES, COURSES, DAY, LEVELS, NOTE_TEXTS, STREETS, TASK_TEXTS, R,
                      event_id, hex_uid, person, phone, salt_of, uuid_of)

BASE = "https://BASE"
NOTE_BASE = {"leads": 0, "contacts": 10000000, "companies": 20000000, "customers": 30000000}
SINGULAR = {"leads": "lead", "contacts": "contact", "companies": "company",
            "customers": "customer", "tasks": "task"}


class Spec:
    """One generated table. key = the integer id (events/unsorted: the row index)."""

    def __init__(self, name, n, gen, times, id_base=0, fast=None, order=("id", "asc"),
                 key_name="id", text=None):
        self.name, self.n, self.gen = name, n, gen
        self.text = text        # text(key, with_set) -> list-view JSON, for the widest rows
        # times(key) -> (created_at, updated_at) of base row `key`
        self.times = times if not id_base else (lambda k: times(k - id_base))
        self.id_base, self.fast, self.default_order = id_base, fast or {}, order
        self.key_name = key_name


def _times(salt, n, now, span):
    """created_at rises with the row index; updated_at is created_at or later (70 %)."""
    start = now - span
    n = max(n, 1)

    def times(i):
        c = start + ((i - 1) * span) // n if i <= n else now
        h = R(salt, i).n(1 << 30)
        if h % 10 < 7:
            return c, c + h % (now - c + 1)
        return c, c
    return times


class Gen(RowText):
    def __init__(self, ref):
        self.ref = ref
        self.seed = ref.seed
        self.now = ref.now
        c = ref.counts
        self.n = {e: max(0, c[e]) for e in ("leads", "contacts", "companies", "customers",
                                           "tasks", "events", "talks", "transactions")}
        self.n_unsorted = min(c["unsorted"], (self.n["leads"] + 4) // 8)
        self.acc = ref.account_id
        self.users = ref.user_ids
        self.pipes = [(p["id"], [s for s in p["_embedded"]["statuses"]]) for p in ref.pipelines]
        self.cf = {e: {f["name"]: f for f in ref.fields[e]} for e in ref.fields}
        self.extra_lead_fields = [f for f in ref.fields["leads"] if f["id"] % 10000 >= 100]
        self.tag_lists = ref.tags
        self.products = ref.catalogs[0]
        self.n_elements = c["elements"]
        total = c["notes"]
        self.n_notes = {"leads": total // 2, "contacts": total // 4,
                        "companies": total - total // 2 - total // 4 - total // 10,
                        "customers": total // 10}
        self.salt = {k: salt_of(self.seed, k) for k in (
            "leads", "contacts", "companies", "customers", "tasks", "events", "talks",
            "unsorted", "transactions", "elements", "leads/notes", "contacts/notes",
            "companies/notes", "customers/notes", "t:leads", "t:contacts", "t:companies",
            "t:customers", "t:tasks", "t:events", "t:talks", "t:unsorted", "t:transactions",
            "t:elements", "t:leads/notes", "t:contacts/notes", "t:companies/notes",
            "t:customers/notes")}
        self._init_text()

    # ---- helpers -----------------------------------------------------------------------
    def _user(self, r):
        return self.users[r.n(len(self.users))]

    def _group(self, uid):
        return [0, 351, 352][(uid - 7000001) % 3]

    def _tags(self, ent, r, pct=35):
        if not r.pct(pct):
            return []
        tl = self.tag_lists[ent]
        k = 1 + r.n(3)
        out, seen = [], set()
        for _ in range(k):
            t = tl[r.n(len(tl))]
            if t["id"] not in seen:
                seen.add(t["id"])
                out.append({"id": t["id"], "name": t["name"], "color": t["color"]})
        return out

    def _cfv(self, f, values):
        return {"field_id": f["id"], "field_name": f["name"], "field_code": f["code"],
                "field_type": f["type"], "values": values}

    def _enum(self, f, r):
        e = f["enums"][r.n(len(f["enums"]))]
        return {"value": e["value"], "enum_id": e["id"]}

    def spec_list(self):
        """Every generated table as a Spec, by table name."""
        ref, now = self.ref, self.now
        out = {}
        yr = 365 * DAY
        out["leads"] = Spec("leads", self.n["leads"], self.lead, text=self.lead_json,
                            times=_times(self.salt["t:leads"], self.n["leads"], now, 2 * yr),
                            fast={"pipeline_id": lambda k: self._lead_status(k)[0],
                                  "status_id": lambda k: self._lead_status(k)[1],
                                  "responsible_user_id": lambda k: self._lead_resp(k)})
        out["contacts"] = Spec("contacts", self.n["contacts"], self.contact,
                               _times(self.salt["t:contacts"], self.n["contacts"], now, 3 * yr),
                               text=self.contact_json)
        out["companies"] = Spec("companies", self.n["companies"], self.company,
                                _times(self.salt["t:companies"], self.n["companies"], now, 3 * yr),
                                text=self.company_json)
        out["customers"] = Spec("customers", self.n["customers"], self.customer,
                                _times(self.salt["t:customers"], self.n["customers"], now, yr))
        out["tasks"] = Spec("tasks", self.n["tasks"], self.task,
                            _times(self.salt["t:tasks"], self.n["tasks"], now, yr),
                            fast={"entity_type": lambda k: self._task_ent(k)[0],
                                  "entity_id": lambda k: self._task_ent(k)[1],
                                  "is_completed": lambda k: self._task_done(k),
                                  "responsible_user_id": lambda k: self._task_resp(k)})
        for ent in ENTITY_TYPES:
            name = ent + "/notes"
            out[name] = Spec(name, self.n_notes[ent], self._note_gen(ent),
                             _times(self.salt["t:" + name], self.n_notes[ent], now, 2 * yr),
                             id_base=NOTE_BASE[ent],
                             fast={"entity_id": self._note_entity_fn(ent),
                                   "note_type": self._note_type_fn(ent)})
        ev_times = _times(self.salt["t:events"], self.n["events"], now, 180 * DAY)
        out["events"] = Spec("events", self.n["events"], self.event,
                             lambda i: (ev_times(i)[0],) * 2,
                             fast={"type": lambda k: self._event_kind(k)[0],
                                   "entity": lambda k: self._event_kind(k)[1],
                                   "entity_id": lambda k: self._event_kind(k)[2]},
                             order=("created_at", "desc"))
        out["unsorted"] = Spec("unsorted", self.n_unsorted, self.unsorted,
                               lambda i: (self._unsorted_time(i),) * 2, key_name="uid",
                               fast={"category": lambda k: self._unsorted_cat(k),
                                     "pipeline_id": lambda k: self._lead_status(8 * (k - 1) + 3)[0]})
        out["talks"] = Spec("talks", self.n["talks"], self.talk,
                            _times(self.salt["t:talks"], self.n["talks"], now, 90 * DAY),
                            key_name="talk_id")
        out["transactions"] = Spec("transactions", self.n["transactions"], self.transaction,
                                   _times(self.salt["t:transactions"], self.n["transactions"],
                                          now, yr),
                                   fast={"customer_id": lambda k: self._txn_customer(k)})
        for k, cat in enumerate(ref.catalogs):
            name = "catalog:%d" % cat["id"]
            n = self.n_elements if k != 2 else self.n_elements // 2
            out[name] = Spec(name, n, self._element_gen(cat, (k + 1) * 1000000),
                             _times(self.salt["t:elements"] ^ k, n, now, 2 * yr),
                             id_base=(k + 1) * 1000000)
        self.specs = out
        return out

    # ---- leads -------------------------------------------------------------------------
    def _lead_status(self, i):
        """(pipeline_id, status_id) of lead i; i % 8 == 3 leads (first n_unsorted) are unsorted."""
        r = R(self.salt["leads"] ^ 0x51, i)
        pid, statuses = self.pipes[r.n(len(self.pipes))] if i % 8 != 3 else self.pipes[(i // 8) % len(self.pipes)]
        if i % 8 == 3 and (i - 3) // 8 < self.n_unsorted:
            return pid, statuses[0]["id"]
        x = r.n(100)
        if x < 25:
            return pid, WON
        if x < 45:
            return pid, LOST
        return pid, statuses[1 + r.n(len(statuses) - 3)]["id"]

    def _lead_resp(self, i):
        return self.users[R(self.salt["leads"] ^ 0x77, i).n(len(self.users))]

    def lead_contacts(self, i):
        nc = self.n["contacts"]
        if nc == 0:
            return []
        out = [((i - 1) % nc) + 1]
        if i % 3 == 0 and nc > 1:
            c2 = ((i - 1 + nc // 2) % nc) + 1
            if c2 != out[0]:
                out.append(c2)
        return out

    def lead_company(self, i):
        nco = self.n["companies"]
        return ((i - 1) % nco) + 1 if nco and i % 4 != 0 else None

    def lead(self, i):
        """The full lead record (every with= part): the parsed text of amo_rows.lead_json."""
        return json.loads(self.lead_json(i, ALL_WITH["leads"]))

    # ---- contacts, companies, customers ------------------------------------------------
    def contact_company(self, c):
        nco = self.n["companies"]
        return ((c - 1) % nco) + 1 if nco and c % 5 != 0 else None

    def contact_leads(self, c, max_lead):
        nc, out = self.n["contacts"], []
        if not nc:
            return out
        i = c
        while i <= max_lead:
            out.append(i)
            i += nc
        half = nc // 2
        if nc > 1:
            i = ((c - 1 - half) % nc) + 1
            while i <= max_lead:
                if i % 3 == 0 and ((i - 1 + half) % nc) + 1 != ((i - 1) % nc) + 1:
                    out.append(i)
                i += nc
        return sorted(set(out))

    def customer_contact(self, k):
        nc = self.n["contacts"]
        return ((k - 1) % nc) + 1 if nc else None

    def customer_company(self, k):
        nco = self.n["companies"]
        return ((k - 1) % nco) + 1 if nco and k % 2 == 0 else None

    def contact(self, c):
        return json.loads(self.contact_json(c, ALL_WITH["contacts"]))

    def company(self, co):
        return json.loads(self.company_json(co, ALL_WITH["companies"]))

    def customer(self, k):
        r = R(self.salt["customers"], k)
        created, updated = self.specs["customers"].times(k)
        resp = self._user(r)
        cf, vals = self.cf["customers"], []
        if r.pct(70):
            f = cf["Абонемент"]
            vals.append(self._cfv(f, [self._enum(f, r)]))
        if r.pct(60):
            vals.append(self._cfv(cf["Остаток занятий"], [{"value": str(r.n(13))}]))
        if r.pct(40):
            vals.append(self._cfv(cf["Дата продления"], [{"value": (self.now // DAY + r.n(60)) * DAY - 3 * 3600}]))
        count = r.n(12)
        ltv = count * 4000 + r.n(10) * 100
        rec = {"id": k, "name": "Покупатель: " + person(r)[2], "next_price": 4000 + r.n(5) * 1000,
               "next_date": self.now + r.n(60) * DAY, "responsible_user_id": resp,
               "status_id": 90001 + r.n(4), "periodicity": r.pick([0, 7, 30]),
               "created_by": self._user(r), "created_at": created,
               "updated_by": self._user(r), "updated_at": updated,
               "closest_task_at": None, "is_deleted": False, "ltv": ltv,
               "purchases_count": count, "average_check": ltv // count if count else 0,
               "custom_fields_values": vals or None, "account_id": self.acc,
               "_links": {"self": {"href": "%s/api/v4/customers/%d" % (BASE, k)}}}
        c, co = self.customer_contact(k), self.customer_company(k)
        rec["_embedded"] = {
            "tags": self._tags("customers", r, 30),
            "segments": [{"id": 95001 + r.n(3)}] if r.pct(60) else [],
            "contacts": [{"id": c, "is_main": True}] if c else [],
            "companies": [{"id": co}] if co else [],
            "catalog_elements": []}
        return rec

    # ---- tasks, notes ------------------------------------------------------------------
    def _task_ent(self, t):
        x = t % 10
        if x < 6:
            n = self.n["leads"]
            return ("leads", ((t * 7) % n) + 1) if n else (None, None)
        if x < 8:
            n = self.n["contacts"]
            return ("contacts", ((t * 3) % n) + 1) if n else (None, None)
        if x < 9:
            n = self.n["companies"]
            return ("companies", (t % n) + 1) if n else (None, None)
        return None, None

    def _task_done(self, t):
        return R(self.salt["tasks"] ^ 0x33, t).pct(60)

    def _task_resp(self, t):
        return self.users[R(self.salt["tasks"] ^ 0x44, t).n(len(self.users))]

    def task(self, t):
        r = R(self.salt["tasks"], t)
        created, updated = self.specs["tasks"].times(t)
        et, eid = self._task_ent(t)
        done = self._task_done(t)
        resp = self._task_resp(t)
        ttype = 1 + r.n(4)
        return {"id": t, "created_by": self._user(r), "updated_by": self._user(r),
                "created_at": created, "updated_at": updated, "responsible_user_id": resp,
                "group_id": self._group(resp), "entity_id": eid, "entity_type": et,
                "duration": r.pick([0, 0, 1800, 3600]), "is_completed": done,
                "task_type_id": ttype, "text": TASK_TEXTS[r.n(len(TASK_TEXTS))],
                "result": {"text": "Выполнено: " + NOTE_TEXTS[r.n(10)]} if done and r.pct(60) else [],
                "complete_till": created + (1 + r.n(14)) * DAY - 1, "account_id": self.acc,
                "_links": {"self": {"href": "%s/api/v4/tasks/%d" % (BASE, t)}}}

    NOTE_KINDS = ["common", "common", "common", "common", "call_in", "call_out",
                  "service_message", "sms_out", "attachment", "geolocation", "amomail_message",
                  "extended_service_message"]

    def _note_entity_fn(self, ent):
        base = NOTE_BASE[ent]

        def f(key):
            n = self.n[ent]
            return (((key - base) * 13) % n) + 1 if n else None
        return f

    def _note_type_fn(self, ent):
        salt = self.salt[ent + "/notes"] ^ 0x99
        kinds = self.NOTE_KINDS

        def f(key):
            return kinds[R(salt, key).n(len(kinds))]
        return f

    def _note_gen(self, ent):
        spec_name = ent + "/notes"
        salt = self.salt[spec_name]
        ent_fn, type_fn = self._note_entity_fn(ent), self._note_type_fn(ent)
        base = NOTE_BASE[ent]

        def gen(key):
            r = R(salt, key)
            created, updated = self.specs[spec_name].times(key)
            nt = type_fn(key)
            resp = self._user(r)
            return {"id": key, "entity_id": ent_fn(key), "created_by": resp, "updated_by": resp,
                    "created_at": created, "updated_at": updated, "responsible_user_id": resp,
                    "group_id": self._group(resp), "note_type": nt,
                    "params": self._note_params(nt, r, key), "account_id": self.acc,
                    "_links": {"self": {"href": "%s/api/v4/%s/%d/notes/%d" % (BASE, ent, ent_fn(key) or 0, key)}}}
        return gen

    def _note_params(self, nt, r, key):
        if nt == "common":
            return {"text": NOTE_TEXTS[r.n(10)]}
        if nt in ("call_in", "call_out"):
            return {"uniq": uuid_of(self.seed, 50000000 + key), "duration": r.n(900),
                    "source": "Мегафон АТС", "link": "https://records.example.ru/%d.mp3" % key,
                    "phone": phone(r), "call_result": "Поговорили" if r.pct(70) else "",
                    "call_status": 4 if r.pct(70) else 6, "call_responsible": self._user(r)}
        if nt in ("service_message", "extended_service_message"):
            return {"service": "Робот «Лингва»", "text": "Автоматическое сообщение №%d" % key}
        if nt == "sms_out":
            return {"text": "Напоминаем о занятии завтра в %d:00" % (9 + r.n(10)), "phone": phone(r)}
        if nt == "attachment":
            return {"original_name": "договор_%d.pdf" % key, "file_uuid": uuid_of(self.seed, 60000000 + key),
                    "version_uuid": uuid_of(self.seed, 70000000 + key), "file_name": "dogovor_%d.pdf" % key,
                    "is_drive_attachment": True}
        if nt == "geolocation":
            return {"text": "Встреча", "address": "%s, %s" % (r.pick(CITIES), r.pick(STREETS)),
                    "longitude": "37.%06d" % r.n(999999), "latitude": "55.%06d" % r.n(999999)}
        return {"thread_id": r.n(10 ** 6), "message_id": r.n(10 ** 7), "private": False,
                "income": bool(r.n(2)), "from": {"email": "client@example.ru", "name": "Клиент"},
                "to": {"email": "info@lingva.example.ru", "name": "Лингва"},
                "subject": "Вопрос по курсу", "content_summary": NOTE_TEXTS[r.n(10)],
                "attach_cnt": 0, "delivery": None}

    # ---- events ------------------------------------------------------------------------
    EVENT_MIX = [("lead_added", "lead"), ("lead_status_changed", "lead"),
                 ("lead_status_changed", "lead"), ("contact_added", "contact"),
                 ("company_added", "company"), ("task_added", "task"),
                 ("common_note_added", "lead"), ("incoming_chat_message", "contact"),
                 ("incoming_call", "contact"), ("entity_responsible_changed", "lead"),
                 ("sale_field_changed", "lead"), ("name_field_changed", "lead"),
                 ("custom_field_value_changed", "lead"), ("entity_tag_added", "lead"),
                 ("task_completed", "task"), ("lead_deleted", "lead"), ("contact_deleted", "contact")]
    _PLURAL = {"lead": "leads", "contact": "contacts", "company": "companies",
               "task": "tasks", "customer": "customers"}

    def _event_kind(self, e):
        """(type, entity_type, entity_id) of base event e; deletions name ids that never were."""
        r = R(self.salt["events"] ^ 0x1, e)
        typ, et = self.EVENT_MIX[r.n(len(self.EVENT_MIX))]
        n = self.n[self._PLURAL[et]]
        if typ.endswith("_deleted"):
            return typ, et, n + 1000 + e
        return typ, et, (r.n(n) + 1) if n else e

    def event(self, e):
        r = R(self.salt["events"], e)
        created = self.specs["events"].times(e)[0]
        typ, et, eid = self._event_kind(e)
        before, after = [], []
        if typ == "lead_status_changed":
            pid, statuses = self.pipes[r.n(len(self.pipes))]
            before = [{"lead_status": {"id": statuses[0]["id"], "pipeline_id": pid}}]
            after = [{"lead_status": {"id": statuses[1]["id"], "pipeline_id": pid}}]
        elif typ == "lead_added":
            pid, statuses = self.pipes[0]
            after = [{"lead_status": {"id": statuses[1]["id"], "pipeline_id": pid}}]
        elif typ == "entity_responsible_changed":
            before = [{"responsible_user": {"id": self._user(r)}}]
            after = [{"responsible_user": {"id": self._user(r)}}]
        elif typ == "sale_field_changed":
            before = [{"sale_field_value": {"sale": r.n(50) * 1000}}]
            after = [{"sale_field_value": {"sale": r.n(50) * 1000}}]
        elif typ == "name_field_changed":
            before = [{"name_field_value": {"name": "Сделка #%d" % eid}}]
            after = [{"name_field_value": {"name": r.pick(COURSES)}}]
        elif typ == "custom_field_value_changed":
            f = self.cf["leads"]["Курс"]
            e1, e2 = f["enums"][r.n(len(f["enums"]))], f["enums"][r.n(len(f["enums"]))]
            before = [{"custom_field_value": {"field_id": f["id"], "field_type": 4,
                                              "enum_id": e1["id"], "text": e1["value"]}}]
            after = [{"custom_field_value": {"field_id": f["id"], "field_type": 4,
                                             "enum_id": e2["id"], "text": e2["value"]}}]
        elif typ in ("common_note_added", "incoming_call"):
            after = [{"note": {"id": r.n(max(self.n_notes["leads"], 1)) + 1}}]
        elif typ == "incoming_chat_message":
            after = [{"message": {"id": uuid_of(self.seed, 80000000 + e),
                                  "origin": r.pick(["telegram", "waba", "instagram_business"]),
                                  "talk_id": r.n(max(self.n["talks"], 1)) + 1}}]
        elif typ == "entity_tag_added":
            after = [{"tag": {"name": r.pick(self.tag_lists["leads"])["name"]}}]
        elif typ in ("task_added", "task_completed"):
            after = [{"task_result": {"text": "ok"}}] if typ == "task_completed" else []
        plural = self._PLURAL[et]
        eid_s = event_id(self.salt["events"], e, created)
        return {"id": eid_s, "type": typ, "entity_id": eid,
                "entity_type": et, "created_by": 0 if r.pct(30) else self._user(r),
                "created_at": created, "value_after": after, "value_before": before,
                "account_id": self.acc,
                "_links": {"self": {"href": "%s/api/v4/events/%s" % (BASE, eid_s)}},
                "_embedded": {"entity": {"id": eid, "_links": {"self": {"href": "%s/api/v4/%s/%d" % (BASE, plural, eid)}}}}}

    # ---- unsorted, talks, transactions, catalog elements -------------------------------
    def unsorted_uid(self, k):
        return hex_uid(self.salt["unsorted"], k, 32) + "%08x" % k

    def _unsorted_cat(self, k):
        return ["forms", "sip", "chats", "mail"][k % 4]

    def _unsorted_time(self, k):
        lead = 8 * (k - 1) + 3
        return self.specs["leads"].times(lead)[0] if lead <= self.n["leads"] else self.now

    def unsorted(self, k):
        r = R(self.salt["unsorted"], k)
        lead = 8 * (k - 1) + 3
        cat = self._unsorted_cat(k)
        created = self._unsorted_time(k)
        pid = self._lead_status(lead)[0]
        contacts = self.lead_contacts(lead)
        if cat == "forms":
            meta = {"form_id": 1 + r.n(5), "form_name": "Заявка с сайта", "form_page": "https://lingva.example.ru/kursy",
                    "ip": "10.%d.%d.%d" % (r.n(255), r.n(255), r.n(255)), "form_sent_at": created,
                    "referer": "https://yandex.ru/", "visitor_uid": uuid_of(self.seed, 90000000 + k)}
        elif cat == "sip":
            meta = {"from": phone(r), "phone": 74950000000 + r.n(1000), "called_at": created,
                    "duration": r.n(600), "link": "https://records.example.ru/u%d.mp3" % k,
                    "service_code": "megafon_ats", "is_call_event_needed": True}
        elif cat == "chats":
            meta = {"from": person(r)[2], "to": "Лингва", "received_at": created,
                    "service": "telegram", "client": {"name": person(r)[2], "avatar": None},
                    "origin": {"chat_id": uuid_of(self.seed, 91000000 + k), "ref": None}, "last_message_text": "Здравствуйте! Есть места в группе?",
                    "source_name": "Telegram-бот"}
        else:
            meta = {"business": True, "is_read": False, "subject": "Запрос расписания",
                    "from": {"email": "parent%d@example.ru" % k, "name": person(r)[2]},
                    "received_at": created, "thread_id": r.n(10 ** 6), "content_summary": "Добрый день!"}
        uid = self.unsorted_uid(k)
        return {"uid": uid, "source_uid": "src-%d" % k, "source_name": "Лингва " + cat,
                "category": cat, "pipeline_id": pid, "created_at": created,
                "metadata": meta, "account_id": self.acc,
                "_links": {"self": {"href": "%s/api/v4/leads/unsorted/%s" % (BASE, uid)}},
                "_embedded": {"leads": [{"id": lead}] if lead <= self.n["leads"] else [],
                              "contacts": [{"id": c} for c in contacts[:1]], "companies": []}}

    def talk(self, t):
        r = R(self.salt["talks"], t)
        created, updated = self.specs["talks"].times(t)
        nc, nl = self.n["contacts"], self.n["leads"]
        contact = ((t * 5) % nc) + 1 if nc else None
        lead = ((t * 11) % nl) + 1 if nl and r.pct(70) else None
        return {"talk_id": t, "created_at": created, "updated_at": updated,
                "rate": r.n(6) if r.pct(30) else 0, "contact_id": contact,
                "chat_id": uuid_of(self.seed, 92000000 + t),
                "entity_id": lead, "entity_type": "lead" if lead else None,
                "is_in_work": r.pct(40), "is_read": r.pct(70),
                "origin": r.pick(["telegram", "waba", "instagram_business", "vk", "com.amocrm.amocrmwa"]),
                "missed_at": (created + 3600) if r.pct(10) else None, "account_id": self.acc,
                "_links": {"self": {"href": "%s/api/v4/talks/%d" % (BASE, t)}},
                "_embedded": {"contacts": [{"id": contact}] if contact else [],
                              "leads": [{"id": lead}] if lead else []}}

    def _txn_customer(self, t):
        nk = self.n["customers"]
        return ((t * 3) % nk) + 1 if nk else None

    def transaction(self, t):
        r = R(self.salt["transactions"], t)
        created, updated = self.specs["transactions"].times(t)
        return {"id": t, "comment": "Оплата абонемента" if r.pct(70) else None,
                "price": 4000 * (1 + r.n(3)), "completed_at": created,
                "customer_id": self._txn_customer(t), "created_by": self._user(r),
                "updated_by": self._user(r), "created_at": created, "updated_at": updated,
                "is_deleted": False, "account_id": self.acc,
                "_links": {"self": {"href": "%s/api/v4/customers/transactions/%d" % (BASE, t)}},
                "_embedded": {"catalog_elements": [] if r.pct(50) else [
                    {"id": 1000000 + r.n(max(self.n_elements, 1)) + 1,
                     "metadata": {"quantity": 1, "catalog_id": self.products["id"]}}]}}

    def _element_gen(self, cat, base):
        cid = cat["id"]
        fields = self.ref.fields["catalog:%d" % cid]
        salt = self.salt["elements"] ^ cid
        spec_name = "catalog:%d" % cid

        def gen(key):
            r = R(salt, key)
            i = key - base
            created, updated = self.specs[spec_name].times(key)
            vals = [self._cfv(fields[0], [{"value": "SKU-%d-%05d" % (cid, i)}]),
                    self._cfv(fields[1], [{"value": str(500 * (1 + r.n(40)))}])]
            if r.pct(40):
                vals.append(self._cfv(fields[2], [{"value": "Описание позиции %d" % i}]))
            if r.pct(60):
                f = fields[3]
                vals.append(self._cfv(f, [self._enum(f, r)]))
            if r.pct(50):
                vals.append(self._cfv(fields[4], [{"value": str(r.n(300))}]))
            if r.pct(10):
                vals = None
            name = ("%s — %s" % (r.pick(COURSES), r.pick(LEVELS))) if cat["type"] != "invoices" else "Счёт №%d" % i
            return {"id": key, "name": name, "created_by": self._user(r), "updated_by": self._user(r),
                    "created_at": created, "updated_at": updated,
                    "is_deleted": None if r.pct(30) else False,
                    "custom_fields_values": vals, "catalog_id": cid, "account_id": self.acc,
                    "_links": {"self": {"href": "%s/api/v4/catalogs/%d/elements/%d" % (BASE, cid, key)}}}
        return gen
