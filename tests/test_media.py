"""cosmos_core.media: round trips through the shipped ffmpeg, atomic writes, errors, and s3:// on moto."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from fsspec.core import url_to_fs

from cosmos_core import media
from cosmos_core.media import MediaError
from tests.s3_server import S3Server

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------------
# Inputs: a gradient (smooth, so lossy codecs do well) with coloured squares (so a channel swap or a flip shows)
# ---------------------------------------------------------------------------------------------------------


def make_image(height: int = 48, width: int = 64, shift: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: red grows left to right, green top to bottom, plus a red, a green and a blue square."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    image[4:16, 4 + shift : 16 + shift] = (255, 0, 0)
    image[20:32, 24:36] = (0, 255, 0)
    image[height - 12 : height - 4, width - 12 : width - 4] = (0, 0, 255)
    return image


def make_video(frames: int = 9, height: int = 48, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8: the red square moves 2 pixels a frame."""
    return np.stack([make_image(height, width, shift=2 * t) for t in range(frames)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def ffmpeg_encode(path: Path, image: np.ndarray, *codec_args: str) -> None:
    """Write an input file with the shipped ffmpeg, independently of media.write_*."""
    height, width, _ = image.shape
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    command += ["-s", f"{width}x{height}", "-i", "pipe:0", "-frames:v", "1", *codec_args, str(path)]
    subprocess.run(command, input=image.tobytes(), check=True)


# ---------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec_args", "exact"),
    [
        ("in.png", ["-c:v", "png", "-f", "image2"], True),
        ("in.webp", ["-c:v", "libwebp", "-lossless", "1", "-f", "webp"], True),
        ("in.jpg", ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuv444p", "-f", "image2"], False),
        ("IN.PNG", ["-c:v", "png", "-f", "image2"], True),
        ("png-named.jpg", ["-c:v", "png", "-f", "image2"], True),  # decoded by content, not by name
    ],
)
def test_read_image(tmp_path: Path, name: str, codec_args: list[str], exact: bool) -> None:
    image = make_image()
    ffmpeg_encode(tmp_path / name, image, *codec_args)
    assert media.is_image(str(tmp_path / name))
    decoded = media.read_image(str(tmp_path / name))
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    if exact:
        np.testing.assert_array_equal(decoded, image)
    else:
        assert psnr(decoded, image) > 35


def test_write_image_jpeg(tmp_path: Path) -> None:
    y, x = np.mgrid[0:64, 0:96]
    smooth = np.stack([x * 2, y * 3, (x + y) + 40], axis=-1).astype(np.uint8)
    url = str(tmp_path / "new" / "dir" / "out.jpg")  # parents are created
    media.write_image(url, smooth)
    data = Path(url).read_bytes()
    assert data[:2] == b"\xff\xd8"  # a JPEG, whatever the name says
    decoded = media.read_image(url)
    assert decoded.shape == smooth.shape
    assert psnr(decoded, smooth) > 30
    assert os.listdir(tmp_path / "new" / "dir") == ["out.jpg"]  # no temporary left

    # Colours survive (4:2:0 chroma blurs the squares' edges, not their centres).
    media.write_image(url, make_image())
    np.testing.assert_allclose(media.read_image(url)[8, 8], (255, 0, 0), atol=12)

    # Lower quality, smaller file: the PIL-style scale reaches the encoder.
    media.write_image(str(tmp_path / "q50.jpg"), smooth, quality=50)
    media.write_image(str(tmp_path / "q95.jpg"), smooth, quality=95)
    assert (tmp_path / "q50.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size


def test_write_image_png_is_lossless(tmp_path: Path) -> None:
    """A .png URL gets a PNG that ffmpeg decodes to the very same pixels (odd sizes, every value)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    url = str(tmp_path / "sub" / "frame.png")
    media.write_image(url, image)
    assert Path(url).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(media.read_image(url), image)
    assert os.listdir(tmp_path / "sub") == ["frame.png"]


@pytest.mark.parametrize("pieces", [1, 2, 3, 7])
def test_threaded_zlib_stream_decodes_to_the_data(pieces: int) -> None:
    """The pieces compressed on threads make one zlib stream (checked by zlib itself, Adler-32
    included) that decodes to the data; repeats across piece boundaries are still found through
    the preset dictionaries, so the split costs almost no size."""
    rng = np.random.default_rng(1)
    data = np.tile(rng.integers(0, 256, 50_000, dtype=np.uint8), 40).tobytes()  # 2 MB, period 50 kB
    compressed = media._zlib_compress(data, pieces=pieces)
    assert zlib.decompress(compressed) == data
    assert len(compressed) < 1.05 * len(zlib.compress(data, 6))


def test_large_png_written_on_threads_is_lossless(tmp_path: Path) -> None:
    """An image above the threaded-compression size (1024x512x3 = 1.5 MB raw) still decodes, through
    ffmpeg, to the very same pixels."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    image[:, 300:700] = image[:, 300:301]  # flat stretches: something for deflate to find
    url = str(tmp_path / "big.png")
    media.write_image(url, image)
    np.testing.assert_array_equal(media.read_image(url), image)


def test_jpeg_quality_mapping() -> None:
    assert [media._jpeg_qscale(q) for q in (100, 95, 90, 85, 75, 50, 10, 1)] == [1, 2, 3, 4, 6, 11, 31, 31]


# ---------------------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------------------


def test_write_video_round_trip(tmp_path: Path) -> None:
    frames = make_video()
    url = str(tmp_path / "out.mp4")
    media.write_video(url, frames, fps=16)
    assert media.probe_video(url) == {
        "frames": 9,
        "fps": 16.0,
        "width": 64,
        "height": 48,
        "codec": "h264",
        "pix_fmt": "yuv420p",
    }
    decoded, fps = media.read_video(url)
    assert fps == 16.0
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert psnr(decoded, frames) > 30
    decoded[0, 0, 0] = 0  # the array is writable, like any other


def test_write_video_is_deterministic(tmp_path: Path) -> None:
    frames = make_video()
    media.write_video(str(tmp_path / "a.mp4"), frames, fps=16)
    media.write_video(str(tmp_path / "b.mp4"), iter(list(frames)), fps=16)  # an iterable of frames too
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def frames_then_fail(failure: str, directory: Path | None = None) -> Iterator[np.ndarray]:
    """Feed frames until ffmpeg has created its temporary output in `directory`, then fail mid-video:
    "shape" yields a frame of another size, "interrupt" raises like Ctrl-C or a pre-empted node would."""
    frames = make_video(12)
    yield from frames[:3]
    deadline = time.monotonic() + 10
    while directory is not None and not any(p.name.startswith(".out.mp4.tmp-") for p in directory.iterdir()):
        assert time.monotonic() < deadline, "ffmpeg never created its temporary output"
        time.sleep(0.01)
    if failure == "shape":
        yield frames[3, :, :32]
    raise KeyboardInterrupt


@pytest.mark.parametrize(("failure", "error"), [("shape", MediaError), ("interrupt", KeyboardInterrupt)])
@pytest.mark.parametrize("existing", [True, False])
def test_failed_video_write_leaves_nothing(tmp_path: Path, failure: str, error: type, existing: bool) -> None:
    url = tmp_path / "out.mp4"
    if existing:
        media.write_video(str(url), make_video(3), fps=16)
        good = url.read_bytes()
    with pytest.raises(error):
        media.write_video(str(url), frames_then_fail(failure, tmp_path), fps=16)
    assert os.listdir(tmp_path) == (["out.mp4"] if existing else [])  # the half-written temporary is gone
    if existing:
        assert url.read_bytes() == good


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    url = str(tmp_path / "out.mp4")
    with pytest.raises(MediaError, match=r"even width and height, got 64x47"):
        media.write_video(url, make_video(3, height=47), fps=16)
    with pytest.raises(MediaError, match=r"\(T, H, W, 3\)"):
        media.write_video(url, make_image(), fps=16)
    with pytest.raises(MediaError, match=r"frame 0 should be \(H, W, 3\) uint8 RGB, got float32"):
        media.write_video(url, make_video(3).astype(np.float32), fps=16)
    with pytest.raises(MediaError, match=r"no frames"):
        media.write_video(url, [], fps=16)
    with pytest.raises(MediaError, match=r"must end in one of \.mp4"):
        media.write_video(str(tmp_path / "out.avi"), make_video(3), fps=16)
    with pytest.raises(MediaError, match=r"must end in one of \.jpg, \.jpeg, \.png"):
        media.write_image(str(tmp_path / "out.webp"), make_image())
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------
# Errors a user can cause: missing, unreadable and unsupported inputs
# ---------------------------------------------------------------------------------------------------------


def test_missing_input(tmp_path: Path) -> None:
    for url, read in [("x.jpg", media.read_image), ("x.mp4", media.read_video), ("x.txt", media.read_text)]:
        path = str(tmp_path / url)
        with pytest.raises(MediaError, match=f"^input not found: {re.escape(path)}$"):
            read(path)
    with pytest.raises(MediaError, match="input not found"):
        media.probe_video(str(tmp_path / "x.mp4"))


@pytest.mark.parametrize("content", [b"not an image, just text\n", os.urandom(4096), b""])
@pytest.mark.parametrize(
    ("name", "kind"), [("bad.jpg", "an image"), ("bad.png", "an image"), ("bad.mp4", "a video")]
)
def test_unreadable_input(tmp_path: Path, content: bytes, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    read = media.read_video if kind == "a video" else media.read_image
    with pytest.raises(MediaError, match=f"^could not read {re.escape(str(path))} as {kind}: .+") as error:
        read(str(path))
    assert "\n" not in str(error.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"x\.gif: the name must end in one of \.jpg, \.jpeg, \.png, \.webp"):
        media.read_image(str(tmp_path / "x.gif"))
    with pytest.raises(MediaError, match=r"x\.mov: the name must end in one of \.mp4"):
        media.read_video(str(tmp_path / "x.mov"))
    assert media.is_video("s3://b/clip.MP4") and not media.is_video("clip.mov")
    assert media.is_image("a/b.JPEG") and not media.is_image("b.gif")


def test_text_exists_remove(tmp_path: Path) -> None:
    url = str(tmp_path / "a" / "b.json")
    assert not media.exists(url)
    media.write_text(url, '{"prompt": "un café"}')
    assert media.exists(url) and media.read_text(url) == '{"prompt": "un café"}'
    assert os.listdir(tmp_path / "a") == ["b.json"]
    media.remove(url)
    media.remove(url)  # already gone: no error
    assert not media.exists(url)


# ---------------------------------------------------------------------------------------------------------
# s3:// against moto on 127.0.0.1
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_s3_round_trip(s3_bucket_url: str) -> None:
    image_url, video_url, text_url = (f"{s3_bucket_url}/out/{n}" for n in ("a.jpg", "b.mp4", "c.json"))
    for url in (image_url, video_url, text_url):
        assert not media.exists(url)

    media.write_image(image_url, make_image())
    assert psnr(media.read_image(image_url), make_image()) > 25
    media.write_video(video_url, make_video(), fps=16)
    assert media.probe_video(video_url)["frames"] == 9
    frames, fps = media.read_video(video_url)
    assert frames.shape == (9, 48, 64, 3) and fps == 16.0
    media.write_text(text_url, "{}")
    assert media.read_text(text_url) == "{}"

    fs, prefix = url_to_fs(s3_bucket_url)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(prefix)) == ["a.jpg", "b.mp4", "c.json"]
    for url in (image_url, video_url, text_url):
        assert media.exists(url)
        media.remove(url)
        assert not media.exists(url)
    media.remove(text_url)  # already gone: no error


@pytest.mark.e2e
def test_s3_errors(s3_bucket_url: str) -> None:
    with pytest.raises(MediaError, match=f"^input not found: {re.escape(s3_bucket_url)}/x.jpg$"):
        media.read_image(f"{s3_bucket_url}/x.jpg")
    with pytest.raises(MediaError, match=r"^input not found"):
        media.read_text(f"{s3_bucket_url}/x.json")
    media.write_text(f"{s3_bucket_url}/bad.mp4", "not a video")
    with pytest.raises(MediaError, match=f"^could not read {re.escape(s3_bucket_url)}/bad.mp4 as a video: "):
        media.read_video(f"{s3_bucket_url}/bad.mp4")
    # A failed encode uploads nothing.
    with pytest.raises(KeyboardInterrupt):
        media.write_video(f"{s3_bucket_url}/c.mp4", frames_then_fail("interrupt"), fps=16)
    assert not media.exists(f"{s3_bucket_url}/c.mp4")


@pytest.mark.e2e
@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "FSSPEC_S3_ENDPOINT_URL"])
def test_s3_endpoint_from_environment(s3_server: S3Server, s3_bucket_url: str, variable: str) -> None:
    """A fresh process reaches the server through any one of the endpoint variables (see media's docstring)."""
    media.write_text(f"{s3_bucket_url}/hello.txt", "hello")
    endpoints = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "FSSPEC_S3_ENDPOINT_URL")
    env = {k: v for k, v in os.environ.items() if k not in endpoints} | {variable: s3_server.endpoint_url}
    code = f"from cosmos_core import media; print(media.read_text({f'{s3_bucket_url}/hello.txt'!r}))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
