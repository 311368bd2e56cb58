FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 engine

# The package carries the bundled drivers and the demo's simulated devices; the image
# runs what is installed, not a copy of the sources:
#   docker run --rm -it --network host engine python -m app demo
# (the demo's servers listen on loopback, which --network host shares with the host).
COPY pyproject.toml README.md /tmp/engine/
COPY app /tmp/engine/app
RUN pip install --no-cache-dir '/tmp/engine[couchbase]' && rm -rf /tmp/engine

WORKDIR /srv/engine
# The data folder (stores, the driver checkout, the demo's data/demo) is the server's.
RUN mkdir -p /srv/engine/data && chown engine:engine /srv/engine/data

USER engine
ENV ENGINE_DATABASE_URL=sqlite:////srv/engine/data/engine.db \
    ENGINE_DRIVERS_PATH=/srv/engine/data/drivers \
    ENGINE_HOST=0.0.0.0 \
    ENGINE_PORT=8000
VOLUME ["/srv/engine/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('ENGINE_PORT', '8000'), timeout=2)"

CMD ["python", "-m", "app", "serve"]
