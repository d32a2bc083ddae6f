"""Every `evolora` command the docs show — in README.md and docs/, in shell blocks and inline — is one a user
can paste: its flags are the CLI's, and the study it names (with its `--set` overrides) loads from an empty
directory through the installed package. The commands that answer at once run as written there, in a fresh
process. The synopses in README.md and docs/cli.md name only real flags, and docs/cli.md names every flag of
every command."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from evolora.orchestrator.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
STUDY_COMMANDS = (
    "run",
    "sweep",
    "reproduce",
)  # their first argument is a study, --set its overrides
AT_ONCE = ("schema", "terms", "--version", "studies")  # no model, no store written: run as written


def _commands() -> list[tuple[str, str]]:
    """(where, command) for every `evolora …` a doc shows: lines of fenced blocks (continuations joined, a
    trailing comment dropped) and inline code spans (line breaks inside them joined)."""
    found = []
    for f in DOCS:
        text = f.read_text(encoding="utf-8")
        where = str(f.relative_to(ROOT))
        for m in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
            for line in m.group(1).replace("\\\n", " ").splitlines():
                line = re.split(r"\s#\s", line)[0].strip()
                if re.match(r"(\.venv/bin/)?evolora( |$)", line):
                    found.append((where, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for m in re.finditer(r"`((?:\.venv/bin/)?evolora [^`]+)`", prose):
            found.append((where, " ".join(m.group(1).split())))
    return found


def _concrete(cmd: str) -> bool:
    """A command as a user pastes it, not a synopsis or a fragment of prose: no optional groups, ellipses,
    alternatives or arrows, and more than the command's name."""
    return not re.search(r"[\[\]|…→]|\.\.\.", cmd) and len(cmd.split()) > 2


def _argv(cmd: str) -> list[str]:
    cmd = cmd.split(" > ")[0]  # a redirect is the shell's
    cmd = re.sub(r"<[^>]+>", PLACEHOLDER, cmd)  # <printed run id>, RUN_ID: what the user fills in
    cmd = re.sub(r"\b[A-Z][A-Z_]{2,}\b", PLACEHOLDER, cmd)
    cmd = re.sub(r"(--seed|--trial) [A-Z]\b", r"\1 0", cmd)  # --seed S: any seed
    return shlex.split(cmd)[1:]


PLACEHOLDER = "placeholder"

CONCRETE = [(w, c) for w, c in _commands() if _concrete(c)]


def test_the_docs_show_commands_to_check():
    assert len(CONCRETE) > 40 and any(c.startswith(".venv/bin/evolora") for _, c in CONCRETE)


@pytest.mark.parametrize("where,cmd", CONCRETE, ids=[f"{w}:{c[:60]}" for w, c in CONCRETE])
def test_every_command_the_docs_show_parses_and_its_study_loads(where, cmd, tmp_path, monkeypatch):
    from evolora.orchestrator.study.load import load_study

    argv = _argv(cmd)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{where}: `{cmd}` is not a command evolora takes (exit {e.code})")
    if args.command in STUDY_COMMANDS and PLACEHOLDER not in args.study:
        monkeypatch.chdir(tmp_path)  # an empty directory: a shipped study is found by name
        load_study(args.study, args.overrides, args.seed)


AT_ONCE_SHOWN = sorted(
    {c for _, c in _commands() if not re.search(r"[\[\]|…]", c) and _argv(c)[0] in AT_ONCE}
)


def test_the_docs_show_commands_that_answer_at_once():
    assert {"evolora --version", "evolora schema", "evolora terms"} <= set(AT_ONCE_SHOWN)


@pytest.mark.parametrize("cmd", AT_ONCE_SHOWN)
def test_the_commands_that_answer_at_once_run_as_written_from_an_empty_directory(cmd, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("EVOLORA_STORAGE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "evolora", *_argv(cmd)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"`{cmd}` exited {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip()


def _synopses(path: Path) -> dict[str, set[str]]:
    """Flags named on each synopsis line (`evolora COMMAND [--flag …]`) of a doc's plain fenced blocks."""
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"```\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
        for line in m.group(1).splitlines():
            line = re.split(r"\s#\s", line)[0]
            g = re.match(r"\s*evolora (\w+)", line)
            if g:
                flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))
                out.setdefault(g.group(1), set()).update(flags)
    return out


def _parser_flags() -> dict[str, set[str]]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {
        name: {o for a in p._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        for name, p in sub.choices.items()
    }


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_synopses_name_only_real_flags(doc):
    flags = _parser_flags()
    for command, named in _synopses(ROOT / doc).items():
        assert command in flags, f"{doc}: `evolora {command}` is not a command"
        unknown = named - flags[command]
        assert not unknown, f"{doc}: `evolora {command}` has no {sorted(unknown)}"


def test_the_cli_page_names_every_flag_of_every_command():
    shown = _synopses(ROOT / "docs/cli.md")
    missing = {
        command: sorted(flags - shown.get(command, set()))
        for command, flags in _parser_flags().items()
        if flags - shown.get(command, set())
    }
    assert not missing, f"docs/cli.md's synopses leave out: {missing}"
