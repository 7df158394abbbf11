#!/bin/bash
# rollback-full.sh
#
# The plan's "Script 2: Full Code Rollback", as the plan wrote it. Parameters (environment,
# the plan's values by default): DOCKER_COMPOSE, NGINX_EXEC, NGINX_DIR (see rollback-config.sh),
# APP_DIR (the plan's /app/Chat-Arena-Backend), SCRIPTS_DIR (the plan's ./scripts, relative to
# APP_DIR as in the plan).
#
# The plan's text lost its shell expansions: `BACKUP_COMMIT=\` where `$1` stood, and `\` where
# `$BACKUP_COMMIT` was used. A lost expansion whose text the plan shows elsewhere (the variable's
# uses) is restored; the one it does not show (the assignment's `$1`) stays lost, as written:
#   backup-commit-empty  BACKUP_COMMIT is always empty: the script prints its usage and exits 1
#                        whatever commit it is given
#   nginx-backup-name    (not reached) it restores nginx.conf.backup, which no backup writes

set -e

DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
NGINX_EXEC=${NGINX_EXEC:-}
NGINX_DIR=${NGINX_DIR:-/etc/nginx}
APP_DIR=${APP_DIR:-/app/Chat-Arena-Backend}
SCRIPTS_DIR=${SCRIPTS_DIR:-./scripts}

BACKUP_COMMIT=

if [ -z "$BACKUP_COMMIT" ]; then
    echo "Usage: ./rollback-full.sh <commit-hash>"
    exit 1
fi

echo "🔄 Starting full rollback to $BACKUP_COMMIT..."

cd $APP_DIR

# Checkout previous version
git checkout $BACKUP_COMMIT

# Rebuild
$DOCKER_COMPOSE build backend-wsgi

# Stop ASGI
$DOCKER_COMPOSE stop backend-asgi

# Restart WSGI
$DOCKER_COMPOSE up -d backend-wsgi

# Restore Nginx
$NGINX_EXEC cp $NGINX_DIR/nginx.conf.backup $NGINX_DIR/nginx.conf
$NGINX_EXEC nginx -s reload

# Health check
sleep 5
$SCRIPTS_DIR/smoke-test.sh

echo "✅ Full rollback complete"
