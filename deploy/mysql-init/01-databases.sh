#!/usr/bin/env bash
# First-start initialisation of the MySQL 8.4 container (mounted into /docker-entrypoint-initdb.d).
#
# Creates
#   - the score store database (PAYMENT_DB_NAME, default `payments`) and its least-privilege user
#     PAYMENT_DB_USER (default `scorer`): SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX on that
#     database only (no DROP, ALTER or GRANT, nothing on other databases). DELETE is there for the
#     partitioned reports, which replace their day's rows on a re-run;
#   - the console's user PAYMENT_CONSOLE_DB_USER (default `console`), with the same rights on the score
#     store and its own password: it reads the decisions and keeps its reviews and aggregates;
#   - the Dagster instance database (DAGSTER_MYSQL_DB, default `dagster`) and its user
#     DAGSTER_MYSQL_USER (default `dagster`), owner of that database only (Dagster creates and
#     migrates its own tables).
# Passwords come from the environment (PAYMENT_DB_PASSWORD, DAGSTER_MYSQL_PASSWORD); none is in
# this file. The official image runs this only when the data volume is empty.
#
# The entrypoint sources a non-executable *.sh (then docker_process_sql is defined and talks to the
# temporary server as root); an executable one is run as a child, then the mysql client is used
# over the local socket. Both work. Nothing here sets shell options: when sourced they would leak
# into the entrypoint.

pp_fail() {
	echo "01-databases.sh: $*" >&2
	return 1
}

pp_require_identifier() {
	# $1 variable name, $2 value: a plain MySQL identifier, safe to interpolate.
	case "$2" in
		'' | *[!A-Za-z0-9_]*) pp_fail "$1 must be a non-empty identifier of letters, digits and _" ;;
	esac
}

pp_sql_string() {
	# A single-quoted SQL string literal of $1: backslashes and quotes doubled.
	local escaped=${1//\\/\\\\}
	escaped=${escaped//\'/\'\'}
	printf "'%s'" "$escaped"
}

pp_run_sql() {
	if declare -F docker_process_sql >/dev/null; then
		docker_process_sql --database=mysql
	else
		MYSQL_PWD="${MYSQL_ROOT_PASSWORD}" mysql --protocol=socket -uroot --database=mysql
	fi
}

pp_create_databases() {
	local payment_db="${PAYMENT_DB_NAME:-payments}"
	local payment_user="${PAYMENT_DB_USER:-scorer}"
	local dagster_db="${DAGSTER_MYSQL_DB:-dagster}"
	local dagster_user="${DAGSTER_MYSQL_USER:-dagster}"
	local console_user="${PAYMENT_CONSOLE_DB_USER:-console}"

	pp_require_identifier PAYMENT_DB_NAME "$payment_db" || return 1
	pp_require_identifier PAYMENT_DB_USER "$payment_user" || return 1
	pp_require_identifier DAGSTER_MYSQL_DB "$dagster_db" || return 1
	pp_require_identifier DAGSTER_MYSQL_USER "$dagster_user" || return 1
	pp_require_identifier PAYMENT_CONSOLE_DB_USER "$console_user" || return 1
	[ -n "${PAYMENT_DB_PASSWORD:-}" ] || pp_fail "PAYMENT_DB_PASSWORD is not set" || return 1
	[ -n "${DAGSTER_MYSQL_PASSWORD:-}" ] || pp_fail "DAGSTER_MYSQL_PASSWORD is not set" || return 1
	[ -n "${PAYMENT_CONSOLE_DB_PASSWORD:-}" ] || pp_fail "PAYMENT_CONSOLE_DB_PASSWORD is not set" || return 1

	# GRANT treats `_` in a database name as a wildcard, so the GRANTs below escape it.
	echo "01-databases.sh: creating databases ${payment_db}, ${dagster_db} and users ${payment_user}, ${dagster_user}"
	pp_run_sql <<-EOSQL
		SET @@SESSION.SQL_LOG_BIN = 0;

		CREATE DATABASE IF NOT EXISTS \`${payment_db}\` CHARACTER SET utf8mb4;
		CREATE DATABASE IF NOT EXISTS \`${dagster_db}\` CHARACTER SET utf8mb4;

		CREATE USER IF NOT EXISTS '${payment_user}'@'%' IDENTIFIED BY $(pp_sql_string "$PAYMENT_DB_PASSWORD");
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON \`${payment_db//_/\\_}\`.* TO '${payment_user}'@'%';

		CREATE USER IF NOT EXISTS '${console_user}'@'%' IDENTIFIED BY $(pp_sql_string "$PAYMENT_CONSOLE_DB_PASSWORD");
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON \`${payment_db//_/\\_}\`.* TO '${console_user}'@'%';

		CREATE USER IF NOT EXISTS '${dagster_user}'@'%' IDENTIFIED BY $(pp_sql_string "$DAGSTER_MYSQL_PASSWORD");
		GRANT ALL PRIVILEGES ON \`${dagster_db//_/\\_}\`.* TO '${dagster_user}'@'%';
	EOSQL
}

pp_create_databases
