"""The documentation keeps up with the code: every key the config module knows
is in asha.conf(5), with its default and an example that the parser takes, and
in asha.conf.example; the example file loads cleanly; the man pages lint clean."""

import glob
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asha import config
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
