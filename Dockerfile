# One image for the Dagster code location, webserver, daemon and the generator (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lineage_dagster ./lineage_dagster
RUN pip install --no-cache-dir . "dagster-postgres==0.29.27"
ENV DAGSTER_HOME=/opt/dagster/home
COPY deploy/dagster-compose.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace-compose.yaml /opt/dagster/workspace.yaml
