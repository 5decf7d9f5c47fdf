# gdelt-forecast on a CUDA PyTorch base image (torch 2.6: transformers 5 needs torch >= 2.6).
#   docker build -t gdelt-forecast .
#   docker run --gpus all -v $PWD/data:/app/data -v $PWD/models:/app/models -v $PWD/reports:/app/reports \
#       gdelt-forecast --config configs/daily.yaml daily
# The lake (/app/data), the trained models (/app/models) and the reports (/app/reports) are volumes:
# they outlive the container. It runs as the unprivileged user `app` (uid 1000): give that uid write
# access to the mounted folders (or run with --user "$(id -u):$(id -g)").
FROM pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PREFECT_HOME=/home/app/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first (a cached layer): the pinned set of constraints.txt (tested together), torch from
# the base image (its CUDA build; not in the constraints).
COPY constraints.txt pyproject.toml README.md ./
COPY pipeline pipeline
COPY flows flows
COPY gdelt_forecast gdelt_forecast
RUN pip install --constraint constraints.txt . \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

COPY configs configs
COPY data/sample data/sample
RUN mkdir -p /app/data/lake /app/models /app/reports /home/app/.prefect \
    && chown -R app:app /app/data /app/models /app/reports /home/app/.prefect

USER 1000:1000
VOLUME ["/app/data", "/app/models", "/app/reports"]
ENTRYPOINT ["gdelt-forecast"]
CMD ["--help"]
