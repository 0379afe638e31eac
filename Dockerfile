# One image for the Dagster code location, webserver, daemon, Celery workers and the generator
# (docker-compose.yml), and for the code server, runs and step pods under Helm (deploy/helm/values.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lineage_dagster ./lineage_dagster
RUN pip install --no-cache-dir ".[celery,k8s]"
ENV DAGSTER_HOME=/opt/dagster/home
COPY lineage_dagster/deploy/dagster-postgres.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace-compose.yaml /opt/dagster/workspace.yaml
