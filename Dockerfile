# The neuralens image for docker-compose.yml: the web server and the queue's workers (docs/scale-out.md).
# Not built on this project's test machines (they have no Docker): check it with `docker compose build`.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, pinned as requirements-dev.txt pins it (the Makefile's install path), from the CPU wheels:
# the package itself asks only for a range, for which pip would fetch a multi-GB CUDA build. For GPU workers
# build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 (or the CUDA your driver has).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY neuralens ./neuralens
# The queue extra: Celery and redis-py, for `serve --broker` and `neuralens worker`; the postgres extra: psycopg,
# for the shared faces gallery (NEURALENS_GALLERY=postgresql://... in docker-compose.yml).
RUN pip install ".[queue,postgres]"

# Not root; /data is where the compose file mounts the shared storage (a named volume takes this folder's
# owner when it is first created, so the server and the workers can write there).
RUN useradd --create-home --uid 10001 neuralens && mkdir -p /data && chown neuralens /data
USER neuralens
WORKDIR /home/neuralens
EXPOSE 8000
CMD ["neuralens", "serve", "--host", "0.0.0.0", "--port", "8000"]
