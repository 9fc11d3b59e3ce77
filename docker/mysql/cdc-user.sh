# Creates the bridge's replication user `cdc` with the grants its start-up checks ask for
# (README: "Database server settings" and "Initial sync of a new partner"), and the pushers'
# read-only user `ocpi_reader` (README "Composite objects").
#
# Run once by the mysql image's entrypoint, on an empty data directory, after the example schema
# (mounted as /docker-entrypoint-initdb.d/20-cdc-user.sh, after 10-ocpi-schema.sql). The
# entrypoint sources it, so keep it not executable: docker_process_sql is the entrypoint's own
# function (root over the local socket).
#
# The password comes from CDC_PASSWORD (the bridge gets the same value as
# BRIDGE_SOURCE_PASSWORD). caching_sha2_password, MySQL 8's default, is supported by both the
# binlog reader and the SQL client of the bridge.

if [ -z "${READER_PASSWORD:-}" ]; then
    echo >&2 "cdc-user.sh: READER_PASSWORD is empty: set it to the password the pushers use (PUSHER_DATABASE_PASSWORD)"
    exit 1
fi
if [ -z "${CDC_PASSWORD:-}" ]; then
    echo >&2 "cdc-user.sh: CDC_PASSWORD is empty: set it to the password the bridge uses (BRIDGE_SOURCE_PASSWORD)"
    exit 1
fi
# As an SQL string literal: backslashes and single quotes doubled.
cdc_password_sql="${CDC_PASSWORD//\\/\\\\}"
cdc_password_sql="${cdc_password_sql//\'/\'\'}"
reader_password_sql="${READER_PASSWORD//\\/\\\\}"
reader_password_sql="${reader_password_sql//\'/\'\'}"

docker_process_sql <<SQL
-- A user account is not data to replicate; keep it out of the binlog the bridge reads.
SET SESSION sql_log_bin = 0;
CREATE USER 'cdc'@'%' IDENTIFIED WITH caching_sha2_password BY '${cdc_password_sql}';
-- Least privilege: replication globally, SELECT on the captured database only.
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
GRANT SELECT ON \`ocpi\`.* TO 'cdc'@'%';
-- The signal table of initial syncs: the bridge creates it in the first captured database.
GRANT SELECT, INSERT, DELETE, CREATE ON \`ocpi\`.\`cdc_signal\` TO 'cdc'@'%';
-- The pushers read composite objects (an EVSE with its connectors): SELECT on the schema only.
CREATE USER 'ocpi_reader'@'%' IDENTIFIED WITH caching_sha2_password BY '${reader_password_sql}';
GRANT SELECT ON \`ocpi\`.* TO 'ocpi_reader'@'%';
SQL
unset cdc_password_sql reader_password_sql
