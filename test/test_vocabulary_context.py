"""Vocabulary parsing, canonicalisation, WordNet hypernyms, neighbour tokens."""

import os

import pytest
import torch

from activesam_ros.engine import wordnet
from activesam_ros.engine.prompt_context import neighbour_tokens
from activesam_ros.engine.vocabulary import Vocabulary, VocabularyError, canonicalize


def test_lines_semicolons_and_aliases():
    v = Vocabulary.from_string("person; car, automobile ; dog")
    assert v.classes == (("person",), ("car", "automobile"), ("dog",))
    assert v.queries == ("person", "car", "automobile", "dog")
    assert v.query_class == (0, 1, 1, 2)
    assert v.names == ("person", "car", "dog")
    assert Vocabulary.from_lines(["# comment", "", "a, b", "c"]).lines == ("a, b", "c")


@pytest.mark.parametrize("text,reason", [("", "empty"), (" ; ;", "empty"), ("cat; dog; Cat", "duplicate")])
def test_bad_vocabularies_say_why(text, reason):
    with pytest.raises(VocabularyError, match=reason):
        Vocabulary.from_string(text)


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(VocabularyError, match="cannot read"):
        Vocabulary.from_file(tmp_path / "nope.txt")


def test_background_index():
    assert Vocabulary.from_string("sky; Background; car").background_index == 1
    assert Vocabulary.from_string("sky; car").background_index is None


@pytest.mark.parametrize("name,expected", [
    ("trafficlight", "traffic light"), ("Traffic-Light", "traffic light"),
    ("pottedplant", "potted plant"), ("aeroplane", "airplane"), ("motorbike", "motorcycle"),
    ("diningtable", "dining table"), ("tvmonitor", "tv monitor"), ("wallbrick", "brick wall"),
    ("floor-wood", "wooden floor"), ("tie", "necktie"), ("mouse", "computer mouse"),
    ("ashcan", "trash can"), ("buffet", "sideboard"), ("chest of drawers", "chest of drawers"),
    ("Person", "Person"), ("dog", "dog"),
])
def test_canonicalisation_table(name, expected):
    assert canonicalize(name) == expected


@pytest.fixture(scope="module")
def real_wordnet():
    if not wordnet.available():
        if os.environ.get("CI"):
            pytest.fail("CI installs wordnet-base and wordnet-sense-index; WordNet must be found")
        pytest.skip("no WordNet on this machine (apt-get install wordnet-base wordnet-sense-index)")
    return wordnet.reader()


def test_hypernyms_from_a_real_wordnet(real_wordnet):
    assert wordnet.hypernyms("cat", 2) == ["feline"]
    assert wordnet.hypernyms("dog", 2) == ["canine", "domestic animal"]
    # First-sense lookups are sometimes odd; that is the method.
    assert wordnet.hypernyms("table", 2) == ["array"]
    assert wordnet.hypernyms("plant", 2) == ["building complex"]
    assert wordnet.hypernyms("dog", 1) == ["canine"]
    assert wordnet.hypernyms("no such thing", 2) == []


def test_hypernym_order_does_not_depend_on_the_hash_seed(real_wordnet):
    import subprocess
    import sys

    code = "from activesam_ros.engine import wordnet; print(wordnet.hypernyms('person', 2))"
    outputs = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1, outputs


def test_missing_wordnet_disables_hypernyms_without_failing(monkeypatch, caplog):
    previous = wordnet.reset()
    monkeypatch.setattr(wordnet, "_load_reader", lambda: None)
    try:
        assert wordnet.hypernyms("cat", 2) == []
        assert not wordnet.available()
    finally:
        wordnet.reset()
        wordnet._reader, wordnet._resolved = previous, previous is not None


def test_neighbour_tokens_weight_the_two_nearest_by_softmax():
    pooled = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]])
    resizer = torch.nn.Linear(2, 3)
    tokens = neighbour_tokens(pooled, resizer, 2)
    unit = pooled / pooled.norm(dim=1, keepdim=True)
    sim = unit @ unit.T
    # Query 0: nearest others are 1 then 3.
    w = torch.softmax(torch.stack([sim[0, 1], sim[0, 3]]), 0)
    expected = resizer(torch.stack([pooled[1] * w[0], pooled[3] * w[1]]))
    assert torch.allclose(tokens[0], expected, atol=1e-6)
    assert tokens.shape == (4, 2, 3)


def test_neighbour_tokens_for_tiny_vocabularies():
    resizer = torch.nn.Linear(2, 3)
    one = neighbour_tokens(torch.tensor([[1.0, 0.0]]), resizer, 2)
    assert torch.allclose(one, resizer.bias.expand(1, 2, 3))  # no neighbour: zero weight
    two = neighbour_tokens(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), resizer, 2)
    assert torch.allclose(two[0, 0], resizer(torch.tensor([0.0, 2.0])))
    assert torch.allclose(two[0, 1], resizer.bias)
