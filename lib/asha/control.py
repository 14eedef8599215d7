"""Client side of asha-hb's control socket (ASHARUNDIR/hb.ctl).

A request is one line of words; asha-hb answers with lines, the first
starting with OK or ERR, and closes. The other tools ask asha-hb through this
(asha-watchdog: "failover REASON"), people through `asha-hb standby` etc."""

import socket

from . import exits, state


class NotRunning(exits.AshaError):
    status = exits.LSB_NOT_RUNNING


def request(cfg, *words, timeout=10.0):
    """Send words to asha-hb; return its answer lines after OK, raise on ERR."""
    path = state.path(cfg, state.HB_CONTROL)
    line = " ".join(str(w) for w in words)
    if "\n" in line:
        raise ValueError("a control request is one line")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(f"asha-hb is not running (no control socket at {path})") from None
        s.sendall(line.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    except socket.timeout:
        raise exits.AshaError(f"asha-hb did not answer {words[0]!r} within {timeout:g} s") from None
    finally:
        s.close()
    lines = b"".join(chunks).decode(errors="replace").splitlines()
    if not lines:
        raise exits.AshaError(f"asha-hb closed the control socket without an answer to {words[0]!r}")
    head, _, rest = lines[0].partition(" ")
    if head == "OK":
        return ([rest] if rest else []) + lines[1:]
    raise exits.AshaError(rest or "asha-hb refused the request")
