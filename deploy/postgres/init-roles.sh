#!/usr/bin/env bash
# Runs once, when the postgres service initialises an empty data volume
# (/docker-entrypoint-initdb.d). One role per owner, so the application and Temporal never
# share credentials and neither holds the superuser's:
#   medicalcor  owns database medicalcor (event store, projections, read models);
#               the only role, besides the superuser, allowed to connect to it
#   temporal    may create databases: Temporal's auto-setup creates and migrates
#               `temporal` and `temporal_visibility` itself
# Role and database names can be overridden for tests; compose uses the defaults.
set -Eeuo pipefail

: "${MEDICALCOR_DB_PASSWORD:?MEDICALCOR_DB_PASSWORD is required}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is required}"

app_user="${MEDICALCOR_DB_USER:-medicalcor}"
app_db="${MEDICALCOR_DB_NAME:-medicalcor}"
temporal_user="${TEMPORAL_DB_USER:-temporal}"

# Values travel as psql variables (:'x' quotes a literal, :"x" an identifier), so a
# password may hold any character without breaking or injecting SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app_user="$app_user" --set app_db="$app_db" \
    --set app_password="$MEDICALCOR_DB_PASSWORD" \
    --set temporal_user="$temporal_user" \
    --set temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
CREATE ROLE :"temporal_user" LOGIN CREATEDB PASSWORD :'temporal_password';
\connect :"app_db"
-- Query statistics for the operators (docs/production.md); needs superuser to create.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
