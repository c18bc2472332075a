#!/usr/bin/python3
"""Drive dispatchd's HTTP/JSON gateway with the standard library's
http.client (and prometheus_client.parser for /metrics).

Usage: http_check.py MODE HTTP_PORT [ARGS...].  Each mode checks one part
of the gateway against a daemon tests/test_e2e_http.c (or test_e2e_roles.c)
started for it and exits 0 when every check passes; otherwise it prints
the failed check and exits 1.

  api        every route, status and error body on a fresh daemon
  wms        the outbound callback: raw body kept byte for byte, repeats,
             outbound from new/held/cancelled, ms and ISO times, deliver
  fields     the callback with --wms-field-order orderNo --wms-field-at
             shippedAt --wms-field-operator who --wms-field-photo pic
  metrics    /metrics parsed; prints one JSON line of sample values last
  limit      --http-max-connections 2: the third keep-alive connection
             gets 503 BUSY, the first two keep working
  picked ID LEASE   the picked step for a lease taken over RESP
  late ID    a late outbound callback for a picked order
  roles VIEWER ERP WMS ADMIN   Bearer secrets of the four roles
"""
import http.client
import json
import sys

PORT = 0


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"{self.status} {self.body[:400]!r}"


def request(method, path, body=None, ctype="application/json", token=None,
            conn=None, headers=None):
    """One request; body is bytes, a str or an object (sent as JSON)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    h = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and ctype:
        h["Content-Type"] = ctype
    if token:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    rep = Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    if own:
        conn.close()
    return rep


def expect(rep, status, error=None, what=""):
    assert rep.status == status, f"{what}: want {status}, got {rep!r}"
    if status >= 400:
        assert rep.headers.get("content-type", "").startswith(
            "application/json"), f"{what}: {rep.headers}"
        j = rep.json()
        assert set(j) == {"error", "message"}, f"{what}: {j}"
        assert isinstance(j["message"], str) and j["message"], f"{what}: {j}"
        if error:
            assert j["error"] == error, f"{what}: want {error}, got {j}"
        return j
    return rep.json() if rep.body else None


def post(path, body=None, **kw):
    return request("POST", path, body if body is not None else {}, **kw)


def get(path, **kw):
    return request("GET", path, **kw)


def audit_of(oid, **kw):
    return expect(get(f"/v1/orders/{oid}", **kw), 200, what=f"GET {oid}")


# ---- api ---------------------------------------------------------------

def mode_api():
    o = {"id": "A-1", "class": "rush4h", "warehouse": "hz1",
         "customer": "shenwo", "source": "ecommerce", "fulfil": "stock",
         "risk": ["new_customer", "high_returns"],
         "attrs": {"packaging": "moisture-proof", "carrier": "sf"},
         "deadline": "2026-12-31T23:00:00+08:00"}
    j = expect(post("/v1/orders", o), 201, what="push A-1")
    assert j["id"] == "A-1" and j["state"] == "new", j
    assert j["class"] == "rush4h" and j["warehouse"] == "hz1", j
    assert j["risk"] == ["new_customer", "high_returns"], j
    assert j["attrs"] == {"packaging": "moisture-proof", "carrier": "sf"}, j
    assert j["source"] == "ecommerce", j
    # ISO with an offset: 2026-12-31T15:00:00Z.
    assert j["deadline"] == 1798729200000, j
    assert j["deadline_iso"] == "2026-12-31T15:00:00.000Z", j
    expect(post("/v1/orders", o), 200, what="the same push again")
    o2 = dict(o, customer="someone else")
    expect(post("/v1/orders", o2), 409, "EXISTS", "a different push")

    # ms deadline, exact beyond 2^32 and 2^53-safe digits kept.
    ms = 1798729200123
    j = expect(post("/v1/orders", {"id": "A-2", "class": "normal",
                                   "warehouse": "hz1", "deadline": ms,
                                   "approved": True}), 201, what="push A-2")
    assert j["deadline"] == ms and j["state"] == "queued", j
    assert j["deadline_iso"] == "2026-12-31T15:00:00.123Z", j
    # A 64-bit value past 2^53 is parsed exactly (quoted back verbatim).
    e = expect(post("/v1/orders", {"id": "A-big", "class": "normal",
                                   "deadline": 9007199254740993}), 400,
               "BADARG", "a deadline past 2^53")
    assert "9007199254740993" in e["message"], e
    expect(post("/v1/orders", b'{"id":"A-big","class":"normal",'
                b'"deadline":18446744073709551616}'), 400, "BADARG",
           "a deadline past 2^64")

    # Actions.
    j = expect(post("/v1/orders/A-1/approve"), 200, what="approve A-1")
    assert j["state"] == "queued" and j["result"] == "ok", j
    assert j["position"] == 0, j  # rush4h before normal
    expect(post("/v1/orders/A-1/approve"), 409, "BADSTATE", "approve twice")
    j = expect(post("/v1/orders/A-1/hold", {"reason": "credit check"}), 200,
               what="hold")
    assert j["state"] == "held", j
    j = expect(post("/v1/orders/A-1/approve"), 200, what="approve again")
    assert j["state"] == "queued", j
    j = expect(post("/v1/orders/A-2/reprio",
                    {"class": "rush24h",
                     "deadline": "2026-12-30T08:00:00Z"}), 200,
               what="reprio")
    assert j["class"] == "rush24h", j
    assert j["deadline"] == 1798617600000, j
    expect(post("/v1/orders/A-2/reprio", {"class": "urgent"}), 400,
           "BADARG", "reprio to an unknown class")
    expect(post("/v1/orders/A-2/reprio", {"class": "normal",
                                          "deadline": "yesterday"}),
           400, "BADARG", "reprio with a bad deadline")
    q = expect(get("/v1/warehouses/hz1/queue?limit=1"), 200, what="queue")
    assert q["warehouse"] == "hz1" and len(q["orders"]) == 1, q
    assert q["orders"][0]["id"] == "A-1", q
    q = expect(get("/v1/warehouses/hz1/queue"), 200, what="queue")
    assert [x["id"] for x in q["orders"]] == ["A-1", "A-2"], q
    assert q["orders"][1]["position"] == 1, q
    expect(get("/v1/warehouses/hz1/queue?limit=0"), 400, "BADARG", "limit 0")
    expect(get("/v1/warehouses/hz1/queue?limit=x"), 400, "BADARG", "limit x")
    q = expect(get("/v1/warehouses/empty/queue"), 200, what="empty queue")
    assert q["orders"] == [], q

    j = expect(post("/v1/orders/A-2/cancel", {"reason": "customer called"}),
               200, what="cancel")
    assert j["state"] == "cancelled", j
    expect(post("/v1/orders/A-2/cancel"), 409, "BADSTATE", "cancel twice")
    expect(post("/v1/orders/A-2/hold", {"reason": 5}), 400, "BADARG",
           "a reason that is not a string")
    expect(post("/v1/orders/NOPE/approve"), 404, "NOTFOUND", "approve NOPE")
    expect(get("/v1/orders/NOPE"), 404, "NOTFOUND", "GET NOPE")
    # Deliver before shipping implies the outbound; deliver again: already.
    j = expect(post("/v1/orders/A-1/deliver",
                    {"at": "2026-12-02T10:00:00+08:00"}), 200,
               what="deliver")
    assert j["state"] == "delivered" and j["result"] == "ok", j
    j = expect(post("/v1/orders/A-1/deliver"), 200, what="deliver again")
    assert j["result"] == "already", j
    expect(post("/v1/orders/A-1/deliver", {"at": "soon"}), 400, "BADARG",
           "deliver at a bad time")
    # picked on an order nobody leased.
    expect(post("/v1/orders/A-1/picked", {"lease": "1"}), 409, "LEASE",
           "picked without a lease")
    expect(post("/v1/orders/A-1/picked", {}), 400, "BADARG",
           "picked without a lease field")

    # The audit trail.
    g = audit_of("A-1")
    acts = [(a["action"], a["from"], a["to"]) for a in g["audit"]]
    assert acts[:5] == [("push", "", "new"), ("approve", "new", "queued"),
                        ("hold", "queued", "held"),
                        ("approve", "held", "queued"),
                        ("outbound", "queued", "shipped")], acts
    assert [a["seq"] for a in g["audit"]] == list(range(len(acts))), g
    for a in g["audit"]:
        assert set(a) >= {"seq", "at", "actor", "action", "from", "to",
                          "raw", "note"}, a
        assert a["actor"].startswith("http-127.0.0.1:"), a
    assert json.loads(g["audit"][0]["raw"]) == o, g["audit"][0]
    assert g["audit"][2]["raw"] == '{"reason": "credit check"}', g["audit"][2]

    # Bad bodies.
    expect(post("/v1/orders", "{not json"), 400, "BADARG", "invalid JSON")
    expect(post("/v1/orders", b'{"id":"\xff\xfe","class":"normal"}'), 400,
           "BADARG", "invalid UTF-8")
    expect(post("/v1/orders", "[1,2]"), 400, "BADARG", "a JSON array")
    expect(post("/v1/orders", {"class": "normal"}), 400, "BADARG",
           "no id")
    expect(post("/v1/orders", {"id": 5, "class": "normal"}), 400, "BADARG",
           "a numeric id")
    expect(post("/v1/orders", {"id": "A-3", "class": "slow"}), 400,
           "BADARG", "unknown class")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal",
                               "colour": "red"}), 400, "BADARG",
           "unknown field")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal",
                               "approved": "yes"}), 400, "BADARG",
           "approved as a string")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal",
                               "attrs": {"k": 1}}), 400, "BADARG",
           "a numeric attribute")
    expect(post("/v1/orders", '{"id":"A-3","id":"A-4","class":"normal"}'),
           400, "BADARG", "a duplicate key")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal"},
                ctype="text/plain"), 415, "BADARG", "text/plain")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal"},
                ctype=None), 415, "BADARG", "no content type")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal"},
                ctype="application/jsonx"), 415, "BADARG",
           "application/jsonx")
    expect(post("/v1/orders", {"id": "A-3", "class": "normal"},
                ctype="application/json; charset=utf-8"), 201,
           what="application/json with a charset")
    expect(get("/v1/orders/A-3x"), 404, "NOTFOUND", "unknown order")

    # Routes.
    expect(get("/v1/nothing"), 404, "NOTFOUND", "unknown route")
    expect(get("/favicon.ico"), 404, "NOTFOUND", "a file the board lacks")
    expect(get("/v1/orders/A-1/approve/more"), 404, "NOTFOUND", "too deep")
    r = request("DELETE", "/v1/orders/A-1")
    expect(r, 405, what="DELETE an order")
    assert r.headers.get("allow") == "GET, HEAD", r.headers
    r = request("GET", "/v1/orders")
    expect(r, 405, what="GET /v1/orders")
    assert r.headers.get("allow") == "POST", r.headers
    r = request("PUT", "/v1/wms/outbound", {})
    expect(r, 405, what="PUT outbound")
    assert r.headers.get("allow") == "POST", r.headers
    r = request("POST", "/healthz", {})
    expect(r, 405, what="POST /healthz")
    r = request("HEAD", "/v1/orders/A-1")
    assert r.status == 200 and r.body == b"", r
    # A percent-encoded id.
    expect(post("/v1/orders", {"id": "A 5/x", "class": "normal"}), 201,
           what="an id with a space and a slash")
    g = audit_of("A%205%2Fx")
    assert g["id"] == "A 5/x", g
    h = expect(get("/healthz"), 200, what="healthz")
    assert h == {"status": "ok", "storage": "ok"}, h

    # Keep-alive: many requests on one connection.
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    for i in range(20):
        expect(request("POST", "/v1/orders",
                       {"id": f"K-{i}", "class": "normal"}, conn=c), 201,
               what=f"keep-alive push {i}")
        expect(request("GET", f"/v1/orders/K-{i}", conn=c), 200,
               what=f"keep-alive get {i}")
        expect(request("GET", "/v1/nothing", conn=c), 404, "NOTFOUND",
               "keep-alive error")
    c.close()
    print("http_check api: all checks passed")


# ---- wms ---------------------------------------------------------------

RAW = ('{ "order_no" :"W-1",\t"outbound_at":  "2026-12-02T09:30:00.250+08:00"'
       ' ,\n  "operator":"王小明", "photo_url" : "s3://dock/7/ünïcode.jpg",'
       '"boxes":[ 1 ,2\r\n,3 ],"note":"装车 ✓ \\u00e9 \\n"  }')


def mode_wms():
    for oid, approved in (("W-1", True), ("W-new", False)):
        expect(post("/v1/orders", {"id": oid, "class": "rush24h",
                                   "approved": approved}), 201,
               what=f"push {oid}")
    raw = RAW.encode("utf-8")
    j = expect(post("/v1/wms/outbound", raw), 200, what="outbound W-1")
    assert j == {"order": "W-1", "state": "shipped", "result": "ok"}, j
    g = audit_of("W-1")
    assert g["state"] == "shipped", g
    assert g["operator"] == "王小明", g
    assert g["outbound_at"] == 1796175000250, g  # 01:30:00.250Z
    last = g["audit"][-1]
    assert last["action"] == "outbound", last
    assert "photo=s3://dock/7/ünïcode.jpg" in last["note"], last
    assert last["raw"].encode("utf-8") == raw, (last["raw"], RAW)
    # A repeat is "already" and is recorded too, its raw body with it.
    raw2 = raw.replace(b'"boxes"', b'"retry":1,"boxes"')
    j = expect(post("/v1/wms/outbound", raw2), 200, what="repeat")
    assert j["result"] == "already" and j["state"] == "shipped", j
    g = audit_of("W-1")
    assert g["audit"][-1]["raw"].encode("utf-8") == raw2, g["audit"][-1]
    assert g["audit"][-2]["raw"].encode("utf-8") == raw, g["audit"][-2]

    # From new, held and cancelled: the WMS is the truth.
    expect(post("/v1/orders", {"id": "W-held", "class": "normal"}), 201)
    expect(post("/v1/orders/W-held/hold", {"reason": "x"}), 200)
    expect(post("/v1/orders", {"id": "W-canc", "class": "normal",
                               "approved": True}), 201)
    expect(post("/v1/orders/W-canc/cancel", {}), 200)
    for oid, was in (("W-new", "new"), ("W-held", "held"),
                     ("W-canc", "cancelled")):
        ms = 1796175000000 + len(oid)
        j = expect(post("/v1/wms/outbound", {"order_no": oid,
                                             "operator": "li",
                                             "outbound_at": ms}), 200,
                   what=f"outbound from {was}")
        assert j == {"order": oid, "state": "shipped", "result": "ok"}, j
        g = audit_of(oid)
        assert g["state"] == "shipped" and g["outbound_at"] == ms, g
        assert g["audit"][-1]["from"] == was, g["audit"][-1]
        assert g["audit"][-1]["to"] == "shipped", g["audit"][-1]
    # Errors.
    expect(post("/v1/wms/outbound", {"order_no": "NOPE", "operator": "li"}),
           404, "NOTFOUND", "outbound for an unknown order")
    expect(post("/v1/wms/outbound", {"order_no": "W-new"}), 400, "BADARG",
           "no operator")
    expect(post("/v1/wms/outbound", {"operator": "li"}), 400, "BADARG",
           "no order")
    expect(post("/v1/wms/outbound", {"order_no": "W-new", "operator": "li",
                                     "outbound_at": "later"}), 400,
           "BADARG", "a bad time")
    expect(post("/v1/wms/outbound", {"order_no": 7, "operator": "li"}), 400,
           "BADARG", "a numeric order")
    expect(post("/v1/wms/outbound", {"order_no": "W-new", "operator": ""}),
           400, "BADARG", "an empty operator")
    # Delivery after shipping.
    j = expect(post("/v1/orders/W-1/deliver", {"at": 1796176800000}), 200,
               what="deliver")
    assert j["state"] == "delivered", j
    assert j["delivered_at"] == 1796176800000, j
    print("http_check wms: all checks passed")


def mode_fields():
    expect(post("/v1/orders", {"id": "F-1", "class": "normal",
                               "approved": True}), 201)
    # The default names mean nothing now.
    expect(post("/v1/wms/outbound", {"order_no": "F-1", "operator": "li"}),
           400, "BADARG", "default names with configured ones")
    raw = ('{"orderNo": "F-1", "who": "赵", "shippedAt": '
           '"2026-12-02T08:00:00Z", "pic": "p/1.jpg", "order_no": "x"}')
    j = expect(post("/v1/wms/outbound", raw), 200, what="configured names")
    assert j == {"order": "F-1", "state": "shipped", "result": "ok"}, j
    g = audit_of("F-1")
    assert g["operator"] == "赵", g
    assert "photo=p/1.jpg" in g["audit"][-1]["note"], g["audit"][-1]
    assert g["outbound_at"] == 1796198400000, g
    assert g["audit"][-1]["raw"] == raw, g["audit"][-1]
    print("http_check fields: all checks passed")


# ---- metrics -----------------------------------------------------------

def mode_metrics():
    from prometheus_client.parser import text_string_to_metric_families
    r = get("/metrics")
    assert r.status == 200, r
    ct = r.headers.get("content-type", "")
    assert ct.startswith("text/plain; version=0.0.4"), ct
    fams = {f.name: f for f in
            text_string_to_metric_families(r.body.decode("utf-8"))}
    want = {"dispatchd_orders": "gauge", "dispatchd_queue_depth": "gauge",
            "dispatchd_command_duration_seconds": "histogram",
            "dispatchd_durability_wait_seconds": "histogram",
            "dispatchd_queue_wait_seconds": "histogram",
            "dispatchd_store_group_size": "histogram",
            "dispatchd_pushes": "counter", "dispatchd_picks": "counter",
            "dispatchd_outbounds": "counter", "dispatchd_approvals": "counter",
            "dispatchd_cancels": "counter", "dispatchd_store_groups": "counter",
            "dispatchd_refused": "counter"}
    for name, typ in want.items():
        assert name in fams, f"family {name} missing: {sorted(fams)}"
        assert fams[name].type == typ, (name, fams[name].type)
    counters = [n for n, f in fams.items() if f.type == "counter"]
    assert len(counters) >= 20, counters
    for n in counters:
        for s in fams[n].samples:
            if s.name.endswith("_created"):
                continue
            assert s.name.endswith("_total"), s
    states = {s.labels["state"]: s.value
              for s in fams["dispatchd_orders"].samples}
    assert set(states) >= {"new", "held", "queued", "picking", "picked",
                           "shipped", "delivered", "cancelled"}, states
    depth = {}
    for s in fams["dispatchd_queue_depth"].samples:
        assert set(s.labels) == {"warehouse", "class"}, s
        depth[f'{s.labels["warehouse"]}/{s.labels["class"]}'] = s.value
    for h in ("dispatchd_command_duration_seconds",
              "dispatchd_durability_wait_seconds",
              "dispatchd_queue_wait_seconds", "dispatchd_store_group_size"):
        ss = fams[h].samples
        buckets = [s for s in ss if s.name == h + "_bucket"]
        assert buckets and buckets[-1].labels["le"] == "+Inf", (h, buckets)
        vals = [b.value for b in buckets]
        assert vals == sorted(vals), (h, vals)
        count = [s.value for s in ss if s.name == h + "_count"]
        assert count == [vals[-1]], (h, count, vals)
    out = {"states": states, "depth": depth}
    for n in counters:
        for s in fams[n].samples:
            if s.name.endswith("_total") and not s.labels:
                out[s.name] = s.value
    out["queue_wait_count"] = [s.value for s in
                               fams["dispatchd_queue_wait_seconds"].samples
                               if s.name.endswith("_count")][0]
    out["group_count"] = [s.value for s in
                          fams["dispatchd_store_group_size"].samples
                          if s.name.endswith("_count")][0]
    out["group_sum"] = [s.value for s in
                        fams["dispatchd_store_group_size"].samples
                        if s.name.endswith("_sum")][0]
    print("http_check metrics: all checks passed")
    print(json.dumps(out, sort_keys=True))


# ---- limit -------------------------------------------------------------

def mode_limit():
    conns = [http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
             for _ in range(3)]
    for c in conns[:2]:
        expect(request("GET", "/healthz", conn=c), 200, what="within limit")
    r = request("GET", "/healthz", conn=conns[2])
    expect(r, 503, "BUSY", "the third connection")
    assert r.headers.get("connection", "").lower() == "close", r.headers
    for i in range(3):
        for c in conns[:2]:
            expect(request("GET", "/healthz", conn=c), 200,
                   what=f"kept-alive {i}")
    conns[2].close()
    conns[0].close()
    # A slot came free: a new connection is served (the close may take a
    # moment to reach the daemon).
    import time
    for _ in range(50):
        r = get("/healthz")
        if r.status == 200:
            break
        time.sleep(0.05)
    expect(r, 200, what="after one closed")
    conns[1].close()
    print("http_check limit: all checks passed")


# ---- picked ------------------------------------------------------------

def mode_picked(oid, lease):
    expect(post(f"/v1/orders/{oid}/picked", {"lease": str(int(lease) + 7)}),
           409, "LEASE", "picked with a wrong lease")
    expect(post(f"/v1/orders/{oid}/picked", {"lease": "x1"}), 400, "BADARG",
           "picked with a lease that is not a number")
    j = expect(post(f"/v1/orders/{oid}/picked", {"lease": lease}), 200,
               what="picked")
    assert j["state"] == "picked" and j["result"] == "ok", j
    j = expect(post(f"/v1/orders/{oid}/picked", {"lease": int(lease)}), 200,
               what="picked again (lease as a number)")
    assert j["state"] == "picked" and j["result"] == "already", j
    print("http_check picked: all checks passed")


def mode_late(oid):
    g = audit_of(oid)
    assert g["state"] == "picked", g
    j = expect(post("/v1/wms/outbound", {"order_no": oid, "operator": "wang"}),
               200, what="the late callback")
    assert j == {"order": oid, "state": "shipped", "result": "ok"}, j
    g = audit_of(oid)
    assert g["outbound_leased"] == 1, g
    assert [a["action"] for a in g["audit"]][-3:] == ["next", "picked",
                                                      "outbound"], g["audit"]
    print("http_check late: all checks passed")


# ---- roles -------------------------------------------------------------

def mode_roles(viewer, erp, wms, admin):
    # No token, a token of nobody, a malformed header.
    r = post("/v1/orders", {"id": "R-1", "class": "normal"})
    expect(r, 401, "NOAUTH", "push without a token")
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r
    expect(get("/v1/orders/R-1"), 401, "NOAUTH", "get without a token")
    expect(get("/metrics"), 401, "NOAUTH", "metrics without a token")
    expect(post("/v1/orders", {"id": "R-1", "class": "normal"},
                token="not-a-secret"), 401, "WRONGPASS", "a wrong token")
    expect(post("/v1/orders", {"id": "R-1", "class": "normal"},
                headers={"Authorization": "Basic " + erp}), 401, "NOAUTH",
           "Basic instead of Bearer")
    expect(get("/healthz"), 200, what="healthz needs no token")
    # viewer reads, nothing else.
    expect(post("/v1/orders", {"id": "R-1", "class": "normal"}, token=viewer),
           403, "NOPERM", "viewer push")
    j = expect(post("/v1/orders", {"id": "R-1", "class": "normal",
                                   "approved": True}, token=erp), 201,
               what="erp push")
    expect(post("/v1/orders", {"id": "R-2", "class": "normal"}, token=wms),
           403, "NOPERM", "wms push")
    expect(post("/v1/orders/R-1/hold", {}, token=wms), 403, "NOPERM",
           "wms hold")
    expect(post("/v1/wms/outbound", {"order_no": "R-1", "operator": "x"},
                token=erp), 403, "NOPERM", "erp outbound")
    expect(post("/v1/wms/outbound", {"order_no": "R-1", "operator": "x"},
                token=viewer), 403, "NOPERM", "viewer outbound")
    expect(post("/v1/orders/R-1/picked", {"lease": "1"}, token=erp), 403,
           "NOPERM", "erp picked")
    for tok in (viewer, erp, wms, admin):
        expect(get("/v1/orders/R-1", token=tok), 200, what="get")
        expect(get("/v1/warehouses/main/queue", token=tok), 200, what="peek")
        m = get("/metrics", token=tok)
        assert m.status == 200 and b"dispatchd_orders" in m.body, m
    j = expect(post("/v1/wms/outbound", {"order_no": "R-1", "operator": "x"},
                    token=wms), 200, what="wms outbound")
    assert j["state"] == "shipped", j
    expect(post("/v1/orders", {"id": "R-3", "class": "normal"},
                token=admin), 201, what="admin push")
    expect(post("/v1/wms/outbound", {"order_no": "R-3", "operator": "x"},
                token=admin), 200, what="admin outbound")
    g = audit_of("R-1", token=viewer)
    assert [(a["action"], a["actor"]) for a in g["audit"]] == [
        ("push", "erp1"), ("outbound", "wms1")], g["audit"]
    g = audit_of("R-3", token=viewer)
    assert {a["actor"] for a in g["audit"]} == {"admin1"}, g["audit"]
    print("http_check roles: all checks passed")


def main():
    global PORT
    mode, PORT = sys.argv[1], int(sys.argv[2])
    args = sys.argv[3:]
    modes = {"api": mode_api, "wms": mode_wms, "fields": mode_fields,
             "metrics": mode_metrics, "limit": mode_limit,
             "picked": mode_picked, "late": mode_late, "roles": mode_roles}
    modes[mode](*args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report any failure as a message and exit 1
        import traceback
        traceback.print_exc()
        print(f"http_check FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
