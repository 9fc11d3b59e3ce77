//! A private MariaDB server per test: its own data directory, socket and port.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::{Certificate, TestCa};
use crate::util::{cleanup_dir, find_program, free_port, fresh_dir, send_signal, tail, wait_child};

/// User the bridge connects as (granted `REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*`,
/// and `SELECT, INSERT, DELETE, CREATE` on the signal table `app.cdc_signal`).
pub const CDC_USER: &str = "cdc";
/// Password of [`CDC_USER`].
pub const CDC_PASSWORD: &str = "cdc-pass";
/// Database every private server creates.
pub const APP_DATABASE: &str = "app";
/// The pusher's read-only user: SELECT on the example OCPI schema only (composite objects).
pub const READER_USER: &str = "ocpi_reader";
/// Its password.
pub const READER_PASSWORD: &str = "reader-pass";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const DROP_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Server settings that tests vary. Each field becomes one line of `[mysqld]` in my.cnf.
#[derive(Clone, Debug)]
pub struct MariaDbOptions {
    /// `log-bin=<dir>/data/binlog` when true; no binlog at all when false.
    pub log_bin: bool,
    pub binlog_format: String,
    pub binlog_row_image: String,
    pub binlog_row_metadata: String,
    /// Extra `[mysqld]` lines, e.g. `"gtid_strict_mode=1"`.
    pub extra_cnf: Vec<String>,
}

impl MariaDbOptions {
    /// TLS on, with `server`'s certificate and key and `ca` to check client certificates;
    /// with `require`, `require_secure_transport=ON` (TCP clients without TLS are refused with
    /// error 3159; the socket the harness uses stays allowed).
    pub fn with_tls(mut self, server: &Certificate, ca: &TestCa, require: bool) -> MariaDbOptions {
        self.extra_cnf.extend([
            format!("ssl_ca={}", ca.cert_path().display()),
            format!("ssl_cert={}", server.cert.display()),
            format!("ssl_key={}", server.key.display()),
        ]);
        if require {
            self.extra_cnf.push("require_secure_transport=ON".into());
        }
        self
    }
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            log_bin: true,
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            binlog_row_metadata: "FULL".into(),
            extra_cnf: Vec::new(),
        }
    }
}

/// A private MariaDB server, stopped (and its directory removed unless the test failed) on drop.
///
/// Root has an empty password (socket and 127.0.0.1); user `cdc`/`cdc-pass` can replicate;
/// database `app` exists. Setup statements are not written to the binlog, so a reader starting
/// from the beginning of the binlog sees only what the test did.
pub struct MariaDb {
    dir: PathBuf,
    port: u16,
    options: MariaDbOptions,
    child: Option<Child>,
}

impl MariaDb {
    /// Starts a server with [`MariaDbOptions::default`] (binlog on, ROW, FULL image and metadata).
    pub fn start() -> MariaDb {
        MariaDb::start_with(MariaDbOptions::default())
    }

    /// Starts a server with the given options.
    pub fn start_with(options: MariaDbOptions) -> MariaDb {
        let mut db = MariaDb {
            dir: fresh_dir("mariadb"),
            port: 0,
            options,
            child: None,
        };
        // If another process grabs the port between our probe and the server's bind, try another.
        let attempts = 5;
        for attempt in 1..=attempts {
            db.port = free_port();
            db.write_cnf();
            if attempt == 1 {
                db.install_db();
            }
            match db.spawn_and_wait() {
                Ok(()) => break,
                Err(log) if attempt < attempts && port_clash(&log) => {
                    eprintln!(
                        "[system-tests] mariadbd could not bind port {}; retrying",
                        db.port
                    );
                }
                Err(log) => panic!(
                    "MariaDB in {} did not start (port {}):\n{log}",
                    db.dir.display(),
                    db.port
                ),
            }
        }
        db.setup();
        db
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (my.cnf, mariadbd.log, data/, mysqld.sock).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    pub fn cnf_path(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }

    /// The server's stdout/stderr (its error log).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("mariadbd.log")
    }

    pub fn options(&self) -> &MariaDbOptions {
        &self.options
    }

    /// `mysql://root@127.0.0.1:PORT/app` (root has an empty password).
    pub fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/{APP_DATABASE}", self.port)
    }

    /// `mysql://cdc:cdc-pass@127.0.0.1:PORT/app`.
    pub fn cdc_url(&self) -> String {
        format!(
            "mysql://{CDC_USER}:{CDC_PASSWORD}@127.0.0.1:{}/{APP_DATABASE}",
            self.port
        )
    }

    /// Makes this server a replica of `primary` by GTID (`master_use_gtid=slave_pos`), as the
    /// bridge's user, from the start of the primary's binlog. Start this server with another
    /// `server-id` (`extra_cnf`), and give it the primary's setup-time data first (setup is not
    /// in the binlog).
    pub fn replicate_from(&self, primary: &MariaDb) {
        self.exec(&format!(
            "CHANGE MASTER TO master_host = '127.0.0.1', master_port = {}, \
             master_user = '{CDC_USER}', master_password = '{CDC_PASSWORD}', \
             master_use_gtid = slave_pos; START SLAVE;",
            primary.port()
        ));
    }

    /// Waits until this replica has applied every transaction of `gtid` (a GTID list such as
    /// the primary's `@@gtid_binlog_pos`). Panics after 60 s.
    pub fn wait_for_gtid(&self, gtid: &str) {
        let answer = self.query_value(&format!("SELECT MASTER_GTID_WAIT('{gtid}', 60)"));
        assert_eq!(
            answer,
            "0",
            "replica on port {} did not reach GTID {gtid} within 60 s (at {})",
            self.port,
            self.query_value("SELECT @@gtid_slave_pos")
        );
    }

    /// Promotes this replica to primary, as an operator does after a failover: replication
    /// stops and is forgotten, and the server takes writes.
    pub fn promote(&self) {
        self.exec("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;");
    }

    /// The server process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
        }
    }

    /// Runs an SQL script (any number of `;`-separated statements) as root in database `app`
    /// through the `mariadb` client over the socket. Panics with the client's error output if
    /// any statement fails. Synchronous: fine to call from async tests too.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.cli(Some(APP_DATABASE), sql) {
            panic!(
                "SQL failed on MariaDB port {}: {e}\n--- script ---\n{sql}",
                self.port
            );
        }
    }

    /// Creates the example OCPI schema (`config/ocpi-example/schema.sql`, database `ocpi`)
    /// outside the binlog, so a bridge reading from the start captures only what a test changes.
    pub fn load_example_schema_unlogged(&self) {
        let path = crate::util::workspace_root().join("config/ocpi-example/schema.sql");
        let schema = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        self.exec(&format!("SET sql_log_bin = 0;\n{schema}"));
    }

    /// Runs SQL and returns the client's batch output: one line per row, tab-separated columns,
    /// no header; NULL prints as `NULL`, and tabs/newlines/backslashes inside values are escaped
    /// (`\t`, `\n`, `\\`).
    pub fn query(&self, sql: &str) -> String {
        match self.cli(Some(APP_DATABASE), sql) {
            Ok(out) => out.trim_end_matches('\n').to_string(),
            Err(e) => panic!(
                "SQL failed on MariaDB port {}: {e}\n--- script ---\n{sql}",
                self.port
            ),
        }
    }

    /// [`MariaDb::query`] split into rows and columns.
    pub fn query_rows(&self, sql: &str) -> Vec<Vec<String>> {
        let out = self.query(sql);
        if out.is_empty() {
            return Vec::new();
        }
        out.lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// The single value of a one-row, one-column query.
    pub fn query_value(&self, sql: &str) -> String {
        let rows = self.query_rows(sql);
        assert!(
            rows.len() == 1 && rows[0].len() == 1,
            "expected one value from `{sql}`, got {rows:?}"
        );
        rows[0][0].clone()
    }

    /// A mysql_async pool connected as root to database `app` (checked with one connection).
    pub async fn pool(&self) -> mysql_async::Pool {
        let pool = mysql_async::Pool::new(self.root_url().as_str());
        let conn = pool
            .get_conn()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to MariaDB at {}: {e}", self.root_url()));
        drop(conn);
        pool
    }

    /// Clean shutdown (SIGTERM), waiting until the server has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if wait_child(&mut child, Duration::ZERO).is_some() {
            return;
        }
        send_signal(child.id(), "TERM");
        if wait_child(&mut child, STOP_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "MariaDB on port {} did not shut down within {STOP_TIMEOUT:?}; killed it. Log:\n{}",
                self.port,
                tail(&self.log_path(), 40)
            );
        }
    }

    /// SIGKILL: the server dies without a clean shutdown (crash recovery on the next start).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again with the same data directory, port and my.cnf.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "MariaDB on port {} is still running: stop() or kill() it first",
            self.port
        );
        if let Err(log) = self.spawn_and_wait() {
            panic!(
                "MariaDB in {} did not start again on port {}:\n{log}",
                self.dir.display(),
                self.port
            );
        }
    }

    /// Stops the server (cleanly) if it runs, rewrites my.cnf with `options`, starts it again.
    pub fn restart_with(&mut self, options: MariaDbOptions) {
        self.stop();
        self.options = options;
        self.write_cnf();
        self.start_again();
    }

    fn write_cnf(&self) {
        let dir = self.dir.display();
        let o = &self.options;
        let mut cnf = format!(
            "[mysqld]\n\
             datadir={dir}/data\n\
             socket={dir}/mysqld.sock\n\
             pid-file={dir}/mariadbd.pid\n\
             port={port}\n\
             bind-address=127.0.0.1\n\
             server-id=1\n\
             user=root\n\
             skip-name-resolve\n\
             tmpdir={dir}/tmp\n\
             innodb_buffer_pool_size=64M\n\
             character-set-server=utf8mb4\n\
             collation-server=utf8mb4_general_ci\n",
            port = self.port
        );
        // A private tmpdir: mariadbd deletes every `#sql*` file in its tmpdir when it starts, so
        // servers sharing /tmp delete each other's temporary tables (mariadb-install-db then
        // fails with "Error on delete of '/tmp/#sql-temptable-...'").
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
        if o.log_bin {
            cnf.push_str(&format!("log-bin={dir}/data/binlog\n"));
        }
        cnf.push_str(&format!(
            "binlog_format={}\nbinlog_row_image={}\nbinlog_row_metadata={}\n",
            o.binlog_format, o.binlog_row_image, o.binlog_row_metadata
        ));
        for line in &o.extra_cnf {
            cnf.push_str(line);
            cnf.push('\n');
        }
        std::fs::write(self.cnf_path(), cnf)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.cnf_path().display()));
    }

    fn install_db(&self) {
        let out = Command::new(find_program("mariadb-install-db"))
            .arg(format!("--defaults-file={}", self.cnf_path().display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdin(Stdio::null())
            .output()
            .expect("cannot run mariadb-install-db");
        let log = self.dir.join("install-db.log");
        let _ = std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
        assert!(
            out.status.success(),
            "mariadb-install-db failed ({}) in {}:\n{}",
            out.status,
            self.dir.display(),
            tail(&log, 40)
        );
    }

    /// Spawns mariadbd and waits until root can run a query over the socket. On failure returns
    /// the tail of the server log (and leaves no process behind).
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open mariadbd.log");
        let mut log2 = log.try_clone().expect("clone log file handle");
        let _ = writeln!(
            log2,
            "---- [system-tests] starting mariadbd on port {} ----",
            self.port
        );
        let child = Command::new(find_program("mariadbd"))
            .arg(format!("--defaults-file={}", self.cnf_path().display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("cannot spawn mariadbd");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("try_wait mariadbd") {
                self.child = None;
                return Err(format!(
                    "mariadbd exited with {status}; tail of {}:\n{}",
                    self.log_path().display(),
                    tail(&self.log_path(), 40)
                ));
            }
            if self.socket_path().exists() && self.cli(None, "SELECT 1").is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(format!(
                    "mariadbd not accepting connections after {READY_TIMEOUT:?}; tail of {}:\n{}",
                    self.log_path().display(),
                    tail(&self.log_path(), 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn setup(&self) {
        let anonymous_hosts = self
            .cli(None, "SELECT Host FROM mysql.user WHERE User = ''")
            .unwrap_or_else(|e| panic!("listing anonymous users: {e}"));
        let mut sql = String::from("SET sql_log_bin = 0;\n");
        for host in anonymous_hosts.lines().filter(|h| !h.is_empty()) {
            sql.push_str(&format!("DROP USER ''@'{host}';\n"));
        }
        sql.push_str(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
        );
        for host in ["%", "localhost", "127.0.0.1"] {
            sql.push_str(&format!(
                "CREATE USER '{CDC_USER}'@'{host}' IDENTIFIED BY '{CDC_PASSWORD}';\n\
                 GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{CDC_USER}'@'{host}';\n"
            ));
        }
        for host in ["%", "localhost", "127.0.0.1"] {
            sql.push_str(&format!(
                "CREATE USER '{READER_USER}'@'{host}' IDENTIFIED BY '{READER_PASSWORD}';\n\
                 GRANT SELECT ON ocpi.* TO '{READER_USER}'@'{host}';\n"
            ));
        }
        sql.push_str(&format!("CREATE DATABASE {APP_DATABASE};\n"));
        // The bridge's signal table of initial syncs (created by the bridge at start, in the
        // first captured database): the app database, or the example OCPI schema's.
        for database in [APP_DATABASE, "ocpi"] {
            for host in ["%", "localhost", "127.0.0.1"] {
                sql.push_str(&format!(
                    "GRANT SELECT, INSERT, DELETE, CREATE ON {database}.cdc_signal TO '{CDC_USER}'@'{host}';\n"
                ));
            }
        }
        sql.push_str("FLUSH PRIVILEGES;\n");
        if let Err(e) = self.cli(None, &sql) {
            panic!("setting up users on MariaDB port {}: {e}", self.port);
        }
    }

    /// Runs the `mariadb` client as root over the socket, the script on stdin.
    fn cli(&self, database: Option<&str>, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(find_program("mariadb"));
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket_path().display()))
            .args(["--user=root", "--batch", "--skip-column-names"])
            .arg("--default-character-set=utf8mb4");
        if let Some(db) = database {
            cmd.arg(format!("--database={db}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the mariadb client: {e}"))?;
        let mut stdin = child.stdin.take().expect("stdin");
        let script = sql.to_string();
        // Write from another thread so a large script cannot deadlock against a full stdout pipe.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for the mariadb client: {e}"))?;
        let _ = writer.join();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "mariadb client exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

fn port_clash(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Bind on TCP/IP port")
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if wait_child(&mut child, Duration::ZERO).is_none() {
                send_signal(child.id(), "TERM");
                if wait_child(&mut child, DROP_STOP_TIMEOUT).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        cleanup_dir(&self.dir, "MariaDB");
    }
}
