"""The deployment files: systemd units (systemd-analyze verify), the Pi's and the server's config
templates, the install scripts, .env.example, and `homesec broker init`'s LAN and compose options."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from homesec.broker import MosquittoProcess, free_port, port_open
from homesec.broker_cli import lan_address
from homesec.cli import main
from homesec.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
VENV = "/opt/homesec/.venv/bin"  # where scripts/install-pi.sh puts the programs
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/homesec",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "User": "homesec",
}


def unit_settings(unit: Path) -> dict[str, str]:
    """Each `Key=value` of a unit file (the last one wins, as for systemd's single-valued keys)."""
    found = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def test_every_node_and_the_broker_has_a_unit() -> None:
    names = {u.name for u in UNITS}
    nodes = ("camera", "recognizer", "notifier", "homeassistant", "broker")
    assert names == {f"homesec-{n}.service" for n in nodes}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_runs_hardened_as_its_own_user(unit: Path) -> None:
    settings = unit_settings(unit)
    for key, value in HARDENING.items():
        assert settings.get(key) == value, f"{unit.name}: {key}={settings.get(key)}"
    assert settings["StateDirectory"] == "homesec"  # /var/lib/homesec, owned by the service's user


def test_the_camera_unit_keeps_its_devices() -> None:
    """ProtectClock= implies DeviceAllow=char-rtc, and any DeviceAllow= turns device access into a list:
    the camera (/dev/video*, /dev/media*, /dev/dma_heap) and the PIR (/dev/gpiochip*) would be cut off."""
    settings = unit_settings(DEPLOY / "homesec-camera.service")
    for key in ("ProtectClock", "PrivateDevices", "DeviceAllow", "DevicePolicy"):
        assert key not in settings, key


@pytest.mark.parametrize("unit", [u for u in UNITS if "broker" not in u.name], ids=lambda u: u.name)
def test_the_node_units_run_the_installed_programs(unit: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    program = unit_settings(unit)["ExecStart"].split()[0]
    assert program.startswith(VENV + "/") and Path(program).name in scripts
    assert (
        "prefix=/opt/homesec\n" in (REPO / "scripts" / "install-pi.sh").read_text()
    )  # its venv: prefix/.venv


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify_finds_nothing(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # verify checks that ExecStart exists: the venv's programs stand here where install-pi.sh puts them.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in {Path(unit_settings(u)["ExecStart"].split()[0]).name for u in UNITS}:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(VENV, str(bin_dir)))
    if "broker" in unit.name and not Path("/usr/sbin/mosquitto").exists():
        copy.write_text(copy.read_text().replace("/usr/sbin/mosquitto", "/bin/true"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_the_pi_config_template_is_a_valid_camera_config(tmp_path: Path) -> None:
    text = (DEPLOY / "camera.toml").read_text()
    filled = text.replace("@SERVER@", "192.168.1.10").replace("@PORT@", "1884").replace("@CAMERA@", "porch")
    assert "@" not in filled.split("#")[0]
    (tmp_path / "homesec.toml").write_text(filled)
    config = load_config(tmp_path / "homesec.toml", env={})
    assert (config.mqtt.host, config.mqtt.port) == ("192.168.1.10", 1884)
    assert config.camera.id == "porch" and config.camera.source == "picamera2"  # type: ignore[attr-defined]
    for placeholder in ("@SERVER@", "@PORT@", "@CAMERA@"):  # the install script fills every one
        assert placeholder in (REPO / "scripts" / "install-pi.sh").read_text()


def test_the_pi_guides_example_config_is_valid(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "raspberry-pi.md").read_text()
    example = re.search(r"```toml\n(.*?)```", guide, re.DOTALL)
    assert example is not None
    (tmp_path / "homesec.toml").write_text(example.group(1))
    config = load_config(tmp_path / "homesec.toml", env={})
    assert config.data_dir == Path("/var/lib/homesec") and config.mqtt.port == 1884


def test_the_server_config_template_is_valid() -> None:
    config = load_config(DEPLOY / "server.toml", env={})
    assert config.data_dir == Path("/var/lib/homesec")
    assert config.mqtt.port == 1884  # not 1883: the system Mosquitto's


@pytest.mark.parametrize("script", ["install-pi.sh", "arm64-check.sh"])
def test_the_scripts_parse(script: str) -> None:
    path = REPO / "scripts" / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shellcheck := shutil.which("shellcheck"):
        subprocess.run([shellcheck, "-S", "warning", str(path)], check=True)


def test_env_example_names_every_variable_the_compose_file_uses() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (REPO / "docker-compose.yml").read_text()))
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


# ------------------------------------------------------------------------- broker init: LAN, compose


def _init(data: Path, *args: str) -> int:
    config = data.parent / "c.toml"
    config.write_text(f'data_dir = "{data}"\n')
    return main(["--config", str(config), "broker", "init", *args])


def _listener(data: Path) -> str:
    found = re.search(r"^listener .*$", (data / "broker" / "mosquitto.conf").read_text(), re.MULTILINE)
    assert found is not None
    return found.group(0)


def test_broker_init_listens_on_this_machine_only_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _init(tmp_path / "data", "--port", "1890") == 0
    assert _listener(tmp_path / "data") == "listener 1890 127.0.0.1"
    out = capsys.readouterr().out
    assert "a camera on another machine cannot connect" in out and "--lan" in out and "--compose" in out


def test_broker_init_lan_is_kept_when_a_camera_is_added(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert _init(data, "--lan", "--port", "1890") == 0
    out = capsys.readouterr().out
    assert "a camera Pi connects to" in out and "mqtt-camera-door.password" in out
    home_assistant = f"Home Assistant connects to {lan_address()}:1890 as user homeassistant"
    assert home_assistant in out and str(data / "secrets" / "mqtt-homeassistant.password") in out
    assert _init(data, "--camera", "porch") == 0  # the way a second Pi is added: LAN and port stay
    assert _listener(data) == "listener 1890 0.0.0.0"
    assert (data / "secrets" / "mqtt-camera-porch.password").exists()
    assert _init(data, "--listen", "127.0.0.1") == 0
    assert _listener(data) == "listener 1890 127.0.0.1"


def test_a_lan_broker_is_reachable_on_the_lan_address_and_a_local_one_is_not(tmp_path: Path) -> None:
    lan = lan_address()
    assert lan is not None, "this machine has no address besides loopback"
    for name, flag, reachable in (("lan", "--lan", True), ("local", "--listen=127.0.0.1", False)):
        data = tmp_path / name
        port = free_port()
        assert _init(data, flag, "--port", str(port)) == 0
        broker = MosquittoProcess(data / "broker" / "mosquitto.conf", port, tmp_path / f"{port}.log")
        broker.start()
        try:
            assert port_open(lan, port) is reachable
        finally:
            broker.stop()


def test_broker_init_compose_prints_the_env_lines_and_publishes_1884(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert _init(data, "--compose") == 0
    out = capsys.readouterr().out
    lines = dict(re.findall(r"^  (HOMESEC_[A-Z_]+)=(\S+)$", out, re.MULTILINE))
    st = data.stat()
    assert lines == {
        "HOMESEC_DATA": str(data),
        "HOMESEC_UID": str(st.st_uid),
        "HOMESEC_GID": str(st.st_gid),
        "HOMESEC_BROKER_PORT": "1884",
    }
    assert "docker compose up -d" in out
    # compose mounts the shipped mosquitto/mosquitto.conf, not the data dir's one (the local broker's)
    config = re.search(r"^broker config: (\S+)", out, re.MULTILINE)
    assert config is not None and config.group(1) == "mosquitto/mosquitto.conf"
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"./{config.group(1)}:/mosquitto/config/mosquitto.conf" in compose
    assert str(data / "broker" / "dynamic-security.json") in out  # the accounts compose mounts
    assert "Home Assistant connects to" in out and ":1884 as user homeassistant" in out
    assert (data / "broker" / "port").read_text().strip() == "1884"  # the command line dials it


# ------------------------------------------------------------------- what the install commands bring


def _requirements(extras: str) -> set[str]:
    """The distribution names `pip install '.[extras]'` installs from pyproject (extras expanded)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[; ]", r)[0].lower() for r in project["dependencies"]}
    for extra in filter(None, extras.split(",")):
        for req in project["optional-dependencies"][extra]:
            nested = re.fullmatch(r"homesec\[([^\]]+)\]", req)
            names |= _requirements(nested.group(1)) if nested else {re.split(r"[<>=\[; ]", req)[0].lower()}
    return names


def _pip_installs(text: str) -> list[set[str]]:
    """Everything each `pip install '.[extras]' more` command in `text` installs."""
    found = re.findall(r"pip install (?:--\S+ \S+ )*'?\.\[([a-z,]+)\]'?((?: [a-z][a-z0-9-]*)*)", text)
    assert found, "no `pip install '.[...]'` command"
    return [_requirements(extras) | set(more.split()) for extras, more in found]


@pytest.mark.parametrize("where", ["Dockerfile", "docs/deploy.md"])
def test_the_server_install_can_run_models_install(where: str) -> None:
    """`homesec models install` derives the run-time models with the `onnx` package (install time only):
    the image's build and the server's systemd steps run it right after their pip install."""
    text = (REPO / where).read_text()
    assert "homesec models install" in text
    for installed in _pip_installs(text):
        assert {"onnxruntime", "onnx"} <= installed, where
