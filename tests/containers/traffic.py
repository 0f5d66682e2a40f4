"""traffic.py - webhooks and CRM edits while the container test kills services.

    python3 traffic.py AMO_URL HH_URL HOOK_URL CAFILE NLEADS DIR

Edits a lead in the fake amoCRM (AMO_URL, as the host reaches it), then has the fake
deliver that lead's update hook to HOOK_URL (as the fake's container reaches the gateway,
CAFILE a path inside it) until the gateway answers 2xx, as amoCRM retries; every third
round also renames a Hollihop student (HH_URL). DIR/traffic.json holds what each lead and
student must finally be called and how many hooks were acknowledged or refused; the
generator stops when DIR/traffic.stop appears.
"""
import json
import os
import sys
import time
import urllib.request


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main():
    amo, hh, hook_url, cafile, nleads, tdir = sys.argv[1:7]
    nleads = int(nleads)
    with urllib.request.urlopen(hh + "/_fake/keys?method=GetStudents", timeout=30) as r:
        keys = json.loads(r.read())["keys"]
    leads, students, n, acked, refused = {}, {}, 0, 0, 0
    while not os.path.exists(os.path.join(tdir, "traffic.stop")):
        n += 1
        lid = 1 + (n * 7) % nleads
        name = f"контейнер {n}"
        post(amo + "/_fake/mutate", {"ops": [{"op": "edit", "entity": "leads", "id": lid,
                                               "set": {"name": name}}]})
        while True:
            r = post(amo + "/_fake/send_hooks", {"url": hook_url, "cafile": cafile, "timeout": 5,
                     "events": [{"entity": "leads", "action": "update", "id": lid}]})
            if r["ok"] == r["requests"]:
                acked += 1
                break
            refused += 1          # gateway down or busy: amoCRM would retry later
            time.sleep(0.2)
        leads[lid] = name
        if n % 3 == 0:
            key = keys[n % len(keys)]
            sname = f"Студент {n}"
            post(hh + "/_fake/mutate", {"ops": [{"op": "edit", "method": "GetStudents", "key": key,
                                                  "set": {"FirstName": sname}}]})
            students[json.dumps(key)] = sname
        tmp = os.path.join(tdir, "traffic.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"leads": leads, "students": students, "acked": acked,
                       "refused": refused, "n": n}, f)
        os.replace(tmp, os.path.join(tdir, "traffic.json"))
        time.sleep(0.05)


if __name__ == "__main__":
    main()
