#!/usr/bin/env python3
"""A webhook receiver for test_e2e_notify, on 127.0.0.1 only.

notify_receiver.py PORT PORTFILE LOGFILE CONTROLFILE [SECRET [CERT]]

Binds PORT (0: any free one; HTTPS with CERT, a PEM holding the
certificate and its key) and writes the port it got to PORTFILE.
Every POST is logged as one JSON line in LOGFILE: time, path, the
Idempotency-Key, the body (parsed), what was answered, and for DingTalk
robots (a `sign` in the query) whether the signature is right for SECRET.
How to answer is read from CONTROLFILE (JSON) at each request:
  {"status": 500}    answer that status
  {"drop": true}     close the connection without answering
  {"delay": 2.0}     wait that long before answering
  {"errcode": 310000} answer 200 with a DingTalk error
A missing or empty file means 200 {"errcode":0,"errmsg":"ok"}.
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, portfile, logfile, control = sys.argv[1:5]
secret = sys.argv[5] if len(sys.argv) > 5 else ""
cert = sys.argv[6] if len(sys.argv) > 6 else ""
lock = threading.Lock()


def sign_ok(query):
    q = urllib.parse.parse_qs(query)
    if "sign" not in q or "timestamp" not in q:
        return None
    ts = q["timestamp"][0]
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(),
                   hashlib.sha256).digest()
    want = base64.b64encode(mac).decode()
    # parse_qs already URL-decoded the sign
    fresh = abs(time.time() * 1000 - int(ts)) < 3600 * 1000
    return q["sign"][0] == want and fresh


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            ctl = json.load(open(control))
        except (OSError, ValueError):
            ctl = {}
        u = urllib.parse.urlsplit(self.path)
        ok = sign_ok(u.query) if secret else None
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = {"t": time.time(), "path": u.path,
               "idem": self.headers.get("Idempotency-Key"),
               "ctype": self.headers.get("Content-Type"),
               "body": body, "sign_ok": ok}
        status, reply = 200, {"errcode": 0, "errmsg": "ok"}
        if ctl.get("drop"):
            rec["answer"] = "drop"
        elif ok is False:
            status, reply = 200, {"errcode": 310000, "errmsg": "sign not match"}
        elif ctl.get("errcode"):
            reply = {"errcode": ctl["errcode"], "errmsg": "refused by test"}
        elif ctl.get("status"):
            status = ctl["status"]
        rec.setdefault("answer", status if reply["errcode"] == 0
                       else f"errcode {reply['errcode']}")
        with lock:
            with open(logfile, "a") as f:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        if ctl.get("drop"):
            self.close_connection = True
            self.connection.close()
            return
        if ctl.get("delay"):
            time.sleep(float(ctl["delay"]))
        data = json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


srv = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
srv.daemon_threads = True
if cert:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os  # noqa: E402

os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
