"""The documentation keeps up with the code: every key the config module knows
is in asha.conf(5), with its default and an example that the parser takes, and
in asha.conf.example; the example file loads cleanly; the man pages lint clean;
asha(7) presents every tool, links every page, lists the state files, hb.state
keys and exit statuses the code has, and quotes in TROUBLESHOOTING only lines
that some string of the code, its values filled in, prints."""

import ast
import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asha import config, exits, state
from asha.config import KEYS

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "man" / "asha.conf.5"
EXAMPLE = REPO / "asha.conf.example"

# The subsection of asha.conf(5) that documents each section of the KEYS table.
SUBSECTIONS = {
    "cluster": "Cluster",
    "data": "Data and synchronisation",
    "heartbeat": "Heartbeat",
    "asterisk": "Asterisk",
    "watchdog": "Watchdog",
    "vip": "Cluster IP",
    "rhino": "PRI failover card",
}


def unescape(text):
    """mdoc text as a reader sees it, for the escapes the page uses."""
    for esc, char in (("\\(dq", '"'), ("\\(aq", "'"), ("\\(ga", "`"), ("\\&", ""),
                      ("\\-", "-"), ("\\e", "\\")):
        text = text.replace(esc, char)
    return text


def entries():
    """{KEY: (subsection, lines of its .It entry)} from asha.conf(5)."""
    out, subsection, current = {}, None, None
    for line in PAGE.read_text().splitlines():
        if line.startswith(".Ss "):
            subsection, current = line[4:].strip(), None
        elif line.startswith((".It ", ".El")):
            current = None
            m = re.match(r"\.It Cm ([A-Z][A-Z0-9]*) Ns = ", line)
            if m:
                assert m.group(1) not in out, f"{m.group(1)} documented twice"
                current = out[m.group(1)] = (subsection, [])
        elif current is not None:
            current[1].append(line)
    return out


def test_every_key_is_documented_in_its_subsection():
    documented = entries()
    missing = sorted(set(KEYS) - set(documented))
    assert not missing, f"keys missing from {PAGE}: {missing}"
    stale = sorted(set(documented) - set(KEYS))
    assert not stale, f"{PAGE} documents keys the config module does not know: {stale}"
    for name, key in KEYS.items():
        assert key.section in SUBSECTIONS, \
            f"section {key.section!r} of {name}: add its .Ss title to SUBSECTIONS in {__file__}"
        assert documented[name][0] == SUBSECTIONS[key.section], name


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_entry_gives_default_and_a_working_example(name):
    entry = entries().get(name)
    assert entry, f"{name} is not documented in {PAGE}"
    text = "\n".join(entry[1])
    key = KEYS[name]
    if key.required:
        assert text.startswith("Required.") and "Default: none." in text, text
    elif key.default == "":
        assert re.search(r"^Default: empty\b", text, re.M), text
    else:
        m = re.search(r"^Default:\n\.Ql (.*) \.$", text, re.M)
        assert m, f"{name}: no 'Default:' then '.Ql value .' in its entry"
        assert key.conv(unescape(m.group(1))) == key.conv(key.default), \
            f"{name}: the page says default {m.group(1)!r}, the code {key.default!r}"
    examples = re.findall(r"^\.Dl (" + name + r"=.*)$", text, re.M)
    assert examples, f"{name}: no '.Dl {name}=...' example"
    for example in examples:
        assignments, errors = config.parse_text(unescape(example) + "\n", str(PAGE))
        assert errors == [] and [a.key for a in assignments] == [name], example
        key.conv(assignments[0].value)          # raises if the example is not a good value


def test_examples_section_configurations_load():
    page = PAGE.read_text()
    examples = page.split("\n.Sh EXAMPLES\n", 1)[1].split("\n.Sh ", 1)[0]
    blocks = re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", examples, re.M | re.S)
    configs = [b for b in blocks if "HACLUSTERIP=" in b]
    assert len(configs) >= 2
    for block in configs:
        cfg = config.loads(unescape(block), "EXAMPLES")
        assert cfg.warnings == []


def test_every_key_is_in_the_example_file():
    text = EXAMPLE.read_text()
    missing = [name for name in KEYS if not re.search(rf"^#?{name}=", text, re.M)]
    assert not missing, f"keys missing from {EXAMPLE}: {missing}"


def test_example_file_shows_the_true_defaults():
    for line in EXAMPLE.read_text().splitlines():
        m = re.match(r"#([A-Z][A-Z0-9]*)=(.*)$", line)
        if not m:
            continue
        name = m.group(1)
        assert name in KEYS, f"{EXAMPLE} shows a key the config module does not know: {line}"
        assignments, errors = config.parse_text(line[1:] + "\n", str(EXAMPLE))
        assert errors == [], errors
        key = KEYS[name]
        assert not key.required, f"{name} is required: set it, do not comment it out"
        assert key.conv(assignments[0].value) == key.conv(key.default), \
            f"{EXAMPLE}: {line!r}, but the default is {key.default!r}"


def test_example_file_loads_without_errors_or_warnings():
    cfg = config.load(str(EXAMPLE))
    assert cfg.warnings == []
    assert (str(cfg.HACLUSTERIP), cfg.HAPRINODE, cfg.HASECNODE) == ("192.168.1.100/24", "pbx1", "pbx2")
    # only the required keys are set; everything else shows its default
    assert sorted(k for k in KEYS if cfg.is_set(k)) == sorted(k for k in KEYS if KEYS[k].required)


def test_man_pages_lint_clean():
    assert shutil.which("mandoc"), "mandoc is not installed (make deps)"
    pages = sorted(glob.glob(str(REPO / "man" / "*.[1-8]")))
    assert str(PAGE) in pages
    p = subprocess.run(["mandoc", "-Tlint", "-W", "warning", *pages],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout + p.stderr) == (0, "")


# ---------------------------------------------------------------------------
# asha(7), the overview: its sections, its links, and its TROUBLESHOOTING
# quotes, which must be lines the code really logs or prints.
OVERVIEW = REPO / "man" / "asha.7"
OVERVIEW_SECTIONS = ["NAME", "DESCRIPTION", "ARCHITECTURE", "FIRST START", "ROLES", "FAILOVER",
                     "SPLIT BRAIN", "DATA SYNCHRONISATION", "TROUBLESHOOTING", "FILES",
                     "EXIT STATUS", "EXAMPLES", "SEE ALSO"]
TOOLS = sorted(p.name for p in (REPO / "bin").glob("asha-*"))
LEVEL = r"(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)"
# A line of a literal block in TROUBLESHOOTING: an ASHALOG line, or one with
# the time stamp and ident cut.
LOG_LINE = re.compile(rf"^(?:\S+ asha-[a-z]+\[\d+\]: )?{LEVEL}: (.+)$")
PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdifgeExXrc%]")
# Text that other programs write into asha's lines (ssh, sqlite3, strerror).
FOREIGN = re.compile("|".join([
    r"connect to host \S+ port \d+: (?:" + "|".join(re.escape(os.strerror(n)) for n in range(1, 134)) + ")",
    r"\S+@\S+: Permission denied \(.+\)\.",
    r"(?:Error: )?file is not a database",
    r"database disk image is malformed",
] + [re.escape(os.strerror(n)) for n in range(1, 134)]))


def sections(page):
    return re.findall(r"^\.Sh (.+)$", page.read_text(), re.M)


def section(page, name):
    text = page.read_text()
    return text.split(f"\n.Sh {name}\n", 1)[1].split("\n.Sh ", 1)[0]


def test_overview_is_linted_with_the_other_pages():
    pages = sorted(glob.glob(str(REPO / "man" / "*.[1-8]")))
    assert str(OVERVIEW) in pages          # so test_man_pages_lint_clean takes it
    text = OVERVIEW.read_text()
    assert text.startswith(".Dd ") and "\n.Dt ASHA 7\n" in text


def test_overview_sections_in_order():
    assert sections(OVERVIEW) == OVERVIEW_SECTIONS


def test_overview_presents_every_tool_and_links_every_page():
    description = section(OVERVIEW, "DESCRIPTION")
    for tool in TOOLS:
        assert f"\n.It Xr {tool} 8\n" in description, f"asha(7) does not present {tool}"
    see_also = section(OVERVIEW, "SEE ALSO")
    for page in glob.glob(str(REPO / "man" / "*.[1-8]")):
        name, sect = os.path.basename(page).rsplit(".", 1)
        if page != str(OVERVIEW):
            assert f".Xr {name} {sect}" in see_also, f"asha(7) SEE ALSO misses {name}({sect})"
            assert ".Xr asha 7" in section(Path(page), "SEE ALSO"), f"{page}: SEE ALSO misses asha(7)"


def _hb_state_keys():
    """The keys asha-hb writes to hb.state, read from the daemon's source."""
    tree = ast.parse((REPO / "lib" / "asha" / "hb" / "daemon.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_write_state")
    return next([e.value for e in n.elts] for n in ast.walk(fn)
                if isinstance(n, ast.Tuple) and len(n.elts) > 3)


def test_overview_lists_the_hb_state_keys_the_daemon_writes():
    arch = section(OVERVIEW, "ARCHITECTURE")
    table = arch.split("\n.Ss The state file\n", 1)[1].split("\n.El\n", 1)[0]
    assert re.findall(r"^\.It Cm (\w+)$", table, re.M) == _hb_state_keys()


def test_overview_files_are_the_state_module_names():
    files = section(OVERVIEW, "FILES")
    names = {v for k, v in vars(state).items() if k.isupper() and isinstance(v, str)}
    for name in names:
        assert f".It Pa /run/asha/{name}\n" in files, f"asha(7) FILES misses /run/asha/{name}"
    assert set(re.findall(r"^\.It Pa /run/asha/(\S+)$", files, re.M)) == names
    default_rundir = config.KEYS["ASHARUNDIR"].default
    assert default_rundir == "/run/asha" and ".Cm ASHARUNDIR ." in files


def test_overview_exit_statuses_are_the_shared_ones():
    table = section(OVERVIEW, "EXIT STATUS")
    listed = [int(n) for n in re.findall(r"^\.It (\d+)$", table, re.M)]
    assert listed == sorted({exits.OK, exits.FAIL, exits.LSB_NOT_RUNNING, exits.LSB_UNKNOWN,
                             exits.USAGE, exits.CONFIG})


def _pieces(node):
    """A string expression as its fixed pieces, split where a value goes in
    (f-string fields, %-conversions, non-string operands of +); None when it is
    not a string expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        pieces, cur, at = [], "", 0
        for m in PERCENT.finditer(node.value):
            cur += node.value[at:m.start()]
            if m.group() == "%%":
                cur += "%"
            else:
                pieces.append(cur)
                cur = ""
            at = m.end()
        return pieces + [cur + node.value[at:]]
    if isinstance(node, ast.JoinedStr):
        pieces, cur = [], ""
        for v in node.values:
            if isinstance(v, ast.Constant):
                cur += v.value
            else:
                pieces.append(cur)
                cur = ""
        return pieces + [cur]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pieces(node.left), _pieces(node.right)
        if left is None and right is None:
            return None
        left, right = left or ["", ""], right or ["", ""]
        return left[:-1] + [left[-1] + right[0]] + right[1:]
    return None


@functools.lru_cache(maxsize=None)
def code_templates():
    """Every string expression of lib/asha and bin/asha-* as its fixed pieces:
    (templates of whole lines, templates of values). A template with fewer than
    three letters ("%s: %s", "{a} or {b}") would match nearly anything: it may
    only build a value, and only of single words."""
    out = set()
    files = sorted((REPO / "lib" / "asha").rglob("*.py")) + sorted((REPO / "bin").glob("asha-*"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            pieces = _pieces(node)
            if pieces is None:
                continue
            out.add(tuple(pieces))
            # A control socket answer reaches people without its OK/ERR and newline.
            first, last = pieces[0], pieces[-1]
            for word in ("OK ", "ERR "):
                if first.startswith(word):
                    trimmed = [first[len(word):]] + pieces[1:]
                    trimmed[-1] = trimmed[-1].rstrip("\n")
                    out.add(tuple(trimmed))
    lines = [t for t in out if len(t) == 1 or sum(c.isalpha() for c in "".join(t)) >= 3]
    # Words joined by blanks alone ("{a} {b}") would take any words.
    values = [t for t in out if len(t) > 1 and sum(c.isalpha() for c in "".join(t)) < 3
              and "".join(t).strip()]
    return lines, values


def _word(text):
    return not re.search(r"\s", text)


def _value_ok(text, within):
    """What may stand where the code puts a value: a word (a name, a number, a
    path), a configuration key and its value ("SARKDB /opt/sark/db/sark.db"),
    a line of the code itself, words joined by a short template of the code
    ("LAZY or LOOSE"), a list of these joined by '; ', or text from another
    program. within: the length of the line the value is in; only a shorter
    value is looked up as a line of its own, so the search ends."""
    if _word(text) or FOREIGN.fullmatch(text):
        return True
    key, _, rest = text.partition(" ")
    if key in KEYS and _word(rest):
        return True
    return len(text) < within and _compound(text)


@functools.lru_cache(maxsize=None)
def _compound(text):
    parts = text.split("; ")
    if len(parts) > 1 and all(_value_ok(p, len(text)) for p in parts):
        return True
    return from_code(text) or any(_fits(text, t, _word) for t in code_templates()[1])


def _fits(line, pieces, value_ok):
    """line is pieces[0], value, pieces[1], ..., value, pieces[-1], each value
    taken by value_ok."""
    if len(pieces) == 1:
        return line == pieces[0]
    if not all(p in line for p in pieces):
        return False
    head, tail = pieces[0], pieces[-1]
    if len(line) < len(head) + len(tail) or not line.startswith(head) or not line.endswith(tail):
        return False
    return _fill(line[len(head):len(line) - len(tail)], pieces[1:-1], value_ok)


def _fill(rest, middle, value_ok):
    """rest is value, middle[0], value, middle[1], ..., value."""
    if not middle:
        return value_ok(rest)
    lit, start = middle[0], 0
    while True:
        i = rest.find(lit, start)
        if i < 0:
            return False
        if value_ok(rest[:i]) and _fill(rest[i + len(lit):], middle[1:], value_ok):
            return True
        start = i + 1
        if start > len(rest):
            return False


@functools.lru_cache(maxsize=None)
def from_code(line):
    """True when some string of the code, its values filled in, makes line."""
    return any(_fits(line, t, lambda v: _value_ok(v, len(line))) for t in code_templates()[0])


def troubleshooting_quotes():
    """The lines TROUBLESHOOTING quotes: its .It Li "..." heads, its .Dl Li "..."
    lines and the lines of its literal blocks (ASHALOG lines, whole or cut)."""
    text = section(OVERVIEW, "TROUBLESHOOTING")
    quotes = [unescape(q) for q in re.findall(r'^\.(?:It|Dl) Li "(.*)"$', text, re.M)]
    for block in re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", text, re.M | re.S):
        for line in block.splitlines():
            m = LOG_LINE.match(unescape(line))
            assert m, f"asha(7) TROUBLESHOOTING: not a log line: {line!r}"
            quotes.append(m.group(1))
    return quotes


def test_troubleshooting_quotes_only_lines_the_code_prints():
    quotes = troubleshooting_quotes()
    assert len(quotes) >= 30, quotes
    missing = [q for q in quotes if not from_code(q)]
    assert not missing, "asha(7) quotes lines that no code prints:\n" + "\n".join(missing)


def test_troubleshooting_covers_each_tool():
    text = section(OVERVIEW, "TROUBLESHOOTING")
    for title in ("Heartbeat", "Split brain and ping nodes", "Takeover and release", "Asterisk",
                  "Data synchronisation", "Configuration"):
        assert f"\n.Ss {title}\n" in text


@pytest.mark.parametrize("line", [
    "peer asha-a gone: nothing heard on any path for 0.30 s",          # a word changed
    "peer asha-a dead: nothing heard on every path for 0.30 s",
    "takeover failed after 43 ms; resources released; next try in 1 s at the earliest",
    "sync from asha-a failed: VMAILDIR /x is empty on asha-a: kept this node's copy",
    "Asterisk (pid 56) is hung: 3 hang checks failed",
    "asked asha-hb to fail over to asha-b: handing over to asha-b and more",
])
def test_the_quote_check_refuses_lines_the_code_does_not_print(line):
    assert not from_code(line)


def test_the_quote_check_takes_lines_built_from_several_strings():
    # "sync from %s failed: %s" around an f-string reason; "; "-joined hang check parts
    assert from_code("sync from pbx1 failed: cannot reach pbx1 (192.168.1.1) over ssh: "
                     "connect to host 192.168.1.1 port 22: Connection refused")
    assert from_code("hang check 2 of 3 failed for Asterisk (pid 9): SIP no answer within 0.3 s; "
                     "CLI no answer within 0.3 s")
