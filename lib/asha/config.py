"""Read and validate /etc/asha.conf, the one configuration of every asha tool.

The file is SysV-style shell variables (KEY=value, "double", 'single' quotes,
optional export, # comments) read as data: nothing in it is ever executed.
Every key has a converter, a default and a line of documentation; load()
reports every error of a file at once as `file:line: KEY must be ..., not 'x'`
and raises ConfigError, which the tools turn into exit status 78."""

import difflib
import ipaddress
import math
import os
import re
import socket

DEFAULT_PATH = "/etc/asha.conf"


class ConfigError(Exception):
    """One or more errors in a configuration file; .errors holds one line each."""

    def __init__(self, errors, warnings=()):
        self.errors = list(errors)
        self.warnings = list(warnings)
        super().__init__("\n".join(self.errors))


# ---------------------------------------------------------------------------
# The file syntax: a small tokenizer for the subset of sh that is data.

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DQ_ESCAPABLE = '"\\$`\n'


def is_key_name(name):
    """True when name can stand left of = (a shell variable name)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


class Assignment:
    __slots__ = ("key", "value", "line")

    def __init__(self, key, value, line):
        self.key, self.value, self.line = key, value, line


def parse_text(text, path):
    """Parse shell-variable text into (assignments, errors).

    Errors are complete `path:line: message` strings; parsing goes on after
    an error so that one run reports all of them."""
    assignments, errors, _ = _parse(text, path)
    return assignments, errors


def _parse(text, path):
    """parse_text, and the set of keys whose assignment could not be read."""
    assignments, errors, broken = [], [], set()
    i, n, line = 0, len(text), 1

    def err(at_line, msg):
        errors.append(f"{path}:{at_line}: {msg}")

    def end_of_line(at):
        eol = text.find("\n", at)
        return n if eol < 0 else eol

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c in " \t\r;":
            i += 1
            continue
        if c == "#":
            i = end_of_line(i)
            continue
        start, start_line = i, line
        eol = end_of_line(i)
        m = _NAME.match(text, i)
        if m and m.group() == "export" and m.end() < n and text[m.end()] in " \t":
            j = m.end()
            while j < n and text[j] in " \t":
                j += 1
            m2 = _NAME.match(text, j)
            if m2 and (m2.end() >= n or text[m2.end()] != "="):
                # `export NAME [NAME ...]` marks names for export: nothing to read.
                rest = text[j:eol].split("#", 1)[0].split()
                if all(_NAME.fullmatch(w) for w in rest):
                    i = eol
                    continue
            m = m2
        if not m or m.end() >= n or text[m.end()] != "=":
            err(start_line, f"not an assignment: {text[start:eol].strip()!r} (expected KEY=value)")
            i = eol
            continue
        key = m.group()
        value, i, line, problem = _read_word(text, m.end() + 1, line)
        if problem:
            # Go on at the next line, so that what follows is still checked.
            err(start_line, f"{key}: {problem}")
            broken.add(key)
            i = end_of_line(i)
            continue
        # after the value: blanks, then end of line, `;` or a comment
        while i < n and text[i] in " \t\r":
            i += 1
        if i < n and text[i] not in "\n#;":
            eol = end_of_line(i)
            rest = re.split(r"[ \t]#", text[i:eol], maxsplit=1)[0].strip()
            err(start_line, f"{key}: unquoted space in value; quote the value: "
                            f"{key}=\"{value} {rest}\"")
            broken.add(key)
            i = eol
            continue
        assignments.append(Assignment(key, value, start_line))
    return assignments, errors, broken


def _read_word(text, i, line):
    """Read one shell word from text[i:]; return (value, i, line, problem).

    On a problem the word is still read to its end where that is clear; an
    unterminated quote returns the position of the opening quote."""
    n = len(text)
    out, problem = [], None
    while i < n:
        c = text[i]
        if c in " \t\r\n;":
            break
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return "", i, line, "unterminated ' quote"
            chunk = text[i + 1:end]
            line += chunk.count("\n")
            out.append(chunk)
            i = end + 1
        elif c == '"':
            quote_at, quote_line = i, line
            i += 1
            while True:
                if i >= n:
                    return "", quote_at, quote_line, 'unterminated " quote'
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in _DQ_ESCAPABLE:
                    if text[i + 1] == "\n":
                        line += 1        # line continuation: both characters vanish
                    else:
                        out.append(text[i + 1])
                    i += 2
                    continue
                if c in "$`":
                    problem = problem or _expansion_problem(c)
                if c == "\n":
                    line += 1
                out.append(c)
                i += 1
        elif c == "\\":
            if i + 1 >= n:
                i += 1
                continue
            if text[i + 1] == "\n":
                line += 1
            else:
                out.append(text[i + 1])
            i += 2
        elif c in "$`":
            problem = problem or _expansion_problem(c)
            out.append(c)
            i += 1
        elif c in "|&<>()":
            return "", i, line, problem or f"{c!r} is shell syntax, not data; quote the value"
        else:
            out.append(c)
            i += 1
    return "".join(out), i, line, problem


def _expansion_problem(c):
    what = "$ expansion" if c == "$" else "` command substitution"
    return f"{what} is not supported (asha.conf is data, never run); write the value itself, " \
           f"or '...' quotes for a literal {c}"


def quote(value):
    """Write value so that parse_text reads it back unchanged."""
    value = str(value)
    if value and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------
# Converters: each takes the text of a value and returns the value, or raises
# ValueError("must be ...") which load() completes with the key and the text.

def enum(*choices):
    def conv(text):
        for c in choices:
            if text.upper() == c.upper():
                return c
        raise ValueError("must be " + _either(choices))
    conv.expects = _either(choices)
    return conv


def _either(choices):
    choices = list(choices)
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]


def yesno(text):
    t = text.upper()
    if t in ("YES", "Y", "TRUE", "1"):
        return True
    if t in ("NO", "N", "FALSE", "0"):
        return False
    raise ValueError("must be YES or NO")


def onoff(text):
    t = text.lower()
    if t in ("on", "yes", "true", "1"):
        return True
    if t in ("off", "no", "false", "0"):
        return False
    raise ValueError("must be on or off")


def integer(lo=None, hi=None):
    """A decimal whole number (leading zeros allowed) from lo to hi."""
    def conv(text):
        # int(text, 0) would refuse 050 and take 0x10 or 1_0; an operator writes decimal.
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(_range_text("a whole number", lo, hi))
        v = int(text, 10)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(_range_text("a whole number", lo, hi))
        return v
    return conv


def seconds(lo=0.0, hi=None, allow_zero=False):
    """A number of seconds above lo (from lo with allow_zero), at most hi."""
    what = "a number of seconds (decimals allowed)"
    if allow_zero:
        expects = f"must be {what} from {lo:g} to {hi:g}" if hi is not None \
            else f"must be {what}, at least {lo:g}"
    else:
        expects = f"must be {what} above {lo:g}" + (f", at most {hi:g}" if hi is not None else "")

    def conv(text):
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v) or v < lo or (v == lo and not allow_zero) \
                or (hi is not None and v > hi):
            raise ValueError(expects)
        return v
    return conv


def _range_text(what, lo, hi):
    if lo is not None and hi is not None:
        return f"must be {what} from {lo} to {hi}"
    if lo is not None:
        return f"must be {what}, at least {lo}"
    return f"must be {what}"


def port(text):
    return integer(1, 65535)(text)


def hexint(lo=0, hi=0xFFFF):
    """A number written in hex (0x0a8a) or decimal, from lo to hi."""
    width = 2 + 2 * ((len(f"{hi:x}") + 1) // 2)
    expects = f"must be a number from {lo:#0{width}x} to {hi:#0{width}x} (hex as 0x...)"

    def conv(text):
        if re.fullmatch(r"0[xX][0-9A-Fa-f]+", text):
            v = int(text, 16)
        elif re.fullmatch(r"[0-9]+", text):
            v = int(text, 10)
        else:
            v = None
        if v is None or not lo <= v <= hi:
            raise ValueError(expects)
        return v
    return conv


def abspath(text):
    if not text.startswith("/") or "\0" in text:
        raise ValueError("must be an absolute path")
    return os.path.normpath(text)


def optional(conv):
    def opt(text):
        return conv(text) if text != "" else None
    opt.optional = True
    return opt


def paths(text):
    out = []
    for word in text.split():
        try:
            out.append(abspath(word))
        except ValueError:
            raise ValueError(f"must be absolute paths separated by spaces ({word!r} is not)") from None
    return out


def command(text):
    return text.strip()


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def nodename(text):
    if not _HOSTNAME.fullmatch(text):
        raise ValueError("must be a node name as `uname -n` prints it")
    return text


def host(text):
    """An IP address or a host name (resolved when used)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(text):
        raise ValueError("must be an IP address or a host name")
    return text


def hosts(text):
    out = []
    for word in text.split():
        try:
            out.append(host(word))
        except ValueError:
            raise ValueError(f"must be IP addresses or host names separated by spaces "
                             f"({word!r} is neither)") from None
    return out


def ip_with_prefix(text):
    """ADDR or ADDR/PREFIX; returns a ClusterIP (prefix None when not given:
    the interface's own prefix is used then)."""
    addr, slash, pfx = text.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError("must be an IP address with an optional /prefix") from None
    bits = ip.max_prefixlen
    if slash:
        if not re.fullmatch(r"[0-9]{1,3}", pfx) or not 1 <= int(pfx) <= bits:
            raise ValueError(f"must be an IP address with an optional /prefix (1 to {bits})")
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        raise ValueError("must be a unicast address that hosts can reach")
    if ip.version == 4 and slash and int(pfx) < bits - 1 and int(pfx) < 31:
        net = ipaddress.ip_interface(text).network
        if ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"must not be the network or broadcast address of {net}")
    return ClusterIP(ip, int(pfx) if slash else None)


class ClusterIP:
    """An address and, if the configuration gave one, its prefix length."""
    __slots__ = ("ip", "prefix")

    def __init__(self, ip, prefix):
        self.ip, self.prefix = ip, prefix

    @property
    def version(self):
        return self.ip.version

    def __str__(self):
        return f"{self.ip}/{self.prefix}" if self.prefix is not None else str(self.ip)

    def __repr__(self):
        return f"ClusterIP({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, ClusterIP) and (self.ip, self.prefix) == (other.ip, other.prefix)

    def __hash__(self):
        return hash((self.ip, self.prefix))


def ifname(text):
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", text) or text in (".", ".."):
        raise ValueError("must be a network interface name (1 to 15 characters)")
    return text


def devices(text):
    return paths(text)


def sipuri(text):
    m = re.fullmatch(r"(?:sips?:)?(?:[^@;\s]+@)?(\[[0-9A-Fa-f:.]+\]|[^:;\[\]\s]+)(?::([0-9]{1,5}))?(?:;\S*)?",
                     text)
    if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 65535):
        raise ValueError("must be a SIP URI such as sip:192.0.2.10:5060")
    return text


def procname(text):
    if not re.fullmatch(r"[^/\s]{1,15}", text):
        raise ValueError("must be a process name (1 to 15 characters, no / or spaces)")
    return text


# ---------------------------------------------------------------------------
# The keys.

class Key:
    __slots__ = ("name", "conv", "default", "doc", "section")

    def __init__(self, name, conv, default, doc, section):
        self.name, self.conv, self.default, self.doc, self.section = name, conv, default, doc, section

    @property
    def required(self):
        return self.default is None


REQUIRED = None
KEYS = {}


def _key(section, name, conv, default, doc):
    KEYS[name] = Key(name, conv, default, doc, section)


S = "cluster"
_key(S, "HACLUSTERIP", ip_with_prefix, REQUIRED, "cluster (virtual) IP that phones register to, optional /prefix")
_key(S, "HAINTERFACE", optional(ifname), "", "interface that carries the cluster IP; empty: the one whose subnet holds HACLUSTERIP")
_key(S, "HAPRINODE", nodename, REQUIRED, "primary node name as `uname -n` prints it")
_key(S, "HASECNODE", nodename, REQUIRED, "standby node name as `uname -n` prints it")
_key(S, "HAPRIADDR", optional(host), "", "heartbeat address of the primary; empty: resolved from HAPRINODE")
_key(S, "HASECADDR", optional(host), "", "heartbeat address of the standby; empty: resolved from HASECNODE")
_key(S, "HASYNCH", enum("LAZY", "LOOSE"), "LAZY", "LAZY: the standby pulls the PBX data every minute; LOOSE: no sync")
_key(S, "HAAUTOFAILBACK", onoff, "off", "on: the resources move back to the primary when it returns")
_key(S, "HAUSECLUSTER", yesno, "YES", "YES: phones are provisioned to the cluster IP")
_key(S, "HASSHPORT", port, "22", "ssh port of the peer")
_key(S, "ASHARUNDIR", abspath, "/run/asha", "directory of asha's state file, locks, pid files and control socket")
_key(S, "ASHALOG", optional(abspath), "", "file that every asha tool also appends its log lines to; empty: syslog only")
_key(S, "ALERTCMD", command, "", "command run with a one-line reason when asha needs a person (flapping, a card that does not answer)")

S = "data"
_key(S, "ASTCONFDIR", abspath, "/etc/asterisk", "Asterisk configuration directory")
_key(S, "SARKDB", abspath, "/opt/sark/db/sark.db", "SARK database (an SQLite file)")
_key(S, "ASTDB", abspath, "/var/lib/asterisk/astdb.sqlite3", "Asterisk's own database (an SQLite file)")
_key(S, "GREETDIR", abspath, "/var/lib/asterisk/sounds", "greeting sound files")
_key(S, "VMAILDIR", abspath, "/var/spool/asterisk/voicemail", "voicemail")
_key(S, "DAHDIDIR", optional(abspath), "", "DAHDI configuration, synced only if set")
_key(S, "USERSYNC", paths, "", "further paths to sync, space separated")
_key(S, "POSTSYNC", command, "", "command run after a successful sync")
_key(S, "RSYNC", abspath, "/usr/bin/rsync", "rsync program")
_key(S, "SYNCSSHKEY", optional(abspath), "", "ssh private key asha-sync uses; empty: ssh's own default")
_key(S, "SYNCCONNECTTIMEOUT", seconds(0, 300), "5", "seconds asha-sync waits for the peer's ssh to answer")
_key(S, "SYNCIOTIMEOUT", seconds(0, 3600), "30", "seconds without data after which asha-sync gives up on the peer")

S = "heartbeat"
_key(S, "HBKEEPALIVE", seconds(0.0), "0.06", "seconds between heartbeats on each path")
_key(S, "HBWARNTIME", seconds(0.0), "0.15", "seconds of silence on a path after which a late heartbeat is logged")
_key(S, "HBDEADTIME", seconds(0.0), "0.3", "seconds of silence on every path after which the peer is dead (on a clean path)")
_key(S, "HBDEADTIMEMAX", seconds(0.0), "2", "longest dead time a path that loses or delays beats may use instead of HBDEADTIME")
_key(S, "HBINITDEAD", seconds(0.0), "120", "seconds the primary waits for the standby at start before it takes the resources anyway")
_key(S, "HBPORT", port, "694", "heartbeat UDP port")
_key(S, "HBSERIAL", devices, "", "serial heartbeat devices, space separated")
_key(S, "HBBAUD", enum("9600", "19200", "38400", "57600", "115200"), "115200", "serial heartbeat speed")
_key(S, "HBAUTHKEY", abspath, "/etc/asha/authkey", "shared heartbeat key file, mode 0600")
_key(S, "HBPINGNODES", hosts, "", "addresses that arbitrate when the peer is silent (split-brain guard)")
_key(S, "HBRTPRIO", integer(0, 99), "50", "real-time (SCHED_RR) priority of asha-hb; 0: normal scheduling")

S = "asterisk"
_key(S, "ASTSTART", command, "/etc/init.d/asterisk start", "command that starts Asterisk")
_key(S, "ASTSTOP", command, "/etc/init.d/asterisk stop", "command that stops Asterisk")
_key(S, "ASTSTOPTIMEOUT", seconds(0, 600), "10", "seconds to wait for Asterisk to stop before it is killed")
_key(S, "ASTPROC", procname, "asterisk", "Asterisk's process name")
_key(S, "ASTPIDFILE", abspath, "/var/run/asterisk/asterisk.pid", "Asterisk's pid file")
_key(S, "ASTBIN", abspath, "/usr/sbin/asterisk", "Asterisk binary used for `asterisk -rx`")
_key(S, "ATTEMPTRESTART", yesno, "NO", "YES: restart a dead Asterisk before failing over")

S = "watchdog"
_key(S, "ASTHANGCHECK", enum("CLI", "SIP", "BOTH", "OFF"), "BOTH", "how asha-watchdog sees a hung Asterisk")
_key(S, "WDINTERVAL", seconds(0.0, 60), "1", "seconds between the watchdog's process scans")
_key(S, "WDHANGINTERVAL", seconds(0.0, 60), "0.4", "seconds between hang checks")
_key(S, "WDHANGTIMEOUT", seconds(0.0, 60), "0.3", "seconds a hang check waits for an answer")
_key(S, "WDHANGCOUNT", integer(1, 100), "3", "failed hang checks in a row that mean hung")
_key(S, "WDSTARTGRACE", seconds(0, 3600, allow_zero=True), "60", "seconds a started Asterisk may take to answer its first hang check before failures count")
_key(S, "WDSIPURI", optional(sipuri), "", "SIP URI the hang check sends OPTIONS to; empty: the cluster IP, port 5060")
_key(S, "WDRESTARTS", integer(0, 100), "3", "restarts within WDRESTARTWINDOW before failing over (ATTEMPTRESTART=YES)")
_key(S, "WDRESTARTWINDOW", seconds(0.0), "300", "seconds over which restarts are counted")
_key(S, "WDMAXFAILOVERS", integer(1, 100), "3", "failovers within WDFAILOVERWINDOW after which asha stops failing over")
_key(S, "WDFAILOVERWINDOW", seconds(0.0), "900", "seconds over which failovers are counted")

S = "vip"
_key(S, "VIPGARPCOUNT", integer(1, 100), "5", "gratuitous ARP / unsolicited NA rounds sent when the cluster IP is taken")
_key(S, "VIPGARPINTERVAL", seconds(0.0, 10), "0.2", "seconds between those rounds")
_key(S, "VIPPROBETIME", seconds(0.0, 10, allow_zero=True), "0.05", "seconds asha-vip listens for another holder of the address before it takes it")

S = "rhino"
_key(S, "RHINOSPF", yesno, "NO", "YES: a Rhino PRI failover card (or a relay) is installed")
_key(S, "RHINONODE", optional(nodename), "", "node the card is attached to; empty: the primary")
_key(S, "RHINODRIVER", enum("rhino", "hidrelay", "serial"), "rhino", "how the card is driven")
_key(S, "RHINOVENDOR", hexint(), "0x0a8a", "USB vendor id of the card (rhino driver; a placeholder: take it from the vendor's sheet)")
_key(S, "RHINOPRODUCT", hexint(), "0x0501", "USB product id of the card (rhino driver; a placeholder: take it from the vendor's sheet)")
_key(S, "RHINOREQTYPE", hexint(0, 0xFF), "0x40", "bmRequestType of the switch request (rhino driver)")
_key(S, "RHINOREQUEST", hexint(0, 0xFF), "0x01", "bRequest of the switch request (rhino driver)")
_key(S, "RHINOVALPRIMARY", hexint(), "0x0001", "wValue that bridges IN-NO, the PRI to the primary (rhino driver)")
_key(S, "RHINOVALSTANDBY", hexint(), "0x0000", "wValue that bridges IN-NC, the PRI to the standby (rhino driver)")
_key(S, "RHINOGETREQUEST", hexint(0, 0xFF), "0x02", "bRequest that reads the relay state back (rhino driver)")
_key(S, "RHINOREADBACK", yesno, "YES", "YES: the card answers RHINOGETREQUEST with the wValue it is at; NO: it cannot be read back (rhino driver)")
_key(S, "RHINORELAY", integer(1, 8), "1", "relay number on a USB HID relay board (hidrelay driver)")
_key(S, "RHINOSERIAL", optional(abspath), "", "serial port whose control line drives the relay (serial driver)")
_key(S, "RHINOLINE", enum("DTR", "RTS"), "DTR", "control line that drives the relay (serial driver)")
_key(S, "RHINOTIMEOUT", seconds(0.0, 1), "0.3", "seconds one command to the card may take before it is retried (all tries together: 1 s)")
del S


# ---------------------------------------------------------------------------
# Loading.

class Config:
    """Converted values by key name (cfg.HASYNCH), with where each came from."""

    def __init__(self, path, values, lines, warnings):
        self.path = path
        self._values = values
        self._lines = lines
        self.warnings = warnings

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)      # copy and pickle look for these before __init__
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name):
        return self._values[name]

    def line_of(self, key):
        """Line the key was set on, or None (its default, or an override)."""
        return self._lines.get(key) or None

    def is_set(self, key):
        """True when the file or an override gave the key a value."""
        return key in self._lines

    def items(self):
        return self._values.items()

    # derived facts every tool needs -----------------------------------------
    @property
    def rundir(self):
        return self._values["ASHARUNDIR"]

    def node_role(self, nodename=None):
        """'primary' or 'standby' for this host, by `uname -n`."""
        name = nodename or os.uname().nodename
        if name == self.HAPRINODE:
            return "primary"
        if name == self.HASECNODE:
            return "standby"
        raise ConfigError([f"{self.path}: this node is {name!r}, neither HAPRINODE "
                           f"({self.HAPRINODE!r}) nor HASECNODE ({self.HASECNODE!r})"])

    def local_node(self, nodename=None):
        return self.HAPRINODE if self.node_role(nodename) == "primary" else self.HASECNODE

    def peer_node(self, nodename=None):
        return self.HASECNODE if self.node_role(nodename) == "primary" else self.HAPRINODE

    def node_addr(self, node):
        """Heartbeat address of node (HAPRIADDR/HASECADDR, else its name resolved)."""
        given = self.HAPRIADDR if node == self.HAPRINODE else self.HASECADDR
        if given:
            name = given
        else:
            name = node
        try:
            return str(ipaddress.ip_address(name))
        except ValueError:
            pass
        family = socket.AF_INET6 if self.HACLUSTERIP.version == 6 else socket.AF_INET
        try:
            infos = socket.getaddrinfo(name, None, family, socket.SOCK_DGRAM)
        except socket.gaierror as e:
            key = "HAPRIADDR" if node == self.HAPRINODE else "HASECADDR"
            raise ConfigError([f"{self.path}: cannot resolve {name!r} ({e.strerror}); "
                               f"set {key} to its address"]) from None
        return infos[0][4][0]


def load(path=DEFAULT_PATH, overrides=None):
    """Read, convert and check path; return a Config or raise ConfigError.

    overrides maps keys to text values that take the place of the file's
    (for tests and command-line options); they are validated the same way."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file (every asha tool needs it; "
                           f"see asha.conf(5) and asha.conf.example)"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at offset "
                           f"{e.start}); save the file as UTF-8"]) from None
    # Bytes as they are: CRLF line ends are read as blanks before the newline,
    # and a value keeps exactly what its quotes hold. A BOM is an editor's mark.
    return loads(text.removeprefix("\ufeff"), path, overrides)


def loads(text, path="<string>", overrides=None):
    """load() for text already read; path only names it in messages."""
    assignments, errors, broken = _parse(text, path)
    warnings = []
    raw, lines = {}, {}
    for a in assignments:
        if a.key not in KEYS:
            near = difflib.get_close_matches(a.key.upper(), KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            warnings.append(f"{path}:{a.line}: unknown key {a.key}{hint}, ignored")
            continue
        if a.key in lines:
            warnings.append(f"{path}:{a.line}: {a.key} set again; "
                            f"this value replaces the one on line {lines[a.key]}")
        raw[a.key], lines[a.key] = a.value, a.line
    for k, v in (overrides or {}).items():
        if k not in KEYS:
            raise ValueError(f"unknown key {k}")
        raw[k] = v
        lines[k] = 0            # an override has no line in the file
        broken.discard(k)

    values = {}
    for key in KEYS.values():
        where = f"{path}:{lines[key.name]}" if lines.get(key.name) else path
        if key.name in broken and key.name not in raw:
            continue            # its line is already reported; a default would mislead
        if key.name in raw:
            text_value = raw[key.name]
        elif key.required:
            errors.append(f"{path}: {key.name} is required ({key.doc})")
            continue
        else:
            text_value = key.default
        if key.required and text_value == "":
            errors.append(f"{where}: {key.name} must not be empty ({key.doc})")
            continue
        try:
            values[key.name] = key.conv(text_value)
        except ValueError as e:
            errors.append(f"{where}: {key.name} {e}, not {text_value!r}")
    errors.extend(_check_rules(values, lines, path))
    if errors:
        raise ConfigError(_sorted_by_line(errors), warnings)
    return Config(path, values, lines, warnings)


def _sorted_by_line(errors):
    def line_no(e):
        m = re.match(r".*?:(\d+): ", e)
        return int(m.group(1)) if m else 0
    return sorted(errors, key=line_no)


# Bytes of asha-hb's longest heartbeat on a serial line besides the sender's
# name: header, fields, MAC, COBS and the two frame delimiters (checked against
# the codec by tests/unit/test_hb_paths.py). At 8N1 a byte is 10 bits.
SERIAL_BEAT_BYTES = 100


def serial_beat_seconds(baud, names):
    """Seconds a serial line at baud takes to carry one heartbeat of the longer name."""
    return (SERIAL_BEAT_BYTES + max(len(n.encode()) for n in names)) * 10 / baud


def _check_rules(v, lines, path):
    """Rules across keys; each error names the line of the key that breaks it,
    or, when that one has its default, the line of the other key involved."""
    out = []

    def where(*keys):
        for key in keys:
            if lines.get(key):
                return f"{path}:{lines[key]}"
        return path

    def have(*keys):
        return all(k in v for k in keys)

    if have("HBKEEPALIVE", "HBWARNTIME") and not v["HBWARNTIME"] > v["HBKEEPALIVE"]:
        out.append(f"{where('HBWARNTIME', 'HBKEEPALIVE')}: HBWARNTIME must be above HBKEEPALIVE "
                   f"({v['HBKEEPALIVE']:g}), not {v['HBWARNTIME']:g}")
    if have("HBKEEPALIVE", "HBWARNTIME", "HBDEADTIME") and \
            not v["HBDEADTIME"] > max(v["HBKEEPALIVE"], v["HBWARNTIME"]):
        out.append(f"{where('HBDEADTIME', 'HBWARNTIME', 'HBKEEPALIVE')}: HBDEADTIME must be above HBKEEPALIVE "
                   f"({v['HBKEEPALIVE']:g}) and HBWARNTIME ({v['HBWARNTIME']:g}), "
                   f"not {v['HBDEADTIME']:g}")
    if have("HBSERIAL", "HBBAUD", "HBKEEPALIVE", "HAPRINODE", "HASECNODE") and v["HBSERIAL"]:
        # A line that takes longer than half a keepalive for a beat queues them:
        # they come later and later, then are lost, and the path says little.
        took = serial_beat_seconds(int(v["HBBAUD"]), (v["HAPRINODE"], v["HASECNODE"]))
        if took > v["HBKEEPALIVE"] / 2:
            fast = [b for b in (9600, 19200, 38400, 57600, 115200)
                    if serial_beat_seconds(b, (v["HAPRINODE"], v["HASECNODE"])) <= v["HBKEEPALIVE"] / 2]
            fix = f"HBBAUD={fast[0]} or more, or " if fast else ""
            out.append(f"{where('HBBAUD', 'HBKEEPALIVE', 'HBSERIAL')}: HBBAUD={v['HBBAUD']} takes "
                       f"{took * 1000:.0f} ms to send a heartbeat on the serial line, more than "
                       f"half of HBKEEPALIVE ({v['HBKEEPALIVE']:g} s): set {fix}"
                       f"HBKEEPALIVE={math.ceil(took * 2 * 100) / 100:g} or more")
    if have("HBDEADTIME", "HBDEADTIMEMAX") and v["HBDEADTIMEMAX"] < v["HBDEADTIME"]:
        out.append(f"{where('HBDEADTIMEMAX', 'HBDEADTIME')}: HBDEADTIMEMAX must be at least "
                   f"HBDEADTIME ({v['HBDEADTIME']:g}), not {v['HBDEADTIMEMAX']:g}")
    if have("HBDEADTIME", "HBINITDEAD") and v["HBINITDEAD"] < v["HBDEADTIME"]:
        out.append(f"{where('HBINITDEAD', 'HBDEADTIME')}: HBINITDEAD must be at least HBDEADTIME "
                   f"({v['HBDEADTIME']:g}), not {v['HBINITDEAD']:g}")
    if have("HAPRINODE", "HASECNODE") and v["HAPRINODE"].lower() == v["HASECNODE"].lower():
        out.append(f"{where('HASECNODE', 'HAPRINODE')}: HASECNODE must differ from HAPRINODE, "
                   f"not {v['HASECNODE']!r}")
    if have("HAPRIADDR", "HASECADDR") and v["HAPRIADDR"] and v["HAPRIADDR"] == v["HASECADDR"]:
        out.append(f"{where('HASECADDR', 'HAPRIADDR')}: HASECADDR must differ from HAPRIADDR, "
                   f"not {v['HASECADDR']!r}")
    if "HACLUSTERIP" in v:
        vip = str(v["HACLUSTERIP"].ip)
        for k in ("HAPRIADDR", "HASECADDR"):
            if v.get(k) == vip:
                out.append(f"{where(k)}: {k} must be the node's own address, "
                           f"not the cluster IP {vip!r}")
    if have("WDHANGTIMEOUT", "WDHANGINTERVAL") and v["WDHANGTIMEOUT"] > v["WDHANGINTERVAL"]:
        out.append(f"{where('WDHANGTIMEOUT', 'WDHANGINTERVAL')}: WDHANGTIMEOUT must be at most WDHANGINTERVAL "
                   f"({v['WDHANGINTERVAL']:g}), not {v['WDHANGTIMEOUT']:g}")
    if have("RHINOSPF", "RHINODRIVER", "RHINOSERIAL") and v["RHINOSPF"] \
            and v["RHINODRIVER"] == "serial" and not v["RHINOSERIAL"]:
        out.append(f"{where('RHINODRIVER', 'RHINOSPF')}: RHINODRIVER=serial needs RHINOSERIAL, the serial port "
                   f"of the relay")
    if have("RHINONODE", "HAPRINODE", "HASECNODE") and v["RHINONODE"] \
            and v["RHINONODE"] not in (v["HAPRINODE"], v["HASECNODE"]):
        out.append(f"{where('RHINONODE')}: RHINONODE must be HAPRINODE or HASECNODE, "
                   f"not {v['RHINONODE']!r}")
    return out
