#!/usr/bin/python3
"""Drive interactive redis-cli (it needs a terminal) against dispatchd.

Usage: redis_cli_check.py PORT ORDER_ID [-3].  Starts `redis-cli -p PORT`
on a pseudo-terminal, so it runs its interactive start-up (COMMAND DOCS
for hints), waits for the prompt, types PING and GET ORDER_ID, checks the
formatted replies and quits.  With -3 the session uses RESP3 and the order
must print as a map.  Exits 0 on success, 1 with a message otherwise.
Run by tests/test_e2e_clients.c.
"""
import os
import pty
import select
import sys
import time

TIMEOUT = 10.0


class Session:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "dumb"
            os.environ.pop("REDISCLI_HISTFILE", None)
            os.environ["REDISCLI_HISTFILE"] = "/dev/null"
            os.execvp(argv[0], argv)
        self.out = b""

    def expect(self, want):
        """Read until want (bytes) appears after what was consumed."""
        end = time.monotonic() + TIMEOUT
        while want not in self.out:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {want!r}; "
                                     f"output so far: {self.out!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"redis-cli ended before {want!r}; "
                                     f"output: {self.out!r}")
            self.out += chunk
        i = self.out.index(want) + len(want)
        seen, self.out = self.out[:i], self.out[i:]
        return seen

    def send(self, line):
        os.write(self.fd, line.encode() + b"\r")

    def wait(self):
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.05)[0]:
                    os.read(self.fd, 65536)
            except OSError:
                pass
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("redis-cli did not exit after quit")


def main():
    port, order = sys.argv[1], sys.argv[2]
    resp3 = "-3" in sys.argv[3:]
    argv = ["redis-cli", "-p", port] + (["-3"] if resp3 else [])
    s = Session(argv)
    prompt = f"127.0.0.1:{port}>".encode()
    s.expect(prompt)
    s.send("PING")
    s.expect(b"PONG")
    s.expect(prompt)
    s.send(f"GET {order}")
    if resp3:
        seen = s.expect(b'=> "')
        assert b'1# "id" =>' in seen, seen
    else:
        seen = s.expect(b'2) "')
        assert b'1) "id"' in seen, seen
    seen = s.expect(prompt)
    assert order.encode() in seen, seen
    assert b'"state"' in seen, seen
    s.send("APPROVE no-such-order")
    seen = s.expect(prompt)
    assert b"(error) NOTFOUND" in seen, seen
    s.send("quit")
    code = s.wait()
    assert code == 0, f"redis-cli exit status {code}"
    print("redis_cli_check: interactive session passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print(f"redis_cli_check FAILED: {e}", file=sys.stderr)
        sys.exit(1)
