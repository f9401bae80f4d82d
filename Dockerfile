# One image for every Switchboard plane: `switchboard node|api|matchmaker` (see docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
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
RUN pip install . && useradd --system --no-create-home switchboard
USER switchboard
ENTRYPOINT []
CMD ["switchboard", "--help"]
