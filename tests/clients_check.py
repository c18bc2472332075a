#!/usr/bin/python3
"""Drive dispatchd with Debian's python3-redis (redis-py 4.3), unmodified.

Usage: clients_check.py PORT.  Exits 0 when every check passes; otherwise
prints the failed check and exits 1.  Run by tests/test_e2e_clients.c.
"""
import json
import sys

import redis


def fields(flat):
    """A RESP2 order map (flat field/value list) as a dict."""
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    return dict(zip(flat[0::2], flat[1::2]))


def main():
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                    socket_timeout=10)
    assert r.ping() is True
    assert r.echo("hi") == "hi"
    assert r.client_setname("erp-py") is True
    assert r.client_getname() == "erp-py"
    info = r.info()
    assert info["server"] == "dispatchd", info
    assert r.dbsize() == 0

    assert r.execute_command("PUSH", "py-1", "rush4h", "CUSTOMER", "acme",
                             "ATTR", "carrier", "sf express") == "OK"
    assert r.execute_command("PUSH", "py-1", "rush4h", "CUSTOMER", "acme",
                             "ATTR", "carrier", "sf express") == "OK"

    # 100 pushes in one round trip, no MULTI.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.execute_command("PUSH", f"py-b{i:03d}", "normal", "APPROVED")
    res = p.execute()
    assert res == ["OK"] * 100, res
    assert r.dbsize() == 101

    # Errors are redis.ResponseError with the code word first.
    try:
        r.execute_command("APPROVE", "nope")
        raise AssertionError("APPROVE nope did not fail")
    except redis.ResponseError as e:
        assert str(e).startswith("NOTFOUND"), e
    try:
        r.execute_command("PUSH", "py-1", "normal")
        raise AssertionError("a different push did not fail")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS"), e

    assert r.execute_command("APPROVE", "py-1") == "OK"
    peek = r.execute_command("PEEK", "main", "COUNT", 1000)
    assert len(peek) == 101, len(peek)
    assert fields(peek[0])["id"] == "py-1"
    assert fields(peek[1])["id"] == "py-b000"

    o = fields(r.execute_command("NEXT", "main", "PICKER", "wang",
                                 "LEASE", 120))
    assert o["id"] == "py-1", o
    assert o["state"] == "picking", o
    assert o["picker"] == "wang", o
    assert fields(o["attrs"]) == {"carrier": "sf express"}, o["attrs"]
    lease = o["lease"]
    assert isinstance(r.execute_command("TOUCH", "py-1", lease), int)

    payload = json.dumps({"order": "py-1", "op": "wang", "boxes": 2})
    assert r.execute_command("OUTBOUND", "py-1", "OPERATOR", "wang",
                             "RAW", payload) == "OK"
    assert r.execute_command("OUTBOUND", "py-1", "OPERATOR", "wang",
                             "RAW", payload) == "ALREADY"
    g = fields(r.execute_command("GET", "py-1"))
    assert g["state"] == "shipped", g
    assert g["operator"] == "wang", g
    assert g["outbound_leased"] == 1, g
    g = fields(r.execute_command("GET", "py-b050"))
    assert g["state"] == "queued", g
    assert g["position"] == 50, g

    audit = [fields(e) for e in r.execute_command("AUDIT", "py-1")]
    assert [e["action"] for e in audit] == \
        ["push", "approve", "next", "touch", "outbound", "outbound"], audit
    assert audit[0]["actor"] == "erp-py", audit[0]
    assert audit[4]["raw"] == payload, audit[4]

    # The default pipeline wraps in MULTI/EXEC: a clear error, not a hang
    # or a protocol mix-up.
    p = r.pipeline()
    p.execute_command("PUSH", "TX-1", "normal")
    try:
        p.execute()
        raise AssertionError("pipeline() with MULTI did not fail")
    except redis.ResponseError as e:
        msg = str(e)
        assert "transaction" in msg and "transaction=False" in msg, msg
    # Nothing inside the refused transaction ran.
    try:
        r.execute_command("GET", "TX-1")
        raise AssertionError("a push inside a refused MULTI was applied")
    except redis.ResponseError as e:
        assert str(e).startswith("NOTFOUND"), str(e)
    # The connection pool still works afterwards.
    assert r.ping() is True
    stats = fields(r.execute_command("STATS"))
    assert stats["pushes"] == 101, stats
    assert stats["picks"] == 1, stats
    print("clients_check: all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report any failure as a message and exit 1
        import traceback
        traceback.print_exc()
        print(f"clients_check FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
