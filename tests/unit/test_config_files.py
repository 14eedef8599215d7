"""Bad configuration files, each named for its mistake, run through the real
executables: every asha-* in bin/ must refuse each with exit status 78 and the
same first line of standard error, the line an operator reads first.

The table: fixture (under tests/unit/configs/) -> exit status -> first line of
stderr, with {conf} standing for the path given to -c."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asha import config, exits

REPO = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "configs"

# Each tool with a command that needs nothing but the configuration.
COMMANDS = {
    "asha-vip": ["status"],
    "asha-hb": ["check"],
    "asha-sync": ["--dry-run"],
    "asha-rhino": ["status"],
    "asha-watchdog": ["--once"],
}

DOLLAR = ("$ expansion is not supported (asha.conf is data, never run); write the value "
          "itself, or '...' quotes for a literal $")
BACKTICK = ("` command substitution is not supported (asha.conf is data, never run); write "
            "the value itself, or '...' quotes for a literal `")
DOC = {k.name: k.doc for k in config.KEYS.values()}
CONFIG = exits.CONFIG

TABLE = [
    ("hasynch_lazzy.conf", CONFIG, "{conf}:5: HASYNCH must be LAZY or LOOSE, not 'lazzy'"),
    ("hbdeadtime_below_keepalive.conf", CONFIG,
     "{conf}:7: HBDEADTIME must be above HBKEEPALIVE (0.5) and HBWARNTIME (1), not 0.3"),
    ("hbwarntime_equal_to_keepalive.conf", CONFIG,
     "{conf}:6: HBWARNTIME must be above HBKEEPALIVE (0.15), not 0.15"),
    ("hbinitdead_below_deadtime.conf", CONFIG,
     "{conf}:6: HBINITDEAD must be at least HBDEADTIME (2), not 1"),
    ("hbdeadtime_zero.conf", CONFIG,
     "{conf}:5: HBDEADTIME must be a number of seconds (decimals allowed) above 0, not '0'"),
    ("same_primary_and_standby.conf", CONFIG,
     "{conf}:4: HASECNODE must differ from HAPRINODE, not 'PBX1'"),
    ("same_heartbeat_address.conf", CONFIG,
     "{conf}:6: HASECADDR must differ from HAPRIADDR, not '192.168.1.1'"),
    ("priaddr_is_cluster_ip.conf", CONFIG,
     "{conf}:5: HAPRIADDR must be the node's own address, not the cluster IP '192.168.1.100'"),
    ("not_an_assignment.conf", CONFIG,
     "{conf}:5: not an assignment: 'HASYNCH = LAZY' (expected KEY=value)"),
    ("section_header.conf", CONFIG,
     "{conf}:5: not an assignment: '[heartbeat]' (expected KEY=value)"),
    ("missing_haclusterip.conf", CONFIG,
     "{conf}: HACLUSTERIP is required (" + DOC["HACLUSTERIP"] + ")"),
    ("missing_hasecnode.conf", CONFIG, "{conf}: HASECNODE is required (" + DOC["HASECNODE"] + ")"),
    ("empty_file.conf", CONFIG, "{conf}: HACLUSTERIP is required (" + DOC["HACLUSTERIP"] + ")"),
    ("empty_haprinode.conf", CONFIG,
     "{conf}:3: HAPRINODE must not be empty (" + DOC["HAPRINODE"] + ")"),
    ("unterminated_quote.conf", CONFIG, '{conf}:5: ASTSTART: unterminated " quote'),
    ("dollar_expansion.conf", CONFIG, "{conf}:5: ASTCONFDIR: " + DOLLAR),
    ("backtick_substitution.conf", CONFIG, "{conf}:5: HAPRIADDR: " + BACKTICK),
    ("unquoted_space.conf", CONFIG,
     '{conf}:5: ASTSTOP: unquoted space in value; quote the value: '
     'ASTSTOP="/etc/init.d/asterisk stop"'),
    ("haclusterip_network_address.conf", CONFIG,
     "{conf}:2: HACLUSTERIP must not be the network or broadcast address of 192.168.1.0/24, "
     "not '192.168.1.0/24'"),
    ("haclusterip_prefix_too_long.conf", CONFIG,
     "{conf}:2: HACLUSTERIP must be an IP address with an optional /prefix (1 to 32), "
     "not '192.168.1.100/48'"),
    ("haclusterip_not_an_address.conf", CONFIG,
     "{conf}:2: HACLUSTERIP must be an IP address with an optional /prefix, not 'pbx.example.com'"),
    ("hbport_out_of_range.conf", CONFIG,
     "{conf}:5: HBPORT must be a whole number from 1 to 65535, not '70000'"),
    ("hbrtprio_not_a_number.conf", CONFIG,
     "{conf}:5: HBRTPRIO must be a whole number from 0 to 99, not 'high'"),
    ("hbbaud_unsupported.conf", CONFIG,
     "{conf}:5: HBBAUD must be 9600, 19200, 38400, 57600 or 115200, not '14400'"),
    ("attemptrestart_maybe.conf", CONFIG, "{conf}:5: ATTEMPTRESTART must be YES or NO, not 'maybe'"),
    ("haautofailback_sometimes.conf", CONFIG,
     "{conf}:5: HAAUTOFAILBACK must be on or off, not 'sometimes'"),
    ("wdhangtimeout_above_interval.conf", CONFIG,
     "{conf}:6: WDHANGTIMEOUT must be at most WDHANGINTERVAL (0.5), not 1"),
    ("rhino_serial_without_port.conf", CONFIG,
     "{conf}:6: RHINODRIVER=serial needs RHINOSERIAL, the serial port of the relay"),
    ("rhinonode_not_a_node.conf", CONFIG,
     "{conf}:5: RHINONODE must be HAPRINODE or HASECNODE, not 'pbx3'"),
    ("rhinovendor_not_hex.conf", CONFIG,
     "{conf}:5: RHINOVENDOR must be a number from 0x0000 to 0xffff (hex as 0x...), not 'rhino'"),
    ("astconfdir_relative.conf", CONFIG,
     "{conf}:5: ASTCONFDIR must be an absolute path, not 'etc/asterisk'"),
    ("wdsipuri_bad_port.conf", CONFIG,
     "{conf}:5: WDSIPURI must be a SIP URI such as sip:192.0.2.10:5060, "
     "not 'sip:192.168.1.100:99999'"),
    ("multiline_value_then_error.conf", CONFIG,
     "{conf}:7: HASYNCH must be LAZY or LOOSE, not 'lazzy'"),
    ("crlf_line_ends.conf", CONFIG, "{conf}:5: HBPORT must be a whole number from 1 to 65535, not '0'"),
    ("latin1_byte.conf", CONFIG,
     "{conf}:5: not UTF-8 text (byte 0xe9 at offset 114); save the file as UTF-8"),
    ("several_errors.conf", CONFIG, "{conf}: HAPRINODE is required (" + DOC["HAPRINODE"] + ")"),
    ("no_such_file.conf", CONFIG,
     "{conf}: no such file (every asha tool needs it; see asha.conf(5) and asha.conf.example)"),
    ("", CONFIG, "{conf}: cannot read: Is a directory"),       # -c names a directory
]


def executables():
    """The asha executables in bin/ now, each with its config-only command."""
    found = sorted(p.name for p in (REPO / "bin").glob("asha*") if p.is_file())
    unknown = [name for name in found if name not in COMMANDS]
    assert not unknown, (f"{unknown} in bin/: add a command that needs only the configuration "
                         f"to COMMANDS in {__file__}")
    assert found, "no asha executable in bin/: nothing to run the bad configurations through"
    return found


def run_all(conf, cwd):
    """Run every executable with -c conf at once; {tool: (status, stderr)}."""
    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    procs = {}
    try:
        for tool in executables():
            procs[tool] = subprocess.Popen(
                [sys.executable, str(REPO / "bin" / tool), "-c", conf, *COMMANDS[tool]],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, text=True)
        results = {}
        for tool, p in procs.items():
            out, err = p.communicate(timeout=60)
            results[tool] = (p.returncode, out, err)
        return results
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def first_line(text):
    return text.splitlines()[0] if text else ""


def test_table_covers_every_fixture():
    files = sorted(p.name for p in CONFIGS.glob("*.conf"))
    listed = sorted(f for f, _, _ in TABLE if f)
    assert sorted(set(listed) - {"no_such_file.conf"}) == sorted(set(files) - {"good_with_unknown_key.conf"})
    assert not (CONFIGS / "no_such_file.conf").exists()


@pytest.mark.parametrize("fixture, status, first", TABLE, ids=[f or "directory" for f, _, _ in TABLE])
def test_config_module_gives_the_first_line(fixture, status, first):
    conf = str(CONFIGS / fixture) if fixture else str(CONFIGS)
    with pytest.raises(config.ConfigError) as e:
        config.load(conf)
    assert status == exits.CONFIG
    assert (e.value.warnings + e.value.errors)[0] == first.format(conf=conf)


@pytest.mark.parametrize("fixture, status, first", TABLE, ids=[f or "directory" for f, _, _ in TABLE])
def test_every_executable_refuses_the_bad_config(fixture, status, first, tmp_path):
    conf = str(CONFIGS / fixture) if fixture else str(CONFIGS)
    results = run_all(conf, tmp_path)
    got = {tool: (rc, first_line(err)) for tool, (rc, _, err) in results.items()}
    want = {tool: (status, first.format(conf=conf)) for tool in results}
    assert got == want, "\n".join(f"--- {tool}: exit {rc}\nstdout:\n{out}stderr:\n{err}"
                                  for tool, (rc, out, err) in results.items())
    for tool, (rc, out, err) in results.items():
        assert out == "", f"{tool} wrote to stdout on a bad configuration: {out!r}"


def test_several_errors_are_all_reported_by_every_executable(tmp_path):
    conf = str(CONFIGS / "several_errors.conf")
    want = [
        f"{conf}: HAPRINODE is required ({DOC['HAPRINODE']})",
        f"{conf}: HASECNODE is required ({DOC['HASECNODE']})",
        f"{conf}:3: HASYNCH must be LAZY or LOOSE, not 'lazzy'",
        f"{conf}:4: HBPORT must be a whole number from 1 to 65535, not '0'",
        f"{conf}:5: not an assignment: 'what is this' (expected KEY=value)",
    ]
    for tool, (rc, out, err) in run_all(conf, tmp_path).items():
        assert (tool, rc, err.splitlines()) == (tool, exits.CONFIG, want), err


def test_good_config_with_unknown_key_warns_and_loads():
    conf = str(CONFIGS / "good_with_unknown_key.conf")
    cfg = config.load(conf)
    assert cfg.warnings == [f"{conf}:5: unknown key HASYNC (did you mean HASYNCH?), ignored"]
    assert (cfg.HASYNCH, cfg.HBPORT) == ("LAZY", 694)


def test_every_executable_warns_about_an_unknown_key_and_goes_on(tmp_path):
    # A configuration this host can run with: it is the primary, its peer is on
    # loopback, nothing is synced, no card, and Asterisk commands that do nothing.
    run = tmp_path / "run"
    authkey = tmp_path / "authkey"
    authkey.write_text("sha1 0123456789abcdef0123456789abcdef\n")
    authkey.chmod(0o600)
    text = (CONFIGS / "good_with_unknown_key.conf").read_text()
    text = text.replace("HAPRINODE=pbx1", f"HAPRINODE={os.uname().nodename}")
    text = text.replace("HASECNODE=pbx2", "HASECNODE=asha-test-peer")
    text += (f"HAPRIADDR=127.0.0.1\nHASECADDR=127.0.0.2\nHASYNCH=LOOSE\nASHARUNDIR={run}\n"
             f"HBAUTHKEY={authkey}\nASTSTART=/bin/true\nASTSTOP=/bin/true\nASTBIN=/bin/false\n"
             f"ASTPIDFILE={tmp_path}/asterisk.pid\nASTHANGCHECK=OFF\nRHINOSPF=NO\nHAINTERFACE=lo\n")
    conf = tmp_path / "asha.conf"
    conf.write_text(text)
    warning = f"{conf}:5: unknown key HASYNC (did you mean HASYNCH?), ignored"
    assert config.load(str(conf)).warnings == [warning]
    for tool, (rc, out, err) in run_all(str(conf), tmp_path).items():
        detail = f"{tool}: exit {rc}\nstdout:\n{out}stderr:\n{err}"
        assert rc not in (exits.CONFIG, exits.USAGE), detail
        assert first_line(err) == warning, detail
        assert err.count("unknown key") == 1, detail
