#!/bin/bash
# full-health-check.sh
#
# Called by the plan's Phase 5 but never written by the plan: the suite's version, the
# Rollback Validation Checklist's items a shell can check (scripts/lib/checks.sh): all
# containers healthy, database and Redis, health 200, admin panel, user login, API data.
# Error rate and P95 latency need the load's measurements: the drills check those.
set -u
. "$(dirname "$0")/lib/checks.sh"
check_containers
check_health
check_admin
check_login
check_api
finish "full health check"
