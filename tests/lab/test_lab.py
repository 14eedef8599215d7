"""The lab itself: hosts that reach each other, private hostnames, processes,
disks and /run, the serial cable, link faults, power, and nothing left behind."""

import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from asha_lab import Lab, LabError, lab_namespaces, netlab, sweep_stale

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ping(node, addr, count=1, wait=1, interval=None):
    cmd = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait)]
    if interval:
        cmd += ["-i", str(interval)]
    return node.run(cmd + [addr], check=False, timeout=count * (interval or 1) + wait + 10)


def received(p):
    m = re.search(r"(\d+) received", p.stdout)
    assert m, p.stdout + p.stderr
    return int(m.group(1))


def rtt(p, which):
    """min, avg or max round trip in ms from ping -q's summary."""
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", p.stdout)
    assert m, p.stdout + p.stderr
    return float(m.group(("min", "avg", "max").index(which) + 1))


def lab_processes(lab):
    """Host pids of processes whose command line names the lab's prefix or directory."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (lab.prefix in cmd or (lab.dir and lab.dir in cmd)):
            out.append(int(d))
    return out


def test_nodes_reach_each_other_the_client_and_the_gateway(lab):
    assert [n.addr for n in lab.nodes] == ["198.51.100.1", "198.51.100.2", "198.51.100.10"]
    for src in lab.nodes:
        for dst in lab.nodes:
            if src is not dst:
                assert ping(src, dst.addr).returncode == 0, f"{src.name} -> {dst.name}"
                assert ping(src, dst.addr6).returncode == 0, f"{src.name} -> {dst.name} IPv6"
        assert ping(src, lab.gateway).returncode == 0
    assert len({n.mac for n in lab.nodes}) == 3
    for node in lab.nodes:
        link = node.run(["ip", "-o", "link", "show", "eth0"]).stdout
        assert node.mac in link
    # nothing of the lab in the host's own network namespace
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {line.split(": ")[1].split("@")[0] for line in host_links.splitlines()}
    assert not names & {"br0", "a0", "b0", "c0"}, names


def test_hostnames_differ_and_match(lab):
    names = [n.run(["uname", "-n"]).stdout.strip() for n in lab.nodes]
    assert names == [n.name for n in lab.nodes] == ["asha-a", "asha-b", "asha-c"]
    assert os.uname().nodename not in names


def test_disks_and_run_are_private(lab):
    lab.a.write_file("/etc/asha.conf", "HASYNCH=LAZY\n")
    lab.a.write_file("/root/.ssh/authorized_keys", "key\n", mode=0o600)
    lab.a.write_file("/run/asha/hb.state", "ROLE=active\n")
    assert lab.a.run(["cat", "/etc/asha.conf"]).stdout == "HASYNCH=LAZY\n"
    assert lab.a.run(["stat", "-c", "%a", "/root/.ssh/authorized_keys"]).stdout.strip() == "600"
    for path in ("/etc/asha.conf", "/root/.ssh/authorized_keys", "/run/asha/hb.state"):
        assert not lab.b.exists(path)
        assert lab.b.run(["test", "-e", path], check=False).returncode == 1
        if os.path.exists(path):                   # the host's own file, if any, is untouched
            with open(path) as f:
                assert f.read() not in ("HASYNCH=LAZY\n", "key\n", "ROLE=active\n")
    # the node resolves its own /var/run -> /run
    assert lab.a.read_file("/var/run/asha/hb.state") == "ROLE=active\n"
    assert lab.a.run(["cat", "/var/run/asha/hb.state"]).stdout == "ROLE=active\n"
    # /tmp is the host's: the repo and lab.dir are visible in every node
    assert lab.b.run(["test", "-d", lab.dir]).returncode == 0
    assert lab.b.run([sys.executable, "-c", "import psutil"]).returncode == 0


def test_each_node_has_its_own_processes(lab):
    sleeper = lab.a.popen(["sleep", "300"])
    assert sleeper.pid in lab.a.pids()
    assert sleeper.pid not in lab.b.pids()
    # inside, the node sees its own processes only, under its own pids
    ps_a = lab.a.run(["ps", "-e", "-o", "pid=,comm="]).stdout
    assert "sleep" in ps_a and "1 python" in " ".join(ps_a.split())
    assert "sleep" not in lab.b.run(["ps", "-e", "-o", "comm="]).stdout
    # the Popen is the command itself: signals and timeouts reach it
    sleeper.terminate()
    assert sleeper.wait(5) == -15
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        lab.a.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert "sleep" not in lab.a.run(["ps", "-e", "-o", "comm="]).stdout
    # a failing command shows what it said
    with pytest.raises(LabError, match="no-such-file"):
        lab.a.run("cat /no-such-file")
    assert lab.a.run("echo $0; exit 3", check=False).returncode == 3
    assert lab.a.run(["cat"], input="fed\n").stdout == "fed\n"


def _serial_read(node, path, seconds=1.0):
    """Start a reader of path in node; return (process, result()) where result
    gives the bytes it read (until seconds pass) and whether it met EOF/EIO."""
    reader = node.popen([sys.executable, "-c", (
        "import os,sys,select,time,tty\n"
        f"fd=os.open({path!r}, os.O_RDWR|os.O_NOCTTY); tty.setraw(fd, tty.TCSANOW)\n"
        f"print('open', flush=True); out=b''; end=time.time()+{seconds}; why='timeout'\n"
        "while time.time()<end:\n"
        "  r,_,_=select.select([fd],[],[],0.05)\n"
        "  if r:\n"
        "    try: d=os.read(fd,4096)\n"
        "    except OSError as e: why='EIO'; break\n"
        "    if not d: why='EOF'; break\n"
        "    out+=d\n"
        "print(out.hex(), why)\n")], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"

    def result():
        out, _ = reader.communicate(timeout=10)
        data, why = out.split() if len(out.split()) == 2 else ("", out.strip())
        return bytes.fromhex(data), why
    return result


def _serial_write(node, path, data):
    node.run([sys.executable, "-c", (
        f"import os,tty; fd=os.open({path!r}, os.O_RDWR|os.O_NOCTTY); tty.setraw(fd, tty.TCSANOW); "
        f"os.write(fd, bytes.fromhex({data.hex()!r})); os.close(fd)")])


def test_serial_cable_carries_bytes_both_ways_and_nothing_unplugged(lab):
    assert os.path.realpath(lab.serial_a).startswith("/dev/pts/")
    got = _serial_read(lab.b, lab.serial_b)
    _serial_write(lab.a, lab.serial_a, b"hello B\x00\xff\r\n")
    assert got() == (b"hello B\x00\xff\r\n", "timeout")
    got = _serial_read(lab.a, lab.serial_a)
    _serial_write(lab.b, lab.serial_b, b"hello A")
    assert got() == (b"hello A", "timeout")

    # unplugged: an open end hangs up (EOF, writes EIO) and the paths are gone
    got = _serial_read(lab.b, lab.serial_b, seconds=3)
    fd = os.open(lab.serial_a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        lab.unplug_serial()
        assert got() == (b"", "EOF")
        with pytest.raises(OSError) as e:
            os.write(fd, b"lost")
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    for path in (lab.serial_a, lab.serial_b):
        assert not os.path.lexists(path)
        with pytest.raises(FileNotFoundError):
            os.open(path, os.O_RDWR | os.O_NOCTTY)

    # plugged again: the same paths carry bytes again
    lab.plug_serial()
    got = _serial_read(lab.b, lab.serial_b)
    _serial_write(lab.a, lab.serial_a, b"again")
    assert got() == (b"again", "timeout")


def test_cut_link_and_restore(lab):
    assert ping(lab.c, lab.a.addr).returncode == 0
    lab.a.cut_link()
    assert "NO-CARRIER" in lab.a.run(["ip", "link", "show", "eth0"]).stdout
    assert ping(lab.c, lab.a.addr).returncode != 0
    assert ping(lab.a, lab.b.addr).returncode != 0
    assert ping(lab.c, lab.b.addr).returncode == 0
    lab.a.restore_link()
    assert received(ping(lab.c, lab.a.addr, count=10, interval=0.1, wait=1)) > 0


def test_set_loss_drops_about_that_share(lab):
    assert ping(lab.c, lab.a.addr).returncode == 0        # neighbours known before the loss
    lab.a.set_loss(30)
    got = received(ping(lab.c, lab.a.addr, count=200, wait=1, interval=0.002))
    # each echo crosses the link twice: 0.7 * 0.7 = 49 % come back; the bounds
    # are over 5 standard deviations wide for 200 tries
    assert 60 <= got <= 136, got
    assert received(ping(lab.c, lab.b.addr, count=20, interval=0.002)) == 20   # B untouched
    lab.a.set_loss(0)
    assert received(ping(lab.c, lab.a.addr, count=20, interval=0.002)) == 20
    with pytest.raises(ValueError):
        lab.a.set_loss(101)


def test_impair_delays_drops_and_ends_by_itself(lab):
    assert ping(lab.c, lab.a.addr).returncode == 0
    assert rtt(ping(lab.c, lab.a.addr, count=3, interval=0.05), "max") < 20
    lab.a.impair(loss=0, delay_ms=40, jitter_ms=10, duration=4, rt_prio=60)
    assert os.sched_getscheduler(lab.a._relay.pid) == os.SCHED_FIFO
    p = ping(lab.c, lab.a.addr, count=10, interval=0.05)
    assert received(p) == 10
    # 40 +- 10 ms each way, twice per echo
    assert 60 <= rtt(p, "min") and 70 <= rtt(p, "avg") <= 110, p.stdout
    t0 = time.monotonic()
    lab.a.impair(loss=30, delay_ms=0, jitter_ms=0, duration=2)
    got = received(ping(lab.c, lab.a.addr, count=200, wait=1, interval=0.002))
    assert 60 <= got <= 136, got
    while lab.a.impaired():       # the relay gives the link back to the bridge by itself
        assert time.monotonic() - t0 < 5, "the relay outlived its duration"
        time.sleep(0.02)
    assert time.monotonic() - t0 >= 2
    p = ping(lab.c, lab.a.addr, count=5, interval=0.05)
    assert received(p) == 5 and rtt(p, "max") < 20, p.stdout
    assert "a-relay" not in lab.sw(["ip", "-o", "link"]).stdout
    lab.a.clear_impair()
    lab.a.impair(delay_ms=30, jitter_ms=0, loss=0)
    lab.a.set_loss(100)           # set_loss holds while impaired too
    assert ping(lab.c, lab.a.addr).returncode != 0
    lab.a.set_loss(0)
    lab.a.clear_impair()          # cleared at once
    assert rtt(ping(lab.c, lab.a.addr, count=3, interval=0.05), "max") < 20


def test_power_off_kills_everything_and_keeps_the_disk(lab):
    lab.a.write_file("/var/lib/asterisk/kept", "disk\n")
    lab.a.write_file("/opt/sark/kept", "disk\n")
    lab.a.write_file("/run/lost", "ram\n")
    sleeper = lab.a.popen(["sleep", "300"])
    # a daemon that forked away, and a process entered from outside the node's init
    lab.a.run("setsid sleep 301 >/dev/null 2>&1 < /dev/null &")
    outsider = subprocess.Popen(["ip", "netns", "exec", lab.a.ns, "sleep", "302"])
    try:
        time.sleep(0.2)
        assert len(lab.a.pids()) >= 4
        b_pids = lab.b.pids()
        lab.a.power_off()
        assert lab.a.pids() == []
        assert sleeper.poll() is not None and outsider.wait(2) == -9
        assert lab.b.pids() == b_pids
    finally:
        outsider.kill()
    assert ping(lab.c, lab.a.addr).returncode != 0
    with pytest.raises(LabError, match="powered off"):
        lab.a.run(["true"])
    _serial_write(lab.b, lab.serial_b, b"sent while A was off")
    lab.a.power_on()
    got = _serial_read(lab.a, lab.serial_a, seconds=0.5)
    assert got() == (b"", "timeout")              # nothing kept from before the boot
    got = _serial_read(lab.a, lab.serial_a, seconds=0.5)
    _serial_write(lab.b, lab.serial_b, b"after")
    assert got() == (b"after", "timeout")
    assert lab.a.read_file("/var/lib/asterisk/kept") == "disk\n"
    assert lab.a.read_file("/opt/sark/kept") == "disk\n"
    assert not lab.a.exists("/run/lost")
    assert lab.a.run("ls -A /run").stdout.split() == ["asterisk", "lock", "sshd"]
    assert lab.a.run(["uname", "-n"]).stdout.strip() == "asha-a"
    assert "sleep" not in lab.a.run(["ps", "-e", "-o", "comm="]).stdout
    assert received(ping(lab.c, lab.a.addr, count=10, interval=0.1, wait=1)) > 0


def test_nothing_left_after_close():
    lab = Lab()
    lab.start()
    prefix, directory = lab.prefix, lab.dir
    lab.a.popen(["sleep", "300"])
    lab.b.impair(loss=0, delay_ms=10, jitter_ms=0, duration=60)
    pids = lab.pids()
    assert set(lab.a.pids() + lab.b.pids() + lab.c.pids()) < set(pids)
    assert lab._socat.pid in pids and lab.b._relay.pid in pids
    lab.close()
    lab.close()                                     # idempotent
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]
    assert not os.path.exists(directory)
    assert lab_processes(lab) == []
    for pid in pids:
        assert netlab._gone(pid), pid


def test_a_failing_test_and_a_failed_start_clean_up(monkeypatch):
    lab = Lab()
    with pytest.raises(RuntimeError):
        with lab:
            raise RuntimeError("a test fails")
    assert not [ns for ns in lab_namespaces() if ns.startswith(lab.prefix)]
    assert not os.path.exists(lab.dir)

    real = netlab.Node.power_on

    def b_does_not_boot(node):
        if node.short == "b":
            raise LabError("asha-b: the node did not boot")
        real(node)
    monkeypatch.setattr(netlab.Node, "power_on", b_does_not_boot)
    lab = Lab()
    with pytest.raises(LabError, match="did not boot"):
        with lab:
            pass
    assert not [ns for ns in lab_namespaces() if ns.startswith(lab.prefix)]
    assert not os.path.exists(lab.dir)
    assert lab_processes(lab) == []


def test_sweeper_removes_dead_owners_labs_only():
    code = ("import sys; sys.path.insert(0, 'lab'); from asha_lab import Lab; "
            "lab = Lab(); lab.start(); lab.b.impair(duration=60); "
            "print(lab.prefix, lab.dir, flush=True); import os; os._exit(0)")
    foreign = f"asl-notalab-{os.getpid()}"         # not a lab's name: never touched
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        with Lab() as alive:                       # a living owner's lab stays
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=60, cwd=REPO)
            prefix, directory = p.stdout.split()
            dead = Lab(prefix=prefix)
            dead.dir = directory
            assert len([ns for ns in lab_namespaces() if ns.startswith(prefix + "-")]) == 4
            assert lab_processes(dead)             # holders and socat left running
            swept = sweep_stale()
            assert prefix in swept and alive.prefix not in swept
            assert [ns for ns in lab_namespaces() if ns.startswith(alive.prefix)]
            assert alive.a.run(["true"]).returncode == 0
        assert foreign in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                         text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", foreign])
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]
    assert not os.path.exists(directory)
    assert lab_processes(dead) == []


def test_sweeper_sees_a_reused_owner_pid():
    """A lab whose owner pid now belongs to another process (its start time differs)."""
    lab = Lab(prefix=f"asl-{os.getpid()}-beef")
    lab.start()
    try:
        with open(os.path.join(lab.dir, netlab.OWNER_FILE), "w") as f:
            f.write(f"{os.getpid()} 1\n")
        assert sweep_stale() == [lab.prefix]
        assert not [ns for ns in lab_namespaces() if ns.startswith(lab.prefix)]
    finally:
        lab.close()


def test_command_line_opens_and_closes_a_lab():
    p = subprocess.Popen([sys.executable, "-m", "asha_lab"], cwd=os.path.join(REPO, "lab"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        head = p.stdout.readline()
        prefix = re.match(r"lab (asl-\d+-[0-9a-f]{4}): files in ", head).group(1)
        text = head
        while "Ctrl-C" not in text:
            text += p.stdout.readline()
        init = re.search(r"asha-b: .* enter: nsenter -t (\d+) -n -u -m -p", text).group(1)
        hostname = subprocess.run(["nsenter", "-t", init, "-u", "uname", "-n"],
                                  capture_output=True, text=True).stdout.strip()
        assert hostname == "asha-b"
        listed = subprocess.run([sys.executable, "-m", "asha_lab", "list"], capture_output=True,
                                text=True, cwd=os.path.join(REPO, "lab")).stdout
        assert f"{prefix} owner {p.pid} alive" in listed
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        p.kill()
        p.communicate()
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix)]
    usage = subprocess.run([sys.executable, "-m", "asha_lab", "bogus"], capture_output=True,
                           cwd=os.path.join(REPO, "lab"))
    assert usage.returncode == 64


def test_a_stray_term_to_init_does_not_power_the_node_off(lab):
    lab.a.run("kill -TERM 1; kill -INT 1; pkill -TERM -x python; true")
    time.sleep(0.1)
    assert lab.a.run(["uname", "-n"]).stdout.strip() == "asha-a"
    assert received(ping(lab.c, lab.a.addr)) == 1
    assert lab.b.run(["sysctl", "-n", "net.ipv6.conf.eth0.accept_dad"]).stdout.strip() != "0"
