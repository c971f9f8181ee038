"""Synthetic camera scenes for the replay source: a demo without a Pi, and test fixtures.

A static textured background with sensor noise, and optionally someone walking in (a drawn figure,
or a photo of a person) or a light switching on. Deterministic for a given seed.

    python -m camera_node.synthetic walk_in out/ --size 640x480 --figure photo.jpg
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Size = tuple[int, int]
Crop = tuple[float, float, float, float]
RGB = NDArray[np.uint8]


def background(size: Size, seed: int = 0) -> NDArray[np.float32]:
    """A smooth random texture plus a few 'furniture' blocks, luma kept in 40..180 (no clipping)."""
    w, h = size
    rng = np.random.default_rng(seed)
    grey = rng.uniform(60, 160, size=(12, 16, 1))
    coarse = np.clip(grey + rng.uniform(-15, 15, size=(12, 16, 3)), 0, 255).astype(np.uint8)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    for _ in range(4):
        x, y = int(rng.integers(0, w * 3 // 4)), int(rng.integers(0, h * 3 // 4))
        tex[y : y + h // 5, x : x + w // 6] = rng.uniform(50, 170) + rng.uniform(-20, 20, size=3)
    return np.clip(tex, 40, 180)


def with_noise(img: NDArray[np.float32], sigma: float, rng: np.random.Generator) -> RGB:
    """Sensor noise: independent Gaussian noise per pixel and channel."""
    noisy = img + rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def drawn_figure(height: int) -> NDArray[np.float32]:
    """An RGBA-less 'person': dark body with a lighter head, as a float RGB array with NaN = transparent."""
    width = max(4, height * 2 // 5)
    fig = np.full((height, width, 3), np.nan, dtype=np.float32)
    head = height // 6
    yy, xx = np.mgrid[0:head, 0:width]
    inside = ((xx - width / 2) / (head / 2)) ** 2 + ((yy - head / 2) / (head / 2)) ** 2 <= 1
    fig[:head][inside] = (205, 165, 140)
    fig[head:, width // 8 : width - width // 8] = (35, 45, 90)
    return fig


def photo_figure(path: Path, height: int, crop: Crop | None = None) -> NDArray[np.float32]:
    """A photo of a person (optionally cropped, fractions x1, y1, x2, y2), scaled to `height`; its
    whole rectangle is the figure."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if crop is not None:
            x1, y1, x2, y2 = crop
            rgb = rgb.crop(
                (round(x1 * rgb.width), round(y1 * rgb.height), round(x2 * rgb.width), round(y2 * rgb.height))
            )
        width = max(1, round(rgb.width * height / rgb.height))
        return np.asarray(rgb.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)


def paste(scene: NDArray[np.float32], fig: NDArray[np.float32], x: int, y: int) -> NDArray[np.float32]:
    """`fig` over `scene` with its top-left at (x, y), clipped to the frame; NaN pixels are see-through."""
    out = scene.copy()
    h, w = scene.shape[:2]
    fh, fw = fig.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + fw), min(h, y + fh)
    if x1 >= x2 or y1 >= y2:
        return out
    part = fig[y1 - y : y2 - y, x1 - x : x2 - x]
    region = out[y1:y2, x1:x2]
    out[y1:y2, x1:x2] = np.where(np.isnan(part), region, part)
    return out


def walk_in(
    size: Size = (320, 240),
    *,
    empty: int = 4,
    walking: int = 10,
    standing: int = 16,
    figure: Path | None = None,
    crop: Crop | None = None,
    sigma: float = 4.0,
    seed: int = 1,
) -> list[RGB]:
    """Empty room, then someone walks in from the left to the middle and stands still."""
    w, h = size
    rng = np.random.default_rng(seed)
    bg = background(size, seed)
    fig = photo_figure(figure, h * 3 // 4, crop) if figure else drawn_figure(h * 3 // 4)
    fh, fw = fig.shape[:2]
    y = h - fh
    start, stop = -fw, (w - fw) // 2
    frames = [with_noise(bg, sigma, rng) for _ in range(empty)]
    for i in range(1, walking + 1):
        frames.append(with_noise(paste(bg, fig, start + (stop - start) * i // walking, y), sigma, rng))
    still = paste(bg, fig, stop, y)
    frames += [with_noise(still, sigma, rng) for _ in range(standing)]
    return frames


def static_noise(size: Size = (320, 240), n: int = 30, *, sigma: float = 4.0, seed: int = 2) -> list[RGB]:
    rng = np.random.default_rng(seed)
    bg = background(size, seed)
    return [with_noise(bg, sigma, rng) for _ in range(n)]


def light_switch(
    size: Size = (320, 240),
    n: int = 30,
    *,
    at: int = 10,
    jump: float = 60.0,
    ramp: int = 1,
    sigma: float = 4.0,
    seed: int = 3,
) -> list[RGB]:
    """A static room whose light goes on at frame `at`: every pixel brightens by `jump`, at once
    (`ramp` = 1) or spread evenly over `ramp` frames (a lamp warming up, auto exposure)."""
    rng = np.random.default_rng(seed)
    bg = background(size, seed)
    return [with_noise(bg + jump * min(1.0, max(0, i - at + 1) / ramp), sigma, rng) for i in range(n)]


def write_scene(frames: Sequence[RGB], directory: Path, *, fmt: str = "png", quality: int = 85) -> list[Path]:
    """Numbered image files (frame-000.png, ...) in `directory`, for a ReplaySource."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / f"frame-{i:03d}.{fmt}"
        if fmt in ("jpg", "jpeg"):
            Image.fromarray(frame).save(path, quality=quality)
        else:
            Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def _size(text: str) -> Size:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _crop(text: str) -> Crop:
    x1, y1, x2, y2 = (float(v) for v in text.split(","))
    return x1, y1, x2, y2


def _counts(text: str) -> tuple[int, int, int]:
    a, b, c = (int(v) for v in text.split(","))
    return a, b, c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m camera_node.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("scene", choices=["walk_in", "static_noise", "light_switch"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    parser.add_argument("--figure", type=Path, help="walk_in: photo of a person instead of a drawn figure")
    parser.add_argument("--crop", type=_crop, help="x1,y1,x2,y2 fractions of the figure photo to keep")
    parser.add_argument("--frames", type=_counts, default=(4, 10, 16), help="walk_in: EMPTY,WALKING,STANDING")
    parser.add_argument("--sigma", type=float, default=4.0, help="sensor noise (standard deviation)")
    parser.add_argument("--format", default="png", choices=["png", "jpg"])
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args(argv)
    if args.scene == "walk_in":
        empty, walking, standing = args.frames
        frames = walk_in(
            args.size,
            empty=empty,
            walking=walking,
            standing=standing,
            figure=args.figure,
            crop=args.crop,
            sigma=args.sigma,
        )
    elif args.scene == "static_noise":
        frames = static_noise(args.size, sigma=args.sigma)
    else:
        frames = light_switch(args.size, sigma=args.sigma)
    paths = write_scene(frames, args.directory, fmt=args.format, quality=args.quality)
    print(f"wrote {len(paths)} frames to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
