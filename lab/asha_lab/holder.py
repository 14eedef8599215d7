"""The first process of a lab node, run as
`ip netns exec NS unshare --uts --mount --pid --fork --mount-proc --propagation private --
python holder.py NAME DIR READY DISK...`.

It gives the node its hostname and private filesystems (an overlay over each
DISK path whose upper layer lives in DIR, so it survives a power cut, and a
fresh tmpfs on /run), says so by creating READY, and then waits to be killed:
its namespaces live as long as it does. It is the node's init (pid 1 of the
node's pid namespace), so it reaps the orphans of daemons that fork away, and
when it dies every process of the node dies with it, as at a power cut. It has
no handler for TERM or INT, so the kernel keeps those from it (a stray
`kill -TERM 1` or pkill in the node cannot power the node off); the lab uses
SIGKILL."""

import os
import signal
import socket
import subprocess
import sys


def reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(name, nodedir, ready, *disk):
    socket.sethostname(name)
    for path in disk:
        up = os.path.join(nodedir, "up" + path)
        work = os.path.join(nodedir, "work" + path)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={path},upperdir={up},workdir={work}", path], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True)
    for d in ("/run/sshd", "/run/asterisk", "/run/lock"):
        os.makedirs(d, exist_ok=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)     # not Python's KeyboardInterrupt
    signal.signal(signal.SIGCHLD, reap)
    with open(ready, "w") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        signal.pause()


if __name__ == "__main__":
    main(*sys.argv[1:])
