//! The faults the run injects and the scheduler that picks them: a seeded random choice, so a
//! run can be repeated with its printed seed (the timing of the processes still differs).
//!
//! Process and server faults happen one at a time, each undone before the next (a killed
//! process is started again after a short pause); partner faults last a few seconds and are
//! undone by a task of their own, so they overlap with the next faults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::system::{restart_pause, System, PUSHER_NAMES};
use crate::ocpi_partner::{Mode, OcpiPartner};

/// How a partner misbehaves during an outage.
#[derive(Debug, Clone, Copy)]
pub enum Outage {
    /// HTTP 503 to every request.
    Unavailable,
    /// Answers later than the pushers' request timeout.
    Timeouts,
    /// Closes each connection without an answer.
    DroppedConnections,
    /// Stops listening: connections are refused.
    Down,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// kill -9 of the bridge, started again.
    KillBridge,
    /// kill -9 of a pusher, started again.
    KillPusher(usize),
    /// SIGTERM of a pusher: its partners are handed over to the other; started again.
    HandOver(usize),
    /// The broker stopped and started again.
    RestartBroker,
    /// The database stopped and started again.
    RestartDatabase,
    /// A partner misbehaving for a while.
    PartnerOutage {
        partner: usize,
        outage: Outage,
        lasts: Duration,
    },
    /// A partner answering this many module requests with HTTP 500.
    PartnerErrors { partner: usize, requests: usize },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillBridge => write!(f, "kill -9 bridge"),
            Fault::KillPusher(i) => write!(f, "kill -9 {}", PUSHER_NAMES[*i]),
            Fault::HandOver(i) => write!(f, "hand-over: SIGTERM {}", PUSHER_NAMES[*i]),
            Fault::RestartBroker => write!(f, "broker restart"),
            Fault::RestartDatabase => write!(f, "database restart"),
            Fault::PartnerOutage {
                partner,
                outage,
                lasts,
            } => write!(f, "partner #{partner} {outage:?} for {lasts:?}"),
            Fault::PartnerErrors { partner, requests } => {
                write!(f, "partner #{partner} HTTP 500 to {requests} requests")
            }
        }
    }
}

/// Picks the next fault: processes and servers half of the time, partners the other half.
pub fn pick(rng: &mut fastrand::Rng, partners: usize) -> Fault {
    let partner = rng.usize(..partners);
    match rng.u8(..20) {
        0..=2 => Fault::KillBridge,
        3..=5 => Fault::KillPusher(rng.usize(..PUSHER_NAMES.len())),
        6..=7 => Fault::HandOver(rng.usize(..PUSHER_NAMES.len())),
        8 => Fault::RestartBroker,
        9 => Fault::RestartDatabase,
        10..=16 => Fault::PartnerOutage {
            partner,
            outage: [
                Outage::Unavailable,
                Outage::Unavailable,
                Outage::Timeouts,
                Outage::DroppedConnections,
                Outage::Down,
            ][rng.usize(..5)],
            lasts: Duration::from_millis(rng.u64(2000..15000)),
        },
        _ => Fault::PartnerErrors {
            partner,
            requests: rng.usize(5..60),
        },
    }
}

/// Injects `fault` and undoes it: process and server faults before returning, partner
/// outages in the returned task.
pub async fn inject(
    system: &mut System,
    fault: &Fault,
    rng: &mut fastrand::Rng,
) -> Option<JoinHandle<()>> {
    let pause = restart_pause(rng);
    match *fault {
        Fault::KillBridge => {
            system.bridge.kill9();
            tokio::time::sleep(pause).await;
            system.bridge.restart();
        }
        Fault::KillPusher(i) => {
            system.pushers[i].kill9();
            tokio::time::sleep(pause).await;
            system.pushers[i].restart();
        }
        Fault::HandOver(i) => {
            let pusher = &mut system.pushers[i];
            tokio::task::block_in_place(|| pusher.terminate());
            tokio::time::sleep(pause).await;
            system.pushers[i].restart();
        }
        Fault::RestartBroker => {
            tokio::task::block_in_place(|| system.broker.stop());
            tokio::time::sleep(pause).await;
            tokio::task::block_in_place(|| system.broker.start_again());
        }
        Fault::RestartDatabase => {
            tokio::task::block_in_place(|| system.db.stop());
            tokio::time::sleep(pause).await;
            tokio::task::block_in_place(|| system.db.start_again());
        }
        Fault::PartnerOutage {
            partner,
            outage,
            lasts,
        } => {
            let double = system.partners[partner].double.clone();
            return Some(tokio::spawn(outage_for(double, outage, lasts)));
        }
        Fault::PartnerErrors { partner, requests } => {
            system.partners[partner]
                .double
                .set_mode_for(Mode::Http(500), requests);
        }
    }
    None
}

/// The partner misbehaves as `outage` says for `lasts`, then answers normally again.
async fn outage_for(partner: Arc<OcpiPartner>, outage: Outage, lasts: Duration) {
    match outage {
        Outage::Unavailable => partner.set_mode(Mode::Http(503)),
        // The pushers' request timeout is 5 s (`partner_entry`).
        Outage::Timeouts => partner.set_mode(Mode::Slow(Duration::from_secs(6))),
        Outage::DroppedConnections => partner.set_mode(Mode::DropConnection),
        Outage::Down => partner.go_down().await,
    }
    tokio::time::sleep(lasts).await;
    match outage {
        Outage::Down => partner.come_back().await,
        _ => partner.clear_mode(),
    }
}
