"""The cluster IP (HACLUSTERIP): make sure no other host holds it, add it, and
announce it so that every phone and switch on the LAN learns the new MAC at once.

vip_up, vip_down and vip_status are what asha-hb calls in-process on every
failover; run() is the asha-vip command line, which also behaves as an OCF
resource agent (monitor, meta-data, validate-all, OCF_RESKEY_ip/_nic/_config).
Addresses are added and removed with iproute2's ip; the probe and the
announcements are raw Ethernet frames (asha.arp)."""

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
from xml.sax.saxutils import escape

from . import __version__, arp, config, exits

TOOL = "asha-vip"
IP = "ip"                   # iproute2, found in PATH
IP_TIMEOUT = 10             # seconds; ip answers in milliseconds unless the kernel is stuck


# ---------------------------------------------------------------------------
# Where a value came from, so that a bad one is reported the right way:
# the command line is a usage error (64), asha.conf or the OCF environment a
# configuration error (78; OCF: 6).

class Source:
    def __init__(self, name, kind, where=None):
        self.name, self.kind, self.where = name, kind, where

    def error(self, text):
        if self.kind == "cli":
            return exits.UsageError(f"{self.name} {text}")
        if self.kind == "env":
            return exits.AshaError(f"{self.name} {text}", exits.CONFIG)
        return config.ConfigError([f"{self.where}: {self.name} {text}"])


def _conf_source(cfg, key):
    line = cfg.line_of(key)
    return Source(key, "conf", f"{cfg.path}:{line}" if line else cfg.path)


class Target:
    """The address asha-vip works on and the interface that carries it.

    held_prefix: the prefix length it has on dev now, or None when dev does
    not hold it. mac, link_type, flags: dev's, as `ip -j addr` gives them."""

    def __init__(self, ip, prefix, link, held_prefix=None):
        self.ip, self.prefix = ip, prefix
        self.dev = link["ifname"]
        self.mac = link.get("address")
        self.link_type = link.get("link_type")
        self.flags = link.get("flags", [])
        self.held_prefix = held_prefix

    @property
    def held(self):
        return self.held_prefix is not None

    @property
    def cidr(self):
        return f"{self.ip}/{self.prefix}"

    def __str__(self):
        return f"{self.cidr} on {self.dev}"

    def __repr__(self):
        return f"<Target {self} {'held' if self.held else 'not held'}>"


# ---------------------------------------------------------------------------
# Working out the address and the interface.

def _ip_run(args):
    try:
        return subprocess.run([IP, *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    except FileNotFoundError:
        raise exits.AshaError(f"{IP}: not found in PATH (install iproute2)") from None
    except subprocess.TimeoutExpired:
        raise exits.AshaError(f"{IP} {' '.join(args)}: no answer in {IP_TIMEOUT} s") from None


def interfaces():
    """Every interface with its addresses: the list `ip -j addr show` prints."""
    p = _ip_run(["-j", "addr", "show"])
    if p.returncode != 0:
        raise exits.AshaError(f"{IP} -j addr show: {p.stderr.strip() or f'exit {p.returncode}'}")
    return json.loads(p.stdout or "[]")


def _family(ip):
    return "inet" if ip.version == 4 else "inet6"


def _held_prefix(link, ip):
    for a in link.get("addr_info", []):
        if a.get("family") == _family(ip) and ipaddress.ip_address(a["local"]) == ip:
            return a["prefixlen"]
    return None


def resolve(cfg, ip=None, dev=None, ip_from="--ip", dev_from="--dev", ethernet=False):
    """The Target for ip ("ADDR[/PFX]") and dev, else HACLUSTERIP and HAINTERFACE.

    Without an interface: the one that holds the address now, else the one
    whose subnet holds it (the longest prefix wins; a tie between two
    interfaces is an error). Without a prefix: that subnet's. A prefix must be
    the subnet's own or a host prefix (/32, /128). ip_from/dev_from name where
    ip and dev came from ("--ip", "OCF_RESKEY_ip"); a bad value raises
    UsageError for the command line, AshaError(78) for the environment and
    ConfigError for asha.conf. ethernet=True also requires an Ethernet
    interface, which start needs to announce the address."""
    if ip is not None:
        ip_src = Source(ip_from, "cli" if ip_from.startswith("-") else "env")
        try:
            cip = config.ip_with_prefix(ip)
        except ValueError as e:
            raise ip_src.error(f"{e}, not {ip!r}") from None
    else:
        cip = getattr(cfg, "HACLUSTERIP", None)
        if cip is None:
            raise exits.AshaError(f"no cluster IP: {cfg.path} gives no HACLUSTERIP; "
                                  f"give --ip or OCF_RESKEY_ip", exits.CONFIG)
        ip_src = _conf_source(cfg, "HACLUSTERIP")
    if dev is not None:
        dev_src = Source(dev_from, "cli" if dev_from.startswith("-") else "env")
        try:
            config.ifname(dev)
        except ValueError as e:
            raise dev_src.error(f"{e}, not {dev!r}") from None
    else:
        dev = getattr(cfg, "HAINTERFACE", None)
        dev_src = _conf_source(cfg, "HAINTERFACE")

    links = interfaces()
    by_name = {link["ifname"]: link for link in links}
    if dev:
        if dev not in by_name:
            raise dev_src.error(f"{dev}: no such network interface on this node")
        candidates = [by_name[dev]]
    else:
        candidates = links
    target = _choose(cip, candidates, ip_src, dev_src, dev)
    if ethernet and target.link_type != "ether":
        src = dev_src if dev else ip_src
        raise src.error(f"{dev or cip}: {target.dev} is not an Ethernet interface "
                        f"(link/{target.link_type}); the address is announced in Ethernet frames")
    return target


def _choose(cip, candidates, ip_src, dev_src, dev):
    for link in candidates:
        held = _held_prefix(link, cip.ip)
        if held is not None:
            return Target(cip.ip, held, link, held)
    matches = []
    for link in candidates:
        for a in link.get("addr_info", []):
            if a.get("family") != _family(cip.ip) or a.get("scope") == "link":
                continue
            net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            if cip.ip in net:
                matches.append((net.prefixlen, link["ifname"], net, link))
    if not matches:
        if dev and cip.prefix is not None:
            # An address of its own subnet on the named interface: the operator said so.
            return Target(cip.ip, cip.prefix, candidates[0])
        dev_key = "--dev" if ip_src.kind == "cli" else \
            "OCF_RESKEY_nic" if ip_src.kind == "env" else "HAINTERFACE"
        if dev:
            raise ip_src.error(f"{cip}: no address on {dev} is in its subnet; give the /prefix")
        need = "set " + dev_key + (" and give the /prefix" if cip.prefix is None else "")
        raise ip_src.error(f"{cip}: no address on any interface is in its subnet; {need}")
    longest = max(m[0] for m in matches)
    best = {m[1]: m for m in matches if m[0] == longest}
    if len(best) > 1:
        # (only without an interface: one named interface gives one candidate)
        names = " and ".join(sorted(best))
        raise dev_src.error(f"is not set, and {cip.ip} is in a subnet of both {names}; "
                            f"name the interface")
    _, ifname, net, link = next(iter(best.values()))
    if cip.prefix is not None and cip.prefix not in (net.prefixlen, cip.ip.max_prefixlen):
        raise ip_src.error(f"{cip}: prefix /{cip.prefix} does not fit {ifname}'s subnet {net} "
                           f"(give /{net.prefixlen}, /{cip.ip.max_prefixlen} or no prefix)")
    return Target(cip.ip, cip.prefix if cip.prefix is not None else net.prefixlen, link)


# ---------------------------------------------------------------------------
# Announcing. The first round goes out before vip_up returns; the others may
# go on in a thread, which vip_down stops: a node that has let the address go
# must not keep telling the LAN that it holds it.

_announcers = {}            # (ip, dev) -> threading.Event that stops the rounds still to come
_announcers_lock = threading.Lock()


def _stop_announcing(target):
    with _announcers_lock:
        stop = _announcers.pop((target.ip, target.dev), None)
    if stop is not None:
        stop.set()


def _open_link(target, proto):
    try:
        return arp.Link(target.dev, proto)
    except OSError as e:
        raise exits.AshaError(f"{target.dev}: cannot open a raw packet socket for "
                              f"{target.ip}: {e.strerror}") from None


def _announce(target, link, rounds, interval, wait, log):
    """Send the first round on link now, the others interval apart, and close
    link after the last (in a thread unless wait)."""
    frames = arp.announcement(arp.mac_bytes(target.mac), target.ip)
    _stop_announcing(target)
    sent = [0]

    def one_round():
        try:
            for f in frames:
                link.send(f)
            sent[0] += 1
        except OSError as e:
            log.warning("announcing %s: %s", target, e.strerror)

    one_round()
    stop = threading.Event()
    key = (target.ip, target.dev)
    if rounds > 1:
        with _announcers_lock:
            _announcers[key] = stop

    def the_other_rounds():
        try:
            for _ in range(rounds - 1):
                if stop.wait(interval):
                    log.info("%s: announcements stopped after %d of %d rounds",
                             target, sent[0], rounds)
                    break
                one_round()
        finally:
            link.close()            # waits for the kernel (RCU): never before the first round
            with _announcers_lock:
                if _announcers.get(key) is stop:
                    del _announcers[key]

    if wait:
        the_other_rounds()
    else:
        threading.Thread(target=the_other_rounds, name=f"announce {target.ip}", daemon=True).start()


def announcing(ip, dev):
    """True while rounds for ip on dev are still to be sent (in a thread)."""
    with _announcers_lock:
        return (ipaddress.ip_address(ip), dev) in _announcers


# ---------------------------------------------------------------------------
# The entry points asha-hb and the command line use.

def vip_up(cfg, log, ip=None, dev=None, wait_announce=True, ip_from="--ip", dev_from="--dev"):
    """Take the address: probe that nobody answers for it, add it, announce it.

    Already held: announce it again. Someone else answers the probe: raise
    AshaError (1) naming its MAC, with nothing changed. Returns the Target once
    the address is added and the first announcement round is out; the other
    VIPGARPCOUNT-1 rounds, VIPGARPINTERVAL apart, are sent before returning
    when wait_announce, else by a thread while the caller goes on."""
    called = time.monotonic()
    target = resolve(cfg, ip, dev, ip_from, dev_from, ethernet=True)
    if target.held:
        log.info("%s already held, announcing it again", target)
        link = _open_link(target, 0)
    else:
        if "UP" not in target.flags:
            raise exits.AshaError(f"{target.dev} is down; not taking {target.ip}")
        if "LOWER_UP" not in target.flags:
            # Nothing could answer the probe, so it would prove nothing; and
            # the address would be held here unseen until the link returns.
            raise exits.AshaError(f"{target.dev} has no carrier (link down); "
                                  f"cannot probe for {target.ip}, not taking it")
        probing = cfg.VIPPROBETIME > 0
        # One socket probes and then announces: opening and closing them costs time.
        link = _open_link(target, arp.probe_protocol(target.ip) if probing else 0)
        try:
            if probing:
                _refuse_if_claimed(target, link, cfg.VIPPROBETIME)
            args = ["addr", "add", target.cidr, "dev", target.dev]
            if target.ip.version == 6:
                args.append("nodad")        # our own DAD probe has just run; usable at once
            p = _ip_run(args)
            if p.returncode != 0 and "File exists" not in p.stderr:
                raise exits.AshaError(f"{IP} {' '.join(args)}: {p.stderr.strip()}")
        except BaseException:
            link.close()
            raise
        target.held_prefix = target.prefix
        log.info("%s added %.0f ms after the call", target, (time.monotonic() - called) * 1000)
    _announce(target, link, cfg.VIPGARPCOUNT, cfg.VIPGARPINTERVAL, wait_announce, log)
    return target


def _refuse_if_claimed(target, link, seconds):
    try:
        found = arp.probe(link, arp.mac_bytes(target.mac), target.ip, seconds)
    except OSError as e:
        raise exits.AshaError(f"{target.dev}: cannot probe for {target.ip}: {e.strerror}") from None
    if found is None:
        return
    what = "ARP probe" if target.ip.version == 4 else "duplicate address detection probe"
    mac = arp.mac_text(found.mac)
    if found.probing:
        raise exits.AshaError(f"{target.ip}: {mac} is probing for it at the same time "
                              f"on {target.dev}; not taking it")
    raise exits.AshaError(f"{target.ip} is held by {mac} (it answered the {what} on "
                          f"{target.dev}); not taking it")


def vip_down(cfg, log, ip=None, dev=None, ip_from="--ip", dev_from="--dev"):
    """Let the address go; not held here is fine. Returns the Target."""
    target = resolve(cfg, ip, dev, ip_from, dev_from)
    _stop_announcing(target)
    if not target.held:
        log.info("%s not held, nothing to remove", target)
        return target
    held = f"{target.ip}/{target.held_prefix}"
    p = _ip_run(["addr", "del", held, "dev", target.dev])
    if p.returncode != 0 and "Cannot assign requested address" not in p.stderr:
        raise exits.AshaError(f"{IP} addr del {held} dev {target.dev}: {p.stderr.strip()}")
    target.held_prefix = None
    log.info("%s removed", target)
    return target


def vip_status(cfg, ip=None, dev=None, ip_from="--ip", dev_from="--dev"):
    """True when this node holds the address."""
    return resolve(cfg, ip, dev, ip_from, dev_from).held


# ---------------------------------------------------------------------------
# The command line, and the OCF resource agent face of it.

OCF_PARAMETERS = (
    # name, required, content, short, long
    ("ip", "0", "string", "Cluster IP",
     "The address, IPv4 or IPv6, with an optional /prefix (the prefix of the interface's "
     "subnet when left out). Default: HACLUSTERIP of the configuration file."),
    ("nic", "0", "string", "Network interface",
     "The interface that carries the address. Default: HAINTERFACE, else the interface "
     "whose subnet holds the address."),
    ("config", "0", "string", "asha configuration file",
     "Configuration file for VIPPROBETIME, VIPGARPCOUNT and VIPGARPINTERVAL (and the "
     "defaults of ip and nic). Default: /etc/asha.conf; when that file does not exist, "
     "the keys' defaults are used and ip is required."),
)


def meta_data():
    """The OCF resource agent meta-data (ra-api-1.dtd)."""
    params = "".join(
        f'<parameter name="{name}" unique="{1 if name == "ip" else 0}" required="{req}">\n'
        f'<longdesc lang="en">{escape(long)}</longdesc>\n'
        f'<shortdesc lang="en">{escape(short)}</shortdesc>\n'
        f'<content type="{kind}" default="{escape(_ocf_default(name))}"/>\n'
        f'</parameter>\n'
        for name, req, kind, short, long in OCF_PARAMETERS)
    return f"""<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="{TOOL}" version="{__version__}">
<version>1.0</version>
<longdesc lang="en">
Adds the cluster IP of an asha Asterisk pair to an interface after probing
(ARP probe, IPv6 duplicate address detection) that no other host answers for
it, and announces it with gratuitous ARP or unsolicited neighbour
advertisements, so that phones and switches learn the new MAC at once.
</longdesc>
<shortdesc lang="en">Cluster IP with probe and announcement</shortdesc>
<parameters>
{params}</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s" depth="0"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="20s"/>
</actions>
</resource-agent>
"""


def _ocf_default(name):
    return config.DEFAULT_PATH if name == "config" else ""


def _ocf_environment(env):
    """True when run as an OCF resource agent (the cluster manager sets these)."""
    return "OCF_ROOT" in env or any(k.startswith("OCF_RESKEY_") for k in env)


def _load_config(args, env, ocf):
    from . import cli
    given = args.get("--config") or env.get("OCF_RESKEY_config") or None
    path = given or config.DEFAULT_PATH
    if ocf and given is None and not os.path.exists(path):
        # A Pacemaker site need not have asha.conf: the keys' defaults, and
        # OCF_RESKEY_ip for the address.
        values = {k.name: k.conv(k.default) for k in config.KEYS.values() if not k.required}
        return config.Config(path, values, {}, [])
    return cli.load_config({"--config": path}, TOOL)


def run(args, env=None):
    """asha-vip's actions; returns the exit status."""
    from . import cli
    env = os.environ if env is None else env
    if args["meta-data"]:
        print(meta_data(), end="")
        return exits.OK
    action = next(a for a in ("start", "stop", "status", "monitor", "validate-all") if args[a])
    ocf_env = _ocf_environment(env)
    ocf = action in ("monitor", "validate-all") or (ocf_env and action in ("start", "stop"))
    ip, ip_from = args["--ip"], "--ip"
    if ip is None and env.get("OCF_RESKEY_ip"):
        ip, ip_from = env["OCF_RESKEY_ip"], "OCF_RESKEY_ip"
    dev, dev_from = args["--dev"], "--dev"
    if dev is None and env.get("OCF_RESKEY_nic"):
        dev, dev_from = env["OCF_RESKEY_nic"], "OCF_RESKEY_nic"
    try:
        cfg = _load_config(args, env, ocf_env)
        where = dict(ip=ip, dev=dev, ip_from=ip_from, dev_from=dev_from)
        if action == "start":
            log = cli.setup_log(TOOL, cfg, verbose=args["--verbose"])
            vip_up(cfg, log, wait_announce=True, **where)
        elif action == "stop":
            log = cli.setup_log(TOOL, cfg, verbose=args["--verbose"])
            vip_down(cfg, log, **where)
        elif action == "status":
            target = resolve(cfg, **where)
            print(f"{target}: {'held' if target.held else 'not held'}")
            return exits.OK if target.held else exits.LSB_NOT_RUNNING
        elif action == "monitor":
            return exits.OCF_SUCCESS if resolve(cfg, **where).held else exits.OCF_NOT_RUNNING
        else:
            resolve(cfg, ethernet=True, **where)
        return exits.OK
    except config.ConfigError as e:
        if not ocf:
            raise
        for line in e.warnings + e.errors:
            print(line, file=sys.stderr)
        return exits.OCF_ERR_CONFIGURED
    except exits.AshaError as e:
        if not ocf:
            raise
        print(f"{TOOL}: {e}", file=sys.stderr)
        return {exits.USAGE: exits.OCF_ERR_ARGS,
                exits.CONFIG: exits.OCF_ERR_CONFIGURED}.get(e.status, e.status)
