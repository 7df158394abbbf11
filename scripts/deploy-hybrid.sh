#!/bin/bash
# deploy-hybrid.sh <environment>
#
# Called by the plan's "Testing the Rollback Plan" but never written by the plan: the suite's
# version of the deployment the plan guards, as an operator would run it. The plan's
# Configuration Backup Procedure first ("Before deployment, backup"), then the release's commit
# checked out, the app images rebuilt and started (awaited healthy), migrations applied, and the
# release's nginx config installed: as a candidate, `nginx -t`, then swapped in and reloaded.
# Parameters (environment): DOCKER_COMPOSE, NGINX_EXEC, NGINX_DIR (see rollback-config.sh),
# APP_DIR, SCRIPTS_DIR (see rollback-full.sh), RELEASE (the git revision; default hybrid).
# The environment argument (the plan passes "staging") is only echoed.
set -euo pipefail

DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
NGINX_EXEC=${NGINX_EXEC:-}
NGINX_DIR=${NGINX_DIR:-/etc/nginx}
APP_DIR=${APP_DIR:-/app/Chat-Arena-Backend}
SCRIPTS_DIR=${SCRIPTS_DIR:-./scripts}
RELEASE=${RELEASE:-hybrid}
SCRIPTS_DIR=$(cd "$SCRIPTS_DIR" && pwd)

echo "🚀 Deploying $RELEASE to ${1:-staging}..."
cd "$APP_DIR"

echo "Backing up (Configuration Backup Procedure)..."
"$SCRIPTS_DIR/backup-config.sh"

echo "Checking out $RELEASE..."
git checkout -q --detach "$RELEASE"

echo "Building and starting the app containers..."
$DOCKER_COMPOSE build backend-wsgi backend-asgi
$DOCKER_COMPOSE up -d --no-deps --wait backend-wsgi backend-asgi

echo "Applying migrations..."
$DOCKER_COMPOSE exec -T backend-wsgi python manage.py migrate --noinput

echo "Installing the release's nginx config (nginx -t before reload)..."
$NGINX_EXEC sh -c "cat > $NGINX_DIR/nginx.conf.candidate" < nginx/nginx.conf
$NGINX_EXEC nginx -t -q -c $NGINX_DIR/nginx.conf.candidate
$NGINX_EXEC mv $NGINX_DIR/nginx.conf.candidate $NGINX_DIR/nginx.conf
$NGINX_EXEC nginx -s reload

echo "✅ $RELEASE deployed"
