# The API image: Flask + gunicorn, no TensorFlow (`pip install .[api]`).
#   docker build -f deploy/api.Dockerfile -t atelier-api .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY cli cli
# The import root: the client and the links that make the folders above atelier.*.
COPY atelier atelier
COPY src src
RUN pip install ".[api]" && useradd --create-home atelier
COPY deploy/boot.sh /boot.sh
USER atelier
EXPOSE 8000
ENTRYPOINT ["/boot.sh"]
CMD ["api"]
