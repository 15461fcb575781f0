"""Reading the documentation from tests: its pages and the tables under their headings."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def pages() -> List[Path]:
    """README.md and every page under docs/."""
    return [README] + sorted(DOCS.glob("*.md"))


def table(page: str, heading: str) -> Dict[str, List[str]]:
    """The first table under ``heading`` (a whole heading line) of ``page``
    (a path relative to the repository): first cell without its backticks ->
    the other cells, for the rows whose first cell is code."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows: Dict[str, List[str]] = {}
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0].startswith("`"):
                rows[cells[0].strip("`")] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows
