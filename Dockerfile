# sweeper: one image for the worker, the dashboard, the storage proxy and the reaper.
#
# Base: NVIDIA's CUDA *base* image, not the runtime or cudnn ones. torch 2.14.1 from PyPI
# (pinned in uv.lock) brings its own CUDA 13.0 and cuDNN libraries as nvidia-* wheels, so a
# CUDA runtime in the image would be gigabytes of duplicates. What the base image adds is
# the NVIDIA container runtime's settings: NVIDIA_VISIBLE_DEVICES and
# NVIDIA_DRIVER_CAPABILITIES, and NVIDIA_REQUIRE_CUDA=cuda>=13.0, so a host whose driver is
# too old for torch's CUDA refuses to start the container with a clear message instead of
# torch silently falling back to the CPU. The GPUs and the driver come from the host
# (docker-compose's device reservation, Kubernetes' nvidia.com/gpu).
FROM nvidia/cuda:13.0.2-base-ubuntu24.04

# Ubuntu's python3 is 3.12 and only runs pip here (hence PIP_BREAK_SYSTEM_PACKAGES for its
# one package, uv); uv installs the project's Python 3.11 (requires-python) under
# /opt/python, where the non-root user below can read it.
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Installed exactly as the README does (pip install uv && uv sync --frozen), without the
# test tools. Dependencies first, from the lock file alone, so a code change does not
# download torch again.
RUN pip install uv
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY storage ./storage
COPY sweeper ./sweeper
COPY trainer_core ./trainer_core
COPY studies ./studies
RUN uv sync --frozen --no-dev

# Not root (uid 10001: ubuntu:24.04 already has a uid 1000). A named artifact volume starts
# out owned by this user, copied from the image's folder.
RUN useradd --create-home --uid 10001 sweeper \
    && mkdir -p /artifacts /data \
    && chown sweeper:sweeper /artifacts
USER sweeper

# The venv's sweeper, not `uv run sweeper`: no sync at start, and SIGTERM reaches sweeper
# directly, which gives running trials their checkpoint-and-requeue exit.
ENTRYPOINT ["sweeper"]
CMD ["--help"]
