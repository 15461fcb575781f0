"""The manual holds: README.md's first screen, every relative link and anchor
of README.md and docs/*.md, every `activesam` flag they mention (against
the real --help of its command), the words the product does not use, and
the Python API example, run as written."""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from conftest import photo_path
from docs_support import DOCS, README, ROOT, pages

from activesam_ros.cli import build_parser

FIRST_SCREEN = 60
SETUP_AND_DEMO = "bash scripts/setup.sh && bash scripts/demo.sh"
SETUP_AND_TESTS = "bash scripts/setup.sh && .venv/bin/python -m pytest"

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

OTHER_TOOLS_FLAGS = {
    # flag: the tool the docs use it with (pip, venv, rosdep, colcon, ros2, torchrun, fastdds)
    "--upgrade": "pip", "--index-url": "pip", "--user": "pip", "--system-site-packages": "venv",
    "--from-paths": "rosdep", "--ignore-src": "rosdep", "--skip-keys": "rosdep",
    "--symlink-install": "colcon", "--packages-select": "colcon", "--event-handlers": "colcon",
    "--pytest-args": "colcon", "--verbose": "colcon", "--ros-args": "ros2", "--show-args": "ros2 launch",
    "--log-level": "ros2", "--nproc-per-node": "torchrun", "--no-python": "torchrun", "--nnodes": "torchrun",
    "--rdzv-backend": "torchrun", "--rdzv-endpoint": "torchrun", "--rdzv-id": "torchrun",
    "--standalone": "torchrun", "--server-id": "fastdds",
}
NOT_THE_PRODUCT = ("../shared", "/work/", "/tmp/ros2", "the issue", "device machine", "was not drawn",
                   "missed", "earlier version", "another developer", "this project")


# -- helpers -----------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> Set[str]:
    out: Set[str] = set()
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for line in text.splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base, n = slug(match.group(1)), 0
            while (base if n == 0 else f"{base}-{n}") in out:
                n += 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> Iterator[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for match in LINK.finditer(text):
        yield match.group(1) or match.group(2)


def command_lines(page: Path) -> Iterator[str]:
    """The lines of the page's code blocks, continuation lines joined, comments dropped."""
    for block in FENCE.findall(page.read_text(encoding="utf-8")):
        joined = re.sub(r"\\\n\s*", " ", "\n".join(block.splitlines()[1:-1]))
        for line in joined.splitlines():
            yield line.split(" # ")[0]


def help_texts() -> Dict[str, str]:
    """``activesam --help`` and each subcommand's, as the user sees them."""
    parser = build_parser()
    out = {"": parser.format_help()}
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out.update({name: p.format_help() for name, p in sub.choices.items()})
    return out


def documented(flag: str, help_text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def flag_uses() -> List[Tuple[str, str, str]]:
    """(page, command or "" for any, flag) for every flag the manual mentions."""
    uses = []
    for page in pages():
        name = page.relative_to(ROOT).as_posix()
        for line in command_lines(page):
            match = re.search(r"\bactivesam ([a-z]+)\b", line)
            if match:
                uses += [(name, match.group(1), f) for f in FLAG.findall(line[match.end():])]
        prose = FENCE.sub("", page.read_text(encoding="utf-8"))
        for code in INLINE_CODE.findall(prose):
            match = re.search(r"\bactivesam ([a-z]+)\b", code)
            flags = FLAG.findall(code[match.end():] if match else code)
            uses += [(name, match.group(1) if match else "", f) for f in flags]
    return uses


# -- README ------------------------------------------------------------------------------------

def test_the_first_screen_has_what_it_is_the_two_commands_and_where_to_go_next():
    lines = README.read_text(encoding="utf-8").splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    after_next = next(i for i in headings if i > lines.index("## Where to go next"))
    first_screen = "\n".join(lines[:after_next])
    assert after_next <= FIRST_SCREEN, f"the first screen is {after_next} lines"
    assert SETUP_AND_DEMO in first_screen and SETUP_AND_TESTS in first_screen
    assert "![" in first_screen  # a picture
    for page in sorted(DOCS.glob("*.md")):  # every reference page is reachable from it
        assert f"(docs/{page.name})" in first_screen, page.name


def test_ci_runs_the_readme_test_command():
    assert SETUP_AND_TESTS in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_cites_activesam_and_sam3_and_names_the_licence():
    text = README.read_text(encoding="utf-8")
    assert "eprint        = {2606.16996}" in text and "eprint        = {2511.16719}" in text
    assert (ROOT / "LICENSE").is_file() and "(LICENSE)" in text


# -- every page --------------------------------------------------------------------------------

def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in pages():
        for target in links(page):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_every_flag_the_manual_mentions_is_in_the_help_of_its_command():
    helps = help_texts()
    uses = flag_uses()
    assert len({u[2] for u in uses}) > 40, "the flag reader found too little"
    wrong = []
    for page, command, flag in uses:
        if command:
            assert command in helps, f"{page}: activesam {command} is not a command"
            ok = documented(flag, helps[command])
        else:
            ok = flag in OTHER_TOOLS_FLAGS or any(documented(flag, text) for text in helps.values())
        if not ok:
            wrong.append(f"{page}: {('activesam ' + command) if command else ''} {flag}")
    assert not wrong, wrong


def test_the_flag_check_refuses_an_unknown_flag():
    helps = help_texts()
    assert documented("--overwrite", helps["segment"]) and not documented("--overwrite", helps["bag"])
    assert not documented("--mode-x", helps["segment"]) and not documented("--mod", helps["segment"])


def test_the_manual_speaks_of_the_product_only():
    found = [f"{page.relative_to(ROOT)}: {word!r}" for page in pages()
             for word in NOT_THE_PRODUCT if word in page.read_text(encoding="utf-8")]
    assert not found, found


# -- the Python API example ---------------------------------------------------------------------

@pytest.mark.slow
def test_the_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (DOCS / "python-api.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    shutil.copy(photo_path("chelsea.png"), tmp_path / "photo.jpg")  # OpenCV reads by content
    monkeypatch.chdir(tmp_path)
    scope: Dict[str, object] = {}
    exec(compile(code, "docs/python-api.md", "exec"), scope)
    result = scope["result"]
    assert list(result.vocabulary.names) == ["background", "dog", "bicycle"]
    assert scope["labels"].dtype.name == "uint8"
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("(300, 451) int32")
