#!/bin/bash
# smoke-test.sh
#
# Called by the plan's Phase 3 and rollback-full.sh but never written by the plan: the suite's
# version, from its Rollback Validation Checklist (scripts/lib/checks.sh): health 200 with the
# database and Redis ok, user login, API data. Exit 1 when any check fails.
set -u
. "$(dirname "$0")/lib/checks.sh"
check_health
check_login
check_api
finish "smoke test"
