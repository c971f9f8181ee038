"""The recognizer's HTTP API: an ASGI app over the same operations as the MQTT handlers (docs/http.md).

Only `settings` is cheap to import (the config reads it); the rest imports FastAPI and uvicorn.
"""
