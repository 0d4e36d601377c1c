# movierec: the API, the admin dashboard and the command line in one image.
# Build: docker build -t movierec .   Run: see docker-compose.yml.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KMP_BLOCKTIME=0 \
    MOVIEREC_ENVIRONMENT=production

RUN groupadd --system movierec && useradd --system --gid movierec --home-dir /app --shell /usr/sbin/nologin movierec
WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall Paddle.
COPY pyproject.toml README.md ./
RUN mkdir -p api admin ml && touch api/__init__.py admin/__init__.py ml/__init__.py \
    && pip install . \
    && pip uninstall -y movierec

COPY alembic.ini schema.graphql ./
COPY migrations ./migrations
COPY api ./api
COPY admin ./admin
COPY ml ./ml
RUN pip install --no-deps . && mkdir -p /app/var && chown -R movierec:movierec /app/var

USER movierec
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["movierec", "serve", "--host", "0.0.0.0", "--port", "8000"]
