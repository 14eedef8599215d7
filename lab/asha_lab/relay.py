"""A frame relay between two interfaces of the lab's switch, for loss, delay
and jitter where the kernel has no netem: `relay.py PORT INNER LOSS DELAY_MS
JITTER_MS DURATION MAX_FRAMES`.

Every frame read on one side is dropped with probability LOSS % or sent on the
other side DELAY_MS +- JITTER_MS later. It stops by itself after DURATION
seconds or MAX_FRAMES frames and then gives PORT back to the bridge br0
and deletes INNER with its pair."""

import heapq
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main(port, inner, loss, delay_ms, jitter_ms, duration, max_frames):
    loss, delay, jitter = float(loss), float(delay_ms) / 1000, float(jitter_ms) / 1000
    duration, max_frames = float(duration), int(max_frames)
    socks = {}
    for name in (port, inner):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    other = {port: socks[inner], inner: socks[port]}
    by_fd = {s.fileno(): name for name, s in socks.items()}
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    print("ready", file=sys.stderr, flush=True)
    end = time.monotonic() + duration
    queue, seq, frames = [], 0, 0
    try:
        while not stop and frames < max_frames:
            now = time.monotonic()
            if now >= end:
                break
            while queue and queue[0][0] <= now:
                _, _, out, data = heapq.heappop(queue)
                try:
                    out.send(data)
                except OSError:
                    pass
            timeout = min(end - now, (queue[0][0] - now) if queue else 0.5)
            try:
                ready, _, _ = select.select(list(socks.values()), [], [], max(timeout, 0))
            except InterruptedError:
                continue
            for s in ready:
                name = by_fd[s.fileno()]
                while True:
                    try:
                        data, addr = s.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    frames += 1
                    if random.uniform(0, 100) < loss:
                        continue
                    at = time.monotonic() + max(0.0, delay + random.uniform(-jitter, jitter))
                    seq += 1
                    heapq.heappush(queue, (at, seq, other[name], data))
    finally:
        for s in socks.values():
            s.close()
        # Give the port back, and delete the relay's own veth pair so that the
        # bridge forgets the MACs it learnt there.
        subprocess.run(["ip", "link", "del", "dev", inner], check=False)
        subprocess.run(["ip", "link", "set", "dev", port, "master", "br0", "promisc", "off"],
                       check=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
