"""A real RTSP server for the tests: GStreamer's gst-rtsp-server (python3-gi), serving a looped H.264
(x264) or H.265 (x265) stream encoded from a directory of JPEG frames, at a main and a scaled-down substream path.

The venv cannot import `gi`, so this file runs under the system Python as its own process:
`RtspServer` (below, imported by the tests) starts and stops it; `main()` is the server. It prints
`ready <port>` once it listens. Every client gets its own pipeline from the first frame, so a camera
that connects sees the whole sequence.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"


def _pipeline(pattern: str, fps: int, width: int, height: int, kbps: int, codec: str, preset: str) -> str:
    encoder = "x264enc" if codec == "h264" else "x265enc"
    return (
        f'( multifilesrc location="{pattern}" loop=true caps="image/jpeg,framerate={fps}/1" '
        f"! jpegdec ! videoconvert ! videoscale ! video/x-raw,width={width},height={height},format=I420 "
        f"! {encoder} tune=zerolatency speed-preset={preset} key-int-max={fps} bitrate={kbps} "
        f"! rtp{codec}pay name=pay0 pt=96 config-interval=1 )"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", required=True, help="directory of frame00000.jpg, frame00001.jpg...")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--size", default="640x480", help="main stream size")
    parser.add_argument("--sub-size", default="320x240", help="substream size")
    parser.add_argument("--kbps", type=int, default=2048, help="main stream bitrate (the substream: 1/8)")
    parser.add_argument("--codec", choices=["h264", "h265"], default="h264")
    parser.add_argument(
        "--preset",
        default="ultrafast",
        help="the encoder's speed-preset: ultrafast (cheap to encode, and to decode: no CABAC, no deblocking) "
        "or superfast and slower (CABAC and deblocking, as cameras' encoders use)",
    )
    parser.add_argument("--user")
    parser.add_argument("--password-env", default="RTSP_TEST_PASSWORD")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    pattern = os.path.join(args.frames, "frame%05d.jpg")
    mounts = server.get_mount_points()
    for path, size, kbps in (("/main", args.size, args.kbps), ("/sub", args.sub_size, args.kbps // 8)):
        w, h = (int(v) for v in size.split("x"))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(_pipeline(pattern, args.fps, w, h, kbps, args.codec, args.preset))
        factory.set_shared(False)
        if args.user:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory(path, factory)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        basic = GstRtspServer.RTSPAuth.make_basic(args.user, os.environ[args.password_env])
        auth.add_basic(basic, token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        return 1
    print(f"ready {args.port}", flush=True)
    GLib.MainLoop().run()
    return 0


class RtspServer:
    """The server above as a subprocess on `port`; `stop()` and `start()` again on the same port."""

    def __init__(
        self,
        frames: list[Path],
        directory: Path,
        port: int,
        *,
        fps: int = 10,
        size: str = "640x480",
        sub_size: str = "320x240",
        kbps: int = 2048,
        codec: str = "h264",
        preset: str = "ultrafast",
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port, self.fps, self.size, self.user, self.password = port, fps, size, user, password
        self.sub_size, self.kbps, self.codec, self.preset = sub_size, kbps, codec, preset
        self.frames_dir = directory / "frames"
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            shutil.copyfile(frame, self.frames_dir / f"frame{i:05d}.jpg")
        self.log = directory / "rtsp-server.log"
        self.proc: subprocess.Popen[str] | None = None

    def url(self, path: str = "/main") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        cmd = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--frames", str(self.frames_dir)]
        cmd += ["--fps", str(self.fps), "--size", self.size, "--sub-size", self.sub_size]
        cmd += ["--kbps", str(self.kbps), "--codec", self.codec, "--preset", self.preset]
        env = dict(os.environ)
        if self.user:
            cmd += ["--user", self.user]
            env["RTSP_TEST_PASSWORD"] = self.password or ""
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)  # it listens, dies, or hangs
        line = self.proc.stdout.readline() if ready else "(nothing in 20 s)"
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {line!r}; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


if __name__ == "__main__":
    sys.exit(main())
