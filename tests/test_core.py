"""Unit tests of the shared core: contract, config, spool, broker file rendering."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
from pathlib import Path

import pytest

from homesec.broker import deployment_accounts, render_acl, render_dynsec
from homesec.bus import Message, topic_matches
from homesec.config import ConfigError, load_config, mqtt_for_role, node_client_id
from homesec.contract import (
    ContractError,
    SnapshotMeta,
    Topics,
    TrainRequest,
    check_label,
    meta_property,
    parse,
    parse_meta,
)
from homesec.spool import DiskSpool
from tests.helpers import LocalBus

REPO = Path(__file__).parent.parent


# ------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("bad", ["../../etc", "a/b", "+", "#", "", " ", "x" * 65, "..", "a..b", "-x", "a\nb"])
def test_labels_with_path_or_topic_tricks_are_refused(bad: str) -> None:
    with pytest.raises(ContractError, match="invalid label"):
        check_label(bad)


def test_reasonable_labels_pass() -> None:
    assert check_label(" Barack Obama ") == "Barack Obama"
    assert check_label("kit_harington-2") == "kit_harington-2"


def test_parse_names_the_bad_field() -> None:
    with pytest.raises(ContractError, match="not JSON"):
        parse(TrainRequest, b"\xff\xfe")
    with pytest.raises(ContractError, match="expected a JSON object"):
        parse(TrainRequest, b"[1, 2]")
    with pytest.raises(ContractError, match=r"^invalid TrainRequest: label: invalid label '\.\./x'"):
        parse(TrainRequest, json.dumps({"label": "../x", "image_b64": ""}))
    with pytest.raises(ContractError, match="surprise"):
        parse(TrainRequest, json.dumps({"label": "ok", "image_b64": "", "surprise": 1}))


def test_payloads_carry_version_id_and_utc_time() -> None:
    req = parse(TrainRequest, TrainRequest(label="alice", image_b64="").to_json())
    assert req.v == 1 and len(req.request_id) == 32 and json.loads(req.to_json())["ts"].endswith("Z")


def test_image_metadata_round_trips_through_user_properties() -> None:
    meta = SnapshotMeta(camera="door", event_id="e1", seq=0, burst=3, trigger="pir", width=64, height=48)
    assert parse_meta(SnapshotMeta, meta_property(meta)) == meta
    with pytest.raises(ContractError, match="missing 'meta'"):
        parse_meta(SnapshotMeta, {})


def test_topic_helpers() -> None:
    t = Topics("house")
    assert t.snapshot("door") == "house/camera/door/snapshot"
    assert t.shared_snapshots == "$share/recognizer/house/camera/+/snapshot"
    assert t.label_from_train_raw("house/train/alice") == "alice"
    assert t.camera_from_topic(t.alert("garden")) == "garden"
    with pytest.raises(ContractError):
        t.label_from_train_raw("house/train/..")
    assert topic_matches(t.shared_snapshots, t.snapshot("door"))
    assert not topic_matches(t.all_alerts, t.snapshot("door"))


def _all_topics(t: Topics) -> list[str]:
    """Every topic the contract can name, with placeholders like <camera> for its parameters."""
    out = []
    for name, member in inspect.getmembers(Topics):
        if name.startswith("_") or name == "prefix":
            continue
        if isinstance(member, property):
            out.append(getattr(t, name))
        elif callable(member):
            params = list(inspect.signature(member).parameters)[1:]
            if params == ["topic"]:  # a parser (the inverse of a builder)
                continue
            out.append(getattr(t, name)(*[f"<{p}>" for p in params]))
    return out


def test_docs_list_every_topic() -> None:
    doc = (REPO / "docs" / "mqtt.md").read_text()
    missing = [topic for topic in _all_topics(Topics("homesec")) if f"`{topic}`" not in doc]
    assert not missing, f"docs/mqtt.md does not mention: {missing}"


# -------------------------------------------------------------------------------------------- config
def test_config_env_overrides_and_clear_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nport = 1884\nprefix = "house"\n')
    c = load_config(cfg, env={"HOMESEC_MQTT__HOST": "broker.lan", "HOMESEC_DATA_DIR": str(tmp_path)})
    assert (c.mqtt.host, c.mqtt.port, c.mqtt.prefix, c.data_dir) == ("broker.lan", 1884, "house", tmp_path)
    c = load_config(cfg, env={"HOMESEC_CAMERA__RESOLUTION": "[1280, 720]"})
    assert c.camera.resolution == (1280, 720)
    with pytest.raises(ConfigError, match=r"camera\.resolution"):
        load_config(cfg, env={"HOMESEC_CAMERA__RESOLUTION": "[1280"})
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_config(cfg, env={"HOMESEC_MQTT__PORT": "99999"})
    with pytest.raises(ConfigError, match=r"mqtt\.prefix"):
        load_config(cfg, env={"HOMESEC_MQTT__PREFIX": "a/#"})
    cfg.write_text("[mqtt]\nhots = 'x'\n")
    with pytest.raises(ConfigError, match=r"mqtt\.hots: unknown key"):
        load_config(cfg, env={})
    cfg.write_text("[mqtt\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(cfg, env={})


def test_secrets_never_come_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="secrets do not belong"):
        load_config(cfg, env={})
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    c = load_config(None, env={"HOMESEC_MQTT_PASSWORD_FILE": str(secret)})
    assert c.mqtt.password is not None and c.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(c)


def test_each_role_gets_its_own_password_from_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt-camera.password").write_text("cam-pw\n")
    c = load_config(None, env={"HOMESEC_DATA_DIR": str(tmp_path)})
    m = mqtt_for_role(c, "camera")
    assert m.username == "camera" and m.password is not None and m.password.get_secret_value() == "cam-pw"
    assert mqtt_for_role(c, "notifier").password is None


def test_example_config_is_valid() -> None:
    load_config(REPO / "config.example.toml", env={})


# --------------------------------------------------------------------------------------------- spool
def test_spool_is_fifo_and_survives_reopen(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_items=10, max_bytes=10_000)
    ids = [spool.put(f"p{i}".encode(), {"i": i}) for i in range(3)]
    again = DiskSpool(tmp_path, max_items=10, max_bytes=10_000)
    assert len(again) == 3
    item = again.peek()
    assert item is not None and item.payload == b"p0" and item.meta == {"i": 0} and item.id == ids[0]
    again.remove(item.id)
    nxt = again.peek()
    assert nxt is not None and nxt.payload == b"p1"
    assert again.put(b"p3") > ids[-1]  # ids keep increasing after a restart


def test_spool_drops_oldest_when_full_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = DiskSpool(tmp_path, max_items=2, max_bytes=10_000)
    with caplog.at_level(logging.WARNING):
        for i in range(4):
            spool.put(bytes([i]) * 10)
    assert len(spool) == 2
    first = spool.peek()
    assert first is not None and first.payload == bytes([2]) * 10
    assert "dropping oldest" in caplog.text
    small = DiskSpool(tmp_path / "b", max_items=100, max_bytes=50)
    for i in range(5):
        small.put(bytes([i]) * 20)
    assert small.size_bytes <= 50 + 20 + 2


def test_spool_ignores_a_half_written_record(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path)
    spool.put(b"whole")
    (tmp_path / "000000000099.bin").write_bytes(b"crashed before its metadata")
    again = DiskSpool(tmp_path)
    assert len(again) == 1 and not (tmp_path / "000000000099.bin").exists()


# --------------------------------------------------------------------------------------- broker files
def test_account_file_holds_mosquitto_pbkdf2_sha512_hashes_and_binds_node_client_ids() -> None:
    accounts = deployment_accounts(["door"], ["main"])
    passwords = {a.user: f"pw-{a.user}" for a in accounts}
    body = json.loads(render_dynsec(accounts, passwords, Topics()))
    clients = {c["username"]: c for c in body["clients"]}
    door = clients["camera-door"]
    digest = hashlib.pbkdf2_hmac("sha512", b"pw-camera-door", base64.b64decode(door["salt"]), 101)
    assert base64.b64decode(door["password"]) == digest and door["iterations"] == 101
    assert door["clientid"] == node_client_id("camera-door", "pw-camera-door")
    assert "clientid" not in clients["admin"] and "clientid" not in clients["viewer"]  # commands run at once
    assert "clientid" not in clients["homeassistant"]  # Home Assistant picks its own
    assert clients["habridge-main"]["clientid"] == node_client_id("habridge-main", "pw-habridge-main")
    assert set(clients) == {"camera-door", "recognizer-main", "notifier-main", "admin", "viewer"} | {
        "homeassistant",
        "habridge-main",
    }
    assert body["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }


def test_acl_follows_the_prefix() -> None:
    acl = render_acl("house")
    assert "publish house/camera/door/snapshot" in acl and "homesec/camera" not in acl
    assert "user camera-door" in acl and "publish house/train" not in acl.split("user recognizer")[0]


# ------------------------------------------------------------------------------------------ local bus
def test_local_bus_reports_bad_payloads_and_keeps_going() -> None:
    bus = LocalBus("recognizer/t")
    seen: list[str] = []

    def handler(msg: Message) -> None:
        seen.append(parse(TrainRequest, msg.payload).label)

    bus.subscribe(bus.topics.train, handler)
    bus.inject(bus.topics.train, b"nope")
    bus.inject(bus.topics.train, TrainRequest(label="bob", image_b64=""))
    assert seen == ["bob"]
    assert [e.error for e in bus.errors] == ["bad_payload"]
    assert bus.json(bus.topics.error("recognizer/t"))[0]["topic"] == bus.topics.train


def test_generated_files_are_up_to_date() -> None:
    """config.example.toml, docs/configuration.md and mosquitto/ are rendered from the code."""
    from homesec.broker import render_container_conf
    from homesec.config_doc import render_example, render_table

    assert (REPO / "config.example.toml").read_text() == render_example(), "run: homesec config example"
    assert (REPO / "docs" / "configuration.md").read_text() == render_table(), "run: homesec config table"
    conf = (REPO / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "plugin_opt_config_file /mosquitto/config/" in conf
    assert conf == render_container_conf(), "run: homesec broker render"


def test_an_unreadable_spool_record_is_set_aside_and_does_not_block_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = DiskSpool(tmp_path)
    bad = spool.put(b"first", {"n": 1})
    spool.put(b"second", {"n": 2})
    (tmp_path / f"{bad}.json").write_text("{truncated")
    with caplog.at_level(logging.ERROR):
        item = spool.peek()
    assert item is not None and item.payload == b"second"
    assert len(spool) == 1 and (tmp_path / "corrupt" / f"{bad}.bin").exists()
    assert "unreadable" in caplog.text


def test_answers_go_only_to_response_topics_under_reply() -> None:
    from homesec.contract import TrainResult
    from homesec.requests import send_answer

    bus = LocalBus("recognizer/main")
    answer = TrainResult(request_id="r1", label="a", ok=True)
    good = Message(
        bus.topics.train, b"", response_topic=bus.topics.reply("admin", "c1"), correlation_data=b"r1"
    )
    send_answer(bus, good, answer, bus.topics.train_result)
    assert [m.topic for m in bus.published] == [bus.topics.train_result, bus.topics.reply("admin", "c1")]
    assert bus.published[1].correlation_data == b"r1"
    bus.published.clear()
    hijack = Message(bus.topics.train, b"", response_topic=bus.topics.gallery)
    send_answer(bus, hijack, answer, bus.topics.train_result)
    assert bus.topics.gallery not in [m.topic for m in bus.published]
    assert [e.error for e in bus.errors] == ["bad_response_topic"]


def test_the_cli_finds_the_broker_homesec_up_started(tmp_path: Path) -> None:
    from homesec.cliutil import with_local_broker as _with_local_broker

    config = load_config(None, env={"HOMESEC_DATA_DIR": str(tmp_path)})
    assert _with_local_broker(config).mqtt.port == 1883  # nothing started: the configured default
    (tmp_path / "broker").mkdir()
    (tmp_path / "broker" / "port").write_text("18830\n")
    assert _with_local_broker(config).mqtt.port == 18830
    explicit = load_config(None, env={"HOMESEC_DATA_DIR": str(tmp_path), "HOMESEC_MQTT__PORT": "1884"})
    assert _with_local_broker(explicit).mqtt.port == 1884  # a configured port always wins
