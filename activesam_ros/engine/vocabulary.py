"""Vocabularies: class lines with comma-separated aliases, and their queries.

A vocabulary line such as ``"boat, ship"`` is one class with two queries; a
class's score is the maximum over its queries. The same text form is used by
vocabulary files (one class per line), ``--vocab "a; b, c"`` on the command
line (semicolons between classes) and the node's ``vocabulary`` parameter
(one string per class).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

BACKGROUND = "background"


class VocabularyError(ValueError):
    """A vocabulary that cannot be used; the message says why."""


def _split_aliases(line: str) -> Tuple[str, ...]:
    return tuple(a.strip() for a in line.split(",") if a.strip())


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes, each a tuple of one or more aliases."""

    classes: Tuple[Tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not self.classes:
            raise VocabularyError("the vocabulary is empty: give at least one class")
        seen = {}
        for index, aliases in enumerate(self.classes):
            if not aliases:
                raise VocabularyError(f"class {index} has no name")
            key = ", ".join(a.lower() for a in aliases)
            if key in seen:
                raise VocabularyError(
                    f"duplicate class {key!r} at lines {seen[key]} and {index}"
                )
            seen[key] = index

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> "Vocabulary":
        """One class per non-empty line; ``#`` starts a comment line."""
        classes = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            aliases = _split_aliases(line)
            if aliases:
                classes.append(aliases)
        return cls(tuple(classes))

    @classmethod
    def from_string(cls, text: str) -> "Vocabulary":
        """``"person; car, automobile; dog"``: semicolons separate classes."""
        return cls.from_lines(text.split(";"))

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Vocabulary":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise VocabularyError(f"cannot read vocabulary file {str(path)!r}: {exc.strerror}") from exc
        return cls.from_lines(text.splitlines())

    @classmethod
    def coerce(cls, vocabulary: Union["Vocabulary", Sequence[str], str]) -> "Vocabulary":
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
        if isinstance(vocabulary, str):
            return cls.from_string(vocabulary)
        return cls.from_lines(vocabulary)

    @property
    def names(self) -> Tuple[str, ...]:
        """One display name per class: its first alias."""
        return tuple(aliases[0] for aliases in self.classes)

    @property
    def lines(self) -> Tuple[str, ...]:
        return tuple(", ".join(aliases) for aliases in self.classes)

    @property
    def queries(self) -> Tuple[str, ...]:
        """Every alias of every class, in order: one text prompt each."""
        return tuple(a for aliases in self.classes for a in aliases)

    @property
    def query_class(self) -> Tuple[int, ...]:
        """The class index of each query."""
        return tuple(i for i, aliases in enumerate(self.classes) for _ in aliases)

    @property
    def background_index(self) -> Optional[int]:
        """Index of the class named ``background``, if there is one."""
        for i, aliases in enumerate(self.classes):
            if aliases[0].lower() == BACKGROUND:
                return i
        return None

    def __len__(self) -> int:
        return len(self.classes)


def shipped_names() -> List[str]:
    """The vocabularies that come with the package, by name (``ade20k``, ``indoor``, ...)."""
    folder = resources.files("activesam_ros").joinpath("vocabularies")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


_SHORT_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def load_vocabulary_file(name: str) -> Vocabulary:
    """A vocabulary file by path, or a shipped vocabulary by name."""
    if _SHORT_NAME.match(name) and not Path(name).exists():
        shipped = resources.files("activesam_ros").joinpath("vocabularies", f"{name}.txt")
        if not shipped.is_file():
            raise VocabularyError(
                f"{name!r} is neither a file nor a shipped vocabulary ({', '.join(shipped_names())})"
            )
        return Vocabulary.from_lines(shipped.read_text(encoding="utf-8").splitlines())
    return Vocabulary.from_file(Path(name).expanduser())


# Lexical canonicalisation (method doc section 1.1): a name's key is its
# lowercase with non-alphanumerics removed; a key found in these tables is
# replaced, any other name is kept exactly as written.
COMPOUND_SPLITS = {
    "trafficlight": "traffic light", "trafficsign": "traffic sign",
    "pottedplant": "potted plant", "tvmonitor": "tv monitor",
    "windowpane": "window pane", "coffeetable": "coffee table",
    "streetlight": "street light", "signboard": "sign board",
    "arcademachine": "arcade machine", "kitchenisland": "kitchen island",
    "dirttrack": "dirt track", "chestofdrawers": "chest of drawers",
    "televisionreceiver": "television receiver", "conveyerbelt": "conveyor belt",
    "bedclothes": "bed clothes", "sportsball": "sports ball",
    "baseballbat": "baseball bat", "baseballglove": "baseball glove",
    "tennisracket": "tennis racket", "wineglass": "wine glass",
    "cellphone": "cell phone", "hairdrier": "hair drier",
    "firehydrant": "fire hydrant", "stopsign": "stop sign",
    "parkingmeter": "parking meter", "aeroplane": "airplane",
    "diningtable": "dining table", "motorbike": "motorcycle",
}
WORD_ORDER_REPAIRS = {
    "wallbrick": "brick wall", "wallconcrete": "concrete wall",
    "wallstone": "stone wall", "walltile": "tile wall", "wallwood": "wooden wall",
    "wallpanel": "wall panel", "floormarble": "marble floor",
    "floorstone": "stone floor", "floortile": "tile floor",
    "floorwood": "wooden floor", "ceilingtile": "tile ceiling",
    "windowblind": "window blind",
}
AMBIGUOUS_NAMES = {
    "tie": "necktie", "remote": "remote control", "mouse": "computer mouse",
    "monitor": "computer monitor", "ashcan": "trash can", "plaything": "toy",
    "buffet": "sideboard",
}
_CANONICAL = {**AMBIGUOUS_NAMES, **WORD_ORDER_REPAIRS, **COMPOUND_SPLITS}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def canonicalize(name: str) -> str:
    """The string SAM 3's text encoder sees for ``name``."""
    return _CANONICAL.get(_NON_ALNUM.sub("", name.lower()), name)
