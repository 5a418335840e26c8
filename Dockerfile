# The leadpulse image of docker-compose.yml: `leadpulse worker`, `exporter` and `api`
# run from it (the command picks which).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY aggregates ./aggregates
COPY exporters ./exporters
RUN pip install . \
    && useradd --system --no-create-home leadpulse

USER leadpulse
ENTRYPOINT ["leadpulse"]
CMD ["--help"]
