"""An asha pair in the lab: asha.conf and keys on A and B, asha-hb (and, when
asked, asha-watchdog) running on each, with the stand-in Asterisk as the PBX.

Tests, the demo and the benches share this so that they all run the same
cluster the same way."""

import os
import time

from . import REPO, STANDIN_ASTERISK, asha, sip_options

KEY = "/etc/asha/authkey"


def config_text(lab, node, extra="", serial=True):
    """asha.conf for node; extra lines override the defaults here (later lines win)."""
    serial_dev = lab.serial_a if node is lab.a else lab.serial_b
    lines = [
        f"HACLUSTERIP={lab.cluster_ip}/24",
        f"HAPRINODE={lab.a.name}",
        f"HASECNODE={lab.b.name}",
        f"HAPRIADDR={lab.a.addr}",
        f"HASECADDR={lab.b.addr}",
        f"HBAUTHKEY={KEY}",
        f"HBSERIAL={serial_dev if serial else ''}",
        "HBINITDEAD=2",
        "HASYNCH=LOOSE",
        f"ASTBIN={STANDIN_ASTERISK}",
        f"ASTSTART={STANDIN_ASTERISK}",
        f"ASTSTOP=\"{STANDIN_ASTERISK} -rx 'core stop now'\"",
        "ASTSTOPTIMEOUT=3",
        f"ASHALOG={log_path(lab, node)}",
    ]
    return "\n".join(lines) + "\n" + extra


def log_path(lab, node):
    return os.path.join(lab.dir, f"{node.short}.log")


def read_log(lab, node):
    try:
        with open(log_path(lab, node)) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def logs(lab):
    return "".join(f"----- {n.name} log -----\n{read_log(lab, n)}" for n in (lab.a, lab.b))


def configure(lab, extra="", extra_a="", extra_b="", serial=True):
    key = os.urandom(32).hex() + "\n"
    for node, more in ((lab.a, extra_a), (lab.b, extra_b)):
        node.write_file("/etc/asha.conf", config_text(lab, node, extra + more, serial))
        node.write_file(KEY, key, mode=0o600)


def start_hb(node):
    """asha-hb run in the background in node (logs go to ASHALOG)."""
    return node.popen(asha("asha-hb", "run"), stdout=open(os.devnull, "w"),
                      stderr=open(os.devnull, "w"))


def start_watchdog(node):
    """asha-watchdog run in the background in node (logs go to ASHALOG)."""
    return node.popen(asha("asha-watchdog"), stdout=open(os.devnull, "w"),
                      stderr=open(os.devnull, "w"))


def hb_state(node):
    """asha-hb's state file in node as a dict ({} if none)."""
    from asha import state
    try:
        text = node.read_file("/run/asha/hb.state")
    except FileNotFoundError:
        return {}
    import asha.config as config
    return {a.key: a.value for a in config.parse_text(text, "hb.state")[0]}


def wait_for(what, timeout, interval=0.02):
    """Poll what() until it is true; return its value or raise AssertionError."""
    end = time.monotonic() + timeout
    while True:
        v = what()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"not true within {timeout} s: {getattr(what, '__name__', what)}")
        time.sleep(interval)


def wait_role(node, role, timeout=10):
    return wait_for(lambda: hb_state(node).get("ROLE") == role, timeout)


def steady_pair(lab, extra="", extra_a="", extra_b="", serial=True, timeout=15):
    """Configure and start both nodes; return once A is active and B standby."""
    configure(lab, extra, extra_a, extra_b, serial)
    start_hb(lab.a)
    start_hb(lab.b)
    try:
        wait_for(lambda: hb_state(lab.a).get("ROLE") == "active" and
                 hb_state(lab.b).get("ROLE") == "standby", timeout)
    except AssertionError:
        raise AssertionError("the pair did not settle\n" + logs(lab)) from None


def answers(lab, timeout=0.5):
    """Who answers SIP on the cluster IP, as seen from C: (status, source) or None."""
    return sip_options(lab.c, lab.cluster_ip, timeout=timeout)


def asterisk_running(node):
    return node.run(["pgrep", "-x", "asterisk"], check=False).returncode == 0 and \
        "Z" not in node.run(["ps", "-o", "stat=", "-C", "asterisk"], check=False).stdout


__all__ = ["REPO", "configure", "start_hb", "start_watchdog", "hb_state", "wait_for", "wait_role", "steady_pair",
           "answers", "logs", "read_log", "log_path", "asterisk_running"]
