# gdelt-forecast on a CUDA PyTorch base image.
#   docker build -t gdelt-forecast .
#   docker run --gpus all -v $PWD/data:/app/data -v $PWD/models:/app/models gdelt-forecast daily
#   docker run --gpus all -v $PWD/data:/app/data -v $PWD/models:/app/models gdelt-forecast train --config configs/small.yaml
# The lake (/app/data) and the trained models (/app/models) are volumes: they outlive the container.
FROM pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PREFECT_HOME=/app/data/.prefect

WORKDIR /app
# Dependencies first (cached layer); torch comes from the base image (CUDA build) and satisfies torch>=2.3.
COPY pyproject.toml README.md ./
COPY pipeline/__init__.py pipeline/__init__.py
COPY flows/__init__.py flows/__init__.py
RUN pip install -e . && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

COPY pipeline pipeline
COPY flows flows
COPY configs configs
COPY data/sample data/sample
RUN pip install --no-deps -e .

VOLUME ["/app/data/lake", "/app/models"]
ENTRYPOINT ["gdelt-forecast"]
CMD ["--help"]
