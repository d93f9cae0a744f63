#!/usr/bin/env bash
# Install a real Zabbix 6.0 (Debian's packages) for tests/zabbix_real, when missing.
# The server (PostgreSQL build), its PHP frontend served later by `php -S` (php8.2-cgi and
# php8.2-pgsql instead of Apache) and zabbix_sender (in zabbix-agent). Nothing is started here:
# the test starts the server and the frontend on loopback ports and stops them by PID.
# Not fatal: without the packages the test skips, except under CI=true where it fails.
set -uo pipefail
PKGS="zabbix-server-pgsql zabbix-frontend-php php8.2-cgi php8.2-pgsql zabbix-agent"
if [ -x /usr/sbin/zabbix_server ] && [ -x /usr/bin/zabbix_sender ] && [ -f /usr/share/zabbix/api_jsonrpc.php ] \
   && command -v php >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_zabbix: not root or no apt-get; the real-Zabbix tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d: the packages' scripts must not start a system-wide zabbix-agent or server
if [ ! -e /usr/sbin/policy-rc.d ]; then
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
fi
apt-get install -y -q --no-install-recommends $PKGS >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $PKGS >/dev/null 2>&1; } \
  || echo "install_zabbix: could not install $PKGS; the real-Zabbix tests will be skipped" >&2
exit 0
