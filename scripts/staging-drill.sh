#!/bin/bash
# staging-drill.sh
#
# The plan's "Testing the Rollback Plan" sequence, as the plan wrote it:
#   ./scripts/deploy-hybrid.sh staging; sleep 60; ./scripts/rollback-config.sh staging;
#   ./scripts/verify-rollback.sh
# Parameters (environment): SCRIPTS_DIR (the plan's ./scripts) and SOAK_S, the duration of the
# plan's own `sleep 60` soak between deployment and rollback (default 60, as in the plan; the
# drills shorten it). The other scripts take their parameters from the same environment.
# Each step is announced with an epoch timestamp (`== <script> <start|end> <time> [exit N]`),
# so that the rollback's own duration can be measured (rollback_drill.plan_scripts.staging_clock
# reads them; a missing mark is an error, never 0 s); otherwise the sequence is the plan's.
# STOPPED_ON_PURPOSE (see scripts/lib/checks.sh) reaches verify-rollback.sh: the services the
# config rollback stops on purpose (the plan's Phase 2 stops backend-asgi).

SCRIPTS_DIR=${SCRIPTS_DIR:-./scripts}
SOAK_S=${SOAK_S:-60}

mark() { echo "== $1 $2 $(date +%s.%N)${3:+ exit $3}"; }

# Staging rollback drill
mark deploy-hybrid.sh start
$SCRIPTS_DIR/deploy-hybrid.sh staging
mark deploy-hybrid.sh end $?
sleep $SOAK_S
mark rollback-config.sh start
$SCRIPTS_DIR/rollback-config.sh staging
mark rollback-config.sh end $?
mark verify-rollback.sh start
$SCRIPTS_DIR/verify-rollback.sh
status=$?
mark verify-rollback.sh end $status
exit $status
