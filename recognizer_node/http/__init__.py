"""The recognizer's HTTP API: an ASGI app over the same operations as the MQTT handlers (docs/http.md).

`settings`, `tokens`, `up` and `cli` are cheap to import (the config, `homesec up` and the command
line load them); the app and the server import FastAPI and uvicorn.
"""
