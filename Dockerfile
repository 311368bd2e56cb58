FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 engine

WORKDIR /srv/engine
COPY pyproject.toml README.md ./
COPY app ./app
COPY drivers ./drivers
RUN pip install --no-cache-dir '.[couchbase]'

USER engine
ENV ENGINE_DATABASE_URL=sqlite:////srv/engine/data/engine.db \
    ENGINE_DRIVERS_PATH=/srv/engine/data/drivers \
    ENGINE_HOST=0.0.0.0 \
    ENGINE_PORT=8000
RUN mkdir -p /srv/engine/data
VOLUME ["/srv/engine/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('ENGINE_PORT', '8000'), timeout=2)"

CMD ["python", "-m", "app", "serve"]
