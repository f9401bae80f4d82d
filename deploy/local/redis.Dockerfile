# Stand-in for Docker Hub's redis:7 where Docker Hub is out of reach: Debian's redis-server (7.0) on a
# local base (scripts/compose-smoke.sh). Like the official image, it listens beyond its loopback
# without a password (protected mode off: only the compose network reaches it) and keeps data in /data.
ARG BASE=switchboard-base:bookworm
FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data \
    && printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' > /usr/local/bin/redis-server \
    && chmod 755 /usr/local/bin/redis-server
WORKDIR /data
USER redis
CMD ["redis-server"]
