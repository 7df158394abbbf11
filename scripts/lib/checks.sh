# Shared by smoke-test.sh, full-health-check.sh and verify-rollback.sh (sourced, not run).
# The plan calls those scripts but never writes them; these checks are its Rollback Validation
# Checklist, with curl. Each check prints "PASS <check>: ..." or "FAIL <check>: ..." and
# failures are counted in $FAILED. Parameters (environment):
#   BASE_URL        the plan's http://localhost
#   DOCKER_COMPOSE  the plan's docker-compose
#   DRILL_USER / DRILL_PASSWORD          a normal user (login check; skipped without them)
#   CHECK_RETRIES   how many times curl retries a health request that fails (default 10, 1 s
#                   apart): a just-restarted backend is polled, not slept on
#   STOPPED_ON_PURPOSE  services the rollback stopped on purpose (spaces; e.g. "backend-asgi"
#                   after Phase 1/2): their containers may be stopped; every other container of
#                   the project must be running and healthy
#   PYTHON          the interpreter with the rollback_drill package (default python3): the
#                   containers check is the suite's one rule (rollback_drill.rollback.health)

BASE_URL=${BASE_URL:-http://localhost}
DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
CHECK_RETRIES=${CHECK_RETRIES:-10}
STOPPED_ON_PURPOSE=${STOPPED_ON_PURPOSE:-}
PYTHON=${PYTHON:-python3}
FAILED=0
JAR=$(mktemp)
trap 'rm -f "$JAR"' EXIT

pass() { echo "PASS $1: $2"; }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

check_health() {
    local body
    if ! body=$(curl -fsS --max-time 5 --retry "$CHECK_RETRIES" --retry-delay 1 \
            --retry-all-errors "$BASE_URL/api/health/" 2>&1); then
        fail "health endpoint returns 200" "$body"
        return
    fi
    pass "health endpoint returns 200" "$body"
    if echo "$body" | grep -Eq '"db": ?"ok"'; then
        pass "database connection successful" "db ok"
    else
        fail "database connection successful" "$body"
    fi
    if echo "$body" | grep -Eq '"redis": ?"ok"'; then
        pass "redis connection successful" "redis ok"
    else
        fail "redis connection successful" "$body"
    fi
}

check_login() {
    if [ -z "${DRILL_USER:-}" ] || [ -z "${DRILL_PASSWORD:-}" ]; then
        echo "SKIP user login works: DRILL_USER/DRILL_PASSWORD not set"
        return
    fi
    local out
    if out=$(curl -fsS --max-time 5 -c "$JAR" -H 'Content-Type: application/json' \
            -d "{\"username\":\"$DRILL_USER\",\"password\":\"$DRILL_PASSWORD\"}" \
            "$BASE_URL/api/auth/login/" 2>&1); then
        pass "user login works" "$out"
    else
        fail "user login works" "$out"
    fi
}

check_api() {
    local out
    if out=$(curl -fsS --max-time 5 -b "$JAR" "$BASE_URL/api/models/" 2>&1) \
            && echo "$out" | grep -q '"results"'; then
        pass "API endpoints return expected data" "$(echo "$out" | cut -c1-80)"
    else
        fail "API endpoints return expected data" "$(echo "$out" | cut -c1-200)"
    fi
}

check_admin() {
    local code
    code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$BASE_URL/admin/login/")
    if [ "$code" = 200 ]; then
        pass "admin panel accessible" "/admin/login/ $code"
    else
        fail "admin panel accessible" "/admin/login/ answered $code"
    fi
}

check_containers() {
    # the suite's one rule (docker compose ps -a: stopped containers count), in Python
    local out
    if out=$("$PYTHON" -m rollback_drill.rollback.health containers \
            --compose "$DOCKER_COMPOSE" --stopped "$STOPPED_ON_PURPOSE" 2>&1); then
        echo "$out"
    else
        case "$out" in
            FAIL*) echo "$out"; FAILED=$((FAILED + 1)) ;;
            *) fail "all containers are healthy" "$(echo "$out" | tail -1)" ;;
        esac
    fi
}

finish() {
    if [ "$FAILED" -gt 0 ]; then
        echo "❌ $1: $FAILED check(s) failed"
        exit 1
    fi
    echo "✅ $1: all checks passed"
}
