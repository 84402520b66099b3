# The esa-enricher image: `esa-enricher listen | setup | run | replay | produce` (docker-compose.yml uses it for the
# collector, the one-shot setup, the enricher and the replayer).
#   docker build -t esa-enricher .
#   docker run --rm esa-enricher replay /app/samples/demo-mail_logs.log --appliance esa1 --no-progress
# The native typing core (native/, Rust) is built in a throw-away stage into a wheel; the final image has no
# toolchain. The image runs with ESA_NATIVE=1: a missing core is an error there, not a silent slowdown.
FROM python:3.11-slim AS native
RUN apt-get update && apt-get install -y --no-install-recommends curl gcc libc6-dev ca-certificates \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/root/.cargo/bin:$PATH
COPY native /src/native
RUN pip install maturin && cd /src/native && maturin build --release --locked --out /wheels

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
COPY --from=native /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
ENV ESA_NATIVE=1

RUN useradd --system --uid 10001 --home-dir /app esa
USER esa

# 5514 syslog (listen, UDP and TCP), 9464 run's /metrics /healthz, 9465 listen's
EXPOSE 5514/udp 5514/tcp 9464 9465
ENTRYPOINT ["esa-enricher"]
CMD ["--help"]
