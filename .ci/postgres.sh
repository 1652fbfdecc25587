# Sourced by .ci/run: make Debian's PostgreSQL serve on 127.0.0.1 and export CODEBOT_TEST_POSTGRES, the
# DSN the store's contract tests run their PostgreSQL half against. Idempotent: it reuses an installed,
# running cluster (a developer's machine) and only installs, creates or starts what is missing.
# The role is a throwaway test login that can reach nothing but its own database, so its password is
# a fixed, public value rather than a secret.

_pg_role=codebot_test
_pg_db=codebot_test
_pg_password=codebot_test

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    apt-get install -y -qq postgresql >/dev/null
fi
_pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$_pg_version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    pg_createcluster "$_pg_version" main >/dev/null
fi
# Without systemd (containers, CI) the package's own start may not have happened: start it here.
if ! pg_lsclusters -h | awk -v v="$_pg_version" '$1 == v && $2 == "main" && $4 ~ /online/ { ok = 1 } END { exit !ok }'; then
    pg_ctlcluster "$_pg_version" main start
fi
_pg_port=$(pg_lsclusters -h | awk -v v="$_pg_version" '$1 == v && $2 == "main" { print $3 }')
for _ in $(seq 60); do
    pg_isready -q -h 127.0.0.1 -p "$_pg_port" && break
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$_pg_port"

su postgres -s /bin/sh -c "psql -q -X -v ON_ERROR_STOP=1 -p $_pg_port" <<SQL >/dev/null
SELECT format('CREATE ROLE %I LOGIN', '$_pg_role')
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$_pg_role') \gexec
ALTER ROLE $_pg_role LOGIN PASSWORD '$_pg_password';
SELECT format('CREATE DATABASE %I OWNER %I', '$_pg_db', '$_pg_role')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$_pg_db') \gexec
SQL

export CODEBOT_TEST_POSTGRES="postgresql://$_pg_role:$_pg_password@127.0.0.1:$_pg_port/$_pg_db"
unset _pg_role _pg_db _pg_password _pg_version _pg_port
