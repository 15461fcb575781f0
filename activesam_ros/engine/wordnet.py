"""WordNet hypernyms for the context tokens, from whichever WordNet exists.

Looked up in order: NLTK's own data (``nltk.download('wordnet')``), then a
WordNet 3.0 database installed by the system (Debian's ``wordnet-base`` and
``wordnet-sense-index`` under /usr/share/wordnet, or ``ACTIVESAM_WORDNET_DIR``),
which is copied once into a cache folder NLTK's reader accepts. Without
either, hypernym tokens are left out with one warning; nothing fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import List, Optional

log = logging.getLogger(__name__)

SYSTEM_WORDNET_DIRS = ("/usr/share/wordnet",)

# WordNet's fixed table of its 45 lexicographer files (lexnames(5WN)):
# number, name, syntactic category. Debian ships the database without it.
_LEXNAMES = [
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1",
    "noun.animal 1", "noun.artifact 1", "noun.attribute 1", "noun.body 1",
    "noun.cognition 1", "noun.communication 1", "noun.event 1", "noun.feeling 1",
    "noun.food 1", "noun.group 1", "noun.location 1", "noun.motive 1",
    "noun.object 1", "noun.person 1", "noun.phenomenon 1", "noun.plant 1",
    "noun.possession 1", "noun.process 1", "noun.quantity 1", "noun.relation 1",
    "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2",
    "verb.competition 2", "verb.consumption 2", "verb.contact 2",
    "verb.creation 2", "verb.emotion 2", "verb.motion 2", "verb.perception 2",
    "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2",
    "adj.ppl 3",
]

_lock = threading.Lock()
_reader = None
_resolved = False


def _nltk_data_dir() -> Path:
    """A private NLTK data folder (NLTK reads corpora only under such folders)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "activesam_ros" / "nltk_data"


def _system_reader(source: Path):
    """An NLTK reader over a copy of a system WordNet database."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if not (source / "data.noun").is_file() or not (source / "index.sense").is_file():
        return None
    data_dir = _nltk_data_dir()
    target = data_dir / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        target.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.is_file() and (item.name.split(".")[0] in ("data", "index") or item.suffix == ".exc"):
                shutil.copyfile(item, target / item.name)
        lines = "".join(f"{i:02d}\t{e.split()[0]}\t{e.split()[1]}\n" for i, e in enumerate(_LEXNAMES))
        (target / "lexnames").write_text(lines)
    if str(data_dir) not in nltk.data.path:
        nltk.data.path.append(str(data_dir))
    with warnings.catch_warnings():
        # "multilingual functions are not available": we use English only.
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)


def _load_reader():
    try:
        from nltk.corpus import wordnet
    except ImportError:
        log.warning("nltk is not installed: WordNet hypernym tokens are disabled")
        return None
    try:
        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        pass
    dirs = [os.environ["ACTIVESAM_WORDNET_DIR"]] if os.environ.get("ACTIVESAM_WORDNET_DIR") else []
    for candidate in dirs + list(SYSTEM_WORDNET_DIRS):
        try:
            reader = _system_reader(Path(candidate))
        except (OSError, LookupError) as exc:
            log.debug("WordNet at %s unusable: %s", candidate, exc)
            continue
        if reader is not None:
            return reader
    log.warning(
        "no WordNet found (nltk data or /usr/share/wordnet): hypernym context tokens are "
        "disabled; install Debian's wordnet-base and wordnet-sense-index, or run "
        "python -m nltk.downloader wordnet"
    )
    return None


def reader():
    """The WordNet reader, or None when no WordNet is installed (warned once)."""
    global _reader, _resolved
    with _lock:
        if not _resolved:
            _reader = _load_reader()
            _resolved = True
        return _reader


def available() -> bool:
    return reader() is not None


def hypernyms(name: str, count: int) -> List[str]:
    """Up to ``count`` direct hypernyms of the first noun sense of ``name``.

    Hypernyms are taken in synset-name order (NLTK's own order depends on the
    process's hash seed), each as its first lemma with spaces, de-duplicated.
    """
    wn = reader()
    if wn is None or count <= 0:
        return []
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    synsets = wn.synsets(key, pos="n")
    if not synsets:
        return []
    out: List[str] = []
    for hyper in sorted(synsets[0].hypernyms(), key=lambda s: s.name())[:count]:
        lemma = hyper.lemmas()[0].name().replace("_", " ")
        if lemma and lemma not in out:
            out.append(lemma)
    return out


def reset() -> Optional[object]:
    """Forget the resolved reader (tests switch WordNet sources)."""
    global _reader, _resolved
    with _lock:
        previous, _reader, _resolved = _reader, None, False
    return previous
