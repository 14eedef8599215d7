"""asha.conf: the syntax (shell variables read as data), every key's converter,
the rules across keys, and the messages an operator reads, checked word for word."""

import ipaddress
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asha import cli, config, exits, state
from asha.config import KEYS, ConfigError

CONF = "/etc/asha.conf"
REQUIRED_LINES = ["HACLUSTERIP=192.168.1.100/24", "HAPRINODE=pbx1", "HASECNODE=pbx2"]
MINIMAL = "\n".join(REQUIRED_LINES) + "\n"


def parse(text):
    assignments, errors = config.parse_text(text, CONF)
    return [(a.key, a.value, a.line) for a in assignments], errors


def errors_of(text, path=CONF):
    with pytest.raises(ConfigError) as e:
        config.loads(text, path)
    return e.value.errors


def write(tmp_path, data, name="asha.conf"):
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)


# ---------------------------------------------------------------------------
# Syntax

def test_plain_quoted_exported_commented_and_blank_lines():
    text = (
        "# asha.conf\n"
        "\n"
        "A=plain\n"
        'B="two words"\n'
        "C='single $quoted `text`'\n"
        "export D=exported\n"
        "   E=indented   # a comment after the value\n"
        "\t\n"
        "F=\n"
        'G=""\n'
    )
    assert parse(text) == ([("A", "plain", 3), ("B", "two words", 4),
                            ("C", "single $quoted `text`", 5), ("D", "exported", 6),
                            ("E", "indented", 7), ("F", "", 9), ("G", "", 10)], [])


def test_double_quote_escapes():
    text = r'''A="say \"hi\" \\ \$HOME \` and \n stays"''' + "\n"
    assert parse(text) == ([("A", 'say "hi" \\ $HOME ` and \\n stays', 1)], [])


def test_backslash_outside_quotes_and_concatenated_words():
    assert parse(r"A=two\ words" + "\n" + "B=\"x\"'y'z\n") == \
        ([("A", "two words", 1), ("B", "xyz", 2)], [])


def test_hash_inside_a_value_is_not_a_comment():
    text = 'A=a#b\nB="a # b"\nC=\'#\'\nD=x #comment\nE="v"#tail\n'
    assert parse(text) == ([("A", "a#b", 1), ("B", "a # b", 2), ("C", "#", 3),
                            ("D", "x", 4), ("E", "v#tail", 5)], [])


def test_semicolons_separate_assignments():
    assert parse("A=1; B=2;C=3 ;\n") == ([("A", "1", 1), ("B", "2", 1), ("C", "3", 1)], [])


def test_export_of_names_alone_sets_nothing():
    assert parse("export A B  # both\nA=1\n") == ([("A", "1", 2)], [])


def test_multiline_quoted_values_keep_line_numbers_right():
    text = (
        'ALERTCMD="logger -t asha\n'
        '  -p daemon.crit"\n'
        "POSTSYNC='one\n"
        "two\n"
        "three'\n"
        'ASTSTART="/etc/init.d/asterisk \\\n'
        'start"\n'
        "HASYNCH=lazzy\n"
    )
    items, errors = parse(text)
    assert errors == []
    assert items == [("ALERTCMD", "logger -t asha\n  -p daemon.crit", 1),
                     ("POSTSYNC", "one\ntwo\nthree", 3),
                     ("ASTSTART", "/etc/init.d/asterisk start", 6),
                     ("HASYNCH", "lazzy", 8)]
    assert errors_of(MINIMAL.replace("\n", " # x\n") + text) == \
        [f"{CONF}:11: HASYNCH must be LAZY or LOOSE, not 'lazzy'"]


def test_crlf_file(tmp_path):
    text = MINIMAL + "HASYNCH=LOOSE\n# comment\nASTSTART='/usr/sbin/asterisk -g'\nHBPORT=69x\n"
    path = write(tmp_path, text.replace("\n", "\r\n"))
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.errors == [f"{path}:7: HBPORT must be a whole number from 1 to 65535, not '69x'"]
    path = write(tmp_path, text.replace("HBPORT=69x\n", "").replace("\n", "\r\n"))
    cfg = config.load(path)
    assert (cfg.HASYNCH, cfg.ASTSTART, cfg.HASECNODE) == ("LOOSE", "/usr/sbin/asterisk -g", "pbx2")
    assert cfg.line_of("ASTSTART") == 6


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + MINIMAL.encode())
    assert config.load(path).HAPRINODE == "pbx1"


@pytest.mark.parametrize("line, message", [
    ("ASTSTART='/usr/sbin/asterisk", "ASTSTART: unterminated ' quote"),
    ('ASTSTART="/usr/sbin/asterisk', 'ASTSTART: unterminated " quote'),
    ('ASTSTART=/usr/sbin/"asterisk', 'ASTSTART: unterminated " quote'),
])
def test_unterminated_quote_is_reported_and_later_lines_still_read(line, message):
    text = MINIMAL + line + "\nHASYNCH=lazzy\nHBPORT=0\n"
    assert errors_of(text) == [
        f"{CONF}:4: {message}",
        f"{CONF}:5: HASYNCH must be LAZY or LOOSE, not 'lazzy'",
        f"{CONF}:6: HBPORT must be a whole number from 1 to 65535, not '0'",
    ]


DOLLAR = ("$ expansion is not supported (asha.conf is data, never run); write the value "
          "itself, or '...' quotes for a literal $")
BACKTICK = ("` command substitution is not supported (asha.conf is data, never run); write "
            "the value itself, or '...' quotes for a literal `")


@pytest.mark.parametrize("line, message", [
    ("ASTCONFDIR=$HOME/asterisk", "ASTCONFDIR: " + DOLLAR),
    ('ASTCONFDIR="${PREFIX}/etc"', "ASTCONFDIR: " + DOLLAR),
    ("ASTCONFDIR=$(pwd)", "ASTCONFDIR: " + DOLLAR),
    ("HAPRIADDR=`hostname -i`", "HAPRIADDR: " + BACKTICK),
    ('ALERTCMD="mail -s `date` root"', "ALERTCMD: " + BACKTICK),
    ("ASTSTART=/etc/init.d/asterisk|tee", "ASTSTART: '|' is shell syntax, not data; quote the value"),
    ("ASTSTART=start&", "ASTSTART: '&' is shell syntax, not data; quote the value"),
    ("ASTSTART=x>/dev/null", "ASTSTART: '>' is shell syntax, not data; quote the value"),
])
def test_expansion_and_shell_syntax_are_refused(line, message):
    assert errors_of(MINIMAL + line + "\n") == [f"{CONF}:4: {message}"]


def test_nothing_in_the_file_is_ever_run(tmp_path):
    marker = tmp_path / "ran"
    text = MINIMAL + f'ALERTCMD="$(touch {marker})"\nPOSTSYNC=`touch {marker}`\n'
    assert errors_of(text) == [f"{CONF}:4: ALERTCMD: " + DOLLAR, f"{CONF}:5: POSTSYNC: " + BACKTICK]
    assert not marker.exists()


def test_literal_dollar_and_backtick_in_single_quotes_or_escaped():
    cfg = config.loads(MINIMAL + "ALERTCMD='echo $1 `x`'\nPOSTSYNC=\"cost \\$5\"\n")
    assert (cfg.ALERTCMD, cfg.POSTSYNC) == ("echo $1 `x`", "cost $5")


def test_expansion_inside_a_multiline_value_does_not_derail_later_lines():
    text = MINIMAL + 'ALERTCMD="mail\n$ADMIN\nroot"\nHASYNCH=lazzy\n'
    assert errors_of(text) == [f"{CONF}:4: ALERTCMD: " + DOLLAR,
                               f"{CONF}:7: HASYNCH must be LAZY or LOOSE, not 'lazzy'"]


@pytest.mark.parametrize("line, shown", [
    ("HASYNCH = LAZY", "HASYNCH = LAZY"),
    ("HASYNCH", "HASYNCH"),
    ("if true; then", "if true; then"),
    ("export", "export"),
    ("export   ", "export"),
    ("1KEY=x", "1KEY=x"),
    ("[cluster]", "[cluster]"),
    ("HASYNCH: LAZY", "HASYNCH: LAZY"),
])
def test_a_line_that_is_not_an_assignment_is_an_error(line, shown):
    assert errors_of(MINIMAL + line + "\n") == \
        [f"{CONF}:4: not an assignment: {shown!r} (expected KEY=value)"]


def test_unquoted_space_suggests_the_quoted_form():
    assert errors_of(MINIMAL + "ASTSTART=/etc/init.d/asterisk start   # comment\n") == [
        f'{CONF}:4: ASTSTART: unquoted space in value; quote the value: '
        f'ASTSTART="/etc/init.d/asterisk start"']


def test_a_key_whose_line_is_broken_is_not_also_missing():
    assert errors_of('HACLUSTERIP=192.168.1.100\nHAPRINODE=pbx1\nHASECNODE="pbx2\n') == \
        [f'{CONF}:3: HASECNODE: unterminated " quote']


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.errors == [f"{path}: no such file (every asha tool needs it; "
                              f"see asha.conf(5) and asha.conf.example)"]


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(str(tmp_path))
    assert e.value.errors == [f"{tmp_path}: cannot read: Is a directory"]


def test_non_utf8_file_names_line_and_byte(tmp_path):
    path = write(tmp_path, MINIMAL.encode() + b"ALERTCMD='caf\xe9'\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    offset = len(MINIMAL) + len("ALERTCMD='caf")
    assert e.value.errors == [f"{path}:4: not UTF-8 text (byte 0xe9 at offset {offset}); "
                              f"save the file as UTF-8"]


def test_utf8_values_are_read():
    cfg = config.loads(MINIMAL + "ALERTCMD='notify \u00e9quipe \u2013 t\u00e9l\u00e9phonie'\n")
    assert cfg.ALERTCMD == "notify \u00e9quipe \u2013 t\u00e9l\u00e9phonie"


# ---------------------------------------------------------------------------
# Loading: defaults, required keys, unknown keys, all errors at once

def test_minimal_file_gives_every_default():
    cfg = config.loads(MINIMAL)
    for key in KEYS.values():
        if not key.required:
            assert cfg[key.name] == key.conv(key.default), key.name
            assert not cfg.is_set(key.name) and cfg.line_of(key.name) is None
    assert cfg.HACLUSTERIP == config.ClusterIP(ipaddress.ip_address("192.168.1.100"), 24)
    assert (cfg.HACLUSTERIP.version, cfg.HACLUSTERIP.prefix, str(cfg.HACLUSTERIP)) == \
        (4, 24, "192.168.1.100/24")
    assert (cfg.HASYNCH, cfg.HBDEADTIME, cfg.ATTEMPTRESTART, cfg.rundir) == \
        ("LAZY", 0.3, False, "/run/asha")
    assert cfg.warnings == []


def test_every_default_written_out_loads_to_the_same_values():
    lines = REQUIRED_LINES + [f"{k.name}={config.quote(k.default)}" for k in KEYS.values()
                              if not k.required]
    cfg = config.loads("\n".join(lines) + "\n")
    assert cfg.warnings == []
    defaults = config.loads(MINIMAL)
    for name in KEYS:
        assert cfg[name] == defaults[name], name
        assert cfg.is_set(name)


@pytest.mark.parametrize("name", [k.name for k in KEYS.values() if k.required])
def test_missing_required_key(name):
    text = "".join(line + "\n" for line in REQUIRED_LINES if not line.startswith(name + "="))
    assert errors_of(text) == [f"{CONF}: {name} is required ({KEYS[name].doc})"]


@pytest.mark.parametrize("name", [k.name for k in KEYS.values() if k.required])
def test_empty_required_key(name):
    text = "".join((f"{name}=''" if line.startswith(name + "=") else line) + "\n"
                   for line in REQUIRED_LINES)
    line = 1 + [l.split("=")[0] for l in REQUIRED_LINES].index(name)
    assert errors_of(text) == [f"{CONF}:{line}: {name} must not be empty ({KEYS[name].doc})"]


def test_unknown_key_warns_with_the_nearest_key():
    cfg = config.loads(MINIMAL + "HASYNC=LOOSE\nhbdeadtime=1\nFLUXCAPACITOR=1.21\n", CONF)
    assert cfg.warnings == [
        f"{CONF}:4: unknown key HASYNC (did you mean HASYNCH?), ignored",
        f"{CONF}:5: unknown key hbdeadtime (did you mean HBDEADTIME?), ignored",
        f"{CONF}:6: unknown key FLUXCAPACITOR, ignored",
    ]
    assert (cfg.HASYNCH, cfg.HBDEADTIME) == ("LAZY", 0.3)


def test_a_key_set_twice_warns_and_the_last_wins():
    cfg = config.loads(MINIMAL + "HASYNCH=LAZY\n\nHASYNCH=LOOSE\n", CONF)
    assert cfg.warnings == [f"{CONF}:6: HASYNCH set again; this value replaces the one on line 4"]
    assert cfg.HASYNCH == "LOOSE" and cfg.line_of("HASYNCH") == 6


def test_one_run_reports_every_error_in_line_order():
    text = (
        "HACLUSTERIP=192.168.1.100/24\n"
        "HAPRINODE=pbx1\n"
        "HASYNCH=lazzy\n"
        "HASYNC=LOOSE\n"
        "HBPORT=70000\n"
        "this is not an assignment\n"
        "ASTSTART='/etc/init.d/asterisk\n"
        "HBKEEPALIVE=0.5\n"
        "ATTEMPTRESTART=perhaps\n"
    )
    with pytest.raises(ConfigError) as e:
        config.loads(text, CONF)
    assert e.value.errors == [
        f"{CONF}: HASECNODE is required ({KEYS['HASECNODE'].doc})",
        f"{CONF}:3: HASYNCH must be LAZY or LOOSE, not 'lazzy'",
        f"{CONF}:5: HBPORT must be a whole number from 1 to 65535, not '70000'",
        f"{CONF}:6: not an assignment: 'this is not an assignment' (expected KEY=value)",
        f"{CONF}:7: ASTSTART: unterminated ' quote",
        f"{CONF}:8: HBWARNTIME must be above HBKEEPALIVE (0.5), not 0.15",
        f"{CONF}:8: HBDEADTIME must be above HBKEEPALIVE (0.5) and HBWARNTIME (0.15), not 0.3",
        f"{CONF}:9: ATTEMPTRESTART must be YES or NO, not 'perhaps'",
    ]
    assert e.value.warnings == [f"{CONF}:4: unknown key HASYNC (did you mean HASYNCH?), ignored"]
    assert str(e.value) == "\n".join(e.value.errors)


def test_overrides_are_validated_and_count_as_set():
    cfg = config.loads(MINIMAL + "HASYNCH=LAZY\n", CONF, overrides={"HASYNCH": "LOOSE"})
    assert cfg.HASYNCH == "LOOSE" and cfg.is_set("HASYNCH") and cfg.line_of("HASYNCH") is None
    with pytest.raises(ConfigError) as e:
        config.loads(MINIMAL + "HASYNCH=LAZY\n", CONF, overrides={"HASYNCH": "lazzy"})
    assert e.value.errors == [f"{CONF}: HASYNCH must be LAZY or LOOSE, not 'lazzy'"]
    with pytest.raises(ValueError, match="unknown key NOSUCHKEY"):
        config.loads(MINIMAL, CONF, overrides={"NOSUCHKEY": "1"})


def test_config_object():
    cfg = config.loads(MINIMAL + "HAPRIADDR=192.0.2.1\nHASECADDR=pbx2.example.com\n", CONF)
    assert cfg.path == CONF
    assert cfg.line_of("HAPRINODE") == 2 and cfg.line_of("HBPORT") is None
    assert cfg["HBPORT"] == cfg.HBPORT == 694
    assert dict(cfg.items())["HASECNODE"] == "pbx2"
    assert (cfg.node_role("pbx1"), cfg.local_node("pbx1"), cfg.peer_node("pbx1")) == \
        ("primary", "pbx1", "pbx2")
    assert (cfg.node_role("pbx2"), cfg.local_node("pbx2"), cfg.peer_node("pbx2")) == \
        ("standby", "pbx2", "pbx1")
    assert cfg.node_addr("pbx1") == "192.0.2.1"
    with pytest.raises(AttributeError):
        cfg.NOSUCHKEY
    with pytest.raises(ConfigError) as e:
        cfg.node_role("pbx3")
    assert e.value.errors == [f"{CONF}: this node is 'pbx3', neither HAPRINODE ('pbx1') "
                              f"nor HASECNODE ('pbx2')"]


def test_node_addr_resolves_the_name_when_no_address_is_given():
    cfg = config.loads("HACLUSTERIP=192.168.1.100\nHAPRINODE=localhost\nHASECNODE=pbx2\n"
                       "HASECADDR=::1\n", CONF)
    assert cfg.node_addr("localhost") == "127.0.0.1"
    assert cfg.node_addr("pbx2") == "::1"
    cfg = config.loads("HACLUSTERIP=192.168.1.100\nHAPRINODE=pbx1\nHASECNODE=pbx2\n"
                       "HAPRIADDR=no-such-host.invalid\n", CONF)
    with pytest.raises(ConfigError) as e:
        cfg.node_addr("pbx1")
    assert e.value.errors[0].startswith(f"{CONF}: cannot resolve 'no-such-host.invalid' (")
    assert e.value.errors[0].endswith("); set HAPRIADDR to its address")


def test_node_role_defaults_to_uname():
    me = os.uname().nodename
    cfg = config.loads(f"HACLUSTERIP=192.168.1.100\nHAPRINODE=other-node\nHASECNODE={me}\n")
    assert cfg.node_role() == "standby" and cfg.peer_node() == "other-node"


# ---------------------------------------------------------------------------
# Rules across keys

RULES = [
    ("HBWARNTIME=0.04", f"{CONF}:4: HBWARNTIME must be above HBKEEPALIVE (0.06), not 0.04"),
    ("HBKEEPALIVE=0.2", f"{CONF}:4: HBWARNTIME must be above HBKEEPALIVE (0.2), not 0.15"),
    ("HBDEADTIME=0.15", f"{CONF}:4: HBDEADTIME must be above HBKEEPALIVE (0.06) and "
                        f"HBWARNTIME (0.15), not 0.15"),
    ("HBWARNTIME=0.5", f"{CONF}:4: HBDEADTIME must be above HBKEEPALIVE (0.06) and "
                       f"HBWARNTIME (0.5), not 0.3"),
    ("HBINITDEAD=0.2", f"{CONF}:4: HBINITDEAD must be at least HBDEADTIME (0.3), not 0.2"),
    ("HBDEADTIMEMAX=0.2", f"{CONF}:4: HBDEADTIMEMAX must be at least HBDEADTIME (0.3), not 0.2"),
    ("HASECNODE=PBX1", f"{CONF}:4: HASECNODE must differ from HAPRINODE, not 'PBX1'"),
    ("HAPRIADDR=192.0.2.1\nHASECADDR=192.0.2.1",
     f"{CONF}:5: HASECADDR must differ from HAPRIADDR, not '192.0.2.1'"),
    ("HAPRIADDR=192.168.1.100",
     f"{CONF}:4: HAPRIADDR must be the node's own address, not the cluster IP '192.168.1.100'"),
    ("HASECADDR=192.168.1.100",
     f"{CONF}:4: HASECADDR must be the node's own address, not the cluster IP '192.168.1.100'"),
    ("WDHANGTIMEOUT=0.5", f"{CONF}:4: WDHANGTIMEOUT must be at most WDHANGINTERVAL (0.4), not 0.5"),
    ("RHINOSPF=YES\nRHINODRIVER=serial",
     f"{CONF}:5: RHINODRIVER=serial needs RHINOSERIAL, the serial port of the relay"),
    ("RHINONODE=pbx3", f"{CONF}:4: RHINONODE must be HAPRINODE or HASECNODE, not 'pbx3'"),
    # 104 bytes of a beat at 10 bits a byte: 54 ms at 19200 baud, 27 at 38400 (HBKEEPALIVE 0.06)
    ("HBSERIAL=/dev/ttyS0\nHBBAUD=19200",
     f"{CONF}:5: HBBAUD=19200 takes 54 ms to send a heartbeat on the serial line, more than "
     f"half of HBKEEPALIVE (0.06 s): set HBBAUD=38400 or more, or HBKEEPALIVE=0.11 or more"),
    ("HBSERIAL=/dev/ttyS0\nHBKEEPALIVE=0.01\nHBWARNTIME=0.1",
     f"{CONF}:5: HBBAUD=115200 takes 9 ms to send a heartbeat on the serial line, more than "
     f"half of HBKEEPALIVE (0.01 s): set HBKEEPALIVE=0.02 or more"),
]


@pytest.mark.parametrize("baud, keepalive", [("38400", "0.06"), ("19200", "0.11"), ("57600", "0.05")])
def test_a_serial_line_that_carries_the_beats_is_accepted(baud, keepalive):
    cfg = config.loads(MINIMAL + f"HBSERIAL=/dev/ttyS0\nHBBAUD={baud}\nHBKEEPALIVE={keepalive}\n")
    assert cfg.HBBAUD == baud
    assert config.loads(MINIMAL + "HBBAUD=9600\n").HBBAUD == "9600"      # no serial line: no rule


@pytest.mark.parametrize("lines, message", RULES)
def test_rule_across_keys(lines, message):
    assert errors_of(MINIMAL + lines + "\n") == [message]


def test_rules_that_hold():
    cfg = config.loads(MINIMAL + "HBKEEPALIVE=0.1\nHBWARNTIME=0.2\nHBDEADTIME=0.25\n"
                       "HBINITDEAD=0.25\nWDHANGTIMEOUT=0.4\nRHINOSPF=YES\nRHINODRIVER=serial\n"
                       "RHINOSERIAL=/dev/ttyS1\nRHINONODE=pbx2\n"
                       "HAPRIADDR=192.0.2.1\nHASECADDR=192.0.2.2\n")
    assert cfg.HBDEADTIME == 0.25 and cfg.RHINOSERIAL == "/dev/ttyS1" and cfg.warnings == []


def test_a_rule_is_not_checked_on_a_value_that_is_already_wrong():
    text = "HACLUSTERIP=192.168.1.100/24\nHAPRINODE=pbx1\nHASECNODE=pbx_1\nHBKEEPALIVE=fast\n"
    assert errors_of(text) == [
        f"{CONF}:3: HASECNODE must be a node name as `uname -n` prints it, not 'pbx_1'",
        f"{CONF}:4: HBKEEPALIVE must be a number of seconds (decimals allowed) above 0, not 'fast'",
    ]


# ---------------------------------------------------------------------------
# Every key, generated from the KEYS table: good values convert, bad values
# give one exact line. Cases come from the kind of converter; a key with a
# new kind of converter fails here until it has cases of its own.

def _either(choices):
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]


def _kind(conv):
    """('integer', {'lo': 0, 'hi': 99}) for integer(0, 99) and so on."""
    name = conv.__qualname__.split(".")[0]
    params = {}
    if conv.__closure__:
        params = {k: c.cell_contents for k, c in zip(conv.__code__.co_freevars, conv.__closure__)}
    return name, params


def _cases(conv):
    """(good: [(text, value)], bad: [(text, "must be ...")]) for a converter."""
    kind, p = _kind(conv)
    if kind == "optional":
        good, bad = _cases(p["conv"])
        return [("", None)] + good, bad
    if kind == "enum":
        ch = p["choices"]
        return ([(c, c) for c in ch] + [(c.lower(), c) for c in ch] + [(c.upper(), c) for c in ch],
                [("x" + ch[0], f"must be {_either(ch)}"), (ch[0] + " ", f"must be {_either(ch)}")])
    if kind == "yesno":
        return ([(t, True) for t in ("YES", "yes", "Y", "true", "1")] +
                [(t, False) for t in ("NO", "no", "n", "FALSE", "0")],
                [(t, "must be YES or NO") for t in ("maybe", "2", "on", "")])
    if kind == "onoff":
        return ([(t, True) for t in ("on", "ON", "yes", "true", "1")] +
                [(t, False) for t in ("off", "Off", "no", "false", "0")],
                [(t, "must be on or off") for t in ("maybe", "2", "y", "")])
    if kind in ("integer", "port"):
        lo, hi = (p["lo"], p["hi"]) if kind == "integer" else (1, 65535)
        assert lo is not None and hi is not None, "integer() without bounds: add cases"
        msg = f"must be a whole number from {lo} to {hi}"
        return ([(str(lo), lo), (str(hi), hi), ("0" + str(hi), hi), ("+" + str(lo), lo)],
                [(str(lo - 1), msg), (str(hi + 1), msg), ("1.5", msg), ("0x10", msg),
                 ("ten", msg), ("1_0", msg), ("", msg)])
    if kind == "seconds":
        lo, hi, zero = p["lo"], p["hi"], p["allow_zero"]
        assert lo == 0, "seconds() with a lower bound other than 0: add cases"
        what = "must be a number of seconds (decimals allowed)"
        if zero:
            msg = f"{what} from 0 to {hi:g}" if hi is not None else f"{what}, at least 0"
        else:
            msg = f"{what} above 0" + (f", at most {hi:g}" if hi is not None else "")
        good = [(t, v) for t, v in (("0.05", 0.05), ("1e-3", 0.001), ("2", 2.0))
                if hi is None or v <= hi]
        bad = [("-1", msg), ("nan", msg), ("inf", msg), ("soon", msg), ("1s", msg), ("", msg)]
        if zero:
            good.append(("0", 0.0))
        else:
            bad += [("0", msg), ("0.0", msg)]
        if hi is not None:
            good.append((f"{hi:g}", float(hi)))
            bad.append((f"{hi * 2:g}", msg))
        return good, bad
    if kind == "hexint":
        lo, hi = p["lo"], p["hi"]
        span = {0xFF: "0x00 to 0xff", 0xFFFF: "0x0000 to 0xffff"}[hi]
        assert lo == 0
        msg = f"must be a number from {span} (hex as 0x...)"
        return ([(f"{hi:#x}", hi), (f"{hi:#X}".replace("X", "x"), hi), ("0X0a", 10), ("10", 10),
                 ("0", 0), ("0x00", 0)],
                [(f"{hi + 1:#x}", msg), ("0xzz", msg), ("ten", msg), ("0b1", msg), ("-1", msg),
                 ("0x", msg), ("", msg)])
    if kind == "abspath":
        return ([("/a/b", "/a/b"), ("/a//b/../c/", "/a/c")],
                [(t, "must be an absolute path") for t in ("a/b", "~/x", "./x")])
    if kind in ("paths", "devices"):
        return ([("", []), ("/a  /b/ ", ["/a", "/b"]), ("/dev/ttyS0", ["/dev/ttyS0"])],
                [("/a b", "must be absolute paths separated by spaces ('b' is not)")])
    if kind == "command":
        return [("  a 'b' | c $d  ", "a 'b' | c $d"), ("", "")], []
    if kind == "nodename":
        msg = "must be a node name as `uname -n` prints it"
        return ([("pbx1", "pbx1"), ("PBX-1.example.com", "PBX-1.example.com")],
                [("pbx_1", msg), ("-pbx", msg), ("pbx one", msg), ("a" * 64, msg)])
    if kind == "host":
        msg = "must be an IP address or a host name"
        return ([("192.0.2.1", "192.0.2.1"), ("2001:DB8::0:1", "2001:db8::1"), ("gw.lan", "gw.lan")],
                [("bad_host", msg), ("192.0.2.1 192.0.2.2", msg)])
    if kind == "hosts":
        return ([("192.0.2.254  gw", ["192.0.2.254", "gw"]), ("", [])],
                [("192.0.2.254 bad_host", "must be IP addresses or host names separated by "
                                          "spaces ('bad_host' is neither)")])
    if kind == "ip_with_prefix":
        ip = ipaddress.ip_address
        return ([("192.168.1.100/24", config.ClusterIP(ip("192.168.1.100"), 24)),
                 ("192.168.1.100", config.ClusterIP(ip("192.168.1.100"), None)),
                 ("10.0.0.0/31", config.ClusterIP(ip("10.0.0.0"), 31)),
                 ("2001:db8::100/64", config.ClusterIP(ip("2001:db8::100"), 64))],
                [("pbx", "must be an IP address with an optional /prefix"),
                 ("192.168.1.100/33", "must be an IP address with an optional /prefix (1 to 32)"),
                 ("192.168.1.100/x", "must be an IP address with an optional /prefix (1 to 32)"),
                 ("2001:db8::1/129", "must be an IP address with an optional /prefix (1 to 128)"),
                 ("127.0.0.1", "must be a unicast address that hosts can reach"),
                 ("0.0.0.0/24", "must be a unicast address that hosts can reach"),
                 ("224.0.0.18", "must be a unicast address that hosts can reach"),
                 ("192.168.1.0/24", "must not be the network or broadcast address of 192.168.1.0/24"),
                 ("192.168.1.255/24", "must not be the network or broadcast address of 192.168.1.0/24")])
    if kind == "ifname":
        msg = "must be a network interface name (1 to 15 characters)"
        return ([("eth0", "eth0"), ("bond0.100", "bond0.100"), ("a" * 15, "a" * 15)],
                [("a" * 16, msg), ("eth 0", msg), ("..", msg), ("eth/0", msg)])
    if kind == "sipuri":
        msg = "must be a SIP URI such as sip:192.0.2.10:5060"
        good = ["sip:192.0.2.10:5060", "sip:[2001:db8::1]:5060", "sips:ping@pbx.example.com;transport=tcp",
                "192.0.2.10"]
        return ([(t, t) for t in good],
                [("sip:192.0.2.10:70000", msg), ("sip:a b", msg), ("sip:", msg), ("sip:[::1", msg)])
    if kind == "procname":
        msg = "must be a process name (1 to 15 characters, no / or spaces)"
        return ([("asterisk", "asterisk"), ("a" * 15, "a" * 15)],
                [("/usr/sbin/asterisk", msg), ("a" * 16, msg), ("two words", msg)])
    pytest.fail(f"no test cases for converters of kind {kind!r}: add them to _cases() in "
                f"tests/unit/test_config.py")


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_is_described(name):
    key = KEYS[name]
    assert key.name == name and config.is_key_name(name) and name == name.upper()
    assert key.doc and "\n" not in key.doc
    assert key.section in ("cluster", "data", "heartbeat", "asterisk", "watchdog", "vip", "rhino")
    if not key.required:
        key.conv(key.default)        # raises if the default is not valid


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_good_values(name):
    good, _ = _cases(KEYS[name].conv)
    for text, value in good:
        assert KEYS[name].conv(text) == value, text


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_bad_values_give_one_exact_line(name, tmp_path):
    key = KEYS[name]
    _, bad = _cases(key.conv)
    if not bad:
        assert _kind(key.conv)[0] == "command"       # a command may be any text
        return
    before = [line for line in REQUIRED_LINES if not line.startswith(name + "=")]
    for text, msg in bad:
        if key.required and text == "":
            continue                                     # "must not be empty", tested above
        path = write(tmp_path, "\n".join(before + ["# the value under test:",
                                                   f"{name}={config.quote(text)}"]) + "\n")
        with pytest.raises(ConfigError) as e:
            config.load(path)
        assert e.value.errors == [f"{path}:{len(before) + 2}: {name} {msg}, not {text!r}"]


def test_command_keys_take_any_text():
    cfg = config.loads(MINIMAL + "ALERTCMD='logger -t asha \"$1\" | mail -s \"asha\" root'\n")
    assert cfg.ALERTCMD == 'logger -t asha "$1" | mail -s "asha" root'


def test_enum_values_are_case_insensitive_and_canonical():
    cfg = config.loads(MINIMAL + "HASYNCH=loose\nRHINODRIVER=HIDRELAY\nASTHANGCHECK=sip\n")
    assert (cfg.HASYNCH, cfg.RHINODRIVER, cfg.ASTHANGCHECK) == ("LOOSE", "hidrelay", "SIP")


def test_hasynch_lazzy_exactly_as_the_issue_writes_it():
    assert errors_of(MINIMAL + "\n" * 8 + "HASYNCH=lazzy\n") == \
        ["/etc/asha.conf:12: HASYNCH must be LAZY or LOOSE, not 'lazzy'"]


# ---------------------------------------------------------------------------
# quote(): what a tool writes, the parser reads back unchanged

@pytest.mark.parametrize("value, written", [
    ("LAZY", "LAZY"), ("/run/asha", "/run/asha"), ("192.168.1.100/24", "192.168.1.100/24"),
    ("", "''"), ("two words", "'two words'"), ("it's", "'it'\\''s'"), ("$HOME", "'$HOME'"),
    ("a\nb", "'a\nb'"), (7, "7"), (0.25, "0.25"),
])
def test_quote(value, written):
    assert config.quote(value) == written
    assert parse(f"K={written}\n") == ([("K", str(value), 1)], [])


NO_NUL = st.text().filter(lambda s: "\0" not in s)
KEY_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@given(NO_NUL)
def test_any_text_round_trips_through_quote_and_parse(value):
    assert parse(f"K={config.quote(value)}\n# after\nL=1\n") == ([("K", value, 1), ("L", "1", 3 + value.count("\n"))], [])


@settings(max_examples=60, deadline=None)
@given(NO_NUL)
def test_any_text_round_trips_through_a_config_file(value):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "asha.conf")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(MINIMAL + f"ALERTCMD={config.quote(value)}\nHASYNCH=LOOSE\n")
        cfg = config.load(path)
    assert cfg.ALERTCMD == value.strip() and cfg.HASYNCH == "LOOSE"
    assert cfg.line_of("HASYNCH") == 5 + value.count("\n")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(KEY_NAME, NO_NUL, max_size=5))
def test_any_text_round_trips_through_a_state_file(values):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.state")
        state.write(path, values)
        assert state.read(path) == values


# ---------------------------------------------------------------------------
# cli: how an executable turns the configuration into messages and exit statuses

DOC = """Usage: asha-test [-c FILE] run
       asha-test [-c FILE] fail

Options:
  -c FILE, --config FILE   configuration file [default: /etc/asha.conf]
"""


def _run(args):
    cfg = cli.load_config(args, "asha-test")
    if args["fail"]:
        raise exits.AshaError(f"cannot do it with {cfg.HASYNCH}", exits.LSB_NOT_RUNNING)
    print(cfg.HASYNCH)


def test_cli_bad_config_prints_every_error_and_exits_78(tmp_path, capsys):
    path = write(tmp_path, "HACLUSTERIP=192.168.1.100/24\nHAPRINODE=pbx1\nHASYNK=LAZY\n"
                           "HASYNCH=lazzy\n")
    assert cli.main("asha-test", DOC, _run, ["-c", path, "run"]) == exits.CONFIG == 78
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:3: unknown key HASYNK (did you mean HASYNCH?), ignored",
        f"{path}: HASECNODE is required ({KEYS['HASECNODE'].doc})",
        f"{path}:4: HASYNCH must be LAZY or LOOSE, not 'lazzy'",
    ]


def test_cli_good_config_with_warning(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "HASYNK=LOOSE\n")
    assert cli.main("asha-test", DOC, _run, ["--config", path, "run"]) == exits.OK
    out, err = capsys.readouterr()
    assert (out, err) == ("LAZY\n", f"{path}:4: unknown key HASYNK (did you mean HASYNCH?), ignored\n")


def test_cli_error_and_usage(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    assert cli.main("asha-test", DOC, _run, ["-c", path, "fail"]) == 3
    assert capsys.readouterr().err == "asha-test: cannot do it with LAZY\n"
    usage = "Usage: asha-test [-c FILE] run\n       asha-test [-c FILE] fail\n"
    for argv, first in [(["-c", path, "frobnicate"], "asha-test: unexpected argument: frobnicate\n"),
                        (["run", "x", "y"], "asha-test: unexpected arguments: x y\n"),
                        (["--verbose", "run"], "asha-test: unexpected argument: --verbose\n"),
                        (["run", "-c"], "asha-test: -c requires argument\n"),
                        ([], "")]:
        assert cli.main("asha-test", DOC, _run, argv) == exits.USAGE == 64
        assert capsys.readouterr().err == first + usage
    assert cli.main("asha-test", DOC, _run, ["-c", str(tmp_path / "none"), "run"]) == 78
    assert capsys.readouterr().err == (f"{tmp_path / 'none'}: no such file (every asha tool needs "
                                       f"it; see asha.conf(5) and asha.conf.example)\n")
