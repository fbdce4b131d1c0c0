# syntax=docker/dockerfile:1
# One image for every Python service of the stack (code location, webserver, daemon, producer);
# docker-compose.yml chooses the command. Default: the gRPC code-location server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    PAYMENT_HOME=/var/lib/payment_platform

RUN groupadd --system --gid 10001 payment \
    && useradd --system --uid 10001 --gid payment --create-home --home-dir /home/payment \
       --shell /usr/sbin/nologin payment

WORKDIR /opt/dagster/app

# The project and its pinned ranges from setup.py (PyMySQL[rsa] logs in to MySQL 8.4 users).
COPY setup.py pyproject.toml ./
COPY payment_platform ./payment_platform
RUN pip install .

# Instance config and the compose workspace. The storage directories are created here, owned by
# the service user, so the named volumes mounted on them start with the right owner.
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/deploy/workspace.yaml
RUN mkdir -p ${DAGSTER_HOME}/storage ${PAYMENT_HOME} \
    && chown -R payment:payment ${DAGSTER_HOME}/storage ${PAYMENT_HOME}

USER payment

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "payment_platform.definitions", "-a", "defs", "--location-name", "payment_platform"]
