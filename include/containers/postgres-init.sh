#!/bin/sh
# Runs once, when the PostgreSQL data volume is first created (docker-entrypoint-initdb.d):
# the image creates the Airflow database from POSTGRES_DB; this adds the engine's job
# store as a separate database with its own role, so neither can touch the other's tables.
set -eu
# psql variables (:'engine_password') quote the password, whatever characters it holds.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v engine_password="$ENGINE_DB_PASSWORD" <<'SQL'
CREATE ROLE engine LOGIN PASSWORD :'engine_password';
CREATE DATABASE engine OWNER engine;
SQL
