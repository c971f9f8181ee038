"""The notifier's photo handling stays within +100 MB of idle on huge images (measured in a fresh process
from /proc/self/status VmHWM, the peak resident size; ru_maxrss would carry the test runner's own peak
across exec). Before the bound, a 6320x6320 PNG took `fit_photo` from 33 MB to 556 MB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

BUDGET_MB = 100

PROBE = """
import re, sys
from notifier_node.photo import PhotoError, fit_photo

def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024

data = open(sys.argv[1], "rb").read()
idle = peak_mb()
try:
    outcome = f"sent {len(fit_photo(data))} bytes"
except PhotoError as exc:
    outcome = f"refused: {exc}"
print(peak_mb() - idle, outcome)
"""


def peak_growth(path: Path) -> tuple[int, str]:
    """How far above its idle peak `fit_photo(<path>)` takes a fresh interpreter, and what it did."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    grown, outcome = run.stdout.strip().split(" ", 1)
    return int(grown), outcome


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("fmt", "size", "expect"),
    [
        ("PNG", 6320, "refused: photo of 6320x6320 pixels: over the 16 Mpx"),  # decoding it would be 160 MB
        ("PNG", 4000, "sent"),  # the largest kind of PNG still decoded, just under the bound
        ("JPEG", 6320, "sent"),  # decoded at half scale
    ],
)
def test_huge_photos_stay_within_the_memory_budget(tmp_path: Path, fmt: str, size: int, expect: str) -> None:
    path = tmp_path / f"big.{fmt.lower()}"
    Image.new("RGB", (size, size), (30, 60, 90)).save(path, format=fmt)
    grown, outcome = peak_growth(path)
    assert outcome.startswith(expect)
    assert grown <= BUDGET_MB, f"{fmt} {size}x{size}: peak +{grown} MB ({outcome})"
