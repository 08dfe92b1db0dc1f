"""Small fsspec helpers: read, write atomically, test existence, join paths. Local paths and URLs alike.

The project's one atomic writer (`atomic_output`) lives here, in the bottom layer, so that manifests'
records and shard files and cosmos_core's media (cosmos_core/media.py) commit files the same way.

Atomic writes: a reader (a rerun, the flow collecting records) must never see half a file. A local file is
written to a hidden sibling `.<name>.tmp-<random>`, fsynced and renamed over the target with `os.replace`
(atomic on one file system); an object store gets the finished file in one upload (one PUT, or a multipart
upload), which it makes visible only when complete.
S3 credentials and the endpoint come from the environment (AWS_* variables, AWS_ENDPOINT_URL_S3), which
botocore reads whenever s3fs creates a client.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem


def is_url(path: str) -> bool:
    return "://" in path


def join(root: str, relative: str) -> str:
    """`root`/`relative` with exactly one slash between them; root may be a local path or a URL."""
    return f"{root.rstrip('/')}/{relative}"


def parent(url: str) -> str:
    """The folder holding `url`: s3://b/dir/m.json -> s3://b/dir."""
    return posixpath.dirname(url.rstrip("/"))


def extension(path: str) -> str:
    """Lower-case extension of the last path component, with its dot: 'a/B.JPG' -> '.jpg'."""
    return os.path.splitext(path.rsplit("/", 1)[-1])[1].lower()


def read_bytes(url: str) -> bytes:
    """The whole file; FileNotFoundError if it is absent."""
    fs, path = url_to_fs(url)
    return fs.cat_file(path)


def exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    fs.invalidate_cache(path)  # another process may have written it since this one listed the folder
    return fs.exists(path)


@contextlib.contextmanager
def atomic_output(url: str) -> Iterator[str]:
    """Yield a local path to write; when the block ends without error the file becomes `url` in one step,
    so that readers see either the old file, or none, or all of the new one. On any error it is deleted."""
    fs, path = url_to_fs(url)
    if not isinstance(fs, LocalFileSystem):
        with tempfile.TemporaryDirectory(prefix="worldmill-") as tmp_dir:
            tmp = os.path.join(tmp_dir, "output" + extension(url))
            yield tmp
            fs.put_file(tmp, path)  # the object appears complete or not at all
        return
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    tmp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")  # same file system: rename is atomic
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_bytes_atomic(url: str, data: bytes) -> None:
    with atomic_output(url) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(url: str, text: str) -> None:
    write_bytes_atomic(url, text.encode("utf-8"))
