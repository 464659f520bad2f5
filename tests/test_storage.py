"""miva.storage on local folders and on a real S3 endpoint (moto's server on loopback)."""

from __future__ import annotations

import os

import pytest
from servers import DUMMY_AWS, FailFirstNProxy, MotoS3, free_port

from miva import storage
from miva.storage import StorageError


@pytest.fixture(scope="module")
def moto():
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto, monkeypatch, request):
    """An empty bucket on the moto server, with the AWS variables pointing at it."""
    for key, value in DUMMY_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
    bucket = "t-" + request.node.name.replace("_", "-").lower()[:40]
    moto.create_bucket(bucket)
    storage._CLIENTS.clear()
    yield f"s3://{bucket}"
    storage._CLIENTS.clear()


@pytest.fixture
def settings():
    saved = storage.Settings(**vars(storage.SETTINGS))
    yield storage.SETTINGS
    for key, value in vars(saved).items():
        setattr(storage.SETTINGS, key, value)
    storage._CLIENTS.clear()


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "c.json").write_text('{"x": 1}')
    return root


# ---------------------------------------------------------------------------- URIs


def test_split_and_join():
    assert storage.split_uri("s3://bkt/a/b/") == ("bkt", "a/b")
    assert storage.split_uri("s3://bkt") == ("bkt", "")
    assert storage.join("s3://bkt/a/", "b", "/c.txt") == "s3://bkt/a/b/c.txt"
    assert not storage.is_remote("/tmp/x") and storage.is_remote("s3://b/x")
    with pytest.raises(StorageError, match="names no bucket"):
        storage.split_uri("s3:///key")
    with pytest.raises(ValueError):
        storage.split_uri("/local/path")


# ---------------------------------------------------------------------------- local


def test_local_read_write_list_exists(tmp_path):
    target = tmp_path / "x" / "y.txt"
    assert not storage.exists(target)
    storage.write_text(target, "hello")
    assert storage.read_text(target) == "hello"
    assert storage.exists(target) and storage.exists(tmp_path / "x")
    assert storage.list_files(tmp_path) == ["x/y.txt"]
    assert storage.list_files(tmp_path / "missing") == []
    with pytest.raises(StorageError, match="no such file"):
        storage.read_bytes(tmp_path / "nope")


def test_local_upload_dir_skips_unchanged(tmp_path):
    src = make_tree(tmp_path / "src")
    stats = storage.upload_dir(src, tmp_path / "dst")
    assert sorted(stats.sent) == ["a.txt", "sub/b.bin", "sub/c.json"] and not stats.skipped
    assert stats.bytes_sent == 5 + 2560 + 8
    (src / "a.txt").write_text("changed")
    stats = storage.upload_dir(src, tmp_path / "dst")
    assert stats.sent == ["a.txt"] and sorted(stats.skipped) == ["sub/b.bin", "sub/c.json"]
    assert (tmp_path / "dst" / "a.txt").read_text() == "changed"
    assert storage.download_dir(tmp_path / "dst", tmp_path / "ignored") == tmp_path / "dst"


# ---------------------------------------------------------------------------- S3


def test_s3_read_write_exists_list(s3):
    assert not storage.exists(f"{s3}/folder")
    storage.write_text(f"{s3}/folder/one.txt", "1")
    storage.write_bytes(f"{s3}/folder/deep/two.bin", b"\x00\x01")
    assert storage.read_text(f"{s3}/folder/one.txt") == "1"
    assert storage.read_bytes(f"{s3}/folder/deep/two.bin") == b"\x00\x01"
    assert storage.exists(f"{s3}/folder/one.txt")
    assert storage.exists(f"{s3}/folder")  # a prefix with objects under it
    assert not storage.exists(f"{s3}/folder/none.txt")
    assert storage.list_files(f"{s3}/folder") == ["deep/two.bin", "one.txt"]
    with pytest.raises(StorageError, match="no such object"):
        storage.read_bytes(f"{s3}/folder/none.txt")


def test_s3_upload_dir_resends_only_changed_and_resumes(s3, tmp_path):
    src = make_tree(tmp_path / "src")
    uri = f"{s3}/model"
    # An interrupted earlier upload: only one file made it.
    assert storage.upload_file(src / "sub" / "c.json", f"{uri}/sub/c.json")
    stats = storage.upload_dir(src, uri)
    assert sorted(stats.sent) == ["a.txt", "sub/b.bin"] and stats.skipped == ["sub/c.json"]
    # Nothing changed: nothing is sent.
    stats = storage.upload_dir(src, uri)
    assert stats.sent == [] and len(stats.skipped) == 3
    # One file changed (same size, different bytes): only it is sent.
    (src / "a.txt").write_text("ALPHA")
    stats = storage.upload_dir(src, uri)
    assert stats.sent == ["a.txt"]
    head = storage._head(f"{uri}/a.txt")
    assert head["Metadata"][storage.SHA_KEY] == storage.sha256_file(src / "a.txt")


def test_s3_download_dir_roundtrip_and_skip(s3, tmp_path):
    src = make_tree(tmp_path / "src")
    storage.upload_dir(src, f"{s3}/ds")
    out = storage.download_dir(f"{s3}/ds", tmp_path / "out")
    assert storage.list_files(out) == ["a.txt", "sub/b.bin", "sub/c.json"]
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    # The local copy matches: not fetched again; a corrupted copy is replaced.
    assert storage.download_file(f"{s3}/ds/a.txt", out / "a.txt") is False
    (out / "a.txt").write_text("xxxxx")
    assert storage.download_file(f"{s3}/ds/a.txt", out / "a.txt") is True
    assert (out / "a.txt").read_text() == "alpha"
    with pytest.raises(StorageError, match="no objects"):
        storage.download_dir(f"{s3}/empty", tmp_path / "none")


def test_s3_multipart_upload_and_download(s3, tmp_path, settings):
    settings.multipart_threshold_mb = 5  # S3's smallest part size
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))  # 11 MiB -> 3 parts of 5 MiB chunks
    assert storage.upload_file(big, f"{s3}/big.bin")
    head = storage._head(f"{s3}/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # multipart ETag: md5-of-md5s + "-<parts>"
    assert head["Metadata"][storage.SHA_KEY] == storage.sha256_file(big)
    assert storage.upload_file(big, f"{s3}/big.bin") is False  # checksum match: not re-sent
    assert storage.download_file(f"{s3}/big.bin", tmp_path / "copy.bin")
    assert storage.sha256_file(tmp_path / "copy.bin") == storage.sha256_file(big)


def test_s3_retries_through_endpoint_failing_first_requests(s3, moto, monkeypatch, settings):
    proxy = FailFirstNProxy(moto.url, n=3).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        settings.max_attempts = 5
        storage._CLIENTS.clear()
        storage.write_text(f"{s3}/r.txt", "survived")  # 3 x 503, then success
        assert proxy.failed == 3
        assert storage.read_text(f"{s3}/r.txt") == "survived"
    finally:
        proxy.stop()


def test_s3_gives_up_after_bounded_attempts(s3, moto, monkeypatch, settings):
    proxy = FailFirstNProxy(moto.url, n=1000).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        settings.max_attempts = 3
        storage._CLIENTS.clear()
        with pytest.raises(StorageError, match=r"up to 3 attempts") as err:
            storage.write_text(f"{s3}/never.txt", "x")
        assert proxy.url in str(err.value)
        assert proxy.failed == 3 and proxy.forwarded == 0
    finally:
        proxy.stop()


def test_s3_unreachable_endpoint_is_one_clear_error(s3, monkeypatch, settings):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    settings.max_attempts = 2
    storage._CLIENTS.clear()
    with pytest.raises(StorageError, match=r"cannot read .*\(endpoint http://127.0.0.1"):
        storage.read_bytes(f"{s3}/x.txt")
