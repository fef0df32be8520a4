# flairqc BIDS-App image: `docker run flairqc:0.1.0 /bids /out participant`.
#
# GPU (default): onnxruntime-gpu 1.31 (CUDA 13, cuDNN 9) on a CUDA runtime base; needs an NVIDIA driver >= 580.
#   docker build --build-arg VERSION=0.1.0 -t flairqc:0.1.0-gpu .
# CPU: any Debian/Ubuntu base, with or without Python.
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim --build-arg EXTRAS=validator \
#                --build-arg VERSION=0.1.0 -t flairqc:0.1.0 .
# VERSION must equal flairqc_app.__version__: the install step looks for the wheel of that version.
ARG BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

FROM ${BASE_IMAGE} AS python
# CUDA and Debian images have no Python; python:3.x images do.
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi

FROM python AS wheel
COPY . /src
RUN python3 -m venv /tmp/venv \
    && /tmp/venv/bin/pip install --no-cache-dir --quiet setuptools==80.9.0 wheel==0.45.1 \
    && /tmp/venv/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels /src

FROM python
ARG VERSION=0.1.0
ARG EXTRAS=validator,gpu
LABEL org.opencontainers.image.title="flairqc" \
      org.opencontainers.image.description="Automatic quality control of brain 3D FLAIR MRI (BIDS-App)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/flairqc/flairqc" \
      org.opencontainers.image.licenses="Apache-2.0"

# Every package of the image, pinned: pip freeze of the CPU build, plus onnxruntime-gpu, which replaces
# onnxruntime in the GPU build (both provide the onnxruntime module).
COPY --from=wheel /wheels /tmp/wheels
RUN printf '%s\n' \
        acres==0.5.0 antspyx==0.6.3 bids-validator-deno==3.0.2 bids-validator==1.14.7.post0 \
        bidsschematools==2.0.1 certifi==2026.10.18 charset-normalizer==3.5.2 click==8.5.1 cloudpickle==3.1.2 \
        contourpy==1.3.3 cycler==0.12.1 deno==2.9.8 docopt==0.6.2 flatbuffers==25.12.19 fonttools==4.68.0 \
        formulaic==1.2.2 frozendict==2.5.1 fsspec==2026.9.0 idna==3.20 importlib_resources==7.1.0 \
        interface_meta==2.0.1 Jinja2==3.1.6 joblib==1.6.0 kiwisolver==1.5.1 MarkupSafe==3.0.4 \
        matplotlib==3.11.2 narwhals==2.29.0 nibabel==5.4.2 num2words==0.5.14 numpy==2.3.5 \
        onnxruntime-gpu==1.31.1 onnxruntime==1.32.0 packaging==26.3 pandas==3.1.1 pathlib_abc==0.5.2 \
        patsy==1.0.3 pillow==13.0.0 plotly==7.1.0 protobuf==7.36.2 pybids==0.22.0 pyparsing==3.3.3 \
        python-dateutil==4.0.0 PyYAML==6.0.3 requests==2.34.2 scikit-learn==1.9.1 scipy==1.15.3 \
        SQLAlchemy==2.1.9 statsmodels==0.15.0 threadpoolctl==3.8.0 tqdm==4.70.1 typing_extensions==4.16.0 tzdata==2026.6 \
        universal_pathlib==0.3.10 urllib3==2.8.0 webcolors==25.10.0 wrapt==2.5.2 \
        > /tmp/pins.txt \
    && python3 -m venv /opt/flairqc \
    && /opt/flairqc/bin/pip install --no-cache-dir --quiet --constraint /tmp/pins.txt \
        "/tmp/wheels/flairqc-${VERSION}-py3-none-any.whl[${EXTRAS}]" \
    && case ",${EXTRAS}," in *,gpu,*) \
        /opt/flairqc/bin/pip uninstall --yes --quiet onnxruntime \
        && /opt/flairqc/bin/pip install --no-cache-dir --quiet --no-deps --force-reinstall \
            --constraint /tmp/pins.txt onnxruntime-gpu ;; \
    esac \
    && rm -rf /tmp/wheels /tmp/pins.txt \
    && ln -s /opt/flairqc/bin/flairqc /opt/flairqc/bin/bids-validator-deno /opt/flairqc/bin/deno /usr/local/bin/ \
    && useradd --uid 2000 --user-group --create-home --home-dir /home/flairqc --shell /bin/sh flairqc \
    && chmod 777 /home/flairqc

# Any UID (Singularity runs as the caller) with a read-only root: caches and scratch go to /tmp, never HOME.
# The tools are also linked into /usr/local/bin because Boutiques runs `sh -l`, which resets PATH.
ENV PATH=/opt/flairqc/bin:$PATH \
    HOME=/home/flairqc \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    MPLCONFIGDIR=/tmp/.config/matplotlib \
    DENO_DIR=/tmp/.cache/deno \
    DENO_NO_UPDATE_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=2 \
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 \
    OPENBLAS_NUM_THREADS=2 \
    MKL_NUM_THREADS=2
USER flairqc
ENTRYPOINT ["flairqc"]
