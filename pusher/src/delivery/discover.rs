//! The discovery phase of a partner's delivery: find the partner's endpoints for every
//! configured module, and while they cannot be found (the partner is down, refuses us, or
//! lacks a module) probe with backoff. A paused partner comes back through here.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::{wait_or_stop, Pause, Worker};
use crate::ocpi::discover;

impl Worker {
    /// Discovers endpoints, retrying with backoff; false when stopped meanwhile.
    pub(super) async fn discover_until_ready(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let policy = self.partner().retry.clone();
        let mut delay = policy.probe_interval;
        let mut last_reason = String::new();
        loop {
            match self.discover_once().await {
                Ok(()) => {
                    if let Some(pause) = self.pause.take() {
                        tracing::info!(
                            partner = %self.partner().id,
                            was = pause.reason(),
                            "partner answers again: resuming"
                        );
                    }
                    self.set_status(|s| s.reason = None);
                    return true;
                }
                Err(pause) => {
                    let reason = pause.reason().to_string();
                    if reason != last_reason {
                        match &pause {
                            Pause::ModuleMissing(_) | Pause::PartnerLevel(_) => tracing::error!(
                                partner = %self.partner().id,
                                reason,
                                retry_in_s = delay.as_secs(),
                                "cannot push to partner"
                            ),
                            Pause::Down(_) => tracing::warn!(
                                partner = %self.partner().id,
                                reason,
                                retry_in_s = delay.as_secs(),
                                "partner endpoints unreachable"
                            ),
                        }
                        last_reason = reason.clone();
                    }
                    // Refused or incomplete endpoints pause at once; unreachable ones only when
                    // the partner was already paused (at start it is still being discovered).
                    let paused = self.pause.is_some() || !matches!(pause, Pause::Down(_));
                    self.set_status(|s| {
                        s.state = if paused { "paused" } else { "discovering" }.into();
                        s.reason = Some(reason);
                    });
                    if paused {
                        self.pause = Some(pause);
                    }
                }
            }
            // A phase kept across the pause must not outlive max_hold_secs while probing.
            self.release_held_if_due().await;
            if wait_or_stop(delay, stop).await {
                return false;
            }
            delay = (delay * 2).min(policy.max_probe_interval);
        }
    }

    pub(super) async fn discover_once(&mut self) -> Result<(), Pause> {
        let partner = self.shared.partner.clone();
        let found = discover(
            &self.shared.client,
            &partner.versions_url,
            partner.version,
            partner.allow_http_endpoints,
        )
        .await;
        let endpoints = match found {
            Ok(e) => e,
            Err(e) => {
                let text = e.to_string();
                self.set_status(|s| s.endpoint = format!("unreachable: {text}"));
                return Err(if e.is_transient() {
                    Pause::Down(text)
                } else {
                    Pause::PartnerLevel(text)
                });
            }
        };
        let missing: Vec<String> = partner
            .modules
            .iter()
            .filter_map(|m| endpoints.require(m.identifier()).err())
            .map(|e| e.to_string())
            .collect();
        if !missing.is_empty() {
            let text = format!(
                "{}; either remove the module from this partner's `modules`/`tables` in the \
                 configuration or ask the partner to offer it; its messages wait in the queue \
                 until then",
                missing.join("; ")
            );
            self.set_status(|s| s.endpoint = format!("module missing: {text}"));
            return Err(Pause::ModuleMissing(text));
        }
        let mut listed: Vec<&str> = endpoints.by_module.keys().map(String::as_str).collect();
        listed.sort_unstable();
        let summary = format!("ok ({}: {})", endpoints.version, listed.join(", "));
        tracing::info!(partner = %partner.id, endpoints = %summary, "partner endpoints discovered");
        self.set_status(|s| s.endpoint = summary);
        if let Ok(mut slot) = self.shared.endpoints.write() {
            *slot = Some(Arc::new(endpoints));
        }
        self.discovered_at = Some(Instant::now());
        Ok(())
    }
}
