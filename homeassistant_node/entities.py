"""The discovery configs: what Home Assistant shows for each camera, the system and each enrolled person.

One retained config per entity (`<discovery>/<component>/<node id>/<object id>/config`), not the
device-based form: a forgotten person's entity goes away with one empty retained config, and Home
Assistant versions before 2024.11 understand it too. Keys are spelled out (no abbreviations): the
payloads are small and read as the documentation.

Every state an entity shows comes from a topic of the contract: the nodes' own retained state where it
exists (motion, enabled, armed, gallery), the bridge's derived topics where Home Assistant needs a
shape the nodes do not publish (visit events, last person, last seen). Every command goes to the topic
the bot and the command line use, with the JSON its command model reads (`command_template`).
Availability comes from the nodes' retained `available` topics: only `online` is available
(`offline` and `stopped` are not), all of them when an entity needs several nodes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from homesec.contract import Availability, Role, Topics, ha_node_id, node_name

JPEG = "image/jpeg"
MANUFACTURER = "homesec"
# Visits as Home Assistant event types (a `too_small` visit is `no_face`: no face could be judged).
EVENT_TYPES = ("known_person", "unknown_person", "no_face")
NOTIFIER_NODE = node_name(Role.NOTIFIER, "main")  # one notifier per house (notifier_node/plugin.py)
# Availability payloads other than `online` (`offline` the will, `stopped` a clean exit) are not available.
_AVAILABLE = "{{ 'online' if value == 'online' else 'offline' }}"
_ON_OFF = "{{{{ 'ON' if {} else 'OFF' }}}}"
_JSON_BOOL = "{{{{ 'true' if value == 'ON' else 'false' }}}}"


@dataclass(frozen=True)
class Entity:
    component: str  # Home Assistant's platform: binary_sensor, image, event, sensor, switch, button
    object_id: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Catalog:
    """Builds the configs for one installation (its topics, version and bridge node)."""

    topics: Topics
    version: str
    bridge: str  # the bridge's node name, `habridge/main`
    device_name: str = "homesec"
    photos: bool = True  # `[homeassistant] photos`: the image entities (Home Assistant reads the photos)

    # -- devices
    @property
    def node_id(self) -> str:
        return ha_node_id(self.topics.prefix)

    @property
    def system_device(self) -> dict[str, Any]:
        return {
            "identifiers": [f"{self.node_id}_system"],
            "name": self.device_name,
            "manufacturer": MANUFACTURER,
            "model": "home security (recognizer, notifier)",
            "sw_version": self.version,
        }

    def camera_device(self, camera: str) -> dict[str, Any]:
        return {
            "identifiers": [f"{self.node_id}_camera_{camera}"],
            "name": f"{camera.replace('_', ' ').replace('-', ' ').capitalize()} camera",
            "manufacturer": MANUFACTURER,
            "model": "camera node",
            "sw_version": self.version,
            "via_device": f"{self.node_id}_system",
        }

    # -- availability
    def _availability(self, *topics: str) -> dict[str, Any]:
        items = [
            {
                "topic": topic,
                "payload_available": Availability.ONLINE.value,
                "payload_not_available": Availability.OFFLINE.value,
                "value_template": _AVAILABLE,
            }
            for topic in topics
        ]
        return {"availability": items, **({"availability_mode": "all"} if len(items) > 1 else {})}

    def _camera_node(self, camera: str) -> str:
        return self.topics.available(node_name(Role.CAMERA, camera))

    @property
    def _recognition(self) -> tuple[str, str]:
        """What recognition feeds needs: a recognizer replica (the bridge's aggregate) and the bridge."""
        return self.topics.ha_recognizers, self.topics.available(self.bridge)

    def _entity(
        self,
        component: str,
        object_id: str,
        name: str | None,
        device: dict[str, Any],
        *avail: str,
        **cfg: Any,
    ) -> Entity:
        config = {
            "unique_id": f"{self.node_id}_{object_id}",
            "name": name,
            "device": device,
            "origin": {"name": MANUFACTURER, "sw_version": self.version},
            **self._availability(*avail),
            "qos": 1,
            **cfg,
        }
        return Entity(component, object_id, config)

    # -- the entities
    def camera_entities(self, camera: str) -> list[Entity]:
        t, dev, node = self.topics, self.camera_device(camera), self._camera_node(camera)
        recognition = self._recognition
        return [
            self._entity(
                "binary_sensor",
                f"{camera}_motion",
                "Motion",
                dev,
                node,
                device_class="motion",
                state_topic=t.motion(camera),
                value_template=_ON_OFF.format("value_json.state == 'start'"),
                json_attributes_topic=t.motion(camera),
                json_attributes_template="{{ {'event_id': value_json.event_id, 'trigger': value_json.trigger} | tojson }}",
            ),
            self._entity(
                "binary_sensor",
                f"{camera}_problem",
                "Video problem",
                dev,
                node,
                device_class="problem",
                entity_category="diagnostic",
                state_topic=t.camera_state(camera),
                value_template=_ON_OFF.format("value_json.state != 'online'"),
                json_attributes_topic=t.camera_state(camera),
                json_attributes_template="{{ {'state': value_json.state, 'reason': value_json.reason} | tojson }}",
            ),
            *self._photo_entities(camera),
            self._entity(
                "event",
                f"{camera}_visit",
                "Visit",
                dev,
                node,
                *recognition,
                state_topic=t.ha_visit(camera),
                event_types=list(EVENT_TYPES),
                icon="mdi:doorbell-video",
            ),
            self._entity(
                "sensor",
                f"{camera}_last_person",
                "Last person",
                dev,
                *recognition,
                state_topic=t.ha_last_person(camera),
                # Not `unknown` for a stranger: that is Home Assistant's own word for "no value".
                value_template="{{ value_json.name if value_json.label is not none else 'stranger' }}",
                json_attributes_topic=t.ha_last_person(camera),
                json_attributes_template="{{ {'label': value_json.label, 'similarity': value_json.similarity, "
                "'visitor': value_json.visitor, 'event_id': value_json.event_id, 'seen': value_json.ts} | tojson }}",
                icon="mdi:account-eye",
            ),
            self._entity(
                "switch",
                f"{camera}_enabled",
                "Enabled",
                dev,
                node,
                state_topic=t.camera_enabled(camera),
                value_template=_ON_OFF.format("value_json.enabled"),
                command_topic=t.camera_cmd_enable(camera),
                command_template='{"enabled": ' + _JSON_BOOL.format() + "}",
                icon="mdi:cctv",
            ),
            self._entity(
                "button",
                f"{camera}_capture",
                "Capture",
                dev,
                node,
                recognition[0],
                command_topic=t.camera_cmd_capture(camera),
                # The camera makes the request id (and so the event id) unique.
                payload_press='{"v": 1}',
                icon="mdi:camera",
            ),
        ]

    def _photo_entities(self, camera: str) -> list[Entity]:
        """The image entities, which read the photos themselves: only with `[homeassistant] photos` on."""
        if not self.photos:
            return []
        t, dev, node = self.topics, self.camera_device(camera), self._camera_node(camera)
        return [
            self._entity(
                "image",
                f"{camera}_snapshot",
                "Last snapshot",
                dev,
                node,
                image_topic=t.snapshot(camera),
                content_type=JPEG,
            ),
            self._entity(
                "image",
                f"{camera}_alert",
                "Last alert",
                dev,
                node,
                self._recognition[0],
                image_topic=t.alert(camera),
                content_type=JPEG,
            ),
        ]

    def system_entities(self) -> list[Entity]:
        t, dev = self.topics, self.system_device
        return [
            self._entity(
                "switch",
                "system_armed",
                "Armed",
                dev,
                t.available(NOTIFIER_NODE),
                state_topic=t.armed,
                value_template=_ON_OFF.format("value_json.armed"),
                command_topic=t.armed_cmd,
                command_template='{"armed": ' + _JSON_BOOL.format() + ', "by": "homeassistant"}',
                json_attributes_topic=t.armed,
                json_attributes_template="{{ {'by': value_json.by} | tojson }}",
                icon="mdi:shield-home",
            ),
            self._entity(
                "sensor",
                "system_people",
                "Enrolled people",
                dev,
                *self._recognition,
                state_topic=t.gallery,
                value_template="{{ value_json.labels | length }}",
                state_class="measurement",
                json_attributes_topic=t.gallery,
                json_attributes_template="{{ {'people': value_json.labels | list | sort, "
                "'enrollments': value_json.enrollments} | tojson }}",
                icon="mdi:account-group",
            ),
        ]

    def person_entity(self, label: str, name: str) -> Entity:
        person = person_id(label)
        state = self.topics.ha_last_seen(person)
        return self._entity(
            "sensor",
            person_object_id(label),
            f"{name} last seen",
            self.system_device,
            *self._recognition,
            device_class="timestamp",
            state_topic=state,
            value_template="{{ value_json.ts }}",
            json_attributes_topic=state,
            json_attributes_template="{{ {'label': value_json.label, 'camera': value_json.camera, "
            "'visit': value_json.event_id, 'similarity': value_json.similarity} | tojson }}",
            icon="mdi:account-clock",
        )

    def topic(self, entity: Entity) -> str:
        return self.topics.ha_discovery(entity.component, entity.object_id)

    def withdrawn(self, topic: str) -> bool:
        """A config of a kind this installation does not announce (image entities with photos off)."""
        return not self.photos and topic.split("/")[-4] == "image"  # <prefix>/<component>/<node>/<obj>/config


PERSON_OBJECT_PREFIX = "person_"


def person_id(label: str) -> str:
    """A topic level and object id for a label (labels may hold spaces, dots and capitals; two labels
    that differ only there stay apart through the hash)."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "person"
    return f"{slug}_{hashlib.sha256(label.encode()).hexdigest()[:6]}"


def person_object_id(label: str) -> str:
    return f"{PERSON_OBJECT_PREFIX}{person_id(label)}_last_seen"
