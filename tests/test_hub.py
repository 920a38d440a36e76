"""Hub resolution: local folders, the real HF cache layout, offline errors, and no network when cached."""

import pytest

from hugkit.hub import CheckpointNotFoundError, cached_snapshot, resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_cache(tmp_path):
    """A cache laid out as huggingface_hub lays it out: refs/main -> snapshots/<commit>/files."""
    repo = tmp_path / "cache" / "models--acme--tiny-bert"
    snapshot = repo / "snapshots" / COMMIT
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "bert"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return tmp_path / "cache", snapshot


@pytest.fixture
def no_network(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("a network call was made although the files are local")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)


def test_local_folder_and_subfolder(tmp_path, no_network):
    (tmp_path / "sub").mkdir()
    assert resolve(tmp_path) == tmp_path
    assert resolve(str(tmp_path), subfolder="sub") == tmp_path / "sub"
    with pytest.raises(CheckpointNotFoundError, match="no subfolder 'nope'"):
        resolve(tmp_path, subfolder="nope")


def test_cache_layout_by_branch_and_commit(fake_cache, no_network):
    cache, snapshot = fake_cache
    assert resolve("acme/tiny-bert", cache_dir=cache) == snapshot
    assert resolve("acme/tiny-bert", cache_dir=cache, revision=COMMIT) == snapshot
    assert resolve("acme/tiny-bert", cache_dir=cache, subfolder="sub") == snapshot / "sub"
    assert cached_snapshot("acme/tiny-bert", "v2", cache) is None


def test_cache_found_through_environment(fake_cache, monkeypatch, no_network):
    cache, snapshot = fake_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert resolve("acme/tiny-bert") == snapshot
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(cache.parent / "home"))
    (cache.parent / "home").mkdir()
    (cache.parent / "home" / "hub").symlink_to(cache)
    assert resolve("acme/tiny-bert").resolve() == snapshot.resolve()


def test_offline_error_names_what_was_tried(fake_cache, monkeypatch, no_network):
    cache, _ = fake_cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve("acme/other-model", cache_dir=cache)
    message = str(info.value)
    assert "acme/other-model" in message and "local folder" in message
    assert str(cache) in message and "HF_HUB_OFFLINE" in message and "huggingface-cli download" in message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(CheckpointNotFoundError, match="local_files_only=True"):
        resolve("acme/tiny-bert", cache_dir=cache, revision="v2", local_files_only=True)


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import huggingface_hub

    def fail(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(CheckpointNotFoundError, match="no route to host") as info:
        resolve("acme/missing", cache_dir=tmp_path)
    assert "Tried" in str(info.value)


@pytest.mark.parametrize("bad", ["./does/not/exist", "/no/such/dir", "not a valid id!"])
def test_bad_names(bad, no_network):
    with pytest.raises(CheckpointNotFoundError, match="neither an existing local folder nor a valid hub model id"):
        resolve(bad)


def test_a_file_is_not_a_folder(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(CheckpointNotFoundError, match="Pass the folder"):
        resolve(weights)


def test_non_string_name():
    with pytest.raises(TypeError, match="Expected a model id"):
        resolve(42)
