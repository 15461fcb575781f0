"""The label image's meaning, in the formats mapping stacks read.

A labels image holds class indices (``render.labels``); a mapping stack
needs to know which values are classes, what they are called, which are
invalid and which classes are objects, surfaces or dynamic. One
:class:`LabelSpace` says that, and writes it three ways:

- a Hydra label space (YAML): the keys Hydra's ``Labelspace`` config
  declares (MIT-SPARK/Hydra ``src/common/labelspace.cpp``; the same keys
  at the top level of ``LabelSpaceConfig`` and ``PipelineConfig`` in
  earlier releases): ``total_semantic_labels`` (an unsigned count),
  ``dynamic_labels``, ``invalid_labels``, ``object_labels`` and
  ``surface_places_labels`` (sets of unsigned 32-bit labels) and
  ``label_names`` (a list of ``{label, name}`` maps);
- a colour table (CSV ``name,red,green,blue,alpha,id``), as
  Kimera-Semantics reads it (``SemanticLabel2Color``: columns by position,
  ``atoi`` of each, a ``uint8_t`` id) and Hydra reads it
  (``SemanticColorMap::fromCsv``: columns by header name): colour = the
  class's colour in the overlay and the colour labels image
  (``render.palette``), id = its index in the labels image;
- the fields of a ``semantic_inference_msgs/Labelspace`` message
  (``names``: one per label value, ``invalid``, ``metadata``: JSON with the
  role lists under Hydra's key names), which Hydra's ROS interface reads
  once at start-up (``RosLabelspace``).

Invalid are the labels image's unlabeled value and the index of the class
named ``background`` (its pixels are the unlabeled value after background
calibration; without calibration it is still not a thing to map).

Roles come from the user by class name: any alias of a class, in any case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..engine.limits import MAX_ROLES_FILE_BYTES, InputError
from ..engine.paths import read_regular
from ..engine.vocabulary import Vocabulary
from .labels import MONO, unlabeled_value
from .palette import PALETTE_SIZE, UNLABELED, class_colors

ROLES = ("objects", "surfaces", "dynamic")
"""The class roles a user gives, by the names the flags and the roles file use."""

HYDRA_ROLE_KEYS = {"objects": "object_labels", "surfaces": "surface_places_labels", "dynamic": "dynamic_labels"}
"""Hydra's name of each role's label list (YAML key and message metadata key)."""

KIMERA_HEADER = ("name", "red", "green", "blue", "alpha", "id")
"""The colour table's columns, in the order Kimera-Semantics reads them by position."""

OPAQUE = 255
"""The alpha of every colour: Kimera looks colours up with alpha 255."""


class LabelSpaceError(ValueError):
    """Roles or a vocabulary a label space cannot be made of; one line saying why."""


@dataclass(frozen=True)
class Roles:
    """Class indices by role (sorted, no repeats)."""

    objects: Tuple[int, ...] = ()
    surfaces: Tuple[int, ...] = ()
    dynamic: Tuple[int, ...] = ()


def class_index(vocabulary: Vocabulary, name: str) -> int:
    """The class one of whose aliases is ``name`` (case-insensitive), -1 if
    none; LabelSpaceError if several."""
    key = name.strip().casefold()
    found = [i for i, aliases in enumerate(vocabulary.classes) if key in (a.casefold() for a in aliases)]
    if not found:
        return -1
    if len(found) > 1:
        raise LabelSpaceError(f"{name!r} names several classes of the vocabulary: "
                              + ", ".join(repr(vocabulary.names[i]) for i in found))
    return found[0]


def resolve_roles(vocabulary: Vocabulary, named: Mapping[str, Sequence[str]], strict: bool = True) -> Roles:
    """Roles from class names (``{"objects": ["chair", ...], ...}``); refuses
    an unknown role, a name that is no class (unless not ``strict``: then it
    is left out, as the node does with a vocabulary changed live), the
    background class in a role, and a dynamic class that is also an object
    or surface (Hydra drops dynamic labels before it maps anything)."""
    unknown_roles = sorted(set(named) - set(ROLES))
    if unknown_roles:
        raise LabelSpaceError(f"unknown role {unknown_roles[0]!r}; the roles are {', '.join(ROLES)}")
    indices: Dict[str, Tuple[int, ...]] = {}
    missing: List[str] = []
    for role in ROLES:
        found = set()
        for name in named.get(role, ()):
            index = class_index(vocabulary, name)
            if index < 0:
                missing.append(repr(name.strip()))
            elif index == vocabulary.background_index:
                raise LabelSpaceError(f"{role}: {name.strip()!r} is the background class, which is invalid "
                                      "(its pixels are unlabeled), not a thing to map")
            else:
                found.add(index)
        indices[role] = tuple(sorted(found))
    if missing and strict:
        raise LabelSpaceError(f"not a class of the vocabulary: {', '.join(missing[:5])}"
                              + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    both = sorted(set(indices["dynamic"]) & (set(indices["objects"]) | set(indices["surfaces"])))
    if both:
        raise LabelSpaceError(f"{vocabulary.names[both[0]]!r} is dynamic and also an object or surface; "
                              "dynamic classes are left out of the map, so give it one of the two")
    return Roles(**indices)


def unmatched(vocabulary: Vocabulary, named: Mapping[str, Sequence[str]]) -> List[str]:
    """The names of ``named`` that name no class of ``vocabulary``."""
    return [name.strip() for role in ROLES for name in named.get(role, ()) if class_index(vocabulary, name) < 0]


def parse_roles(text: str, source: str) -> Dict[str, List[str]]:
    """The class names of a roles file: YAML with the keys ``objects``,
    ``surfaces`` and ``dynamic`` (any of them), each a list of class names."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise LabelSpaceError(f"{source} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LabelSpaceError(f"{source}: expected a mapping with the keys {', '.join(ROLES)}")
    out: Dict[str, List[str]] = {}
    for key, names in data.items():
        if key not in ROLES:
            raise LabelSpaceError(f"{source}: unknown key {key!r}; the keys are {', '.join(ROLES)}")
        if names is None:
            names = []
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise LabelSpaceError(f"{source}: {key} must be a list of class names")
        out[key] = names
    return out


def read_roles(path: str) -> Dict[str, List[str]]:
    """The class names of the roles file ``path`` (:func:`parse_roles`), at
    most ``MAX_ROLES_FILE_BYTES`` of UTF-8; LabelSpaceError (one line) otherwise."""
    what = f"roles file {path!r}"
    try:
        data = read_regular(path, MAX_ROLES_FILE_BYTES, what)
    except InputError as exc:
        raise LabelSpaceError(str(exc)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LabelSpaceError(f"{what} is not UTF-8 text") from None
    return parse_roles(text, what)


def merge_roles(*sources: Mapping[str, Sequence[str]]) -> Dict[str, List[str]]:
    """The class names of several sources (a roles file, flags), role by role."""
    merged: Dict[str, List[str]] = {}
    for source in sources:
        for role, names in source.items():
            merged.setdefault(role, []).extend(names)
    return merged


@dataclass(frozen=True)
class LabelSpace:
    """What every value of one vocabulary's labels image means (module doc)."""

    names: Tuple[str, ...]               # label value -> class name (display name: the first alias)
    invalid: Tuple[int, ...]             # values to ignore, sorted: background's index, the unlabeled value
    roles: Roles
    background_index: Optional[int]
    encoding: str

    @classmethod
    def of(cls, vocabulary: Vocabulary, roles: Roles = Roles(), encoding: str = MONO) -> "LabelSpace":
        """The label space of ``vocabulary``'s labels image in ``encoding`` (``render.labels``)."""
        classes = len(vocabulary)
        invalid = {unlabeled_value(classes, encoding)}
        if vocabulary.background_index is not None:
            invalid.add(vocabulary.background_index)
        return cls(vocabulary.names, tuple(sorted(invalid)), roles, vocabulary.background_index, encoding)

    def role_lists(self) -> Dict[str, List[int]]:
        """Hydra's role keys and their labels."""
        return {HYDRA_ROLE_KEYS[role]: list(getattr(self.roles, role)) for role in ROLES}

    def hydra(self) -> Dict[str, Any]:
        """The Hydra label space as a mapping (module doc). Hydra's label sets
        are unsigned: the 32SC1 encoding's -1 is left out of
        ``invalid_labels``, and Hydra's integrators skip it unlisted."""
        roles = self.role_lists()
        return {
            "total_semantic_labels": len(self.names),
            "dynamic_labels": roles["dynamic_labels"],
            "invalid_labels": [label for label in self.invalid if label >= 0],
            "object_labels": roles["object_labels"],
            "surface_places_labels": roles["surface_places_labels"],
            "label_names": [{"label": index, "name": name} for index, name in enumerate(self.names)],
        }

    def hydra_yaml(self, title: str) -> str:
        """The Hydra label space as a YAML file, ``title`` on its first (comment) line."""
        body = yaml.safe_dump(self.hydra(), sort_keys=False, default_flow_style=None, allow_unicode=True,
                              width=100)
        return f"# {title}\n---\n{body}"

    def colors(self) -> np.ndarray:
        """(classes, 3) uint8 RGB: each class's colour in the overlay and the colour labels image."""
        return class_colors(len(self.names))

    def kimera_rows(self) -> List[Tuple[str, int, int, int, int, int]]:
        """The colour table's rows: one per class; with a background class,
        one more mapping the unlabeled pixels' colour (black) to it. LabelSpaceError
        when the palette has fewer colours than the vocabulary has classes
        (a colour must name one class)."""
        if len(self.names) > PALETTE_SIZE:
            raise LabelSpaceError(f"the vocabulary has {len(self.names)} classes and the palette {PALETTE_SIZE} "
                                  "colours: a colour table needs a colour per class")
        rows = [(name, int(r), int(g), int(b), OPAQUE, index)
                for index, (name, (r, g, b)) in enumerate(zip(self.names, self.colors()))]
        if self.background_index is not None:
            rows.append((self.names[self.background_index], *UNLABELED, OPAQUE, self.background_index))
        return rows

    def kimera_csv(self) -> str:
        """The colour table as CSV text (module doc): a header line, then :meth:`kimera_rows`."""
        lines = [",".join(KIMERA_HEADER)] + [",".join(str(v) for v in row) for row in self.kimera_rows()]
        return "\n".join(lines) + "\n"

    def metadata(self) -> str:
        """The Labelspace message's ``metadata``: JSON of Hydra's role keys and lists."""
        return json.dumps(self.role_lists(), sort_keys=True)


def names_in(values: Iterable[str]) -> List[str]:
    """The class names of a ``;``-separated flag value (``--objects "chair; table"``)."""
    return [part.strip() for value in values for part in value.split(";") if part.strip()]
