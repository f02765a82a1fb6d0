# The API image: Flask + gunicorn, no TensorFlow (`pip install .[api]`). Also runs the
# webhooks worker.
#   docker build -f deploy/api.Dockerfile -t atelier-api .
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# Dependencies first, in a layer of their own: a change to the code keeps it.
COPY requirements/api.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY cli cli
# The import root: the client and the links that make the folders above atelier.*.
COPY atelier atelier
COPY src src
RUN pip install --no-deps . && useradd --uid 1000 --create-home atelier
COPY deploy/boot.sh /boot.sh
USER atelier
# 9100: /metrics, when ATELIER_API_METRICS_BIND gives it a listener of its own (compose, k8s).
EXPOSE 8000 9100
ENTRYPOINT ["/boot.sh"]
CMD ["api"]
