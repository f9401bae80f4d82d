# Stand-in for Docker Hub's postgres:16 where Docker Hub is out of reach: Debian's PostgreSQL (15) on
# a local base (scripts/compose-smoke.sh), with the official image's contract the compose file uses:
# POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB, data in /var/lib/postgresql/data, pg_isready.
ARG BASE=switchboard-base:bookworm
FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
