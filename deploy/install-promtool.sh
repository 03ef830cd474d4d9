#!/usr/bin/env bash
# promtool for `make deploy-check`, from Debian's prometheus package, installed only when missing.
# The package comes with a Prometheus server whose init script would start it: none is left running.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# invoke-rc.d asks policy-rc.d before starting a service; exit 101 means "do not". Only while we
# install, and only if the machine has no policy of its own.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
echo "deploy-tools: installing promtool (Debian package prometheus)"
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Should a server have started anyway, stop it, and keep it from starting at boot.
if [ -x /etc/init.d/prometheus ]; then
  $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
$SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
command -v promtool >/dev/null
