#!/usr/bin/env bash
# The Debian packages the product and its test suite use, in one place (make deps runs this; so do
# `make test` and `make run`). Installs only what is missing, runs `apt-get update` once when it must
# install, needs no prompt as root; not root: one line with the exact command, exit 1.
#
#   scripts/deps.sh            install what is missing (what `make test` needs)
#   scripts/deps.sh --venv     only what making the venv needs (what `make run` needs)
#   scripts/deps.sh --list     print the package list (tests compare it with .ci/run)
#   scripts/deps.sh --missing  print the missing packages (nothing when all are installed)
# PYTHON (default python3) is the interpreter the venv is made from: Debian's needs python3-venv.
set -euo pipefail

PACKAGES=(
  coturn                          # tests/turn: a real TURN server
  chromium                        # tests/e2e: the browser pages in headless Chromium
  gstreamer1.0-plugins-base       # tests/interop: an independent WebRTC stack (webrtcbin)
  gstreamer1.0-plugins-good       #   VP8 (vpx), RTP payloaders
  gstreamer1.0-plugins-bad        #   webrtcbin, dtls, srtp
  gstreamer1.0-nice               #   ICE for webrtcbin
  gir1.2-gst-plugins-bad-1.0      #   GstWebRTC introspection
  gir1.2-gst-plugins-base-1.0     #   GstSdp introspection
  python3-gi                      #   drives GStreamer from Debian's python3
  iproute2                        # network namespaces for link tests
  redis-server                    # tests: a real 3-master Redis Cluster (tests/redis_cluster.py)
  prometheus                      # tests/test_deploy.py: promtool checks deploy/'s alert rules
  gcc                             # sfu/native: compiles the native fan-out (cffi, python -m sfu.native.build)
  libsrtp2-dev                    #   its SRTP: Debian's libsrtp2 (the tests run the SFU on the native path)
  janus                           # bench sfu --baseline janus: Janus 1.1.2's VideoRoom (tests/bench run it)
)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

mode="${1:-}"
case "$mode" in
  --list) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
  ""|--venv|--missing) ;;
  *) echo "usage: $0 [--venv|--list|--missing]" >&2; exit 2 ;;
esac

missing=()
"${PYTHON:-python3}" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ "$mode" != "--venv" ]; then
  for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
fi
if [ "$mode" = "--missing" ]; then
  for pkg in "${missing[@]+"${missing[@]}"}"; do echo "$pkg"; done
  exit 0
fi

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq || ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  still=()
  for pkg in "${missing[@]}"; do installed "$pkg" || still+=("$pkg"); done
  echo "deps: could not install ${still[*]:-${missing[*]}} (is the Debian mirror reachable?)" >&2
  exit 1
fi
# The bench runs Janus on its own configuration; the system service Debian's package enables (the
# demo configuration, on all interfaces) is stopped, when this script installed it.
if [[ " ${missing[*]} " == *" janus "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now janus.service >/dev/null 2>&1 || true
fi
