"""Local paths and s3:// URIs behind one small API.

    read_bytes / read_text / write_bytes / write_text   one object or file
    exists / list_files                                 what is there
    check_writable                                      can a destination be written at all
    upload_file / download_file                         one file, skipped when unchanged
    upload_dir / download_dir                           a folder, file by file
    local_dir(dest)        write here, upload there: a local folder for a stage's output
    localize(uri, kind)    read here: a local folder holding a path or a cached download

The endpoint and credentials come from the standard AWS environment variables
(`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_DEFAULT_REGION`; `MLFLOW_S3_ENDPOINT_URL` as a last resort), so AWS S3, MinIO and a
local moto server all work unchanged.

Transfers:
- every uploaded object carries the SHA-256 of its content as metadata (`x-amz-meta-sha256`);
  a file whose checksum matches the object already there is not sent again, and a download
  whose local copy already matches is skipped. Re-running an interrupted `upload_dir` sends
  only what is missing or different (resume by redo, file by file).
- objects above `multipart_threshold_mb` go up and down in parallel multipart chunks.
- every S3 call is retried with exponential backoff and jitter on throttling (429,
  SlowDown), transient server errors (500, 502, 503, 504) and connection errors, at most
  `max_attempts` times (botocore's "standard" retry mode); then one `StorageError` says which
  endpoint and object failed and after how many attempts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miva.errors import MivaError

SHA_KEY = "sha256"
CHUNK = 1 << 20


class StorageError(MivaError):
    """An object or endpoint that cannot be read or written (after retries)."""


@dataclass
class Settings:
    max_attempts: int = 5
    multipart_threshold_mb: int = 64
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0


SETTINGS = Settings(
    max_attempts=int(os.environ.get("MIVA_S3_MAX_ATTEMPTS", 5)),
    multipart_threshold_mb=int(os.environ.get("MIVA_S3_MULTIPART_THRESHOLD_MB", 64)),
)


def configure(storage_cfg: Any) -> None:
    """Apply a `StorageConfig` (max_attempts, multipart_threshold_mb) to later transfers."""
    SETTINGS.max_attempts = int(storage_cfg.max_attempts)
    SETTINGS.multipart_threshold_mb = int(storage_cfg.multipart_threshold_mb)
    _CLIENTS.clear()


@dataclass
class TransferStats:
    """What a folder transfer did: files sent (or fetched) and files skipped as unchanged."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0


# ---------------------------------------------------------------------------- URIs


def is_remote(uri: str | Path) -> bool:
    return str(uri).startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b")."""
    if not is_remote(uri):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = str(uri)[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket (expected s3://BUCKET/KEY)")
    return bucket, key.strip("/")


def join(uri: str | Path, *parts: str) -> str:
    """Join path parts onto a local path or an s3:// URI with `/`."""
    text = str(uri).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts if p)])


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def md5_file(path: str | Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- S3 client


def endpoint_url() -> str | None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


_CLIENTS: dict[tuple, Any] = {}


def _client():
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url()
    key = (
        endpoint,
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_DEFAULT_REGION"),
        SETTINGS.max_attempts,
    )
    client = _CLIENTS.get(key)
    if client is None:
        config = Config(
            retries={"total_max_attempts": SETTINGS.max_attempts, "mode": "standard"},
            connect_timeout=SETTINGS.connect_timeout_s,
            read_timeout=SETTINGS.read_timeout_s,
            s3={"addressing_style": "path"} if endpoint else None,
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_DEFAULT_REGION")
            or os.environ.get("AWS_REGION")
            or "us-east-1",
            config=config,
        )
        _CLIENTS[key] = client
    return client


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    mb = 1024 * 1024
    return TransferConfig(
        multipart_threshold=SETTINGS.multipart_threshold_mb * mb,
        multipart_chunksize=max(5, SETTINGS.multipart_threshold_mb // 4) * mb,
        max_concurrency=4,
    )


def _fail(action: str, uri: str, exc: Exception) -> StorageError:
    where = endpoint_url() or "AWS S3"
    return StorageError(
        f"cannot {action} {uri} (endpoint {where}, up to {SETTINGS.max_attempts} attempts "
        f"with backoff): {type(exc).__name__}: {exc}"
    )


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _s3_errors():
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, S3UploadFailedError)


def _head(uri: str) -> dict[str, Any] | None:
    bucket, key = split_uri(uri)
    try:
        return _client().head_object(Bucket=bucket, Key=key)
    except _s3_errors() as exc:
        if _is_missing(exc):
            return None
        raise _fail("stat", uri, exc) from exc


def _remote_matches(head: dict[str, Any] | None, path: Path, sha: str | None = None) -> bool:
    """Does the object described by `head` hold the same bytes as the local file?"""
    if head is None or not path.is_file() or head.get("ContentLength") != path.stat().st_size:
        return False
    remote_sha = (head.get("Metadata") or {}).get(SHA_KEY)
    if remote_sha:
        return remote_sha == (sha or sha256_file(path))
    etag = str(head.get("ETag", "")).strip('"')
    if etag and "-" not in etag:  # single-part upload: the ETag is the MD5 of the content
        return etag == md5_file(path)
    return False


# ---------------------------------------------------------------------------- one object


def exists(uri: str | Path) -> bool:
    """True when `uri` is an existing file/object, or a folder/prefix with something in it."""
    if not is_remote(uri):
        return Path(uri).exists()
    bucket, key = split_uri(str(uri))
    if key and _head(str(uri)) is not None:
        return True
    try:
        prefix = f"{key}/" if key else ""
        page = _client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except _s3_errors() as exc:
        if _is_missing(exc):
            return False
        raise _fail("list", str(uri), exc) from exc
    return bool(page.get("KeyCount", 0))


def check_writable(uri: str | Path) -> None:
    """Fail early, with one `StorageError` naming the destination, when nothing can be
    written there (no bucket, no permission, endpoint down, read-only folder): a small probe
    object is written next to where the output goes and removed again."""
    import uuid

    probe = join(uri, f".miva-write-probe-{uuid.uuid4().hex}")
    if not is_remote(uri):
        try:
            Path(uri).mkdir(parents=True, exist_ok=True)
            Path(probe).write_bytes(b"")
            Path(probe).unlink()
        except OSError as exc:
            raise StorageError(f"cannot write to {uri}: {exc}") from exc
        return
    bucket, key = split_uri(probe)
    try:
        _client().put_object(Bucket=bucket, Key=key, Body=b"")
    except _s3_errors() as exc:
        if _is_missing(exc):
            raise StorageError(f"cannot write to {uri}: bucket {bucket!r} does not exist") from exc
        raise _fail("write to", str(uri), exc) from exc
    with contextlib.suppress(*_s3_errors()):  # writable is what was asked; a probe left is litter
        _client().delete_object(Bucket=bucket, Key=key)


def read_bytes(uri: str | Path) -> bytes:
    if not is_remote(uri):
        path = Path(uri)
        if not path.is_file():
            raise StorageError(f"{path}: no such file")
        return path.read_bytes()
    bucket, key = split_uri(str(uri))
    try:
        return _client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except _s3_errors() as exc:
        if _is_missing(exc):
            raise StorageError(f"{uri}: no such object") from exc
        raise _fail("read", str(uri), exc) from exc


def read_text(uri: str | Path, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Write one object/file; a local file is replaced atomically (temp file + rename)."""
    if not is_remote(uri):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".tmp-") as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
        return
    bucket, key = split_uri(str(uri))
    sha = hashlib.sha256(data).hexdigest()
    try:
        _client().put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA_KEY: sha})
    except _s3_errors() as exc:
        raise _fail("write", str(uri), exc) from exc


def write_text(uri: str | Path, text: str, encoding: str = "utf-8") -> None:
    write_bytes(uri, text.encode(encoding))


def list_files(uri: str | Path) -> list[str]:
    """Paths of all files under a folder or prefix, relative to it, sorted, `/`-separated."""
    if not is_remote(uri):
        root = Path(uri)
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(rel for rel, _ in _iter_objects(str(uri)))


def _iter_objects(uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    bucket, prefix = split_uri(uri)
    start = f"{prefix}/" if prefix else ""
    try:
        paginator = _client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=start):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(start) :]
                if rel and not rel.endswith("/"):
                    yield rel, obj
    except _s3_errors() as exc:
        if _is_missing(exc):
            raise StorageError(f"{uri}: no such bucket") from exc
        raise _fail("list", uri, exc) from exc


# ---------------------------------------------------------------------------- files


def upload_file(src: str | Path, uri: str | Path) -> bool:
    """Copy one local file to `uri`; returns False when an identical copy is already there."""
    src = Path(src)
    if not src.is_file():
        raise StorageError(f"{src}: no such file to upload")
    if not is_remote(uri):
        dest = Path(uri)
        same_size = dest.is_file() and dest.stat().st_size == src.stat().st_size
        if same_size and sha256_file(dest) == sha256_file(src):
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{dest.name}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return True
    sha = sha256_file(src)
    if _remote_matches(_head(str(uri)), src, sha):
        return False
    bucket, key = split_uri(str(uri))
    try:
        _client().upload_file(
            str(src),
            bucket,
            key,
            ExtraArgs={"Metadata": {SHA_KEY: sha}},
            Config=_transfer_config(),
        )
    except _s3_errors() as exc:
        raise _fail("upload to", str(uri), exc) from exc
    return True


def download_file(uri: str | Path, dest: str | Path) -> bool:
    """Copy one object to a local file; returns False when the local copy already matches.

    The download goes to a temporary file that replaces `dest` only when complete, so an
    interrupted download never leaves a truncated file behind.
    """
    dest = Path(dest)
    if not is_remote(uri):
        return upload_file(uri, dest)
    head = _head(str(uri))
    if head is None:
        raise StorageError(f"{uri}: no such object")
    if _remote_matches(head, dest):
        return False
    bucket, key = split_uri(str(uri))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}")
    try:
        _client().download_file(bucket, key, str(tmp), Config=_transfer_config())
    except _s3_errors() as exc:
        tmp.unlink(missing_ok=True)
        raise _fail("download", str(uri), exc) from exc
    os.replace(tmp, dest)
    return True


# ---------------------------------------------------------------------------- folders


def upload_dir(src: str | Path, uri: str | Path) -> TransferStats:
    """Copy a local folder to `uri` (an s3:// URI or another local folder), file by file.

    Files whose content is already at the destination are skipped, so re-running after an
    interruption sends only what is missing.
    """
    src = Path(src)
    if not src.is_dir():
        raise StorageError(f"{src}: no such folder to upload")
    stats = TransferStats()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if upload_file(path, join(uri, rel)):
            stats.sent.append(rel)
            stats.bytes_sent += path.stat().st_size
        else:
            stats.skipped.append(rel)
    return stats


def download_dir(uri: str | Path, dest: str | Path) -> Path:
    """Copy every object under `uri` into `dest`; a local `uri` is returned as is.

    Files already present with the same content are not fetched again.
    """
    if not is_remote(uri):
        return Path(uri)
    dest = Path(dest)
    found = False
    for rel, _ in _iter_objects(str(uri)):
        found = True
        download_file(join(uri, rel), dest / rel)
    if not found:
        raise StorageError(f"{uri}: no objects under this prefix")
    return dest


# ---------------------------------------------------------------------------- stage folders


@contextmanager
def local_dir(dest: str | Path, prefix: str = "miva-out-") -> Iterator[Path]:
    """A local folder to write `dest`'s contents into: `dest` itself when it is a local path,
    else a temporary folder that is uploaded to the s3:// URI `dest` when the block ends
    without an error (and removed either way). Write here, upload there, in one place.
    """
    if not is_remote(dest):
        yield Path(dest)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp) / "out"
        folder.mkdir()
        yield folder
        upload_dir(folder, dest)


def localize(uri: str | Path, kind: str = "data") -> Path:
    """A local folder holding `uri`: the path itself, or a download of the s3:// URI cached
    under `$TMPDIR/miva-<kind>/<hash of the URI>` (files already there are not fetched again).
    """
    if not is_remote(uri):
        return Path(uri)
    key = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    return download_dir(uri, Path(tempfile.gettempdir()) / f"miva-{kind}" / key)
