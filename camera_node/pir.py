"""The PIR sensor, through gpiozero (imported here only: the other trigger modes do without it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camera_node.settings import CameraSettings


def make_pir(settings: CameraSettings, on_motion: Callable[[], None], pin_factory: Any = None) -> Any:
    """A gpiozero MotionSensor on `settings.pir.pin` calling `on_motion` on each rising edge.

    `pin_factory` None lets gpiozero pick (lgpio on a Pi, or $GPIOZERO_PIN_FACTORY); tests pass a
    MockFactory. Raises RuntimeError with a readable reason when there is no usable GPIO.
    """
    p = settings.pir
    try:
        from gpiozero import MotionSensor

        sensor = MotionSensor(
            p.pin,
            queue_len=p.queue_len,
            sample_rate=p.sample_rate,
            threshold=p.threshold,
            pin_factory=pin_factory,
        )
    except Exception as exc:
        raise RuntimeError(
            f"camera.trigger '{settings.trigger}' needs a PIR on GPIO {p.pin}: {type(exc).__name__}: {exc} "
            "(not a Raspberry Pi? use trigger = 'motion', or GPIOZERO_PIN_FACTORY=mock to try it out)"
        ) from None
    sensor.when_motion = on_motion
    return sensor
