"""Shared fixtures: a real mosquitto with the project's own config, ACL and per-role passwords."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.mqtt_helpers import Broker

if TYPE_CHECKING:
    from recognizer_node.operations import RecognizerOperations
    from recognizer_node.pipeline import Recognizer

DATA = Path(__file__).parent / "data"
FACES = DATA / "faces"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session. Do not stop it: use `fresh_broker` for that."""
    b = Broker(tmp_path_factory.mktemp("broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, which the test may stop, kill and restart."""
    b = Broker(tmp_path / "fresh-broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Installed face models: $HOMESEC_MODELS_DIR when set (CI installs them once), else installed here."""
    from recognizer_node.models import install_models  # heavy: import only when a test needs models

    env = os.environ.get("HOMESEC_MODELS_DIR")
    target = Path(env) if env else Path(__file__).parent.parent / ".homesec-data" / "models"
    install_models(target)  # verifies hashes; extracts only what is missing
    return target


@pytest.fixture(scope="module")
def rec(models_dir: Path) -> Recognizer:
    """The real models with the default settings, loaded once per test module."""
    from recognizer_node.pipeline import Recognizer
    from recognizer_node.settings import RecognizerSettings

    return Recognizer(RecognizerSettings(models_dir=models_dir), models_dir.parent)


def open_ops(data_dir: Path, rec: Recognizer, **archive: object) -> RecognizerOperations:
    """The recognizer's operations on `rec`'s models, with these `[recognizer.archive]` settings."""
    from recognizer_node.operations import RecognizerOperations
    from recognizer_node.settings import ArchiveSettings, RecognizerSettings

    settings = RecognizerSettings(models_dir=rec.models_dir, archive=ArchiveSettings(**archive))
    return RecognizerOperations.open(settings, data_dir, node="recognizer/main", recognizer=rec)


@pytest.fixture
def ops(tmp_path: Path, rec: Recognizer) -> Iterator[RecognizerOperations]:
    o = open_ops(tmp_path, rec)
    yield o
    o.close()


@pytest.fixture(autouse=True)
def _close_local_buses() -> Iterator[None]:
    """Each LocalBus runs two threads; end them with the test that made the bus."""
    from tests.helpers import LocalBus

    yield
    while LocalBus._open:
        LocalBus._open.pop().close()
