"""The Home Assistant bridge: MQTT discovery for every camera, person and switch (docs/home-assistant.md)."""
