"""The [camera] section: defaults that load, and mistakes that are refused with a readable message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from camera_node.settings import CameraSettings
from homesec.config import ConfigError, load_config


def test_defaults_are_valid() -> None:
    s = CameraSettings()
    assert (s.id, s.source, s.trigger, s.lores) == ("door", "replay", "motion", (320, 240))
    assert s.burst.count >= 1 and s.motion.threshold > 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "Front Door"}, "camera id 'Front Door': use 1-32 of a-z"),
        ({"lores": (321, 240)}, "must be even"),
        ({"lores": (640, 480), "resolution": (320, 240)}, "must not be larger than resolution"),
        ({"trigger": "sound"}, "'pir', 'motion', 'pir+motion' or 'manual'"),
        ({"motion": {"ignore": [(0.5, 0, 0.2, 1)]}}, "0 <= x1 < x2 <= 1"),
        ({"motion": {"light_switch": 1.5}}, "less than or equal to 1"),
        ({"burst": {"count": 0}}, "greater than or equal to 1"),
        ({"pir": {"pinn": 4}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_refused_clearly(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        CameraSettings.model_validate(fields)


def test_loads_from_toml_and_env(tmp_path: Path) -> None:
    path = tmp_path / "homesec.toml"
    path.write_text(
        """
[camera]
id = "garden"
trigger = "pir+motion"
resolution = [1280, 720]

[camera.pir]
pin = "GPIO4"

[camera.motion]
ignore = [[0.0, 0.0, 0.3, 0.2]]
"""
    )
    config = load_config(path, env={"HOMESEC_CAMERA__MOTION__THRESHOLD": "30"})
    cam = config.camera
    assert (cam.id, cam.trigger, cam.resolution, cam.pir.pin) == (
        "garden",
        "pir+motion",
        (1280, 720),
        "GPIO4",
    )
    assert cam.motion.threshold == 30 and cam.motion.ignore == [(0.0, 0.0, 0.3, 0.2)]
    path.write_text("[camera.burst]\ncuont = 3\n")
    with pytest.raises(ConfigError, match=r"camera\.burst\.cuont: unknown key"):
        load_config(path, env={})
