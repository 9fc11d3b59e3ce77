//! The example schema's data and a workload that keeps changing it, shared by the demo
//! (`./demo`) and the fault-injection run ([`crate::chaos`]): generated locations with their
//! EVSEs and connectors, tariffs and tokens, then, at a steady rate, changes of every kind
//! (EVSE statuses, references, location names, connector power, tariff prices, tokens) and
//! charging sessions that start, charge and complete with their CDR.
//!
//! One connection, UTC, one change per statement (a new site or a completed session in one
//! transaction), so `last_updated` only ever grows per record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::ocpi_partner::format_rfc3339;

/// The example schema's database.
pub const DB: &str = "ocpi";
/// Generated records besides the example seed rows.
pub const LOCATIONS: usize = 150;
pub const EVSES_PER_LOCATION: usize = 2;
pub const CONNECTORS_PER_EVSE: usize = 2;
pub const TARIFFS: usize = 100;
pub const TOKENS: usize = 200;
/// Sessions charging at once in the workload.
pub const ACTIVE_SESSIONS: usize = 20;
/// `last_updated` of the generated rows: older than anything the workload stamps.
pub const LOADED_AT: &str = "2026-01-05 09:00:00.000";

pub fn location_id(l: usize) -> String {
    format!("DL-{l:03}")
}

pub fn evse_uid(l: usize, e: usize) -> String {
    format!("DL-{l:03}-E{e}")
}

pub fn tariff_id(t: usize) -> String {
    format!("DT-{t:03}")
}

pub fn token_uid(t: usize) -> String {
    format!("DTOK-{t:03}")
}

pub fn tariff_elements(price_cents: u64) -> String {
    format!(
        r#"[{{"price_components": [{{"type": "ENERGY", "price": {}.{:02}, "vat": 21.0, "step_size": 1}}]}}]"#,
        price_cents / 100,
        price_cents % 100
    )
}

/// The generated records, parents before children: tariffs (every tenth soft-deleted),
/// locations with their EVSEs and connectors, tokens (RFID and APP_USER, a few invalid).
pub fn generated_rows_sql() -> String {
    let mut sql = String::from("START TRANSACTION;\n");
    let tariffs: Vec<String> = (0..TARIFFS)
        .map(|t| {
            format!(
                "('NL', 'EXA', '{}', 'EUR', 'REGULAR', '{}', {}, '{LOADED_AT}')",
                tariff_id(t),
                tariff_elements(25 + t as u64),
                u8::from(t % 10 == 9)
            )
        })
        .collect();
    sql.push_str(&format!(
        "INSERT INTO tariffs (country_code, party_id, id, currency, type, elements, deleted, \
         last_updated) VALUES\n{};\n",
        tariffs.join(",\n")
    ));
    let (mut locations, mut evses, mut connectors) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..LOCATIONS {
        locations.push(format!(
            "('NL', 'EXA', '{}', 'Charging hub {l}', 'Stationsstraat {l}', 'Utrecht', 'NLD', \
             52.{:06}, 5.{:06}, 'PARKING_LOT', 'Example Charging', 'Europe/Amsterdam', \
             '{{\"twentyfourseven\": true}}', '{LOADED_AT}')",
            location_id(l),
            l * 37,
            l * 53
        ));
        for e in 1..=EVSES_PER_LOCATION {
            evses.push(format!(
                "('NL', 'EXA', '{}', '{}', 'NL*EXA*E{l:03}{e}', 'AVAILABLE', \
                 'RFID_READER,REMOTE_START_STOP_CAPABLE', '{LOADED_AT}')",
                location_id(l),
                evse_uid(l, e)
            ));
            for c in 1..=CONNECTORS_PER_EVSE {
                let (standard, power, volts, amps, watts) = if c == 1 {
                    ("IEC_62196_T2", "AC_3_PHASE", 230, 32, 22000)
                } else {
                    ("IEC_62196_T2_COMBO", "DC", 920, 200, 150000)
                };
                connectors.push(format!(
                    "('NL', 'EXA', '{}', '{}', '{c}', '{standard}', 'CABLE', '{power}', {volts}, \
                     {amps}, {watts}, '[\"TARIFF_AC\"]', '{LOADED_AT}')",
                    location_id(l),
                    evse_uid(l, e)
                ));
            }
        }
    }
    sql.push_str(&format!(
        "INSERT INTO locations (country_code, party_id, id, name, address, city, country, \
         latitude, longitude, parking_type, operator_name, time_zone, opening_times, \
         last_updated) VALUES\n{};\n",
        locations.join(",\n")
    ));
    sql.push_str(&format!(
        "INSERT INTO evses (country_code, party_id, location_id, uid, evse_id, status, \
         capabilities, last_updated) VALUES\n{};\n",
        evses.join(",\n")
    ));
    sql.push_str(&format!(
        "INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, \
         format, power_type, max_voltage, max_amperage, max_electric_power, tariff_ids, \
         last_updated) VALUES\n{};\n",
        connectors.join(",\n")
    ));
    let tokens: Vec<String> = (0..TOKENS)
        .map(|t| {
            format!(
                "('DE', 'MSP', '{}', '{}', 'DE-MSP-C{t:08}', 'Example MSP', {}, 'ALLOWED', \
                 '{LOADED_AT}')",
                token_uid(t),
                if t % 3 == 1 { "APP_USER" } else { "RFID" },
                u8::from(t % 20 != 7)
            )
        })
        .collect();
    sql.push_str(&format!(
        "INSERT INTO tokens (country_code, party_id, uid, type, contract_id, issuer, valid, \
         whitelist, last_updated) VALUES\n{};\n",
        tokens.join(",\n")
    ));
    sql.push_str("COMMIT;\n");
    sql
}

/// A charging session the workload runs: started, charging, completed with its CDR.
struct Charging {
    id: String,
    location: usize,
    evse: usize,
    kwh: f64,
    started: SystemTime,
}

/// What the workload does when a statement fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop with the error (the demo: nothing should fail).
    Fail,
    /// Count it, reconnect (retrying until `stop`) and go on with the next change: the database
    /// is being restarted on purpose. A statement that failed may or may not have committed;
    /// the database stays the truth the partners are compared with.
    Reconnect,
}

/// How many changes the workload made.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows changed (as the server counted them).
    pub written: AtomicU64,
    /// Statements that failed (with [`OnError::Reconnect`]).
    pub failed: AtomicU64,
}

/// The choice of the next change; its state is the sessions charging.
struct Changes {
    rng: fastrand::Rng,
    charging: Vec<Charging>,
    sessions: usize,
    n: u64,
}

impl Changes {
    /// The SQL of the next change.
    fn next(&mut self) -> String {
        self.n += 1;
        let n = self.n;
        let rng = &mut self.rng;
        let l = rng.usize(..LOCATIONS);
        let e = rng.usize(1..=EVSES_PER_LOCATION);
        let in_evse = |uid_column: &str| {
            format!(
                "country_code = 'NL' AND party_id = 'EXA' AND location_id = '{}' AND \
                 {uid_column} = '{}'",
                location_id(l),
                evse_uid(l, e)
            )
        };
        match rng.u8(..100) {
            // Now and then a new site opens: a Location with its chargers and their
            // connectors, in one transaction (each partner gets one complete Location PUT).
            _ if self.n.is_multiple_of(400) => new_site_sql(n),
            0..=39 => {
                let status = if e == 2 && rng.u8(..25) == 0 {
                    "REMOVED"
                } else {
                    ["AVAILABLE", "CHARGING", "BLOCKED", "OUTOFORDER"][rng.usize(..4)]
                };
                format!(
                    "UPDATE evses SET status = '{status}' WHERE {}",
                    in_evse("uid")
                )
            }
            40..=47 => format!(
                "UPDATE evses SET physical_reference = 'P{n}' WHERE {}",
                in_evse("uid")
            ),
            48..=57 => format!(
                "UPDATE locations SET name = 'Charging hub {l} (rev {n})' WHERE country_code = \
                 'NL' AND party_id = 'EXA' AND id = '{}'",
                location_id(l)
            ),
            58..=67 => format!(
                "UPDATE connectors SET max_electric_power = {} WHERE {} AND id = '{}'",
                11000 + rng.u32(..140) * 1000,
                in_evse("evse_uid"),
                rng.usize(1..=CONNECTORS_PER_EVSE)
            ),
            68..=77 => {
                let t = rng.usize(..TARIFFS);
                format!(
                    "UPDATE tariffs SET elements = '{}' WHERE country_code = 'NL' AND \
                     party_id = 'EXA' AND id = '{}'",
                    tariff_elements(20 + rng.u64(..60)),
                    tariff_id(t)
                )
            }
            78..=85 => {
                let t = rng.usize(..TOKENS);
                let set = if rng.u8(..10) == 0 {
                    "valid = 1 - valid".to_string()
                } else {
                    format!("visual_number = 'V-{n}'")
                };
                format!(
                    "UPDATE tokens SET {set} WHERE country_code = 'DE' AND party_id = 'MSP' AND \
                     uid = '{}'",
                    token_uid(t)
                )
            }
            _ => session_step(rng, &mut self.charging, &mut self.sessions),
        }
    }
}

/// Keeps changing records at about `rate` changes per second until `stop`, choosing them with
/// `seed`; counts what it did in `counters`. It starts once the generated data has arrived at
/// the partners (the caller waits). Tariffs are not soft-deleted while it runs (the generated
/// data has some deleted ones).
pub async fn run(
    mysql_url: String,
    rate: u32,
    seed: u64,
    on_error: OnError,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut changes = Changes {
        rng: fastrand::Rng::with_seed(seed),
        charging: Vec::new(),
        sessions: 0,
        n: 0,
    };
    let mut conn = Some(connect(&mysql_url).await?);
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sql = changes.next();
        let Some(c) = conn.as_mut() else {
            conn = reconnect(&mysql_url, &stop).await;
            continue;
        };
        match c.query_drop(&sql).await {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(c.affected_rows(), Ordering::Relaxed);
            }
            Err(e) if on_error == OnError::Reconnect => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("workload: {e} on: {sql}");
                conn = None;
            }
            Err(e) => return Err(e).with_context(|| format!("the workload failed on: {sql}")),
        }
        let due = Duration::from_secs_f64(changes.n as f64 / f64::from(rate.max(1)));
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
    Ok(())
}

async fn connect(mysql_url: &str) -> Result<mysql_async::Conn> {
    let mut conn = mysql_async::Conn::from_url(mysql_url)
        .await
        .context("the workload cannot connect to MariaDB")?;
    conn.query_drop(format!("SET time_zone = '+00:00'; USE {DB}"))
        .await
        .context("the workload cannot select its database")?;
    Ok(conn)
}

/// A new connection, tried every 200 ms until one opens or `stop` is set.
async fn reconnect(mysql_url: &str, stop: &AtomicBool) -> Option<mysql_async::Conn> {
    while !stop.load(Ordering::Relaxed) {
        match connect(mysql_url).await {
            Ok(conn) => return Some(conn),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    None
}

/// A new site `NEW-<n>`: its Location, two EVSEs and two connectors each, in one transaction.
fn new_site_sql(n: u64) -> String {
    let site = format!("NEW-{n}");
    let mut sql = format!(
        "START TRANSACTION;\nINSERT INTO locations (country_code, party_id, id, name, address, \
         city, country, latitude, longitude, time_zone) VALUES ('NL', 'EXA', '{site}', \
         'New hub {n}', 'Nieuwe straat {n}', 'Utrecht', 'NLD', 52.09, 5.12, \
         'Europe/Amsterdam');\n"
    );
    for e in 1..=EVSES_PER_LOCATION {
        sql.push_str(&format!(
            "INSERT INTO evses (country_code, party_id, location_id, uid, status) VALUES ('NL', \
             'EXA', '{site}', '{site}-E{e}', 'AVAILABLE');\n"
        ));
        for c in 1..=CONNECTORS_PER_EVSE {
            sql.push_str(&format!(
                "INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, \
                 standard, format, power_type, max_voltage, max_amperage) VALUES ('NL', 'EXA', \
                 '{site}', '{site}-E{e}', '{c}', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, \
                 32);\n"
            ));
        }
    }
    sql.push_str("COMMIT;");
    sql
}

/// The next step of the charging sessions: start one (while fewer than ACTIVE_SESSIONS
/// charge), add energy to one, or complete one and write its CDR (one transaction).
fn session_step(
    rng: &mut fastrand::Rng,
    charging: &mut Vec<Charging>,
    sessions: &mut usize,
) -> String {
    let token = json!({"country_code": "DE", "party_id": "MSP", "uid": token_uid(0),
                       "type": "RFID", "contract_id": "DE-MSP-C00000000"});
    if charging.len() < ACTIVE_SESSIONS / 2 || (charging.len() < ACTIVE_SESSIONS && rng.bool()) {
        *sessions += 1;
        let session = Charging {
            id: format!("DS-{:06}", *sessions),
            location: rng.usize(..LOCATIONS),
            evse: rng.usize(1..=EVSES_PER_LOCATION),
            kwh: 0.0,
            started: SystemTime::now(),
        };
        let sql = format!(
            "INSERT INTO sessions (country_code, party_id, id, start_date_time, kwh, cdr_token, \
             auth_method, location_id, evse_uid, connector_id, currency, total_cost_excl_vat, \
             total_cost_incl_vat, status) VALUES ('NL', 'EXA', '{}', NOW(3), 0, '{token}', \
             'WHITELIST', '{}', '{}', '1', 'EUR', 0, 0, 'ACTIVE')",
            session.id,
            location_id(session.location),
            evse_uid(session.location, session.evse)
        );
        charging.push(session);
        return sql;
    }
    let i = rng.usize(..charging.len());
    if rng.u8(..4) != 0 {
        let session = &mut charging[i];
        session.kwh += 0.5 + f64::from(rng.u8(..40)) / 10.0;
        let cost = session.kwh * 0.35;
        return format!(
            "UPDATE sessions SET kwh = {:.4}, total_cost_excl_vat = {cost:.4}, \
             total_cost_incl_vat = {:.4} WHERE country_code = 'NL' AND party_id = 'EXA' AND \
             id = '{}'",
            session.kwh,
            cost * 1.21,
            session.id
        );
    }
    let session = charging.swap_remove(i);
    let cost = session.kwh * 0.35;
    let now = SystemTime::now();
    let hours = now
        .duration_since(session.started)
        .unwrap_or_default()
        .as_secs_f64()
        / 3600.0;
    let cdr_id = format!("DCDR-{}", &session.id[3..]);
    let cdr = json!({
        "country_code": "NL", "party_id": "EXA", "id": cdr_id,
        "start_date_time": format_rfc3339(session.started), "end_date_time": format_rfc3339(now),
        "session_id": session.id, "cdr_token": token, "auth_method": "WHITELIST",
        "cdr_location": {
            "id": location_id(session.location), "address": format!("Stationsstraat {}", session.location),
            "city": "Utrecht", "country": "NLD",
            "coordinates": {"latitude": "52.090000", "longitude": "5.110000"},
            "evse_uid": evse_uid(session.location, session.evse),
            "evse_id": format!("NL*EXA*E{:03}{}", session.location, session.evse),
            "connector_id": "1", "connector_standard": "IEC_62196_T2",
            "connector_format": "CABLE", "connector_power_type": "AC_3_PHASE"
        },
        "currency": "EUR",
        "charging_periods": [{"start_date_time": format_rfc3339(session.started),
                              "dimensions": [{"type": "ENERGY", "volume": session.kwh}],
                              "tariff_id": "TARIFF_AC"}],
        "total_cost": {"excl_vat": cost, "incl_vat": cost * 1.21},
        "total_energy": session.kwh, "total_time": hours,
        "last_updated": format_rfc3339(now),
    });
    format!(
        "START TRANSACTION; UPDATE sessions SET status = 'COMPLETED', end_date_time = NOW(3) \
         WHERE country_code = 'NL' AND party_id = 'EXA' AND id = '{id}'; INSERT INTO cdrs \
         (country_code, party_id, id, session_id, start_date_time, end_date_time, currency, \
         total_energy, total_cost_excl_vat, ocpi_object) VALUES ('NL', 'EXA', '{cdr_id}', '{id}', \
         (SELECT start_date_time FROM sessions WHERE country_code = 'NL' AND party_id = 'EXA' AND \
         id = '{id}'), NOW(3), 'EUR', {kwh:.4}, {cost:.4}, '{cdr}'); COMMIT",
        id = session.id,
        kwh = session.kwh,
    )
}
