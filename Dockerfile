# homesec recognizer / notifier / camera image (amd64 and arm64: onnxruntime ships wheels for both).
#   docker build -t homesec .            (or: docker buildx build --platform linux/amd64,linux/arm64 .)
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOMESEC_DATA_DIR=/data HOMESEC_RECOGNIZER__MODELS_DIR=/opt/homesec/models
WORKDIR /opt/homesec
COPY pyproject.toml README.md ./
COPY homesec ./homesec
COPY camera_node ./camera_node
COPY recognizer_node ./recognizer_node
COPY notifier_node ./notifier_node
RUN pip install '.[all]' \
    # the face models are fetched once, at build time, and verified; nothing is downloaded at run time
    && homesec models install \
    && useradd --system --uid 10001 --home /data homesec && mkdir -p /data && chown homesec /data
USER homesec
VOLUME /data
CMD ["homesec-recognizer"]
