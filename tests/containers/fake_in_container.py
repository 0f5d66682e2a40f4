"""fake_in_container.py - run one of tests/fake/*/fake_*.py inside a container.

The fakes listen on 127.0.0.1 only (on a host that is the safe choice). Inside a container
on the test's own network the services must reach them by name, so this wrapper makes a
bind to 127.0.0.1 a bind to every interface of the container, then runs the fake as its
main program. Nothing else changes.
    python3 fake_in_container.py /fake/amocrm/fake_amocrm.py --port 8080 ...
"""
import os
import runpy
import socketserver
import sys

_init = socketserver.TCPServer.__init__


def _init_any(self, server_address, *args, **kwargs):
    if server_address[0] == "127.0.0.1":
        server_address = ("0.0.0.0", server_address[1])
    _init(self, server_address, *args, **kwargs)


socketserver.TCPServer.__init__ = _init_any
if len(sys.argv) < 2:
    sys.exit(__doc__)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
