#!/usr/bin/env bash
# Runs docker-compose.yml for real (Redis, Postgres, migrate, the API and the two nodes) and proves it
# from the host through public protocols only: both nodes in the registry, an account signed up through
# the API, a publisher placed on one node and viewers placed on the other (the cascade) decoding frames.
# Needs a running Docker engine, docker compose (v2) or Debian's docker-compose (1.29), and the repo's
# venv (`make .venv/.installed`: the clients are bench.cluster_clients, on the SDK). Not part of
# `make test`: CI has no Docker. docs/operations.md ("docker compose") shows a run.
#
#   scripts/compose-smoke.sh              Docker Hub out of reach: a local Debian base (debootstrap,
#                                         as root), Redis and Postgres from it (deploy/local/compose.yml)
#   HUB=1 scripts/compose-smoke.sh        the images of docker-compose.yml as they are (Docker Hub)
#   KILL=1 scripts/compose-smoke.sh       then `compose kill` the viewers' node (SIGKILL, a lost node):
#                                         they must decode again on the other one, through the API
#   STOP=1 scripts/compose-smoke.sh       the same with `compose stop` (SIGTERM: the node drains, its
#                                         viewers are sent to the other one)
#   KEEP=1 scripts/compose-smoke.sh       leave the stack and its secrets up (stop it: the line it prints)
#
# The containers bind host ports 8081, 8082 and 8084 (docker-compose.yml). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${PROJECT:-switchboard-smoke}
PY=${PYTHON:-.venv/bin/python}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
API=http://localhost:8082
PASSWORD=compose-smoke-password
work=$(mktemp -d /tmp/compose-smoke.XXXXXX)

files=(-f docker-compose.yml)
if [ -z "${HUB:-}" ]; then
  export BASE_IMAGE=${BASE_IMAGE:-switchboard-base:bookworm}
  files+=(-f deploy/local/compose.yml)
fi
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$PROJECT" "${files[@]}" "$@"; }
else
  compose() { docker-compose -p "$PROJECT" "${files[@]}" "$@"; }
fi
say() { printf '\n== %s\n' "$*"; }
fail() { echo "compose-smoke: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  for pid in ${pub_pid:-} ${view_pid:-}; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then
    echo "left up (secrets in $work/secrets); stop it with:"
    echo "  SECRETS_DIR=$work/secrets docker-compose -p $PROJECT ${files[*]} down -v"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

# A base image from Debian's mirror: python3 and its venv module (the Dockerfile's ARG BASE needs no
# more). The host's own CAs go in too: a TLS-intercepting proxy on the way to PyPI signs with them.
make_base() {
  command -v debootstrap >/dev/null || fail "needs debootstrap (apt-get install debootstrap) to make $BASE_IMAGE"
  say "making $BASE_IMAGE with debootstrap ($MIRROR)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/rootfs" "$MIRROR" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$work/rootfs/etc/pip.conf"
  fi
  chroot "$work/rootfs" apt-get clean
  rm -rf "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$work/rootfs"
}

if [ -z "${HUB:-}" ] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  make_base
fi

# The planes' secrets (what `switchboard up` writes to var/secrets/), readable by their uid (10001).
export SECRETS_DIR=$work/secrets
"$PY" -c "import sys; from pathlib import Path; from switchboard.keys import KeyPaths, ensure_secrets
d = Path(sys.argv[1]); ensure_secrets(KeyPaths(d / 'token_ed25519.pem', d / 'token_ed25519.pub.pem', d / 'turn_secret'))" \
  "$SECRETS_DIR"
chown 10001 "$SECRETS_DIR"/* 2>/dev/null || chmod 644 "$SECRETS_DIR"/*
# One show over both nodes: the origin takes one session (the publisher), viewers go to the other.
CASCADE_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export CASCADE_SECRET CASCADE_VIEWERS_PER_NODE=1

say "compose up (${files[*]})"
compose up -d --build redis postgres migrate api node-1 node-2 > "$work/up.log" 2>&1 \
  || { tail -n 30 "$work/up.log"; compose logs --no-color --tail=30 || true; fail "compose up failed"; }
compose ps

for url in "$API/readyz" http://localhost:8081/readyz http://localhost:8084/readyz; do
  for _ in $(seq 180); do curl -fs -m 2 -o /dev/null "$url" && break; sleep 1; done
  curl -fs -m 2 -o /dev/null "$url" || { compose logs --no-color --tail=30; fail "$url not ready after 180 s"; }
done
for _ in $(seq 60); do
  [ "$(compose exec -T node-1 switchboard nodes --json | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')" = 2 ] && break
  sleep 1
done
say "switchboard nodes (in node-1, against the compose Redis)"
compose exec -T node-1 switchboard nodes

say "sign up through the API (the code comes from the API's log: no SMTP relay is set)"
email=compose-smoke-$(date +%s)@example.com
post() { curl -fsS -XPOST "$API/api/$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; echo; }
post auth/register "{\"email\": \"$email\", \"password\": \"$PASSWORD\"}"
code=""
for _ in $(seq 30); do
  code=$(compose logs --no-color api | grep "mail to $email" | grep -o 'code [0-9]\{6\}' | tail -n 1 | cut -d' ' -f2) || true
  [ -n "$code" ] && break
  sleep 1
done
[ -n "$code" ] || fail "no verification code for $email in the API's log"
post auth/verify "{\"email\": \"$email\", \"code\": \"$code\"}"
token=$(post auth/login "{\"email\": \"$email\", \"password\": \"$PASSWORD\"}" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
created=$(post rooms '{"title": "compose smoke"}' -H "Authorization: Bearer $token")
echo "$created"
room=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["room"])' "$created")

# A load client (python -m bench.cluster_clients, public protocols only) on two fifos: its JSON lines
# are read from fd ${name}_out, its commands written to fd ${name}_in.
client() {
  local name=$1; shift
  mkfifo "$work/$name.in" "$work/$name.out"
  "$PY" -m bench.cluster_clients "$@" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  printf -v "${name}_pid" %s $!
  exec {fd}>"$work/$name.in"; printf -v "${name}_in" %s "$fd"
  exec {fd}<"$work/$name.out"; printf -v "${name}_out" %s "$fd"
}
expect() {  # name event timeout_s: prints the client's next line with that event
  local line fd=${1}_out
  while read -t "$3" -r line <&"${!fd}"; do
    case $line in *"\"event\": \"$2\""*) echo "$line"; return 0 ;; esac
  done
  tail -n 20 "$work/$1.err" >&2
  fail "$1: no $2 within $3 s"
}

say "publisher (placed by the API's token answer)"
client pub publish --api "$API" --email "$email" --password "$PASSWORD" --room "$room"
ready=$(expect pub ready 120)
echo "$ready"
origin=$("$PY" -c 'import json, sys; m = json.loads(sys.argv[1]); assert not m.get("error"), m; print(m["node"])' "$ready")

say "two viewers (placed by the API: the origin holds its one session, so the other node pulls the show)"
client view view --api "$API" --room "$room" --count 2 --tag "$(date +%s)"
placed=$(expect view ready 180)
echo "$placed"
echo start >&"$view_in"
sleep 5
echo window >&"$view_in"
compose exec -T node-1 switchboard nodes
lose=${KILL:+kill}${STOP:+stop}
if [ -n "$lose" ]; then
  # The node the first viewer is on, by its registry url (docker-compose.yml: 8081 node-1, 8084 node-2).
  url=$(compose exec -T node-1 switchboard nodes --json | "$PY" -c 'import json, sys
node = json.loads(sys.argv[1])["nodes"][0]
print(next(e["url"] for e in json.load(sys.stdin) if e["id"] == node))' "$placed")
  case $url in *:8081) victim=node-1 survivor=node-2 ;; *) victim=node-2 survivor=node-1 ;; esac
  say "compose $lose $victim: its viewers decode again on $survivor"
  echo "mark $(date +%s.%N)" >&"$view_in"  # before: compose takes a while, the viewers may be back sooner
  compose "$lose" "$victim"
  sleep 15
  compose exec -T "$survivor" switchboard nodes
fi
echo stop >&"$view_in"
result=$(expect view result 120)
echo stop >&"$pub_in"
expect pub result 60
wait "$view_pid" "$pub_pid" || true
view_pid="" pub_pid=""

say "result"
"$PY" - "$origin" "$placed" "$result" "$lose" <<'EOF'
import json
import sys

origin, placed, viewers = sys.argv[1], json.loads(sys.argv[2])["nodes"], json.loads(sys.argv[3])["viewers"]
for v, n in zip(viewers, placed):  # placed: its node when it joined; node: at the end (fps: the window)
    print(json.dumps({"placed": n, **{k: v[k] for k in ("node", "fps", "packets", "loss_pct", "recovery_s", "error")}}))
decoding = [v for v in viewers if v["error"] is None and v["packets"] > 0 and v["fps"] > 0]
on_edge = [n for n in placed if n and n != origin]
print(f"publisher on {origin}; {len(on_edge)} of {len(placed)} viewers placed on the other node, "
      f"{len(decoding)} decoding")
ok = len(decoding) == len(viewers) and bool(on_edge)
if sys.argv[4]:  # the first viewer's node was lost: each viewer that was there decodes again (recovery_s)
    hit = [v for v, n in zip(viewers, placed) if n == placed[0]]
    back = [v["recovery_s"] for v in hit if v["recovery_s"] is not None]
    print(f"{len(back)} of {len(hit)} viewers of the lost node decoding again; recovery_s max {max(back, default=None)}")
    ok = ok and len(back) == len(hit)
sys.exit(0 if ok else 1)
EOF
say "ok"
