#!/bin/bash
# verify-rollback.sh
#
# Called by the plan's "Testing the Rollback Plan" but never written by the plan: the suite's
# version. The full health check, then Phase 2's "Expected Result" -- all traffic routes to the
# WSGI containers (the X-Served-By header of the health and streaming endpoints) -- and "No
# error spikes in logs": tracebacks and ERROR lines of backend-wsgi since LOG_SINCE (anything
# `docker compose logs --since` takes; default 60s, i.e. since about when the rollback ran: a
# window reaching back into the deployment counts the deployment's own errors), at most
# MAX_LOG_ERRORS (default 0). Exit 1 when any check fails.
set -u
. "$(dirname "$0")/lib/checks.sh"
LOG_SINCE=${LOG_SINCE:-60s}
MAX_LOG_ERRORS=${MAX_LOG_ERRORS:-0}

check_containers
check_health
check_admin
check_login
check_api

served_by() {
    curl -sS --max-time 10 -D - -o /dev/null -b "$JAR" "$BASE_URL$1" 2>/dev/null \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "x-served-by" {print $2}'
}
for path in /api/health/ "/api/stream/?n=1&interval_ms=1"; do
    by=$(served_by "$path")
    if [ "$by" = wsgi ]; then
        pass "traffic routes to WSGI" "$path served by $by"
    else
        fail "traffic routes to WSGI" "$path served by '${by:-nothing}'"
    fi
done

errors=$($DOCKER_COMPOSE logs --no-color --since "$LOG_SINCE" backend-wsgi 2>&1 \
    | grep -cE 'Traceback| ERROR ')
if [ "${errors:-0}" -le "$MAX_LOG_ERRORS" ]; then
    pass "no error spikes in logs" "$errors error line(s) since $LOG_SINCE"
else
    fail "no error spikes in logs" "$errors error line(s) since $LOG_SINCE"
fi
finish "rollback verification"
