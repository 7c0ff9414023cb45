# The gateway as a container, against a PostgreSQL of its own (compose.yaml runs both).
# Installs the pinned versions of requirements.lock, then the project without resolving again.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDGW_HOST=0.0.0.0 \
    MEDGW_PORT=8000 \
    MEDGW_ENV=production \
    MEDGW_DATA_DIR=/var/lib/medgw

WORKDIR /srv/medgw
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY schema schema
COPY resolvers resolvers
COPY policies policies
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/medgw --create-home medgw

USER medgw
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
# DATABASE_URL (the app role) and MEDGW_MIGRATION_URL (the owner) come from the environment;
# `serve` migrates as the owner, then serves as the app role.
CMD ["medgw", "serve"]
