"""The fake Hollihop speaks reality: every key, type and nesting it serves is supported by
real traffic or listed, with its reason, in FAKE_ASSUMPTIONS below.

Real traffic, as kept in the repository (no values, only shapes):
  - tests/contract/hollihop/<Method>*.json: shapes of real responses (our own values),
    except the ones evidence.FIELD_LIST_FIXTURES names;
  - tests/contract/hollihop/evidence.py: the key/type profile of a real backup (PROFILE) and
    the field lists of clients that run against live accounts (FIELDS).
The fake is run in-process at demo scale with the parameters hollihop-sync sends (and the
optional query* flags, so nested data shows), all pages read.

    python3 -m unittest tests/fake/hollihop/test_fake_shapes.py      (from the repo root)
"""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRACT = os.path.join(HERE, "..", "..", "contract", "hollihop")
sys.path.insert(0, HERE)
sys.path.insert(0, CONTRACT)
import fake_hollihop as F  # noqa: E402
import evidence as EV  # noqa: E402

# ---------------------------------------------------------------------------------------------
# THE list of what the fake serves without evidence from real traffic, and why. One entry:
# (method, path or "*", JSON type or None = any type, reason). Every entry must still match
# something the fake serves (stale entries fail), so this list is the fake's exact debt.
# ---------------------------------------------------------------------------------------------
_UNSEEN = "no real response, field list or profile of this method exists; fields from public " \
          "client code as summarised in docs/api/hollihop.md"
FAKE_ASSUMPTIONS = [
    # Methods nobody has published a response of: the whole shape is an assumption.
    ("GetStudyRequests", "*", None, _UNSEEN),
    ("GetHistoryModifyLeadStatus", "*", None, _UNSEEN),
    ("GetCompanies", "*", None, _UNSEEN),
    ("GetClientStatuses", "*", None, _UNSEEN),
    ("GetClientFiles", "*", None, _UNSEEN),
    ("GetStudentPersonalOfficeSettings", "*", None, _UNSEEN),
    ("GetEmployees", "*", None, _UNSEEN),
    ("GetEmployeeStatuses", "*", None, _UNSEEN),
    ("GetEdUnitLeads", "*", None, _UNSEEN),
    ("GetLessonPlans", "*", None, _UNSEEN),
    ("GetDisciplines", "*", None, _UNSEEN + " (an array of strings)"),
    ("GetLearningTypes", "*", None, _UNSEEN + " (strings, or {Name} with --alt-shapes)"),
    ("GetPrices", "*", None, _UNSEEN),
    ("GetDiscounts", "*", None, _UNSEEN),
    ("GetSurcharges", "*", None, _UNSEEN),
    ("GetBalances", "*", None, _UNSEEN),
    ("GetIncomesAndOutgoes", "*", None, _UNSEEN),
    ("GetSupplies", "*", None, _UNSEEN),
    ("GetEdMaterials", "*", None, _UNSEEN),
    ("GetAnnouncements", "*", None, _UNSEEN),
    # Keys of evidenced methods that no real source shows.
    ("GetTeachers", "PhotoUrls", None,
     "none of 20 real teachers has photos; students carry PhotoUrls (relative paths) and "
     "schedule items TeacherPhotoUrls, so teachers with a photo are assumed to have it too"),
    ("GetTeachers", "PhotoUrls[]", None, "the elements of PhotoUrls, as on students"),
    ("GetLeads", "ExtraFields[].Name", None,
     "the strict client declares Lead.extra_fields without its element shape; assumed "
     "{Name, Value} as on students (real)"),
    ("GetLeads", "ExtraFields[].Value", None, "as ExtraFields[].Name"),
    ("GetEdUnits", "Assignee.Id", None,
     "only Assignee.FullName is read by a live client; {Id, FullName} as in the real "
     "Assignees[] of students and leads"),
    ("GetEdUnits", "Assignee.FullName", "str", "read by a live client; type as in Assignees[]"),
    ("GetEdUnits", "ExtraFields[].Name", None,
     "EdUnit.extra_fields declared without element shape; {Name, Value} as on students"),
    ("GetEdUnits", "ExtraFields[].Value", None, "as ExtraFields[].Name"),
    ("GetEdUnits", "ScheduleItems[].TeacherGenders[]", "bool",
     "element type not in the field list (annotated str, unenforced); public notes quoting a "
     "pasted real response show booleans"),
    ("GetEdUnits", "Days[].ScheduleItemIds[]", "int",
     "a live client reads ScheduleItemIds (ids of the unit's schedule items); int like "
     "ScheduleItems[].Id"),
    ("GetEdUnits", "ScheduleItems[].TeacherPhotoUrls[]", None,
     "element type not in the field list; public notes quoting a pasted real response show "
     "null for teachers without a photo; a photo path (str) is assumed for those with one"),
    ("GetStudents", "StudyRequests[].Utm", "object",
     "the strict client's UTM is one record (Source, Medium, ...), annotated as a list"),
    ("GetEdUnitStudents", "Days[].Accepted", "bool",
     "declared by the strict client without a type"),
    ("GetEdUnitStudents", "Days[].AcceptedDescription", "str",
     "declared by the strict client without a type"),
]

DATE_FROM, DATE_TO = "2024-12-01", "2025-07-31"
PER_CLIENT = ("GetIncomesAndOutgoes", "GetClientFiles", "GetStudentPersonalOfficeSettings")


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
    """(path, type) of every member below v; scalar array elements as 'arr[]'."""
    if isinstance(v, dict):
        for k, x in v.items():
            p = f"{prefix}.{k}" if prefix else k
            out.setdefault(p, set()).add(jtype(x))
            walk(x, p, out)
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)):
                walk(x, prefix + "[]", out)
            else:
                out.setdefault(prefix + "[]", set()).add(jtype(x))


def expand(t):
    return {"int", "float"} if t == "num" else set() if t == "?" else {t}


def real_shapes():
    """method -> {path: allowed types (may be empty = type unknown)} and method -> root keys."""
    paths, roots = {}, {}
    for name in sorted(os.listdir(CONTRACT)):
        if not name.endswith(".json") or name in EV.FIELD_LIST_FIXTURES:
            continue
        method = name[:-5].split("_")[0]
        with open(os.path.join(CONTRACT, name), encoding="utf-8") as f:
            obj = json.load(f)
        roots.setdefault(method, set()).update(obj.keys())
        got = paths.setdefault(method, {})
        for rows in obj.values():
            if isinstance(rows, list):
                for row in rows:
                    walk(row, "", got)
    for src in (EV.PROFILE, EV.FIELDS):
        for method, d in src.items():
            got = paths.setdefault(method, {})
            for p, t in d.items():
                got.setdefault(p, set()).update(expand(t))
    for method, keys in EV.ROOTS.items():
        roots.setdefault(method, set()).update(keys)
    return paths, roots


def fake_app():
    args = F.build_parser().parse_args(["--scale", "demo", "--seed", "3", "--no-warmup",
                                        "--rate-limit", "0"])
    return F.App(args)


def served(app):
    """method -> ({path: types served}, root keys served), reading every page."""
    d = app.data
    out = {}
    cids = [k for k in d.tables["getstudents"].keys()[:25]]
    for key, table in sorted(d.tables.items()):
        m = table.method
        calls = [{}]
        if m == "GetBalances":
            calls = [{"balancedate": "2025-05-01"}]
        elif m == "GetAnnouncements":
            calls = [{"targets": "Students,Employees,Companies"}]
        elif m == "GetEmployees":
            calls = [{"queryphoto": "false"}]
        elif m in PER_CLIENT:
            calls = [{"clientid": str(c)} for c in cids]
        elif m == "GetEdUnits":
            calls = [{"statuses": s, "querydays": "true", "datefrom": DATE_FROM,
                      "dateto": DATE_TO, "queryfiscalinfo": "true",
                      "queryteacherprices": "true"} for s in EV.ED_UNIT_STATUSES]
        elif m == "GetEdUnitStudents":
            calls = [{"querydays": "true", "querypayers": "true", "datefrom": DATE_FROM,
                      "dateto": DATE_TO}]
        elif m == "GetStudents":
            calls = [{}, {"querystudyrequests": "true"}]
        paths, roots = {}, set()
        for params in calls:
            skip = 0
            while True:
                p = dict(params, take="1000", skip=str(skip))
                status, obj = F.api_answer(app, table, p)
                if isinstance(obj, bytes):
                    obj = json.loads(obj)
                roots.update(obj.keys())
                rows = obj.get(table.root) if table.root else [obj]
                rows = rows or []
                for row in rows:
                    if isinstance(row, (dict, list)):
                        walk(row, "", paths)
                    else:
                        paths.setdefault("", set()).add(jtype(row))    # a bare-value row
                if not table.paged or table.root is None or len(rows) < 1000:
                    break
                skip += len(rows)
        out[m] = (paths, roots)
    return out


def answer(app, table, params):
    """api_answer's (status, object): a page the fake sends as JSON text, parsed."""
    status, obj = F.api_answer(app, table, params)
    return status, json.loads(obj) if isinstance(obj, bytes) else obj


class FakeShapeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.real, cls.real_roots = real_shapes()
        cls.served = served(fake_app())

    def test_every_served_key_type_and_nesting_is_real_or_assumed(self):
        used = set()
        problems = []
        for m, (paths, roots) in sorted(self.served.items()):
            real = self.real.get(m, {})
            for p, types in sorted(paths.items()):
                for t in sorted(types):
                    if p in real and t in real[p]:
                        continue
                    hit = [i for i, (am, ap, at, _) in enumerate(FAKE_ASSUMPTIONS)
                           if am == m and (ap == "*" or ap == p) and (at is None or at == t)]
                    if hit:
                        used.update(hit)
                        continue
                    why = "type %s not seen (real: %s)" % (t, sorted(real[p]) or "type unknown") \
                        if p in real else "key not in any real response or field list"
                    problems.append(f"{m} {p}: {why}")
            if m in self.real_roots:
                for r in sorted(roots - self.real_roots[m]):
                    problems.append(f"{m}: root key {r} not in real responses")
        self.assertEqual(problems, [], "the fake serves what reality does not:\n  " +
                         "\n  ".join(problems))
        stale = [f"{a[0]} {a[1]} {a[2]}" for i, a in enumerate(FAKE_ASSUMPTIONS) if i not in used]
        self.assertEqual(stale, [], "FAKE_ASSUMPTIONS entries the fake no longer needs")

    def test_assumptions_give_reasons(self):
        for m, p, t, why in FAKE_ASSUMPTIONS:
            self.assertTrue(len(why) > 20, (m, p))
            self.assertIn(m, {t.method for t in fake_app().data.tables.values()})

    def test_ed_units_by_status(self):
        """Rows carry no Status; statuses= filters (comma list); the passes partition the units."""
        app = fake_app()
        t = app.data.tables["getedunits"]
        seen = []
        for s in EV.ED_UNIT_STATUSES:
            _, obj = answer(app, t, {"statuses": s, "take": "100000"})
            ids = [r["Id"] for r in obj.get("EdUnits", [])]
            for r in obj.get("EdUnits", []):
                for k in ("Status", "Created", "Updated"):
                    self.assertNotIn(k, r)
            seen += ids
        self.assertEqual(sorted(seen), t.keys())            # every unit in exactly one pass
        self.assertGreaterEqual(len({app.data.unit_status(k) for k in seen}), 4)
        _, obj = answer(app, t, {"statuses": "Stopped,Finished", "take": "100000"})
        _, a = answer(app, t, {"statuses": "Stopped", "take": "100000"})
        _, b = answer(app, t, {"statuses": "Finished", "take": "100000"})
        self.assertEqual(len(obj["EdUnits"]), len(a["EdUnits"]) + len(b["EdUnits"]))
        # Without statuses the fake serves the active ones only (an ASSUMPTION about the
        # server's default, the unsafe one: a client relying on it loses the others).
        _, d = answer(app, t, {"take": "100000"})
        _, act = answer(app, t, {"statuses": "Reserve,Forming,Working", "take": "100000"})
        self.assertEqual([r["Id"] for r in d["EdUnits"]], [r["Id"] for r in act["EdUnits"]])
        self.assertLess(len(d["EdUnits"]), len(t.keys()))


if __name__ == "__main__":
    unittest.main()
