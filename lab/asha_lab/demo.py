"""`make demo`: an asha pair in the lab, narrated for an operator, with the
outages a phone would see measured from the client's side.

run() builds the lab (A primary, B standby, C a client), puts asha on A and B,
writes their asha.conf, heartbeat key and ssh keys, starts asha-hb and
asha-watchdog on each with the stand-in Asterisk, then walks through a steady
state, voicemail sync, a soft failover (kill -9 of Asterisk), A back as a
resynced standby, a manual failback and a hard failover (A loses power). It
prints a table of the outages and returns 0, or 1 with a one-line reason and
the tail of the logs when a step did not do what it should. The lab is closed
whatever happens (Ctrl-C and SIGTERM too)."""

import os
import re
import signal
import subprocess
import sys
import time
import traceback

from . import (REPO, SIPPROBE, STANDIN_ASTERISK, VENV_PYTHON, Lab, LabError, cluster,
               lab_namespaces, sip_options)
from .ssh import start_sshd, trust

KEY = "/etc/asha/authkey"
CONF = "/etc/asha.conf"
CRON = "/etc/cron.d/asha"
VMAILDIR = "/var/spool/asterisk/voicemail"
INBOX = f"{VMAILDIR}/default/1000/INBOX"
PIDFILE = "/var/run/asterisk/asterisk.pid"
PREFIX = "/opt/asha"      # where `make install` puts asha in the nodes
SBIN = f"{PREFIX}/sbin"
# What `make install PREFIX=/opt/asha` writes, as the nodes get it (the rest,
# such as /usr, is the host's own in a node and must not be written).
INSTALLED_TOPS = ("opt", "etc")

ASK_EVERY = 0.02          # C's SIP OPTIONS interval while a failover is measured
WATCH = 8.0               # seconds C watches each failover (bounded: WATCH / ASK_EVERY requests)
LEAD = 1.0                # seconds of answers C sees before the failure is caused
EXCERPT = 22              # log lines shown for a failover
LOG_TAIL = 25             # lines of each log shown when a step fails


class StepFailed(Exception):
    """A step of the demo did not do what it should: the message is the one-line reason."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: stop, clean up (as KeyboardInterrupt for Ctrl-C)."""


def conf_text(lab, node):
    """The demo's asha.conf for node: asha's defaults except the lab's addresses,
    the stand-in Asterisk, a short initial dead time and the log file."""
    serial = lab.serial_a if node is lab.a else lab.serial_b
    return "\n".join([
        "# asha.conf of the asha demo (asha.conf(5) describes every key)",
        f"HACLUSTERIP={lab.cluster_ip}/24",
        f"HAPRINODE={lab.a.name}",
        f"HASECNODE={lab.b.name}",
        f"HAPRIADDR={lab.a.addr}",
        f"HASECADDR={lab.b.addr}",
        "HASYNCH=LAZY",
        f"HBAUTHKEY={KEY}",
        f"HBSERIAL={serial}",
        "HBINITDEAD=10",
        f"ASTBIN={STANDIN_ASTERISK}",
        f"ASTSTART={STANDIN_ASTERISK}",
        f"ASTSTOP=\"{STANDIN_ASTERISK} -rx 'core stop now'\"",
        "ASTSTOPTIMEOUT=3",
        "SYNCCONNECTTIMEOUT=2",
        f"ASHALOG={cluster.log_path(lab, node)}",
    ]) + "\n"


TOOLS = ("asha-hb", "asha-watchdog", "asha-sync", "asha-vip", "asha-rhino")
# The nodes' tools find their library themselves: nothing of this checkout on their path.
NODE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def rel(seconds):
    return f"{ms(abs(seconds))} {'before' if seconds < 0 else 'after'}"


class Demo:
    def __init__(self, lab, out=sys.stdout, start=None):
        self.lab = lab
        self.a, self.b, self.c = lab.a, lab.b, lab.c
        self.out = out
        self.start = time.monotonic() if start is None else start
        self.outages = []            # (scenario, seconds)

    # -- printing -------------------------------------------------------------
    def say(self, text=""):
        print(text, file=self.out, flush=True)

    def step(self, title):
        self.say()
        self.say(f"[{time.monotonic() - self.start:5.1f} s] {title}")

    def quote(self, text):
        for line in text.rstrip("\n").splitlines():
            self.say(f"      | {line}")

    # -- running asha ------------------------------------------------------------
    def tool(self, name, *args):
        """argv of the installed asha tool name as the nodes run it."""
        return [f"{SBIN}/{name}", *args]

    def run_tool(self, node, name, *args, timeout=60):
        try:
            return node.run(self.tool(name, *args), check=False, timeout=timeout, env=NODE_ENV)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{name} {' '.join(args)} on {node.short.upper()} did not finish "
                             f"within {timeout} s") from None

    def role(self, node):
        return cluster.hb_state(node).get("ROLE", "not running")

    def wait_roles(self, want, timeout=15):
        """Wait until each node of want {node: role} has that role, or fail."""
        end = time.monotonic() + timeout
        while True:
            got = {n: self.role(n) for n in want}
            if got == want:
                return
            if time.monotonic() > end:
                have = ", ".join(f"{n.short.upper()} is {r}" for n, r in got.items())
                need = ", ".join(f"{n.short.upper()} {r}" for n, r in want.items())
                raise StepFailed(f"expected {need} within {timeout} s, but {have}")
            time.sleep(0.05)

    def who_answers(self):
        """The node whose MAC C has for the cluster address (the one that answers), or None."""
        p = self.c.run(["ip", "neigh", "show", self.lab.cluster_ip], check=False)
        for node in (self.a, self.b):
            if node.mac in p.stdout.lower():
                return node
        return None

    # -- setting up -----------------------------------------------------------------
    def set_up(self):
        lab, a, b = self.lab, self.a, self.b
        self.say("asha demo: an Asterisk pair, A and B, and a phone, C, in network namespaces "
                 "on this machine")
        self.say(f"  lab {lab.prefix}, its files in {lab.dir}")
        self.say(f"  A {a.name} {a.addr} (primary)   B {b.name} {b.addr} (standby)   "
                 f"C {lab.c.name} {lab.c.addr} (client)")
        self.say(f"  cluster address {lab.cluster_ip}: the phones talk to whichever node is active")
        self.say(f"  a serial cable between A and B ({lab.serial_a} <-> {lab.serial_b}) besides the LAN")

        self.step("Setting up A and B")
        self.install()
        for node in (a, b):
            node.write_file(CONF, conf_text(lab, node))
        self.say(f"  wrote {CONF} on A and B; A's:")
        self.quote(conf_text(lab, a))

        # ssh first: asha-sync pulls over it, and the heartbeat key travels by scp.
        for node in (a, b):
            start_sshd(node)
        trust(a, b)
        trust(b, a)
        self.say("  ssh: sshd runs on A and B; root on each has a key without passphrase that the "
                 "other accepts, and knows the other's host key (asha-sync pulls over ssh)")

        p = self.run_tool(a, "asha-hb", "genkey")
        if p.returncode != 0:
            raise StepFailed(f"asha-hb genkey on A exited {p.returncode}: {p.stderr.strip()}")
        self.say(f"  on A: asha-hb genkey: {p.stdout.strip()}")
        b.run(["mkdir", "-p", "-m", "0700", os.path.dirname(KEY)])
        p = a.run(["scp", "-q", "-p", "-o", "BatchMode=yes", KEY, f"{b.addr}:{KEY}"], check=False)
        if p.returncode != 0 or a.read_file(KEY) != b.read_file(KEY):
            raise StepFailed(f"copying the heartbeat key from A to B failed: {p.stderr.strip()}")
        self.say(f"  copied {KEY} from A to B with scp (mode 0600 kept)")
        for node in (a, b):
            p = self.run_tool(node, "asha-hb", "check")
            if p.returncode != 0:
                raise StepFailed(f"asha-hb check on {node.short.upper()} exited {p.returncode}: "
                                 f"{(p.stderr or p.stdout).strip()}")
        self.say("  asha-hb check: the configuration, key, interface and serial device are "
                 "right on A and B")

        # SARK's order: the HA engine on the primary first, then on the standby.
        t0 = time.monotonic()
        self.start_daemon(a, "asha-hb", "run")
        self.start_daemon(b, "asha-hb", "run")
        self.wait_roles({a: "active", b: "standby"})
        self.say(f"  asha-hb started on A (the primary), then on B: A active and B standby "
                 f"after {time.monotonic() - t0:.1f} s")
        for node in (a, b):
            self.start_daemon(node, "asha-watchdog")
        self.wait_log(a, "watching Asterisk (pid", 15)
        self.wait_log(b, "asha-watchdog starting", 15)
        self.say(f"  asha-watchdog started on A and B; on A it watches Asterisk "
                 f"(pid {self.ast_pid(a)} in A)")

    def install(self):
        """make install into a staging directory once, then its tree onto each node's disk."""
        dest = os.path.join(self.lab.dir, "install")
        argv = ["make", "-s", "-C", REPO, "install", f"DESTDIR={dest}", f"PREFIX={PREFIX}",
                f"PYTHON={VENV_PYTHON}"]
        try:
            # a make of its own, not a sub-make of `make demo` (no jobserver, no flags of that one)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
            p = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired:
            raise StepFailed("make install did not finish within 120 s") from None
        if p.returncode != 0:
            last = ((p.stderr or p.stdout).strip().splitlines() or ["(no output)"])[-1]
            raise StepFailed(f"make install exited {p.returncode}: {last}")
        self.say(f"  make install DESTDIR={dest} PREFIX={PREFIX} PYTHON={VENV_PYTHON}:")
        self.quote(p.stdout + p.stderr)
        tops = sorted(os.listdir(dest))
        if not set(tops) <= set(INSTALLED_TOPS) or not os.path.isdir(os.path.join(dest, "opt")):
            raise StepFailed(f"make install wrote {', '.join('/' + t for t in tops)} in {dest}; "
                             f"the demo copies only {', '.join('/' + t for t in INSTALLED_TOPS)}")
        for node in (self.a, self.b):
            for top in tops:
                node.run(["cp", "-a", f"{dest}/{top}/.", f"/{top}/"])
            missing = [t for t in TOOLS if not node.exists(f"{SBIN}/{t}")]
            if missing:
                raise StepFailed(f"{', '.join(missing)} missing in {SBIN} on {node.short.upper()}")
        self.say(f"  copied that tree onto the disks of A and B (/opt/asha, /etc/cron.d/asha, ...): "
                 f"the nodes run {SBIN}/asha-*, without PYTHONPATH")

    def start_daemon(self, node, name, *args):
        node.popen(self.tool(name, *args), env=NODE_ENV, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_log(self, node, text, timeout):
        end = time.monotonic() + timeout
        while text not in cluster.read_log(self.lab, node):
            if time.monotonic() > end:
                raise StepFailed(f"{node.short.upper()}'s log has no {text!r} after {timeout} s")
            time.sleep(0.05)

    def ast_pid(self, node):
        try:
            return int(node.read_file(PIDFILE))
        except (FileNotFoundError, ValueError):
            return None

    # -- the client's view -------------------------------------------------------
    def ask_once(self, who):
        got = sip_options(self.c, self.lab.cluster_ip, timeout=1.0, wait=3.0)
        if got is None:
            raise StepFailed(f"C's SIP OPTIONS to the cluster address {self.lab.cluster_ip} "
                             f"got no answer (expected {who} to answer)")
        line, src, secs = got
        node = self.who_answers()
        by = f"{node.short.upper()} answers: C has {node.short.upper()}'s MAC for that address" \
            if node else "answered"
        quick = "within a millisecond" if secs < 0.001 else f"in {secs * 1000:.1f} ms"
        self.say(f"  C asks the cluster address {src} for SIP OPTIONS: \"{line}\" {quick} ({by})")
        if node is not None and node.short.upper() != who:
            raise StepFailed(f"{node.short.upper()} answers on the cluster address, not {who}")

    def measured(self, scenario, event, cause, want_roles, answerer):
        """Have C ask every ASK_EVERY; after LEAD seconds run cause() (returns what
        to print); then return the longest silence C saw, from the first answer
        around the failure to the first answer after it."""
        started = time.time()
        watcher = self.c.popen([sys.executable, SIPPROBE, self.lab.cluster_ip, "--watch",
                                str(WATCH), "--interval", str(ASK_EVERY)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.say(f"  C sends SIP OPTIONS to the cluster address every {ms(ASK_EVERY)} "
                 f"for {WATCH:g} s")
        try:
            time.sleep(LEAD)
            t0 = time.time()
            what = cause()
            self.say(f"  {what}")
            self.wait_roles(want_roles, timeout=WATCH - LEAD)
            out, err = watcher.communicate(timeout=WATCH + 30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.communicate()
        if watcher.returncode != 0:
            raise StepFailed(f"C's SIP watcher exited {watcher.returncode}: {err.strip()}")
        times = sorted(float(line.split()[0]) for line in out.splitlines() if line.strip())
        before = [t for t in times if t < t0]
        after = [t for t in times if t >= t0]
        if not before:
            raise StepFailed(f"{scenario}: C got no answer in the {LEAD:g} s before the failure")
        if not after:
            raise StepFailed(f"{scenario}: C got no answer in the {WATCH - LEAD:g} s after it")
        if times[-1] < started + WATCH - 0.5:
            raise StepFailed(f"{scenario}: C's answers stopped again {times[-1] - t0:.2f} s "
                             f"after {event} and did not come back")
        gaps = [(y - x, x, y) for x, y in zip(times, times[1:]) if y >= t0]
        outage, last, first = max(gaps)
        self.log_excerpt(t0, first, event)
        node = self.who_answers()
        by = f"; {node.short.upper()} answers now" if node else ""
        self.say(f"  C: the last answer came {rel(last - t0)} {event}, the next {rel(first - t0)}: "
                 f"no answer for {ms(outage)}{by}")
        if node is not None and node.short.upper() != answerer:
            raise StepFailed(f"{scenario}: {node.short.upper()} answers on the cluster address, "
                             f"not {answerer}")
        self.outages.append((scenario, outage))
        return outage

    def log_excerpt(self, t0, until, event):
        """What asha logged on A and B from t0 to until (a little after), times from t0."""
        lines = []
        for node in (self.a, self.b):
            said = {}
            for seq, (when, tool, message) in enumerate(log_lines(cluster.read_log(self.lab, node))):
                # the same news heard on each path (the LAN, the serial cable) is shown once
                if t0 - 0.01 <= when <= until + 0.2 and when - said.get((tool, message), -1) > 0.1:
                    lines.append((when, seq, node.short.upper(), tool, message))
                said[tool, message] = when
        if not lines:
            return
        self.say(f"  what asha logged, in ms from {event}:")
        # by time, and in each node's own order within a millisecond
        lines.sort(key=lambda line: (line[0], line[2], line[1]))
        for when, _, short, tool, message in lines[:EXCERPT]:
            self.say(f"      | {(when - t0) * 1000:+5.0f}  {short} {tool}: {message}")
        more = len(lines) - EXCERPT
        if more > 0:
            self.say(f"      | ({more} more line{'s' if more > 1 else ''})")

    # -- the steps ---------------------------------------------------------------------
    def steady_state(self):
        a, b = self.a, self.b
        self.step("1. Steady state")
        st = cluster.hb_state(a)
        self.say(f"  A is {st.get('ROLE')} and holds the cluster address, the PBX runs there; "
                 f"B is {self.role(b)}")
        p = self.run_tool(a, "asha-hb", "status")
        if p.returncode != 0:
            raise StepFailed(f"asha-hb status on A exited {p.returncode}: {p.stderr.strip()}")
        self.say("  asha-hb status on A:")
        self.quote(p.stdout)
        self.ask_once("A")

    def voicemail(self, on, name, text):
        """Leave a message (the .txt and .wav Asterisk writes) in on's VMAILDIR."""
        on.write_file(f"{INBOX}/{name}.txt", f"[message]\norigmailbox=1000\ncallerid={text}\n")
        on.write_file(f"{INBOX}/{name}.wav", f"RIFF {text} " + "x" * 4000)
        self.say(f"  a voicemail for 1000 left on {on.short.upper()}: {INBOX}/{name}.txt and .wav")

    def sync(self, on, frm, name):
        t0 = time.monotonic()
        p = self.run_tool(on, "asha-sync", "--now")
        took = time.monotonic() - t0
        if p.returncode != 0:
            raise StepFailed(f"asha-sync --now on {on.short.upper()} exited {p.returncode}: "
                             f"{(p.stderr or p.stdout).strip()}")
        self.say(f"  asha-sync --now on {on.short.upper()}: {p.stdout.strip()}")
        for ext in ("txt", "wav"):
            path = f"{INBOX}/{name}.{ext}"
            if not on.exists(path) or on.read_file(path) != frm.read_file(path):
                raise StepFailed(f"{path} did not reach {on.short.upper()} from "
                                 f"{frm.short.upper()} with asha-sync")
        self.say(f"  {on.short.upper()} has the message, the same bytes as on "
                 f"{frm.short.upper()} ({took:.2f} s for the run)")

    def voicemail_to_b(self):
        self.step("2. A voicemail left on A reaches B")
        self.voicemail(self.a, "msg0000", "reception")
        jobs = [line for line in self.b.read_file(CRON).splitlines()
                if "asha-sync" in line and not line.startswith("#")]
        if not jobs:
            raise StepFailed(f"{CRON} on B has no asha-sync job")
        job = " ".join(jobs[0].split())
        self.say(f"  cron runs asha-sync every minute on both nodes ({CRON}: {job});")
        self.say("  here B runs it at once, with --now rather than --cron so that it says what it did:")
        self.sync(self.b, self.a, "msg0000")

    def soft_failover(self):
        a, b = self.a, self.b
        self.step("3. Asterisk on A dies (kill -9): soft failover")
        pid = self.ast_pid(a)
        if pid is None:
            raise StepFailed("no Asterisk pid file on A")

        def kill():
            a.run(["kill", "-9", str(pid)])
            return f"kill -9 of Asterisk on A (pid {pid})"
        self.measured("A's Asterisk killed (soft failover to B)", "the kill", kill,
                      {a: "standby", b: "active"}, "B")
        if log_time(cluster.read_log(self.lab, a), f"Asterisk (pid {pid}) has exited") is None:
            raise StepFailed("asha-watchdog on A did not log the death of Asterisk")
        self.say("  asha-watchdog on A saw Asterisk die and asked asha-hb to fail over; A released "
                 "the cluster address, B took it and started its PBX")
        self.say(f"  now: A is {self.role(a)}, B is {self.role(b)}")

    def resync_a(self):
        a, b = self.a, self.b
        self.step("4. A back as standby, and resynced from B")
        st = cluster.hb_state(a)
        if cluster.asterisk_running(a):
            raise StepFailed("Asterisk still runs on A, the standby")
        self.say(f"  A is {st.get('ROLE')} (it sees {st.get('PEER')} {st.get('PEERSTATE')}); "
                 "Asterisk runs on B only")
        self.voicemail(b, "msg0001", "left on B during the outage")
        self.sync(a, b, "msg0001")
        if not a.exists(f"{INBOX}/msg0000.txt"):
            raise StepFailed("A lost the message left on it before the failover")
        self.say("  A has both messages: the one left on it before, and the one left on B")

    def failback(self):
        a, b = self.a, self.b
        self.step("5. Manual failback to A (asha-hb takeover on A)")
        result = {}

        def takeover():
            result["p"] = a.popen(self.tool("asha-hb", "takeover"), env=NODE_ENV,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
            return "on A: asha-hb takeover"
        try:
            self.measured("manual failback to A (asha-hb takeover)", "the command", takeover,
                          {a: "active", b: "standby"}, "A")
            out, _ = result["p"].communicate(timeout=60)
        finally:
            if "p" in result and result["p"].poll() is None:
                result["p"].kill()
                result["p"].communicate()
        if result["p"].returncode != 0:
            raise StepFailed(f"asha-hb takeover on A exited {result['p'].returncode}: {out.strip()}")
        if out.strip():
            self.say("  asha-hb takeover said:")
            self.quote(out)
        self.wait_log_after(a, "watching Asterisk (pid", 10)
        self.say(f"  now: A is {self.role(a)}, B is {self.role(b)}; asha-watchdog on A watches "
                 f"the new Asterisk (pid {self.ast_pid(a)} in A)")

    def wait_log_after(self, node, text, timeout):
        """Wait for text in node's log after the last takeover it logged."""
        end = time.monotonic() + timeout
        while True:
            log = cluster.read_log(self.lab, node)
            start = log.rfind("takeover complete")
            if start >= 0 and text in log[start:]:
                return
            if time.monotonic() > end:
                raise StepFailed(f"{node.short.upper()}'s log has no {text!r} after its takeover")
            time.sleep(0.05)

    def power_loss(self):
        a, b = self.a, self.b
        self.step("6. A loses power: hard failover")

        def pull_the_plug():
            a.power_off()
            return "A lost power: every process of A killed at one instant and its link down"
        self.measured("A loses power (hard failover to B)", "the power cut", pull_the_plug,
                      {b: "active"}, "B")
        st = cluster.hb_state(b)
        self.say(f"  now: B is {st.get('ROLE')}, and it sees its peer {st.get('PEER')} as "
                 f"{st.get('PEERSTATE')}")
        if st.get("PEERSTATE") != "dead":
            raise StepFailed(f"B sees A as {st.get('PEERSTATE')}, not dead")

    def table(self):
        self.step("Summary")
        self.say(f"  outage: the longest time C's SIP OPTIONS to the cluster address went "
                 f"unanswered, C asking every {ms(ASK_EVERY)}")
        width = max(len(s) for s, _ in self.outages) + 2
        self.say(f"  {'scenario':<{width}}outage")
        for scenario, secs in self.outages:
            self.say(f"  {scenario:<{width}}{ms(secs)}")

    def run(self):
        self.set_up()
        self.steady_state()
        self.voicemail_to_b()
        self.soft_failover()
        self.resync_a()
        self.failback()
        self.power_loss()
        self.table()


LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3}) (\S+?)\[\d+\]: (?:INFO: )?(.*)")


def log_lines(log):
    """(epoch seconds, tool, message) of each line of an ASHALOG text."""
    for line in log.splitlines():
        m = LOG_LINE.match(line)
        if m:
            when = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1000
            yield when, m.group(3), m.group(4)


def log_time(log, text):
    """Epoch seconds of the last line of an ASHALOG text that contains text, or None."""
    found = [when for when, _, message in log_lines(log) if text in message]
    return found[-1] if found else None


def tail(text, n):
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


def _ignore_signals():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _interrupt(signum, frame):
    _ignore_signals()                # one interruption: let the cleanup finish
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def main(out=sys.stdout):
    """The demo; 0 when every step did what it should, 1 when one did not, 130 when interrupted."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    t0 = time.monotonic()
    reason = None
    logs = ""
    try:
        with Lab() as lab:
            demo = Demo(lab, out, t0)
            try:
                demo.run()
            except Exception as e:          # noqa: BLE001 -- any failure is reported, then cleaned up
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                if isinstance(e, StepFailed):
                    reason = first
                else:
                    reason = f"{type(e).__name__}: {first}" if first else type(e).__name__
                    logs = "".join(traceback.format_exception(e))
                logs += "\n".join(f"----- the last lines of {n.short.upper()}'s log "
                                  f"({cluster.log_path(lab, n)}) -----\n"
                                  f"{tail(cluster.read_log(lab, n), LOG_TAIL)}"
                                  for n in (lab.a, lab.b))
            finally:
                _ignore_signals()           # from here on nothing may cut the cleanup short
            print(f"\n[{time.monotonic() - t0:5.1f} s] closing the lab: every process of A, B and C "
                  "stopped, the namespaces removed", file=out, flush=True)
        left = [ns for ns in lab_namespaces() if ns.startswith(lab.prefix + "-")]
        if (left or os.path.exists(lab.dir)) and reason is None:
            reason = f"the lab was not removed: {' '.join(left) or lab.dir} still there"
    except (KeyboardInterrupt, Interrupted):
        print("\nasha demo: interrupted; the lab is closed", file=sys.stderr, flush=True)
        return 130
    except LabError as e:
        print(f"asha demo: failed: {e}", file=sys.stderr, flush=True)
        return 1
    if reason is not None:
        print(logs, file=out, flush=True)
        print(f"asha demo: failed: {reason}", file=sys.stderr, flush=True)
        return 1
    print(f"asha demo: every step did what it should, in {time.monotonic() - t0:.0f} s",
          file=out, flush=True)
    return 0
