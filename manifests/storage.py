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
import glob
import os
import posixpath
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

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
    with atomic_outputs([url]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_outputs(urls: list[str]) -> Iterator[list[str]]:
    """Several files committed together (an output and its sidecar): yield a local path per URL; when the
    block ends without error each is published atomically, in order, and if one cannot be, those already
    published are removed again. On any error in the block nothing is published. Put the file that marks the
    set complete (the sidecar) last."""
    with contextlib.ExitStack() as stack:
        staged = [stack.enter_context(_staged(url)) for url in urls]
        yield [tmp for tmp, _publish in staged]
        published: list[str] = []
        try:
            for url, (_tmp, publish) in zip(urls, staged, strict=True):
                publish()
                published.append(url)
        except BaseException:
            for url in published:
                with contextlib.suppress(OSError):
                    remove(url)
            raise


@contextlib.contextmanager
def _staged(url: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(a local path to write, a function that publishes it at `url`); the temporary is always cleaned up."""
    fs, path = url_to_fs(url)
    if not isinstance(fs, LocalFileSystem):
        with tempfile.TemporaryDirectory(prefix="worldmill-") as tmp_dir:
            tmp = os.path.join(tmp_dir, "output" + extension(url))
            yield tmp, lambda: fs.put_file(tmp, path)  # the object appears complete or not at all
        return
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    tmp = os.path.join(directory, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")  # same file system

    def publish() -> None:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(tmp, path)  # atomic on one file system

    try:
        yield tmp, publish
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


TEMP_MARK = ".tmp-"  # a local temporary of `<dir>/<name>` is `<dir>/.<name>.tmp-<8 hex>`
STALE_TEMP_SECONDS = 15 * 60  # a write in progress touches its temporary more often than this


def create_exclusive(url: str, data: bytes) -> bool:
    """Create `url` with `data` only if it does not exist; True if this call created it. Exactly one of any
    number of concurrent callers wins: O_EXCL on a local disk, a conditional PUT (If-None-Match: *) on S3
    and S3-compatible stores that support it (AWS S3, MinIO, moto). Other stores: NotImplementedError."""
    fs, path = url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    if "s3" not in fs.protocol:
        raise NotImplementedError(f"no exclusive create on {fs.protocol} storage ({url})")
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    except OSError as e:  # a store that answers the condition with 412 but s3fs does not map it
        if "PreconditionFailed" in str(e) or "412" in str(e):
            return False
        raise
    return True


def remove(url: str) -> None:
    """Delete a file or object; a missing one is not an error."""
    fs, path = url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_stale_temporaries(url: str, older_than: float = STALE_TEMP_SECONDS) -> list[str]:
    """Delete the temporaries that killed writes of `url` left beside it (local files only: an object store
    never shows an unfinished upload), returning their paths. Only those untouched for `older_than`
    seconds: a temporary another process is writing right now is left alone."""
    fs, path = url_to_fs(url)
    if not isinstance(fs, LocalFileSystem):
        return []
    directory, name = os.path.split(path)
    pattern = os.path.join(glob.escape(directory or "."), f".{glob.escape(name)}{TEMP_MARK}*")
    removed = []
    for tmp in glob.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.path.getmtime(tmp) >= older_than:
                os.remove(tmp)
                removed.append(tmp)
    return removed


def write_bytes_atomic(url: str, data: bytes) -> None:
    with atomic_output(url) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(url: str, text: str) -> None:
    write_bytes_atomic(url, text.encode("utf-8"))
