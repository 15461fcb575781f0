"""Vocabularies: class lines with comma-separated aliases, and their queries.

A vocabulary line such as ``"boat, ship"`` is one class with two queries; a
class's score is the maximum over its queries. The same text form is used by
vocabulary files (one class per line), ``--vocab "a; b, c"`` on the command
line (semicolons between classes) and the node's ``vocabulary`` parameter
(one string per class).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from .limits import MAX_ALIAS_CHARS, MAX_QUERIES, MAX_VOCABULARY_FILE_BYTES, InputError
from .paths import PathError, read_regular, user_path

BACKGROUND = "background"


class VocabularyError(ValueError):
    """A vocabulary that cannot be used; the message says why."""


class VocabularyFileError(VocabularyError, InputError):
    """A vocabulary file that cannot be read (missing, not a regular file, too large)."""


_INVISIBLE = "\ufeff\u200b"
"""A byte order mark and a zero-width space: invisible at either end of a name, so dropped there."""


def _clean(text: str) -> str:
    return text.strip().strip(_INVISIBLE).strip()


def _split_aliases(line: str) -> Tuple[str, ...]:
    return tuple(_clean(a) for a in line.split(",") if _clean(a))


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (C0, DEL, C1 with NEL) and the line and paragraph
separators: a line break in any of its spellings never sits inside a class name."""


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes, each a tuple of one or more aliases.

    ``origin`` names where each class came from ("line 7 of indoor.txt",
    "class 3") for error messages; it takes no part in comparisons. The
    limits (``engine.limits``) hold however the vocabulary was made.
    """

    classes: Tuple[Tuple[str, ...], ...]
    origin: Tuple[str, ...] = field(default=(), compare=False, repr=False)

    def _where(self, index: int) -> str:
        return self.origin[index] if index < len(self.origin) else f"class {index + 1}"

    def __post_init__(self) -> None:
        if not self.classes:
            raise VocabularyError("the vocabulary is empty: give at least one class")
        queries = sum(len(aliases) for aliases in self.classes)
        if queries > MAX_QUERIES:
            raise VocabularyError(f"the vocabulary has {queries} class names (aliases included); "
                                  f"the limit is {MAX_QUERIES}")
        seen = {}
        for index, aliases in enumerate(self.classes):
            if not aliases:
                raise VocabularyError(f"{self._where(index)} has no name")
            for alias in aliases:
                if _CONTROL.search(alias):
                    raise VocabularyError(f"{self._where(index)}: {alias!r} contains a line break or another "
                                          "control character; give one class per item (or line)")
                if len(alias) > MAX_ALIAS_CHARS:
                    raise VocabularyError(f"{self._where(index)}: a class name of {len(alias)} characters; "
                                          f"the limit is {MAX_ALIAS_CHARS}")
            key = ", ".join(a.lower() for a in aliases)
            if key in seen:
                raise VocabularyError(
                    f"duplicate class {key!r} at {self._where(seen[key])} and {self._where(index)}"
                )
            seen[key] = index

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "") -> "Vocabulary":
        """The text of a vocabulary file: one class per non-empty line;
        ``#`` starts a comment line. ``source`` names the file in errors."""
        classes, origin = [], []
        for number, line in enumerate(lines, start=1):
            line = _clean(line)
            if not line or line.startswith("#"):
                continue
            aliases = _split_aliases(line)
            if aliases:
                classes.append(aliases)
                origin.append(f"line {number}" + (f" of {source}" if source else ""))
        return cls(tuple(classes), tuple(origin))

    @classmethod
    def from_classes(cls, items: Iterable[str]) -> "Vocabulary":
        """One class per item (the node's ``vocabulary`` parameter, a Python
        list, the parts of ``--vocab``); blank items are skipped. There are
        no comments here: an item starting with ``#`` is refused rather than
        dropped, and an item holding a line break too."""
        classes, origin = [], []
        for number, item in enumerate(items, start=1):
            text = _clean(item)
            if not text:
                continue
            if text.startswith("#"):
                raise VocabularyError(f"class {number} ({text!r}) starts with '#': comments belong in "
                                      "vocabulary files, not in a list of classes")
            classes.append(_split_aliases(text))
            origin.append(f"class {number}")
        return cls(tuple(classes), tuple(origin))

    @classmethod
    def from_string(cls, text: str) -> "Vocabulary":
        """``"person; car, automobile; dog"``: semicolons separate classes."""
        return cls.from_classes(text.split(";"))

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "Vocabulary":
        """A vocabulary file: a regular file of UTF-8 text, at most
        ``MAX_VOCABULARY_FILE_BYTES`` long."""
        shown = repr(str(path)) if len(str(path)) <= 80 else repr(str(path)[:77] + "...")
        data = read_regular(path, MAX_VOCABULARY_FILE_BYTES, f"vocabulary file {shown}", VocabularyFileError)
        try:
            text = data.decode("utf-8-sig")  # a byte order mark is not part of the first class
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise VocabularyError(f"vocabulary file {shown} is not UTF-8 text "
                                  f"(byte 0x{data[exc.start]:02x} on line {line})") from None
        # Lines end at \n (\r\n, \r): other line separators inside a line are refused, not split on.
        return cls.from_lines(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), source=Path(path).name)

    @classmethod
    def coerce(cls, vocabulary: Union["Vocabulary", Sequence[str], str]) -> "Vocabulary":
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
        if isinstance(vocabulary, str):
            return cls.from_string(vocabulary)
        return cls.from_classes(vocabulary)

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


def is_shipped_name(name: str) -> bool:
    """Whether ``name`` names a shipped vocabulary (not a path)."""
    return bool(_SHORT_NAME.match(name)) and name in shipped_names()


def load_vocabulary_file(name: str) -> Vocabulary:
    """A shipped vocabulary by name (``indoor``), else a file by path. A
    shipped name wins over a file of that name in the working directory
    (write ``./indoor`` for the file): a node's working directory is not
    the user's."""
    if is_shipped_name(name):
        shipped = resources.files("activesam_ros").joinpath("vocabularies", f"{name}.txt")
        return Vocabulary.from_lines(shipped.read_text(encoding="utf-8").splitlines(), source=f"{name}.txt")
    try:
        path = user_path(name, "vocabulary file")
    except PathError as exc:
        raise VocabularyError(str(exc)) from None
    if _SHORT_NAME.match(name) and not os.path.exists(path):
        raise VocabularyError(f"{name!r} is neither a file nor a shipped vocabulary ({', '.join(shipped_names())})")
    return Vocabulary.from_file(path)


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
