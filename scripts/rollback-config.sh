#!/bin/bash
# rollback-config.sh
#
# The plan's "Script 1: Quick Config Rollback", as the plan wrote it. Only commands and paths
# are parameters, through environment variables whose defaults are the plan's own values:
#   DOCKER_COMPOSE  the plan's `docker-compose` (e.g. "docker compose -p rbd-x ...")
#   NGINX_EXEC      prefix that runs nginx-side commands where nginx runs
#                   (e.g. "docker compose ... exec -T nginx"; empty: on this host)
#   NGINX_DIR       the plan's /etc/nginx
#   BASE_URL        the plan's http://localhost
# Known plan defects this script reproduces (see rollback_drill/defects.py):
#   nginx-backup-name        it restores nginx.conf.backup; the backup procedure writes
#                            nginx.conf.pre-hybrid.bak
#   phase2-up-restarts-asgi  `up -d --scale backend-wsgi=4` starts the ASGI stopped above

set -e

DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
NGINX_EXEC=${NGINX_EXEC:-}
NGINX_DIR=${NGINX_DIR:-/etc/nginx}
BASE_URL=${BASE_URL:-http://localhost}

echo "🔄 Starting configuration rollback..."

# Stop ASGI
echo "Stopping ASGI containers..."
$DOCKER_COMPOSE stop backend-asgi

# Restore Nginx
echo "Restoring Nginx configuration..."
$NGINX_EXEC cp $NGINX_DIR/nginx.conf.backup $NGINX_DIR/nginx.conf
$NGINX_EXEC nginx -t && $NGINX_EXEC nginx -s reload

# Scale WSGI
echo "Scaling WSGI containers..."
$DOCKER_COMPOSE up -d --scale backend-wsgi=4

# Health check
echo "Running health check..."
if curl -f $BASE_URL/api/health/; then
    echo "✅ Rollback successful"
else
    echo "❌ Rollback failed - manual intervention needed"
    exit 1
fi
