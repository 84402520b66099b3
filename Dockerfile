# The esa-enricher image: `esa-enricher listen | setup | run | replay | produce` (docker-compose.yml uses it for the
# collector, the one-shot setup, the enricher and the replayer).
#   docker build -t esa-enricher .
#   docker run --rm esa-enricher replay /app/samples/demo-mail_logs.log --appliance esa1 --no-progress
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY enricher ./enricher
COPY pipelines ./pipelines
COPY samples ./samples
# Editable: the code finds its assets (pipelines/: templates, Kibana objects) next to itself, in /app.
# lz4: the raw topic may be written by collectors that compress with it (kafka-python reads lz4 only with it).
RUN pip install -e . lz4

RUN useradd --system --uid 10001 --home-dir /app esa
USER esa

# 5514 syslog (listen, UDP and TCP), 9464 run's /metrics /healthz, 9465 listen's
EXPOSE 5514/udp 5514/tcp 9464 9465
ENTRYPOINT ["esa-enricher"]
CMD ["--help"]
