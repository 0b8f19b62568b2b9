# newsbot: a slim image, a non-root user, the database on a volume.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone and pinned by the same constraints the tests run
# with: a code change does not invalidate this layer, only a change of dependencies does.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin newsbot \
    && mkdir -p /app/data \
    && chown newsbot:newsbot /app/data \
    && chmod 0700 /app/data

# Then the code (see .dockerignore for what stays out of the build context).
COPY README.md ./
COPY bot ./bot
COPY config ./config
COPY storage ./storage
RUN pip install --no-deps .

USER newsbot

# data/newsbot.db (the default [storage].path, relative to /app) lives here.
VOLUME ["/app/data"]

# /healthz answers 200 while the scheduler runs and every configured chat connection is up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["newsbot"]
CMD ["run"]
