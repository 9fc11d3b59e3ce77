# Shared set-up for the repository's commands (tests/run, ./demo, bench/run): install what is
# missing on Debian/Ubuntu, make sure a RabbitMQ answers on 127.0.0.1:5672, and start private
# MariaDB servers with the binlog on. Source it; every function says what it does.

# mariadbd, rabbitmq-server and rabbitmqctl live in sbin; cargo may only be in ~/.cargo/bin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
if [[ -d "$HOME/.cargo/bin" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Installs MariaDB, RabbitMQ and the build tools when any is missing (root only).
ensure_packages() {
    local missing=()
    { have mariadb-install-db && have mariadbd && have mariadb; } || missing+=(mariadb-server)
    { have rabbitmq-server && have rabbitmqctl; } || missing+=(rabbitmq-server)
    have pkg-config || missing+=(pkg-config)
    installed libssl-dev || missing+=(libssl-dev)
    { installed build-essential || { have cc && have make; }; } || missing+=(build-essential)
    type -P kill >/dev/null 2>&1 || missing+=(procps)

    if ((${#missing[@]} > 0)); then
        if [[ "$(id -u)" != 0 ]]; then
            log "missing: ${missing[*]}"
            log "install them as root: apt-get update && apt-get install -y ${missing[*]}"
            return 1
        fi
        if ! have apt-get; then
            log "missing: ${missing[*]}, and there is no apt-get here: install them by hand"
            return 1
        fi
        log "installing: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
    if ! have cargo; then
        log "cargo not found: install Rust (https://rustup.rs), then run this command again"
        return 1
    fi
}

# Makes sure a RabbitMQ answers on 127.0.0.1:5672, starting the system's node when none runs.
ensure_rabbitmq() {
    if port_open 5672; then
        log "RabbitMQ answers on 127.0.0.1:5672"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        log "nothing listens on 127.0.0.1:5672 and only root can start rabbitmq-server here"
        return 1
    fi
    if ! rabbitmqctl status >/dev/null 2>&1; then
        log "starting RabbitMQ (rabbitmq-server -detached)"
        rabbitmq-server -detached
    fi
    local deadline=$((SECONDS + 120))
    until rabbitmqctl await_startup --timeout 10 >/dev/null 2>&1 && port_open 5672; do
        if ((SECONDS >= deadline)); then
            log "RabbitMQ did not start within 120 s; last lines of its log:"
            tail -n 30 /var/log/rabbitmq/*.log 2>/dev/null || true
            return 1
        fi
        sleep 2
    done
    log "RabbitMQ is up on 127.0.0.1:5672"
}

# start_private_mariadb DIR PORT [EXTRA_CNF_LINES...]
# Starts (or reuses, if already running from DIR) a MariaDB with its own data directory and port,
# binlog on with ROW format, FULL row image and FULL row metadata, utf8mb4 by default, and a
# replication user cdc/cdc-pass. The system MariaDB is not touched.
start_private_mariadb() {
    local dir="$1" port="$2"
    shift 2
    mkdir -p "$dir"
    if [[ -S "$dir/mysqld.sock" ]] && mariadb -S "$dir/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        log "private MariaDB already running on port $port ($dir)"
        return 0
    fi
    cat >"$dir/my.cnf" <<CNF
[mysqld]
datadir=$dir/data
socket=$dir/mysqld.sock
pid-file=$dir/mariadbd.pid
port=$port
bind-address=127.0.0.1
server-id=1
log-bin=$dir/data/binlog
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
skip-name-resolve
user=root
CNF
    local line
    for line in "$@"; do
        echo "$line" >>"$dir/my.cnf"
    done
    if [[ ! -d "$dir/data/mysql" ]]; then
        mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=normal >"$dir/install.log" 2>&1 || {
            cat "$dir/install.log" >&2
            return 1
        }
    fi
    mariadbd --defaults-file="$dir/my.cnf" >"$dir/mariadbd.log" 2>&1 &
    local deadline=$((SECONDS + 60))
    until mariadb -S "$dir/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "MariaDB did not start within 60 s; its log:"
            tail -n 30 "$dir/mariadbd.log" >&2
            return 1
        fi
        sleep 0.3
    done
    mariadb -S "$dir/mysqld.sock" -uroot <<SQL
SET sql_log_bin = 0;
DROP USER IF EXISTS ''@'localhost';
DROP USER IF EXISTS ''@'$(hostname)';
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 'cdc-pass';
CREATE USER IF NOT EXISTS 'cdc'@'localhost' IDENTIFIED BY 'cdc-pass';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'%';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'localhost';
FLUSH PRIVILEGES;
SQL
    log "private MariaDB up on 127.0.0.1:$port ($dir)"
}

# grant_signal_table DIR DATABASE: lets the replication user cdc keep the bridge's signal table
# (initial syncs) in DATABASE of the private MariaDB under DIR.
grant_signal_table() {
    local dir="$1" database="$2"
    mariadb -S "$dir/mysqld.sock" -uroot <<SQL
SET sql_log_bin = 0;
GRANT SELECT, INSERT, DELETE, CREATE ON \`$database\`.cdc_signal TO 'cdc'@'%';
GRANT SELECT, INSERT, DELETE, CREATE ON \`$database\`.cdc_signal TO 'cdc'@'localhost';
SQL
}

# stop_private_mariadb DIR
stop_private_mariadb() {
    local dir="$1" pid
    [[ -f "$dir/mariadbd.pid" ]] || return 0
    pid="$(cat "$dir/mariadbd.pid" 2>/dev/null || true)"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
}
