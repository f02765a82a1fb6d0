# The worker image: TensorFlow and the model kinds, every package from a lock file (pinned,
# with hashes). For NVIDIA GPUs build with CUDA TensorFlow (compose's `gpu` profile does):
#   docker build -f deploy/worker.Dockerfile --build-arg LOCK=worker-gpu -t atelier-worker-gpu .
FROM python:3.11-slim-bookworm
ARG LOCK=worker
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2
# FluidSynth and the General MIDI soundfont: the melody kind renders its .wav with them.
RUN apt-get update \
  && apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, in a layer of their own: a change to the code keeps it.
COPY requirements/${LOCK}.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY cli cli
# The import root: the client and the links that make the folders above atelier.*.
COPY atelier atelier
COPY src src
# A cache the worker may write (the folk corpus, parsed once per machine: five minutes of
# CPU): ATELIER_DATA_DIR/cache. Compose mounts a volume here that the workers share.
RUN pip install --no-deps . && useradd --uid 1000 --create-home atelier \
  && mkdir -p /var/cache/atelier && chown atelier: /var/cache/atelier
ENV ATELIER_DATA_DIR=/var/cache/atelier
COPY deploy/boot.sh /boot.sh
USER atelier
EXPOSE 9808
ENTRYPOINT ["/boot.sh"]
CMD ["worker"]
