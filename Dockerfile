# lc-train in a container: CUDA PyTorch, this package, a non-root user; data and logs are volumes.
#   docker build -t lc-lightning .
#   docker run --gpus all --ipc=host -v "$PWD/data:/work/data" -v "$PWD/logs:/work/logs" \
#       lc-lightning fit --config configs/cifar10_e32.yaml
# (--ipc=host gives the DataLoader workers enough shared memory.)
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /opt/lc-lightning
COPY pyproject.toml README.md ./
COPY lc_lightning ./lc_lightning
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 researcher \
    && mkdir -p /work/data /work/logs \
    && chown -R 1000:1000 /work

WORKDIR /work
COPY --chown=1000:1000 configs ./configs
USER 1000
VOLUME ["/work/data", "/work/logs"]

ENTRYPOINT ["lc-train"]
CMD ["--help"]
