#!/usr/bin/env bash
# Restarts the kiosk server when /healthz stops answering (run by teachable-healthcheck.timer).
set -u
port=${TEACHABLE_PORT:-5000}
for attempt in 1 2 3; do
  if curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz" >/dev/null; then
    exit 0
  fi
  echo "health check $attempt failed"
  sleep 2
done
echo "the server stopped answering /healthz: restarting it"
systemctl restart teachable.service
