#!/bin/bash
# backup-config.sh
#
# The plan's "Configuration Backup Procedure" ("Before deployment, backup:"), as the plan wrote
# it, run from the app directory as the plan's relative paths assume. Parameters (environment,
# the plan's values by default): DOCKER_COMPOSE, NGINX_EXEC, NGINX_DIR (see rollback-config.sh),
# BACKUPS_DIR (the plan's /backups), COMMIT_FILE (the plan's /tmp/pre-migration-commit.txt).
#
# The dump file name lost its `$(...)` in the plan (`pre-migration-\.sql`); kept as written.
# Known plan defects this procedure shows (see rollback_drill/defects.py):
#   backup-dump-plain-sql  pg_dump's default format is plain SQL: pg_restore cannot read it
#   backup-dump-host-path  the `>` is the calling shell's: the dump lands on this host's
#                          BACKUPS_DIR, not in the postgres container's /backups
# The suite's own, corrected procedure is rollback_drill/backup.py.

DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
NGINX_EXEC=${NGINX_EXEC:-}
NGINX_DIR=${NGINX_DIR:-/etc/nginx}
BACKUPS_DIR=${BACKUPS_DIR:-/backups}
COMMIT_FILE=${COMMIT_FILE:-/tmp/pre-migration-commit.txt}

# 1. Nginx configuration
$NGINX_EXEC cp $NGINX_DIR/nginx.conf $NGINX_DIR/nginx.conf.pre-hybrid.bak

# 2. Docker Compose configuration
cp docker-compose.yml docker-compose.yml.backup

# 3. Environment files
cp .env .env.backup

# 4. Git commit hash
git rev-parse HEAD > $COMMIT_FILE

# 5. Database snapshot (optional)
$DOCKER_COMPOSE exec postgres pg_dump -U arena_user arena_production > $BACKUPS_DIR/pre-migration-.sql
