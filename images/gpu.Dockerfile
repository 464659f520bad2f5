# syntax=docker/dockerfile:1.7
# miva-gpu: the GPU image of the sft, grpo and evaluate stages (and multi-node TrainJobs).
# Build from the repository root:  docker buildx build -f images/gpu.Dockerfile -t IMAGE .
#
# Versions that work together (checked against the packages' published metadata):
#   torch 2.13.0 (PyPI CUDA wheel, bundles its CUDA libraries), vllm 0.32.0 (requires
#   torch==2.13.0, transformers>=5.16.1,<5.20), transformers 5.19.0 (tokenizers 0.23.x),
#   deepspeed 0.19.8. Everything else is pinned by constraints.txt; only transformers differs
#   from it (vllm 0.32 caps it below the 5.23 the CPU environment uses).
# DeepSpeed ops are not prebuilt: MIVA's DeepSpeed engine uses torch's AdamW, so no nvcc is
# needed at run time and the runtime stage is the slim CUDA runtime image.

ARG CUDA_DEVEL_IMAGE=nvidia/cuda:12.9.1-cudnn-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------- build: wheels into a venv
FROM ${CUDA_DEVEL_IMAGE} AS build
# A failing command inside a pipe fails the build (the constraints step below pipes).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Accepted: apt packages follow the CUDA base image's Ubuntu release (its security pocket);
# exact versions would break rebuilds each time Ubuntu replaces one with a fixed build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev git \
 && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY images/gpu-pins.txt ./images/
COPY src ./src
# constraints.txt minus the pins gpu-pins.txt replaces, plus gpu-pins.txt.
RUN cut -d= -f1 images/gpu-pins.txt | grep -v '^#' | sed 's/^/^/; s/$/==/' > /tmp/replaced \
 && grep -v -i -f /tmp/replaced constraints.txt > /tmp/constraints.txt \
 && grep -v '^#' images/gpu-pins.txt >> /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt "torch==2.13.0" \
 && DS_BUILD_OPS=0 pip install -c /tmp/constraints.txt ".[gpu]" \
 && python -c "import torch, vllm, deepspeed, transformers; print(torch.__version__, vllm.__version__, deepspeed.__version__, transformers.__version__)"

# ---------------------------------------------------------------- runtime: venv + presets
FROM ${CUDA_RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG MIVA_UID=10001
ENV DEBIAN_FRONTEND=noninteractive
# Accepted: as in the build stage (apt packages follow the base image's Ubuntu release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 libgomp1 \
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
    PYTHONUNBUFFERED=1 \
    NCCL_DEBUG=WARN
USER ${MIVA_UID}
WORKDIR /home/miva
CMD ["miva", "--help"]
