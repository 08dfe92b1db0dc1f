"""Media I/O: images, videos and text at local paths or fsspec URLs (s3://bucket/key) alike.

Frames are uint8 RGB: an image (H, W, 3), a video (T, H, W, 3). All decoding and encoding goes through the
ffmpeg binary that imageio-ffmpeg ships (or $IMAGEIO_FFMPEG_EXE), so every worker uses the same build, and
the settings below make its output a function of the frames alone. ffmpeg works on local files (an MP4 is
finished by seeking back to its header), so a remote input is downloaded to a temporary file first and a
remote output is encoded to one, then uploaded.

Writes are atomic (manifests.storage.atomic_output, the project's one writer), so a crash or a failed
encode never leaves a partial output that a rerun would take for a finished result: a local output is
written to a hidden sibling `.<name>.tmp-<random>`, fsynced and renamed over the target with `os.replace`;
an S3 object is uploaded in one PUT (a large file in a multipart upload, which S3 also makes visible only
when it completes).

S3-compatible stores (MinIO, Ceph, moto): credentials come from the usual AWS variables or files, and the
endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, which botocore reads whenever s3fs creates a client
(checked with s3fs 2026.9, aiobotocore 3.10, botocore 1.43). `FSSPEC_S3_ENDPOINT_URL` works too, but fsspec
reads its `FSSPEC_*` variables once, when it is imported: set it before the process starts, not at run time.

Reference: imaginaire/utils/io.py `save_image_or_video` (JPEG quality 85 through PIL; MP4 through imageio's
ffmpeg writer with quality 7, i.e. libx264 crf 15, yuv420p).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from manifests import storage
from manifests.storage import atomic_output, atomic_outputs
from manifests.storage import extension as _extension

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTENSIONS = (".mp4",)
JPEG_EXTENSIONS = (".jpg", ".jpeg")
WRITABLE_IMAGE_EXTENSIONS = (*JPEG_EXTENSIONS, ".png")  # write_image: JPEG, or lossless PNG

# imageio's quality 7 (the reference) is crf int((1 - 7/10) * 51) = 15 with x264's default preset, medium.
# x264's output depends on its thread count (by default 1.5x the cores): a fixed count gives the same bytes on
# every machine. x264's SIMD is bit-exact; swscale's (RGB <-> YUV) is only with the bitexact flag.
_X264_ARGS = ("-c:v", "libx264", "-preset", "medium", "-crf", "15", "-threads", "4", "-pix_fmt", "yuv420p")
_SWS_ARGS = ("-sws_flags", "bicubic+accurate_rnd+bitexact")
# 4:2:0 like PIL's JPEGs; qmin 1 lets quality ~100 reach qscale 1; bitexact leaves out the "Lavc<version>"
# comment, so the bytes do not change with the ffmpeg build.
_MJPEG_ARGS = ("-c:v", "mjpeg", "-pix_fmt", "yuv420p", "-qmin", "1", "-flags", "+bitexact")


class MediaError(ValueError):
    """A media input that is missing or unreadable, or an output that cannot be written; names the URL."""


def is_image(url: str) -> bool:
    return _extension(url) in IMAGE_EXTENSIONS


def is_video(url: str) -> bool:
    return _extension(url) in VIDEO_EXTENSIONS


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def read_image(url: str) -> np.ndarray:
    """Decode a .jpg/.jpeg/.png/.webp image to (H, W, 3) uint8 RGB; an alpha channel is dropped."""
    _check_extension(url, IMAGE_EXTENSIONS, "image")
    with _local_input(url) as path:
        # image2pipe picks the decoder from the bytes, not the name: a PNG saved as .jpg still decodes,
        # and a '%' in the name is not taken for an image-sequence pattern.
        frames, _ = _decode(url, "image", ["-f", "image2pipe", "-i", path, "-frames:v", "1"])
    return frames[0]


def read_video(url: str) -> tuple[np.ndarray, float]:
    """Decode every frame of an .mp4's first video stream: frames (T, H, W, 3) uint8 RGB and its fps."""
    _check_extension(url, VIDEO_EXTENSIONS, "video")
    with _local_input(url) as path:
        return _decode(url, "video", ["-i", path])


def probe_video(url: str) -> dict:
    """Describe an .mp4's first video stream: exact frame count (by decoding), fps, size, codec, pix_fmt."""
    _check_extension(url, VIDEO_EXTENSIONS, "video")
    with _local_input(url) as path:
        result = _ffmpeg(["-i", path, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "null", "-"])
    log = _log(result.stderr)
    if result.returncode != 0:
        raise MediaError(f"could not read {url} as a video: {_reason(log)}")
    stream = _stream(log, "Input #0")
    counts = re.findall(r"frame=\s*(\d+)", "\n".join(message for _, message in log))
    return {"frames": int(counts[-1]), **stream}


@dataclass(frozen=True)
class InputLimits:
    """What an input may be before any of it is decoded: a small file can expand to gigabytes of frames.
    Defaults suit 720p work (the reference's conditioning clips are 93 frames at 1280x704); each can be set
    with an environment variable of the same name in capitals (WORLDMILL_MAX_INPUT_PIXELS, ...)."""

    max_input_pixels: int = 4096 * 4096  # per frame
    max_input_frames: int = 10_000
    max_input_seconds: float = 600.0

    @classmethod
    def from_env(cls) -> InputLimits:
        values = {}
        for name in cls.__dataclass_fields__:
            text = os.environ.get(f"WORLDMILL_{name.upper()}")
            if text is not None:
                values[name] = type(getattr(cls, name))(text)  # int or float, as the default
        return cls(**values)


def probe_input(url: str, limits: InputLimits | None = None) -> dict:
    """An image's or video's size, fps, duration and estimated frame count from its header, without
    decoding a frame; MediaError when it is unreadable or beyond `limits` (default: InputLimits.from_env())."""
    limits = limits or InputLimits.from_env()
    kind = "image" if is_image(url) else "video"
    with _local_input(url) as path:
        args = ["-f", "image2pipe", "-i", path] if kind == "image" else ["-i", path]
        log = _log(_ffmpeg(args).stderr)  # no output file: ffmpeg describes the input and stops
    if not any(message.startswith("Input #0") for _, message in log):
        raise MediaError(f"could not read {url} as {'an' if kind == 'image' else 'a'} {kind}: {_reason(log)}")
    try:
        info = _stream(log, "Input #0")
    except StopIteration:  # no video stream, or one whose size ffmpeg cannot take
        raise MediaError(
            f"could not read {url} as {'an' if kind == 'image' else 'a'} {kind}: {_reason(log)}"
        ) from None
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", "\n".join(m for _, m in log))
    seconds = int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3]) if duration else 0.0
    frames = 1 if kind == "image" else max(1, round(seconds * info["fps"]))
    info.update(seconds=seconds, frames=frames)
    pixels = info["width"] * info["height"]
    if pixels > limits.max_input_pixels:
        raise MediaError(
            f"{url} is {info['width']}x{info['height']} ({pixels:,} pixels per frame); inputs may have "
            f"{limits.max_input_pixels:,} (WORLDMILL_MAX_INPUT_PIXELS)"
        )
    if kind == "video" and frames > limits.max_input_frames:
        raise MediaError(
            f"{url} has about {frames:,} frames; inputs may have {limits.max_input_frames:,} "
            "(WORLDMILL_MAX_INPUT_FRAMES)"
        )
    if kind == "video" and seconds > limits.max_input_seconds:
        raise MediaError(
            f"{url} lasts {seconds:.1f} s; inputs may last {limits.max_input_seconds:g} s "
            "(WORLDMILL_MAX_INPUT_SECONDS)"
        )
    return info


def read_last_frames(url: str, count: int, limits: InputLimits | None = None) -> np.ndarray:
    """The last `count` frames of an .mp4 (or an image as one frame), probed first (probe_input) and
    decoded from shortly before the end only. Any decode error in what is read fails it: a truncated or
    damaged input is an error, never a silently shorter clip."""
    info = probe_input(url, limits)
    if is_image(url):
        return read_image(url)[None]
    _check_extension(url, VIDEO_EXTENSIONS, "video")
    # Start a second of frames before the ones wanted (ffmpeg seeks exactly, decoding from the keyframe
    # before); the whole clip when it is short.
    start = max(0.0, info["seconds"] - (count + info["fps"]) / max(info["fps"], 1.0))
    with _local_input(url) as path:
        frames, _fps = _decode(url, "video", ["-ss", f"{start:.3f}", "-i", path], strict=True)
    if len(frames) < count:
        raise MediaError(f"{url} has {len(frames)} decodable frame(s) at its end; {count} are needed")
    return frames[-count:]


def read_text(url: str) -> str:
    fs, path = url_to_fs(url)
    try:
        with fs.open(path, "r", encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise MediaError(f"input not found: {url}") from None


def exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    fs.invalidate_cache(path)  # another worker may have written it since this process listed the prefix
    return fs.exists(path)


remove = storage.remove  # delete a file or object; a missing one is not an error


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


def write_image(url: str, image: np.ndarray, quality: int = 85) -> None:
    """Write an (H, W, 3) uint8 RGB image atomically: a JPEG (4:2:0, like PIL) at a .jpg/.jpeg URL, a
    lossless PNG at a .png URL (what an image that is read back as an input should be: Text2World's
    intermediate first frame, an evaluation's conditioning image).

    `quality` (JPEG only) is PIL's 1-100 scale, mapped onto ffmpeg's mjpeg -q:v by `_jpeg_qscale`.
    """
    with atomic_output(url) as tmp:
        _encode_image(url, tmp, image, quality)


def write_with_sidecar(
    url: str, frames: np.ndarray, fps: int, sidecar_url: str, sidecar: str | Callable[[], str]
) -> None:
    """An image (one frame at an image URL) or a video and its JSON sidecar, committed as a pair: both are
    written first, then published (media first, sidecar last); neither is left alone by a failure.
    `sidecar` may be a function, called once the media is encoded (to record how long that took)."""
    with atomic_outputs([url, sidecar_url]) as (media_tmp, sidecar_tmp):
        if is_image(url):
            if len(frames) != 1:
                raise MediaError(f"cannot write {url}: an image is one frame, got {len(frames)}")
            _encode_image(url, media_tmp, frames[0])
        else:
            _encode_video(url, media_tmp, frames, fps)
        with open(sidecar_tmp, "w", encoding="utf-8") as f:
            f.write(sidecar() if callable(sidecar) else sidecar)


def _encode_image(url: str, path: str, image: np.ndarray, quality: int = 85) -> None:
    """`image` encoded for `url` (JPEG or PNG by its extension) into the local file `path`."""
    _check_extension(url, WRITABLE_IMAGE_EXTENSIONS, "image output")
    _check_frame(url, image, "image")
    if _extension(url) == ".png":
        with open(path, "wb") as f:
            f.write(_png_bytes(image))
        return
    if not 1 <= quality <= 100:
        raise MediaError(f"cannot write {url}: JPEG quality must be in 1..100, got {quality}")
    height, width, _ = image.shape
    args = [*_raw_input(width, height, fps=1), *_SWS_ARGS, "-frames:v", "1", *_MJPEG_ARGS]
    result = _ffmpeg(
        [*args, "-q:v", str(_jpeg_qscale(quality)), "-f", "mjpeg", path],
        stdin=np.ascontiguousarray(image).tobytes(),
    )
    if result.returncode != 0:
        raise MediaError(f"could not write {url}: {_reason(_log(result.stderr))}")


def _png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB as an 8-bit RGB PNG: each row with filter type 0 (none), zlib-compressed."""
    height, width, _ = image.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # bit depth 8, color type 2 (RGB)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", _zlib_compress(rows.tobytes()))
        + chunk(b"IEND", b"")
    )


_PNG_PIECE_BYTES = 1 << 20  # below this, one zlib call is as quick as any split


def _zlib_compress(data: bytes, level: int = 6, pieces: int | None = None) -> bytes:
    """zlib.compress(data, level), split over threads for large data: a 1024x1024 image's 3 MB took
    0.16 s in one call on a GPU host, 6% of a whole 2B Text2Image generation there (2.5 s).

    Each piece is raw-deflated with the 32 KiB before it as its preset dictionary (what the decoder
    has as history there) and ended with a sync flush, so the pieces concatenate into one valid
    deflate stream; the zlib header and the Adler-32 of the whole data frame it. zlib releases the
    GIL while it compresses. The stream can differ from zlib.compress's, and decodes to the same bytes.
    """
    if pieces is None:
        pieces = min(8, os.cpu_count() or 1, len(data) // _PNG_PIECE_BYTES)
    if pieces <= 1:
        return zlib.compress(data, level)
    view = memoryview(data)
    size = -(-len(data) // pieces)
    starts = range(0, len(data), size)

    def deflate(start: int) -> bytes:
        history = {"zdict": view[max(0, start - 32768) : start]} if start else {}
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, **history)
        last = start + size >= len(data)
        body = compressor.compress(view[start : start + size])
        return body + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    with ThreadPoolExecutor(len(starts)) as pool:
        body = b"".join(pool.map(deflate, starts))
    header = b"\x78\x9c"  # deflate, 32 KiB window, default-level flag (the decoder ignores the level)
    return header + body + struct.pack(">I", zlib.adler32(data))


def write_video(url: str, frames: np.ndarray | Iterable[np.ndarray], fps: int) -> None:
    """Encode frames as H.264 yuv420p MP4 at `fps` to an .mp4 URL, atomically.

    frames: a (T, H, W, 3) uint8 RGB array, or any iterable of (H, W, 3) frames (streamed to the encoder).
    H and W must be even (yuv420p stores chroma at half resolution). The same frames give the same bytes:
    x264 runs a fixed number of threads and the RGB -> YUV conversion is bit-exact.
    """
    with atomic_output(url) as tmp:
        _encode_video(url, tmp, frames, fps)


def _encode_video(url: str, path: str, frames: np.ndarray | Iterable[np.ndarray], fps: int) -> None:
    """`frames` encoded as `url`'s MP4 into the local file `path` (write_video's work)."""
    _check_extension(url, VIDEO_EXTENSIONS, "video")
    if fps <= 0:
        raise MediaError(f"cannot write {url}: fps must be positive, got {fps}")
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise MediaError(f"cannot write {url}: expected (T, H, W, 3) uint8 frames, got shape {frames.shape}")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise MediaError(f"cannot write {url}: no frames")
    _check_frame(url, first, "frame 0")
    height, width, _ = first.shape
    if height % 2 or width % 2:
        raise MediaError(
            f"cannot write {url}: H.264 yuv420p needs an even width and height, got {width}x{height}; "
            "crop or pad the frames"
        )
    args = [*_raw_input(width, height, fps), *_SWS_ARGS, *_X264_ARGS, "-movflags", "+faststart", "-f", "mp4"]
    with tempfile.TemporaryFile() as log:
        # stderr goes to a file: a pipe nobody reads could fill up and stall ffmpeg while we feed stdin.
        process = subprocess.Popen(
            _ffmpeg_command([*args, path]), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            for index, frame in enumerate(itertools.chain([first], frames)):
                if index:
                    _check_frame(url, frame, f"frame {index}", first.shape)
                process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its log says why
        except BaseException:
            process.kill()  # the temporary file is discarded: no need to let ffmpeg finish it
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            process.wait()
        if process.returncode != 0:
            log.seek(0)
            raise MediaError(f"could not write {url}: {_reason(_log(log.read()))}")


def write_text(url: str, text: str) -> None:
    """Write UTF-8 text (JSON sidecars), atomically."""
    with atomic_output(url) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def _jpeg_qscale(quality: int) -> int:
    """Map PIL/libjpeg quality (1-100) to ffmpeg mjpeg's -q:v (1 best .. 31 worst).

    libjpeg scales its quantisation tables by s = 5000/q percent below q = 50 and 200 - 2q percent above;
    ffmpeg scales the MPEG-1 intra matrix by qscale/8. Matching luma PSNR on photos gives qscale ~ 1 + s/10:
    quality 95 -> 2, 90 -> 3, 85 (the reference) -> 4 (within ~0.5 dB of libjpeg), 75 -> 6, 50 -> 11.
    """
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return min(31, max(1, round(1 + scale / 10)))


# ---------------------------------------------------------------------------------------------------------
# Helpers: files, ffmpeg
# ---------------------------------------------------------------------------------------------------------


def _check_extension(url: str, extensions: tuple[str, ...], kind: str) -> None:
    if _extension(url) not in extensions:
        raise MediaError(
            f"unsupported {kind} file {url}: the name must end in one of {', '.join(extensions)}"
        )


def _check_frame(url: str, frame: object, what: str, shape: tuple[int, ...] | None = None) -> None:
    ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    if not ok or (shape is not None and frame.shape != shape):
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        expected = f"uint8 {shape}" if shape is not None else "(H, W, 3) uint8 RGB"
        raise MediaError(f"cannot write {url}: {what} should be {expected}, got {got}")


@contextlib.contextmanager
def _local_input(url: str) -> Iterator[str]:
    """Yield a local path with `url`'s bytes: the file itself, or a temporary download of a remote one."""
    fs, path = url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        if not os.path.isfile(path):
            raise MediaError(f"input not found: {url}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cosmos-media-") as tmp_dir:
        local = os.path.join(tmp_dir, "input" + _extension(url))
        try:
            fs.get_file(path, local)
        except FileNotFoundError:
            raise MediaError(f"input not found: {url}") from None
        yield local


def _raw_input(width: int, height: int, fps: int) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0"]


def _ffmpeg_command(args: list[str]) -> list[str]:
    import imageio_ffmpeg  # here, not at import: PNG writing and fsspec helpers need no ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    # level+info tags every log line with its level, so errors can be told from stream descriptions.
    return [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", *args]


def _ffmpeg(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(_ffmpeg_command(args), input=stdin, capture_output=True, check=False)


def _decode(url: str, kind: str, input_args: list[str], strict: bool = False) -> tuple[np.ndarray, float]:
    """Run ffmpeg to raw RGB; returns frames (T, H, W, 3) uint8 and the input stream's fps. `strict`: an
    error ffmpeg logs while decoding (a truncated or damaged stream it works around) fails the read."""
    output = ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    result = _ffmpeg([*input_args, "-map", "0:v:0", "-fps_mode", "passthrough", *_SWS_ARGS, *output])
    log = _log(result.stderr)
    errors = strict and any(level in ("panic", "fatal", "error") for level, _ in log)
    if result.returncode != 0 or not result.stdout or errors:
        reason = _reason(log) if result.returncode != 0 or errors else "no frames decoded"
        raise MediaError(f"could not read {url} as {'an' if kind == 'image' else 'a'} {kind}: {reason}")
    # The output stream's size is the decoded one (after any rotation metadata is applied).
    out = _stream(log, "Output #0")
    frames = np.frombuffer(result.stdout, np.uint8).reshape(-1, out["height"], out["width"], 3)
    return frames.copy(), _stream(log, "Input #0")["fps"]  # copy: writable, like any other array


_LEVEL = re.compile(r"\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)")


def _log(stderr: bytes) -> list[tuple[str, str]]:
    """ffmpeg's stderr as (level, message) pairs; untagged lines continue the previous level."""
    lines, level = [], "info"
    for line in stderr.decode("utf-8", "replace").splitlines():
        match = _LEVEL.search(line)
        level, message = (match[1], match[2]) if match else (level, line)
        lines.append((level, message))
    return lines


def _reason(log: list[tuple[str, str]]) -> str:
    """The first error ffmpeg logged: the most specific one (later ones report its consequences)."""
    errors = [message.strip() for level, message in log if level in ("panic", "fatal", "error")]
    return errors[0][:200] if errors else "ffmpeg failed without an error message"


def _stream(log: list[tuple[str, str]], section: str) -> dict:
    """Parse the first video stream line after `section` ("Input #0" / "Output #0"), e.g.
    `Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 64x48 [SAR 1:1
    DAR 4:3], 30 kb/s, 16 fps, 16 tbr, 16384 tbn (default)`."""
    messages = [message for _, message in log]
    start = next(i for i, message in enumerate(messages) if message.startswith(section))
    line = next(m for m in messages[start:] if m.lstrip().startswith("Stream #") and " Video: " in m)
    # Split on the commas outside parentheses: "yuv420p(tv, bt709)" is one field.
    fields = re.split(r",\s*(?![^()]*\))", line.split(" Video: ", 1)[1])
    size = next(re.match(r"(\d+)x(\d+)", f) for f in fields if re.match(r"\d+x\d+", f))
    rates = {f.split()[1]: float(f.split()[0]) for f in fields if re.fullmatch(r"[\d.]+ (fps|tbr)", f)}
    return {
        "fps": rates.get("fps", rates.get("tbr", 0.0)),
        "width": int(size[1]),
        "height": int(size[2]),
        "codec": fields[0].split()[0],
        "pix_fmt": fields[1].split("(")[0],
    }
