# syntax=docker/dockerfile:1.7
# miva-base: the CPU image of the data, validation and registry stages (and `configure`).
# Build from the repository root:  docker buildx build -f images/base.Dockerfile -t IMAGE .
# (`make images` builds and pushes it with the tag <package version>-<git commit>.)

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------- build: wheels into a venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
# torch CPU build first (the default wheel on PyPI carries CUDA libraries this image never uses),
# then the package with every dependency pinned by constraints.txt.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
 && pip install -c constraints.txt "."

# ---------------------------------------------------------------- runtime: venv + presets
FROM ${PYTHON_IMAGE} AS runtime
ARG MIVA_UID=10001
# bubblewrap: kernel isolation of the python tool's sandbox where the runtime allows
# namespaces (a laptop, gVisor nodes); `miva sandbox serve` reports which mode it runs.
# Accepted: the package follows the base image's Debian release (its security pocket).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid ${MIVA_UID} miva \
 && useradd --uid ${MIVA_UID} --gid miva --create-home --home-dir /home/miva miva
COPY --from=build /opt/venv /opt/venv
COPY configs /opt/miva/configs
ENV PATH=/opt/venv/bin:$PATH \
    MIVA_CONFIG_DIR=/opt/miva/configs \
    HOME=/home/miva \
    HF_HOME=/home/miva/.cache/huggingface \
    MPLBACKEND=Agg \
    PYTHONUNBUFFERED=1
USER ${MIVA_UID}
WORKDIR /home/miva
# KFP supplies the command (the lightweight component executor); this is for `docker run`.
CMD ["miva", "--help"]
