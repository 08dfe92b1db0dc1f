# worldmill's image: the project, its pinned dependencies and the embedded default model; checkpoints are
# mounted at /checkpoints (read-only), never built in. Classic-builder syntax only (no BuildKit-only features).
#
#   docker build -t worldmill:latest .                                   # CUDA torch (PyPI's; fleets)
#   docker build -t worldmill:cpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#
# BASE needs only a glibc userland with apt or Python 3: torch's CUDA wheels bring their own CUDA
# libraries, so GPU hosts need just the NVIDIA driver and container toolkit. debian:bookworm-slim is
# Debian 12 with Python 3.11, what infra/constraints.txt was tested with. Pip settings for a mirror or a
# wheelhouse pass as build args (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX,
# PIP_TRUSTED_HOST); they stay in the build stage.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG TORCH_VERSION=2.13.0
# empty: pip's index (PyPI's Linux torch is the CUDA build); https://download.pytorch.org/whl/cpu for CPU,
# .../whl/cu126 and the like for another CUDA
ARG TORCH_INDEX_URL=
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_TRUSTED_HOST
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv --help >/dev/null 2>&1 || { apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*; }
RUN python3 -m venv /opt/venv
# torch first, from its own index (the CUDA or CPU build); the rest at the versions the tests passed with
RUN /opt/venv/bin/pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
COPY pyproject.toml /tmp/worldmill/pyproject.toml
COPY infra/constraints.txt /tmp/worldmill/constraints.txt
RUN /opt/venv/bin/python -c 'import tomllib; deps = tomllib.load(open("/tmp/worldmill/pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(d for d in deps if not d.startswith("torch")))' \
      > /tmp/worldmill/requirements.txt \
    && /opt/venv/bin/pip install -q -c /tmp/worldmill/constraints.txt -r /tmp/worldmill/requirements.txt

FROM ${BASE}
RUN command -v python3 >/dev/null || { apt-get update \
      && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*; }
RUN useradd --uid 10001 --create-home --home-dir /home/worldmill --shell /bin/bash worldmill \
    && mkdir -p /checkpoints
COPY --from=build /opt/venv /opt/venv
# The checkout, importable as installed (a .pth entry: no build backend needed); the deployments' pull
# step changes into it, so deploy with WORLDMILL_GPU_HOME=/opt/worldmill (infra/README.md).
COPY . /opt/worldmill
RUN echo /opt/worldmill > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/worldmill.pth" \
    && /opt/venv/bin/python -m compileall -q /opt/worldmill > /dev/null
ENV PATH=/opt/venv/bin:$PATH \
    WORLDMILL_HOME=/opt/worldmill \
    COSMOS_CHECKPOINT_DIR=/checkpoints \
    PREFECT_HOME=/home/worldmill/.prefect \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1
USER worldmill
WORKDIR /opt/worldmill
CMD ["python", "-m", "examples.text2image", "--help"]
