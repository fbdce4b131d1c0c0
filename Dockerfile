# syntax=docker/dockerfile:1
# One image for every Python service of the stack (code location, webserver, daemon, the scoring runs
# the daemon launches, and the demo producer); docker-compose.yml chooses the command. Default: the
# gRPC code-location server.
FROM python:3.11.13-slim-bookworm

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

# The project and its pinned ranges from setup.py, with dagster-docker (the run launcher). Installed in
# place: Dagster finds the code location's defs/ folder through pyproject.toml beside the package.
COPY setup.py pyproject.toml ./
COPY payment_platform ./payment_platform
RUN pip install -e ".[deploy]"

# Instance config, the compose workspace and the entry point. The storage directories are created
# here, owned by the service user, so the named volumes mounted on them start with the right owner;
# the secrets directory is readable by that user only.
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/deploy/workspace.yaml
COPY deploy/entrypoint.sh /usr/local/bin/payment-platform-entrypoint
RUN mkdir -p ${DAGSTER_HOME}/storage ${PAYMENT_HOME} /var/lib/payment-secrets \
    && chown -R payment:payment ${DAGSTER_HOME}/storage ${PAYMENT_HOME} /var/lib/payment-secrets \
    && chmod 0700 /var/lib/payment-secrets

USER payment

EXPOSE 4000
ENTRYPOINT ["payment-platform-entrypoint"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "payment_platform.definitions", "-a", "defs", "--location-name", "payment_platform"]
