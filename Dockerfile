# homesec recognizer / notifier image (amd64 and arm64: every binary dependency ships wheels for both).
#   docker build -t homesec .            (or: docker buildx build --platform linux/amd64,linux/arm64 .)
# docker-compose.yml runs it as the data dir's owner (`user:`); alone it runs as uid 10001. A Pi camera
# does not run here: picamera2 comes from Raspberry Pi OS (docs/raspberry-pi.md).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOMESEC_DATA_DIR=/data HOMESEC_RECOGNIZER__MODELS_DIR=/opt/homesec/models
WORKDIR /opt/homesec
COPY pyproject.toml README.md ./
COPY homesec ./homesec
COPY camera_node ./camera_node
COPY recognizer_node ./recognizer_node
COPY notifier_node ./notifier_node
COPY homeassistant_node ./homeassistant_node
RUN pip install '.[all]' \
    # the face models are fetched once, at build time, and verified; nothing is downloaded at run time
    && homesec models install \
    # homesec writes owner-only files (umask 077); the models are public and every run-time uid reads them
    && chmod -R a+rX /opt/homesec/models \
    && useradd --system --uid 10001 --home /data homesec && mkdir -p /data && chown homesec /data
USER 10001
VOLUME /data
CMD ["homesec-recognizer"]
