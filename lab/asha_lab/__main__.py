"""Open a lab by hand, or clean up after killed runs (needs root).

  python -m asha_lab [open]   start a lab, print its nodes and how to enter
                              them, keep it until Ctrl-C or SIGTERM, then close it
  python -m asha_lab list     every lab on this machine, its owner and whether it lives
  python -m asha_lab sweep    remove the labs whose owner process is gone
  python -m asha_lab demo     `make demo`: an asha pair failing over, narrated,
                              with the outages measured from a client; exit 0
                              when every step did what it should, 1 if not

Example: sudo .venv/bin/python -m asha_lab, then in another terminal
`nsenter -t PID -n -u -m -p` as printed, and `ping 198.51.100.2` from A."""

import signal
import sys

from .netlab import Lab, LabError, labs, sweep_stale


def describe(lab):
    lines = [f"lab {lab.prefix}: files in {lab.dir}",
             f"  switch: namespace {lab.sw_ns}, gateway {lab.gateway} {lab.gateway6}",
             f"  cluster address {lab.cluster_ip} {lab.cluster_ip6}"]
    for node in lab.nodes:
        lines.append(f"  {node.name}: {node.addr} {node.addr6} {node.mac}  "
                     f"enter: {node.enter_command()}")
    if lab.with_serial:
        lines.append(f"  serial cable: {lab.serial_a} (A) <-> {lab.serial_b} (B)")
    return "\n".join(lines)


def main(argv):
    what = argv[0] if argv else "open"
    if what in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if what == "sweep":
        for prefix in sweep_stale():
            print(f"removed {prefix}")
        return 0
    if what == "demo" and len(argv) == 1:
        from . import demo
        return demo.main()
    if what == "list":
        for prefix, (owner, alive) in sorted(labs().items()):
            print(f"{prefix} owner {owner} {'alive' if alive else 'gone'}")
        return 0
    if what != "open" or len(argv) > 1:
        print(__doc__, file=sys.stderr)
        return 64
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
        with Lab() as lab:
            print(describe(lab), flush=True)
            print("Ctrl-C closes the lab.", flush=True)
            while not stop:
                signal.pause()
    except LabError as e:
        print(f"asha_lab: {e}", file=sys.stderr)
        return 1
    print("lab closed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
