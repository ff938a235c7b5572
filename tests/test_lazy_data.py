"""The release data's index (knowledge/lazy_data.py): the same values as decoding the JSON, never trusted blindly."""

import json
import pickle

import pytest

from transpiler.knowledge import lazy_data, releases

RAW = json.dumps({"ops": {"A": [{"def": {"name": "A"}, "releases": ["1.8.0"]}], "B": []},
                  "cpu_kernels": {"A": ["1.8.0"]}, "releases": {"1.8.0": {"graph_def_version": 26}},
                  "format": 3}).encode()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_TRANSPILE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


def plain(data: dict) -> dict:
    return {name: dict(value) if isinstance(value, lazy_data.LazySection) else value for name, value in data.items()}


def test_the_index_gives_what_json_gives_and_is_reused(cache, monkeypatch):
    first = lazy_data.load(RAW)
    assert plain(first) == json.loads(RAW)
    assert isinstance(first["ops"], lazy_data.LazySection) and not isinstance(first["releases"], lazy_data.LazySection)
    assert len(list(cache.glob("*.pickle"))) == 1
    monkeypatch.setattr(lazy_data, "_index", lambda data: pytest.fail("decoded the JSON again"))
    second = lazy_data.load(RAW)
    assert plain(second) == json.loads(RAW)
    assert "A" in second["ops"] and "C" not in second["ops"] and second["ops"].get("C", ()) == ()


def test_the_shipped_data_reads_the_same_through_its_index(cache):
    raw = (releases.resources.files("transpiler") / "data" / releases.DATA_FILE).read_bytes()
    expected = json.loads(raw)
    for _ in range(2):  # once writing the index, once reading it
        data = lazy_data.load(raw)
        assert set(data) == set(expected)
        for name in lazy_data.LAZY_SECTIONS:
            assert dict(data[name]) == expected[name]


@pytest.mark.parametrize("planted", [b"not a pickle", pickle.dumps({"ops": {"A": 1}}),
                                     pickle.dumps(pytest.approx(1))])
def test_a_damaged_or_planted_index_is_ignored(cache, planted):
    lazy_data.load(RAW)
    (index,) = cache.glob("*.pickle")
    index.write_bytes(planted)
    assert plain(lazy_data.load(RAW)) == json.loads(RAW)


def test_an_unwritable_cache_still_reads_the_data(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TF_TRANSPILE_CACHE", str(blocker))
    assert plain(lazy_data.load(RAW)) == json.loads(RAW)


def test_a_new_data_file_replaces_the_index_of_the_old_one(cache):
    lazy_data.load(RAW)
    (old,) = cache.glob("*.pickle")
    newer = RAW.replace(b'"format": 3', b'"format": 4')
    assert lazy_data.load(newer)["format"] == 4
    (index,) = cache.glob("*.pickle")
    assert index != old
