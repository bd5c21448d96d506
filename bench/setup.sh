#!/usr/bin/env bash
# Installs what the serving benchmark needs beyond the project venv: wrk (Debian package).
# Peer servers (MLflow, MLServer, BentoML) are installed by bench/venvs.py into their own venvs.
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 $SUDO apt-get install -y -q wrk >/dev/null 2>&1 || {
    timeout 300 $SUDO apt-get update -q >/dev/null
    timeout 300 $SUDO apt-get install -y -q wrk >/dev/null
  }
fi
wrk --version 2>&1 | head -1 || true
