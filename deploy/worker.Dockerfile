# The worker image: TensorFlow and the model kinds. For NVIDIA GPUs build with
#   docker build -f deploy/worker.Dockerfile --build-arg TF_EXTRA="tensorflow[and-cuda]" -t atelier-worker-gpu .
FROM python:3.11-slim
ARG TF_EXTRA=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY cli cli
# The import root: the client and the links that make the folders above atelier.*.
COPY atelier atelier
COPY src src
RUN pip install ".[worker]" ${TF_EXTRA} && useradd --create-home atelier
COPY deploy/boot.sh /boot.sh
USER atelier
EXPOSE 9808
ENTRYPOINT ["/boot.sh"]
CMD ["worker"]
