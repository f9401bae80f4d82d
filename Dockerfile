# One image for every Switchboard plane: `switchboard node|api|matchmaker` (see docker-compose.yml).
# BASE: any Debian-like image with python3 (3.11+) and its venv module. The default comes from Docker
# Hub; without it, scripts/compose-smoke.sh makes one from Debian's mirror (debootstrap) and builds with
# `--build-arg BASE=switchboard-base:bookworm` (docs/operations.md, "docker compose").
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PATH=/opt/switchboard/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchboard switchboard
COPY sfu sfu
COPY signaling signaling
COPY matchmaker matchmaker
COPY control_api control_api
COPY turn turn
COPY bench bench
COPY switchboard_client switchboard_client
COPY web web
# A venv: Debian's python3 refuses a system-wide pip install (PEP 668); python:3.11-slim takes it too.
# The fixed uid lets an operator give the planes their secret files (`chown 10001 var/secrets/*`:
# compose bind-mounts them with the host's owner and mode, 0600).
RUN python3 -m venv /opt/switchboard && pip install . \
    && useradd --system --uid 10001 --no-create-home switchboard
USER switchboard
ENTRYPOINT []
CMD ["switchboard", "--help"]
