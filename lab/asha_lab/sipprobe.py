"""Ask a SIP server whether it is there, as a phone or a monitor would: one
SIP OPTIONS over UDP, or one every INTERVAL until an answer comes.

  python sipprobe.py ADDR [PORT] [--timeout S] [--wait S] [--interval S]

Prints `<status line> from <source address> after <seconds>` and exits 0 on an
answer, 1 on none. With --wait it keeps asking (a bounded number of times)
until an answer comes or S seconds have passed: the first answer after an
outage is what the failover figures measure."""

import argparse
import ipaddress
import os
import re
import select
import socket
import sys
import time


def options_request(addr, port, local, call_id, cseq):
    host = f"[{addr}]" if ":" in addr else addr
    lhost = f"[{local[0]}]" if ":" in local[0] else local[0]
    return (f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {lhost}:{local[1]};branch=z9hG4bK{call_id[:8]}{cseq};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:probe@{lhost}>;tag={call_id[8:16]}\r\n"
            f"To: <sip:ping@{host}>\r\n"
            f"Call-ID: {call_id}@asha-lab\r\n"
            f"CSeq: {cseq} OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def probe(addr, port=5060, timeout=1.0, wait=0.0, interval=0.01):
    """Return (status line, source address, seconds) or None."""
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
    call_id = os.urandom(8).hex()
    start = time.monotonic()
    end = start + max(wait, timeout)
    max_sends = int(max(wait, timeout) / interval) + 2 if wait else 1
    sends, next_send = 0, start
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                return None
            if sends < max_sends and now >= next_send:
                try:
                    local = s.getsockname()
                    s.sendto(options_request(addr, port, local, call_id, sends + 1), (addr, port))
                except OSError:
                    pass                        # no route yet: the address is moving
                sends += 1
                next_send = now + (interval if wait else timeout)
            ready, _, _ = select.select([s], [], [], max(0.0, min(end, next_send) - now))
            if ready:
                data, src = s.recvfrom(65535)
                line = data.decode(errors="replace").split("\r\n", 1)[0]
                if line.startswith("SIP/2.0 ") and f"{call_id}@asha-lab" in data.decode(errors="replace"):
                    return line, src[0], time.monotonic() - start
    finally:
        s.close()


def watch(addr, port, seconds, interval):
    """Ask every interval for seconds (bounded); return (epoch time of each
    answer, epoch time its request was sent). The second tells an answer that
    a failed server sent before it failed, still on its way, from the new one's."""
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
    call_id = os.urandom(8).hex()
    answers, cseq, sent = [], 0, {}
    end = time.monotonic() + seconds
    next_send = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                return answers
            if now >= next_send:
                cseq += 1
                sent[cseq] = time.time()
                try:
                    s.sendto(options_request(addr, port, s.getsockname(), call_id, cseq), (addr, port))
                except OSError:
                    pass
                next_send = now + interval
            ready, _, _ = select.select([s], [], [], max(0.0, min(end, next_send) - now))
            if ready:
                data = s.recv(65535)
                if data.startswith(b"SIP/2.0 ") and f"{call_id}@asha-lab".encode() in data:
                    got = time.time()
                    m = re.search(rb"\r\nCSeq: *(\d+) ", data, re.IGNORECASE)
                    if m and int(m.group(1)) in sent:
                        answers.append((got, sent[int(m.group(1))]))
    finally:
        s.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("addr")
    ap.add_argument("port", nargs="?", type=int, default=5060)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--wait", type=float, default=0.0)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--watch", type=float, default=0.0,
                    help="ask every INTERVAL for WATCH seconds; print the epoch times of each "
                         "answer and of its request")
    a = ap.parse_args(argv)
    if a.watch:
        for got, asked in watch(a.addr, a.port, a.watch, a.interval):
            print(f"{got:.6f} {asked:.6f}")
        return 0
    got = probe(a.addr, a.port, a.timeout, a.wait, a.interval)
    if got is None:
        print(f"no answer from {a.addr}:{a.port}")
        return 1
    line, src, secs = got
    print(f"{line} from {src} after {secs:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
