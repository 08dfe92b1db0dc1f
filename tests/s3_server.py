"""A real S3 server on loopback for tests: moto in server mode, with the environment pointed at it.

tests/conftest.py registers this module as a plugin, so every test can ask for the fixtures by name:

    @pytest.mark.e2e
    def test_upload(s3_bucket_url):  # "s3://test-bucket/<uuid>": a fresh, empty prefix
        media.write_text(f"{s3_bucket_url}/a.json", "{}")

The server runs once per test session. While it runs, the environment holds fake credentials and its
endpoint, so the code under test, and the subprocesses it starts (Prefect workers, CLIs), reach it with no
code change, the way a fleet reaches MinIO:
- `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`: read by botocore whenever s3fs creates a client, in this
  process too;
- `FSSPEC_S3_ENDPOINT_URL`: read by fsspec only when it is imported, so it reaches subprocesses only.
Everything is restored when the session ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec.config
import pytest
from moto.server import ThreadedMotoServer
from s3fs import S3FileSystem

BUCKET = "test-bucket"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str  # http://127.0.0.1:<port>
    bucket: str

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start moto on a free port of 127.0.0.1, point the environment at it and create `test-bucket`."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"

    patch = pytest.MonkeyPatch()
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ENDPOINT_URL_S3": endpoint_url,  # would win over AWS_ENDPOINT_URL if left from the shell
        "FSSPEC_S3_ENDPOINT_URL": endpoint_url,
        # Keep the developer's ~/.aws profiles and tokens out of the tests.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in environment.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        patch.delenv(name, raising=False)
    # s3 options fsspec read at import (FSSPEC_S3_* from the shell, ~/.config/fsspec) would override the
    # environment in this process.
    patch.delitem(fsspec.config.conf, "s3", raising=False)
    # fsspec caches file system instances by their arguments, not by the environment they were made in.
    S3FileSystem.clear_instance_cache()
    try:
        S3FileSystem(skip_instance_cache=True).mkdir(BUCKET)
        yield S3Server(endpoint_url=endpoint_url, bucket=BUCKET)
    finally:
        S3FileSystem.clear_instance_cache()
        patch.undo()
        server.stop()


@pytest.fixture
def s3_bucket_url(s3_server: S3Server) -> str:
    """A fresh prefix, s3://test-bucket/<uuid>, so tests never see each other's objects."""
    return s3_server.url(uuid.uuid4().hex)
