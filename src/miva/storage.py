"""Local paths and s3:// URIs behind one small API.

The endpoint and credentials come from the standard AWS environment variables
(`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...), so AWS S3, MinIO
and a local moto server all work unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def is_remote(uri: str | Path) -> bool:
    return str(uri).startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b")."""
    if not is_remote(uri):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key.strip("/")


def _client():
    import boto3

    return boto3.client("s3")


def download_dir(uri: str, dest: str | Path) -> Path:
    """Copy every object under `uri` into `dest`; a local `uri` is returned as is."""
    if not is_remote(uri):
        return Path(uri)
    dest = Path(dest)
    bucket, prefix = split_uri(uri)
    client = _client()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "/" if prefix else ""):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :].lstrip("/")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
    return dest


def upload_dir(src: str | Path, uri: str) -> None:
    """Copy a local folder to `uri` (an s3:// URI or another local folder)."""
    src = Path(src)
    if not is_remote(uri):
        shutil.copytree(src, uri, dirs_exist_ok=True)
        return
    bucket, prefix = split_uri(uri)
    client = _client()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        key = (
            f"{prefix}/{path.relative_to(src).as_posix()}"
            if prefix
            else path.relative_to(src).as_posix()
        )
        client.upload_file(str(path), bucket, key)
