"""JSON text generators for the widest rows: leads, contacts, companies.

Building a dict and json-encoding it costs ~55 us per lead in CPython; writing the JSON text
from pre-encoded fragments costs a third of that, which is what keeps a cold 250-lead page
fast at bench scale. RowText is a mixin of amo_gen.Gen: lead_json(i, with_set) returns the row
exactly as the list endpoint shows it for that `with=` (compact, raw UTF-8, BASE hrefs), and
Gen.lead(i) is json.loads(lead_json(i, ALL)). The draws happen in a fixed order, so a row is
still a pure function of (seed, i). Strings are escaped once, at start, with json.dumps.
"""

import json

from amo_util import (CITIES, DAY, LEVELS, NOTE_TEXTS, STREETS, COMPANY_KIND, COMPANY_WORD,
                      COURSES, FIRST_F, FIRST_M, LAST, R, translit)

WON, LOST = 142, 143
ALL_WITH = {"leads": frozenset(("contacts", "catalog_elements", "loss_reason", "source",
                                "source_id", "is_price_modified_by_robot")),
            "contacts": frozenset(("leads", "customers", "catalog_elements")),
            "companies": frozenset(("contacts", "leads", "customers", "catalog_elements"))}


def _q(s):
    return json.dumps(s, ensure_ascii=False)


def _link(kind, i):
    return '"_links":{"self":{"href":"https://BASE/api/v4/%s/%d"}}' % (kind, i)


class RowText:
    def _init_text(self):
        """Pre-encode every fragment the row writers paste together."""
        self._hdr = {}          # (entity, field name) -> '{"field_id":..,"values":['
        self._enums = {}        # (entity, field name) -> ['{"value":..,"enum_id":..', ...]
        self._enum_ids, self._enum_names = {}, {}
        for ent in ("leads", "contacts", "companies"):
            for name, f in self.cf[ent].items():
                self._hdr[(ent, name)] = '{"field_id":%d,"field_name":%s,"field_code":%s,"field_type":%s,"values":[' % (
                    f["id"], _q(f["name"]), _q(f["code"]), _q(f["type"]))
                if f["enums"]:
                    self._enums[(ent, name)] = ['{"value":%s,"enum_id":%d' % (_q(e["value"]), e["id"])
                                                for e in f["enums"]]
                    self._enum_ids[(ent, name)] = [e["id"] for e in f["enums"]]
                    self._enum_names[(ent, name)] = [e["value"] for e in f["enums"]]
        self._extra_hdr = [('{"field_id":%d,"field_name":%s,"field_code":null,"field_type":"text","values":['
                            % (f["id"], _q(f["name"])), f["id"]) for f in self.extra_lead_fields]
        self._tag_frags = {ent: ['{"id":%d,"name":%s,"color":%s}' % (t["id"], _q(t["name"]), _q(t["color"]))
                                 for t in tl] for ent, tl in self.tag_lists.items()}
        self._comment = [_q("Строка 1: «%s»\nСтрока 2 — ок" % t) for t in NOTE_TEXTS]
        self._courses = [_q(c) for c in COURSES]
        self._loss = {lr["id"]: json.dumps([{"id": lr["id"], "name": lr["name"], "sort": lr["sort"],
                                             "created_at": lr["created_at"], "updated_at": lr["updated_at"],
                                             "_links": lr["_links"]}], ensure_ascii=False, separators=(",", ":"))
                      for lr in self.ref.loss_reasons}
        self._source = {s["id"]: json.dumps({"id": s["id"], "name": s["name"], "external_id": s["external_id"],
                                             "type": "api"}, ensure_ascii=False, separators=(",", ":"))
                        for s in self.ref.sources}
        price_field = self.ref.fields["catalog:%d" % self.products["id"]][1]
        self._elem_meta = (self.products["id"], price_field["id"])
        self._group_of = {u: [0, 351, 352][(u - 7000001) % 3] for u in self.users}

    # ---- shared pieces ---------------------------------------------------------------------
    def _tags_json(self, ent, r, pct):
        if not r.pct(pct):
            return "[]"
        frags = self._tag_frags[ent]
        n = len(frags)
        k = 1 + r.n(3)
        out, seen = [], set()
        for _ in range(k):
            j = r.n(n)
            if j not in seen:
                seen.add(j)
                out.append(frags[j])
        return "[" + ",".join(out) + "]"

    def _enum_json(self, key, r):
        en = self._enums[key]
        return self._hdr[key] + en[r.n(len(en))] + "}]}"

    # ---- leads -------------------------------------------------------------------------------
    def lead_json(self, i, with_set):
        r = R(self.salt["leads"], i)
        created, updated = self.specs["leads"].times(i)
        pid, sid = self._lead_status(i)
        resp = self._lead_resp(i)
        users = self.users
        closed = sid == WON or sid == LOST
        u_by = users[r.n(len(users))] if r.pct(80) else 0
        course = COURSES[r.n(len(COURSES))]
        if r.pct(85):
            name = _q("%s %s" % (course, LEVELS[r.n(len(LEVELS))]))
        else:
            name = '"Сделка #%d"' % i
        price = r.n(60) * 1000
        loss = (5001 + r.n(6)) if sid == LOST and r.pct(70) else None
        source = (6001 + r.n(3)) if r.pct(20) else None
        c_by = 0 if r.pct(15) else users[r.n(len(users))]
        closed_at = max(created, updated - r.n(3600)) if closed else None
        task_at = (updated + r.n(30) * DAY) if not closed and r.pct(50) else None
        cfv = self._lead_cfv_json(r)
        tags = self._tags_json("leads", r, 35)
        parts = ['{"id":%d,"name":%s,"price":%d,"responsible_user_id":%d,"group_id":%d,'
                 '"status_id":%d,"pipeline_id":%d,"loss_reason_id":%s' % (
                     i, name, price, resp, self._group_of[resp], sid, pid,
                     "null" if loss is None else loss)]
        if "source_id" in with_set:
            parts.append(',"source_id":%s' % ("null" if source is None else source))
        parts.append(',"created_by":%d,"updated_by":%d,"created_at":%d,"updated_at":%d,'
                     '"closed_at":%s,"closest_task_at":%s,"is_deleted":false,'
                     '"custom_fields_values":%s,"score":null,"account_id":%d,"labor_cost":null' % (
                         c_by, u_by, created, updated,
                         "null" if closed_at is None else closed_at,
                         "null" if task_at is None else task_at, cfv, self.acc))
        if "is_price_modified_by_robot" in with_set:
            parts.append(',"is_price_modified_by_robot":false')
        parts.append(',%s,"_embedded":{"tags":%s' % (_link("leads", i), tags))
        co = self.lead_company(i)
        parts.append(',"companies":[{"id":%d,%s}]' % (co, _link("companies", co)) if co else ',"companies":[]')
        if "contacts" in with_set:
            cs = self.lead_contacts(i)
            parts.append(',"contacts":[%s]' % ",".join(
                '{"id":%d,"is_main":%s,%s}' % (c, "true" if k == 0 else "false", _link("contacts", c))
                for k, c in enumerate(cs)))
        if "catalog_elements" in with_set:
            if i % 5 == 1 and self.n_elements:
                eid = 1000000 + ((i - 1) % self.n_elements) + 1
                parts.append(',"catalog_elements":[{"id":%d,"metadata":{"quantity":%d,"catalog_id":%d,"price_id":%d}}]'
                             % (eid, 1 + r.n(4), self._elem_meta[0], self._elem_meta[1]))
            else:
                parts.append(',"catalog_elements":[]')
        if loss and "loss_reason" in with_set:
            parts.append(',"loss_reason":' + self._loss[loss])
        if source and "source" in with_set:
            parts.append(',"source":' + self._source[source])
        parts.append("}}")
        return "".join(parts)

    def _lead_cfv_json(self, r):
        if r.pct(20):
            return "null"
        H, out, ids = self._hdr, [], None
        out.append(self._enum_json(("leads", "Курс"), r))
        if r.pct(70):
            out.append(self._enum_json(("leads", "Филиал"), r))
        if r.pct(50):
            key = ("leads", "Дни занятий")
            en = self._enums[key]
            picks = sorted({r.n(7) for _ in range(1 + r.n(3))})
            out.append(H[key] + ",".join(en[p] + "}" for p in picks) + "]}")
        if r.pct(50):
            out.append(H[("leads", "Количество занятий")] + '{"value":"%d"}]}' % (4 * (1 + r.n(12))))
        if r.pct(40):
            # a date field is a midnight in the account's zone (Moscow, +03:00), as real ones are
            out.append(H[("leads", "Дата пробного урока")] + '{"value":%d}]}' % ((self.now // DAY - r.n(400)) * DAY - 3 * 3600))
        if r.pct(50):
            out.append(H[("leads", "Согласие на рассылку")] + ('{"value":true}]}' if r.n(2) else '{"value":false}]}'))
        if r.pct(20):
            out.append(H[("leads", "Комментарий менеджера")] + '{"value":%s}]}' % self._comment[r.n(10)])
        if r.pct(20):
            out.append(H[("leads", "Ссылка на договор")] +
                       '{"value":"https://docs.example.ru/d/%d?x=1&y=2"}]}' % r.n(99999))
        if r.pct(30):
            out.append(H[("leads", "utm_source")] + '{"value":"%s"}]}' % r.pick(("yandex", "google", "vk", "telegram")))
        if r.pct(20):
            out.append(H[("leads", "Звонок назначен на")] + '{"value":%d}]}' % (self.now - r.n(200 * DAY)))
        if r.pct(20):
            out.append(H[("leads", "Предоплата")] + '{"value":"%d"}]}' % (500 * (1 + r.n(20))))
        if r.pct(30):
            out.append(self._enum_json(("leads", "Формат"), r))
        ex = self._extra_hdr
        if ex and r.pct(50):
            ids = set()
            for _ in range(2):
                hdr, fid = ex[r.n(len(ex))]
                if fid not in ids:
                    ids.add(fid)
                    out.append(hdr + '{"value":"значение %d"}]}' % r.n(1000))
        return "[" + ",".join(out) + "]"

    # ---- contacts ----------------------------------------------------------------------------
    def _person(self, r):
        if r.n(2):
            first, last = r.pick(FIRST_F), r.pick(LAST) + "а"
        else:
            first, last = r.pick(FIRST_M), r.pick(LAST)
        return first, last

    def contact_json(self, c, with_set):
        r = R(self.salt["contacts"], c)
        created, updated = self.specs["contacts"].times(c)
        first, last = self._person(r)
        users = self.users
        resp = users[r.n(len(users))]
        c_by = 0 if r.pct(20) else users[r.n(len(users))]
        u_by = users[r.n(len(users))] if r.pct(80) else 0
        task_at = (updated + r.n(20) * DAY) if r.pct(25) else None
        cfv = self._person_cfv_json(r, first, last, c)
        tags = self._tags_json("contacts", r, 25)
        parts = ['{"id":%d,"name":"%s %s","first_name":"%s","last_name":"%s",'
                 '"responsible_user_id":%d,"group_id":%d,"created_by":%d,"updated_by":%d,'
                 '"created_at":%d,"updated_at":%d,"closest_task_at":%s,"is_deleted":false,'
                 '"is_unsorted":false,"custom_fields_values":%s,"account_id":%d,%s,'
                 '"_embedded":{"tags":%s' % (
                     c, first, last, first, last, resp, self._group_of[resp], c_by, u_by,
                     created, updated, "null" if task_at is None else task_at, cfv, self.acc,
                     _link("contacts", c), tags)]
        co = self.contact_company(c)
        parts.append(',"companies":[{"id":%d,%s}]' % (co, _link("companies", co)) if co else ',"companies":[]')
        if "leads" in with_set:
            parts.append(',"leads":[%s]' % ",".join('{"id":%d,%s}' % (i, _link("leads", i))
                                                    for i in self.contact_leads(c, self.n["leads"])))
        if "customers" in with_set:
            parts.append(',"customers":[%s]' % ",".join(
                '{"id":%d,%s}' % (k, _link("customers", k))
                for k in range(c, self.n["customers"] + 1, max(self.n["contacts"], 1))))
        if "catalog_elements" in with_set:
            parts.append(',"catalog_elements":[]')
        parts.append("}}")
        return "".join(parts)

    def _person_cfv_json(self, r, first, last, i):
        H, out = self._hdr, []
        if r.pct(90):
            key = ("contacts", "Телефон")
            ids, names = self._enum_ids[key], self._enum_names[key]
            vals = ['{"value":"+79%09d","enum_id":%d,"enum_code":"MOB"}' % (r.n(1000000000), ids[2])]
            if r.pct(25):
                j = r.n(len(ids))
                vals.append('{"value":"+79%09d","enum_id":%d,"enum_code":"%s"}' % (r.n(1000000000), ids[j], names[j]))
            out.append(H[key] + ",".join(vals) + "]}")
        if r.pct(60):
            key = ("contacts", "Email")
            j = r.n(2)
            out.append(H[key] + '{"value":"%s.%s%d@example.ru","enum_id":%d,"enum_code":"%s"}]}' % (
                translit(first), translit(last), i, self._enum_ids[key][j], self._enum_names[key][j]))
        if r.pct(15):
            out.append(H[("contacts", "Должность")] + '{"value":"%s"}]}' % r.pick(
                ("Родитель", "Студент", "HR-менеджер", "Директор")))
        if r.pct(20):
            out.append(H[("contacts", "День рождения")] + '{"value":%d}]}' % (
                (self.now // DAY - 3650 - r.n(12000)) * DAY - 3 * 3600))
        if r.pct(40):
            out.append(self._enum_json(("contacts", "Город"), r))
        if r.pct(30):
            out.append(H[("contacts", "Возраст ученика")] + '{"value":"%d"}]}' % (6 + r.n(40)))
        if r.pct(10):
            out.append(H[("contacts", "Адрес")] + '{"value":"%s, %s, д. %d"}]}' % (
                r.pick(CITIES), r.pick(STREETS), 1 + r.n(120)))
        return "[" + ",".join(out) + "]" if out else "null"

    # ---- companies ---------------------------------------------------------------------------
    def company_json(self, co, with_set):
        r = R(self.salt["companies"], co)
        created, updated = self.specs["companies"].times(co)
        users = self.users
        resp = users[r.n(len(users))]
        H, out = self._hdr, []
        if r.pct(80):
            key = ("companies", "Телефон")
            out.append(H[key] + '{"value":"+79%09d","enum_id":%d,"enum_code":"WORK"}]}' % (
                r.n(1000000000), self._enum_ids[key][0]))
        if r.pct(50):
            key = ("companies", "Email")
            out.append(H[key] + '{"value":"info%d@company.example.ru","enum_id":%d,"enum_code":"WORK"}]}' % (
                co, self._enum_ids[key][0]))
        if r.pct(40):
            out.append(H[("companies", "Web")] + '{"value":"https://company%d.example.ru"}]}' % co)
        if r.pct(40):
            out.append(H[("companies", "Адрес")] + '{"value":"%s, %s, д. %d, оф. %d"}]}' % (
                r.pick(CITIES), r.pick(STREETS), 1 + r.n(99), 1 + r.n(500)))
        if r.pct(50):
            out.append(H[("companies", "ИНН")] + '{"value":"77%08d"}]}' % r.n(100000000))
        name = _q("%s «%s»" % (r.pick(COMPANY_KIND), r.pick(COMPANY_WORD)))
        c_by = users[r.n(len(users))]
        u_by = users[r.n(len(users))]
        tags = self._tags_json("companies", r, 30)
        parts = ['{"id":%d,"name":%s,"responsible_user_id":%d,"group_id":%d,"created_by":%d,'
                 '"updated_by":%d,"created_at":%d,"updated_at":%d,"closest_task_at":null,'
                 '"is_deleted":false,"custom_fields_values":%s,"account_id":%d,%s,'
                 '"_embedded":{"tags":%s' % (
                     co, name, resp, self._group_of[resp], c_by, u_by, created, updated,
                     "[" + ",".join(out) + "]" if out else "null", self.acc,
                     _link("companies", co), tags)]
        if "contacts" in with_set:
            parts.append(',"contacts":[%s]' % ",".join(
                '{"id":%d,%s}' % (c, _link("contacts", c)) for c in self.company_contacts(co)))
        if "leads" in with_set:
            parts.append(',"leads":[%s]' % ",".join(
                '{"id":%d,%s}' % (i, _link("leads", i)) for i in self.company_leads(co)))
        if "customers" in with_set:
            parts.append(',"customers":[%s]' % ",".join(
                '{"id":%d,%s}' % (k, _link("customers", k)) for k in self.company_customers(co)))
        if "catalog_elements" in with_set:
            parts.append(',"catalog_elements":[]')
        parts.append("}}")
        return "".join(parts)

    # ---- the reverse links of companies ------------------------------------------------------
    def _same_company(self, co, n_max):
        nco = self.n["companies"]
        return range(co, n_max + 1, nco) if nco else range(0)

    def company_contacts(self, co):
        return [c for c in self._same_company(co, self.n["contacts"]) if c % 5 != 0]

    def company_leads(self, co):
        return [i for i in self._same_company(co, self.n["leads"]) if i % 4 != 0]

    def company_customers(self, co):
        return [k for k in self._same_company(co, self.n["customers"]) if k % 2 == 0]
