"""The camera node: frames in, motion events and snapshot bursts out, commands over MQTT.

sources (replay, picamera2) -> motion (`MotionDetector` judges each frame) -> events (`EventMachine`
decides when an event starts and ends) -> service (`CameraService`: bursts, commands, enabled state)
-> sender (JPEG, publish with an ack or spool to disk). pir reads the sensor; synthetic makes test scenes.
"""
