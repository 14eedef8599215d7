"""Each tool's --help and its manual page say the same thing: every usage line
of the docopt string in bin/asha-* has a SYNOPSIS line in man/asha-*.8 with the
same commands, arguments and options (each optional or not alike), and the
options the usage explains are the options the page lists, with the same
arguments.

Both sides are read into the same form: per synopsis line, the set of options
(name, argument, optional) and the sequence of commands (alternatives) and
arguments. Option order is free (mdoc style lists flags first); `-h | --help |
--version` is a usage line of its own that pages do not repeat in SYNOPSIS."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = sorted(p.name for p in (REPO / "bin").glob("asha-*"))
HELP = {"-h", "--help", "--version"}


def docstring(tool):
    return ast.get_docstring(ast.parse((REPO / "bin" / tool).read_text()), clean=False)


def section(doc, title):
    """The lines of docopt's section `title:` up to the next blank line."""
    lines = doc.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert lines, title
    return lines


def docopt_options(doc):
    """{name: (canonical name, takes an argument)} from the Options: section."""
    out = {}
    for line in section(doc, "Options"):
        spec = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if not spec.startswith("-"):
            continue                        # a continued description
        names = [(m.group(1), bool(m.group(2))) for m in
                 re.finditer(r"(--?[\w-]+)(?:[ =]([A-Z][A-Z0-9_]*|<[\w-]+>))?", spec)]
        for name, has_arg in names:
            out[name] = (names[0][0], has_arg)
    return out


def usage_lines(tool):
    """The parsed usage lines of tool, except the --help/--version line."""
    doc = docstring(tool)
    options = docopt_options(doc)
    lines = []
    for line in section(doc, "Usage"):
        words = line.split()
        assert words[0] == tool, line
        tokens = re.findall(r"[\[\]()|]|[^\s\[\]()|]+", " ".join(words[1:]))
        if set(tokens) - set("()|") <= HELP:
            continue
        items, rest = parse_usage(tokens, options, optional=False, line=line)
        assert rest == [], line
        lines.append(canonical(items))
    return lines


def parse_usage(tokens, options, optional, line):
    """Items of tokens up to a closing bracket: ("opt", name, ARG, optional),
    ("cmd", (alternatives...), optional), ("arg", NAME, optional)."""
    items = []
    while tokens and tokens[0] not in "])":
        t, tokens = tokens[0], tokens[1:]
        if t == "[":
            sub, tokens = parse_usage(tokens, options, True, line)
            assert tokens[:1] == ["]"], line
            tokens = tokens[1:]
            items += sub
        elif t == "(":
            words = []
            while tokens[0] != ")":
                if tokens[0] != "|":
                    assert re.fullmatch(r"[a-z][a-z-]*", tokens[0]), \
                        f"{line}: only alternative commands are understood in ( )"
                    words.append(tokens[0])
                tokens = tokens[1:]
            tokens = tokens[1:]
            items.append(("cmd", tuple(words), optional))
        elif t.startswith("-"):
            assert t in options, f"{line}: {t} is not in the Options: section"
            name, has_arg = options[t]
            arg = None
            if has_arg:
                arg, tokens = tokens[0], tokens[1:]
            items.append(("opt", name, arg, optional))
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*|<[\w-]+>", t):
            items.append(("arg", t.strip("<>").upper(), optional))
        else:
            assert re.fullmatch(r"[a-z][a-z-]*", t), f"{line}: {t!r}"
            items.append(("cmd", (t,), optional))
    return items, tokens


def canonical(items):
    return (sorted(i for i in items if i[0] == "opt"), [i for i in items if i[0] != "opt"])


def page(tool):
    return (REPO / "man" / f"{tool}.8").read_text()


def synopsis_lines(tool, options):
    """The parsed SYNOPSIS lines of man/tool.8; option names as the usage names them."""
    text = page(tool).split("\n.Sh SYNOPSIS\n", 1)[1].split("\n.Sh ", 1)[0]
    lines = []
    for macro_line in text.splitlines():
        assert macro_line.startswith("."), f"{tool}.8 SYNOPSIS: text line {macro_line!r}"
        tokens = macro_line[1:].split()
        if tokens[0] == "Nm":
            assert tokens == ["Nm"], macro_line
            lines.append([])
            continue
        assert lines, f"{tool}.8 SYNOPSIS: {macro_line!r} before the first .Nm"
        lines[-1] += mdoc_items(tokens, optional=False, options=options, line=macro_line)
    return [canonical(items) for items in lines]


def mdoc_items(tokens, optional, options, line):
    """Items of one mdoc macro line, in the form of parse_usage. An Op runs to
    the end of the line. After an option's argument, `Ns` glues a refinement of
    it that docopt cannot write (`Ar addr Ns Op / Ns Ar prefix`): skipped."""
    items = []
    while tokens:
        t, tokens = tokens[0], tokens[1:]
        if t == "Op":
            return items + mdoc_items(tokens, True, options, line)
        if t == "Fl":
            name, tokens = "-" + tokens[0], tokens[1:]
            arg = None
            if tokens[:1] == ["Ar"]:
                arg, tokens = tokens[1].upper(), tokens[2:]
                if tokens[:1] == ["Ns"]:
                    tokens = []
            items.append(("opt", options.get(name, (name,))[0], arg, optional))
        elif t == "Cm":
            words = []
            while tokens and not re.fullmatch(r"[A-Z][a-z]", tokens[0]):
                if tokens[0] != "|":
                    words.append(tokens[0])
                tokens = tokens[1:]
            items.append(("cmd", tuple(words), optional))
        elif t == "Ar":
            items.append(("arg", tokens[0].upper(), optional))
            tokens = tokens[1:]
        else:
            pytest.fail(f"SYNOPSIS macro {t} not understood in {line!r}")
    return items


def page_options(tool):
    """{name: takes an argument} of the `.It Fl` entries of the page."""
    out = {}
    for line in page(tool).splitlines():
        if line.startswith(".It Fl "):
            for part in line[len(".It "):].split(" , "):
                words = part.split()
                assert words[0] == "Fl", line
                out["-" + words[1]] = words[2:3] == ["Ar"]
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_usage_and_synopsis_agree(tool):
    options = docopt_options(docstring(tool))
    usage = usage_lines(tool)
    synopsis = synopsis_lines(tool, options)
    assert usage, tool
    assert len(synopsis) == len(usage), \
        f"{tool}: {len(usage)} usage lines in bin/{tool}, {len(synopsis)} SYNOPSIS lines in {tool}.8"
    for n, (u, s) in enumerate(zip(usage, synopsis), 1):
        assert s == u, f"{tool} line {n}: SYNOPSIS {s} but usage {u}"


@pytest.mark.parametrize("tool", TOOLS)
def test_usage_options_and_page_options_agree(tool):
    usage = {name: has_arg for name, (_, has_arg) in docopt_options(docstring(tool)).items()
             if name not in HELP}
    documented = {name: has_arg for name, has_arg in page_options(tool).items() if name not in HELP}
    assert documented == usage, tool


@pytest.mark.parametrize("tool", TOOLS)
def test_help_prints_the_usage_that_was_compared(tool):
    p = subprocess.run([sys.executable, str(REPO / "bin" / tool), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.strip() == docstring(tool).strip()


def test_a_changed_synopsis_is_noticed():
    """The comparison itself: a page that drops an option, makes one required,
    or names another command, no longer agrees."""
    options = docopt_options(docstring("asha-hb"))
    usage = usage_lines("asha-hb")

    def parsed(macro_lines):
        items = []
        for line in macro_lines:
            items += mdoc_items(line[1:].split(), False, options, line)
        return canonical(items)

    assert parsed([".Op Fl c Ar file", ".Op Fl v", ".Cm run | start"]) == usage[0]
    assert parsed([".Op Fl -config Ar file", ".Op Fl v", ".Cm run | start"]) == usage[0]
    assert parsed([".Op Fl c Ar file", ".Cm run | start"]) != usage[0]
    assert parsed([".Op Fl c Ar file", ".Fl v", ".Cm run | start"]) != usage[0]
    assert parsed([".Op Fl c Ar file", ".Op Fl v", ".Cm run | begin"]) != usage[0]
    assert parsed([".Op Fl c Ar file", ".Op Fl v", ".Op Cm run | start"]) != usage[0]
    assert parsed([".Op Fl c", ".Op Fl v", ".Cm run | start"]) != usage[0]
