#!/usr/bin/env python3
"""tls_stream.py - HTTPS clients for tls_reload_test.sh (standard library only).

  tls_stream.py fingerprint HOST PORT CAFILE
      one handshake; prints the SHA-256 fingerprint of the certificate the server presented
      (as `openssl x509 -fingerprint -sha256` writes it, without the colons)
  tls_stream.py stream HOST PORT CAFILE PATH STOPFILE OUTDIR
      until STOPFILE exists, POSTs one lead update hook after another (lead ids 1, 2, ...)
      from two clients at once: one keep-alive connection kept open throughout (a
      connection in progress across the reload), one that makes a new connection, and so a
      new handshake, for every hook. Writes OUTDIR/ok (ids answered 2xx, one a line),
      OUTDIR/bad (anything else: "id status-or-error"), OUTDIR/certs (the fingerprint of
      every new handshake, in order) and OUTDIR/done when it stops.
"""
import hashlib
import http.client
import os
import ssl
import sys
import threading


def context(cafile):
    return ssl.create_default_context(cafile=cafile)


def fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest().upper()


def body(i):
    return ("leads%%5Bupdate%%5D%%5B0%%5D%%5Bid%%5D=%d&leads%%5Bupdate%%5D%%5B0%%5D%%5B"
            "last_modified%%5D=1700000000&account%%5Bsubdomain%%5D=it&account%%5Bid%%5D=42" % i)


class Stream:
    def __init__(self, host, port, cafile, path, stop, out):
        self.host, self.port, self.ctx, self.path = host, int(port), context(cafile), path
        self.stop, self.out = stop, out
        self.lock = threading.Lock()
        self.next_id = 0
        self.ok = open(os.path.join(out, "ok"), "w")
        self.bad = open(os.path.join(out, "bad"), "w")
        self.certs = open(os.path.join(out, "certs"), "w")

    def take(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def record(self, f, line):
        with self.lock:
            f.write(line + "\n")
            f.flush()

    def conn(self):
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=15)
        c.connect()
        self.record(self.certs, fingerprint(c.sock))
        return c

    def post(self, c, i):
        c.request("POST", self.path, body(i),
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        return r.status

    def client(self, keepalive):
        c = None
        while not os.path.exists(self.stop):
            i = self.take()
            try:
                if c is None:
                    c = self.conn()
                st = self.post(c, i)
                self.record(self.ok if 200 <= st < 300 else self.bad,
                            str(i) if 200 <= st < 300 else "%d %d" % (i, st))
            except (OSError, http.client.HTTPException) as e:
                self.record(self.bad, "%d %s" % (i, type(e).__name__))
                c = None
                continue
            if not keepalive:
                c.close()
                c = None

    def run(self):
        ts = [threading.Thread(target=self.client, args=(k,)) for k in (True, False)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        open(os.path.join(self.out, "done"), "w").close()


def main():
    if sys.argv[1] == "fingerprint":
        host, port, cafile = sys.argv[2:5]
        with context(cafile).wrap_socket(__import__("socket").create_connection(
                (host, int(port)), timeout=10), server_hostname=host) as s:
            print(fingerprint(s))
        return
    Stream(*sys.argv[2:8]).run()


if __name__ == "__main__":
    main()
