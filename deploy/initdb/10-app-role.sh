#!/bin/sh
# The gateway's least-privileged role (ACCESS.md): migration 0005 grants it its rights.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$MEDGW_APP_PASSWORD" <<'SQL'
CREATE ROLE medgw_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
SQL
