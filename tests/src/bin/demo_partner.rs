//! A demo OCPI partner: the test suite's partner double (a strict receiver of locations,
//! sessions, CDRs, tariffs and tokens) as a process of its own, for `./demo` and for trying the
//! pusher by hand.
//!
//! ```text
//! demo_partner --listen 127.0.0.1:18091 --token secret [--ocpi-version 2.3.0|2.2.1|2.1.1]
//!              [--public-url http://partner:18091] [--country-code DE] [--party-id PRT]
//!              [--token-encoding base64|plain] [--object-rules on|off]
//!              [--rejection ocpi2001|http422] [--log-requests]
//! ```
//!
//! With object rules on (the default) it refuses objects that break the rules of its OCPI
//! version as a schema-validating receiver does: HTTP 400 with OCPI 2001, or with
//! `--rejection http422` HTTP 422 with a web framework's body and no OCPI envelope.
//!
//! Its versions URL is `<public-url>/ocpi/versions`. Besides the OCPI endpoints it answers, on
//! the same listener and without a token (for demos only, never expose it):
//! `GET /demo/state` (what it holds, `?objects=false` for the counts only),
//! `POST /demo/offline` (every OCPI request is answered HTTP 503 until `POST /demo/online`;
//! nothing it holds is lost) and `POST /demo/online`. It runs until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use system_tests::ocpi_partner::Rejection;
use system_tests::{OcpiPartner, PartnerOptions};

#[derive(Parser)]
#[command(
    name = "demo_partner",
    about = "A demo OCPI partner (receiver of every module) with demo control endpoints"
)]
struct Cli {
    /// Address to listen on, e.g. 127.0.0.1:18091 or 0.0.0.0:8090.
    #[arg(long)]
    listen: SocketAddr,
    /// The credentials token the partner expects from the pusher.
    #[arg(long)]
    token: String,
    /// The OCPI version it speaks.
    #[arg(long, value_enum, default_value = "2.2.1")]
    ocpi_version: Version,
    /// The base URL it advertises in its versions and endpoints answers (how the pusher reaches
    /// it); default `http://<listen>`.
    #[arg(long)]
    public_url: Option<String>,
    /// Token encoding it expects: default base64 for 2.2.1 and 2.3.0, plain for 2.1.1.
    #[arg(long, value_enum)]
    token_encoding: Option<Encoding>,
    /// Its country code: 2.2.1 and 2.3.0 requests must name it in OCPI-to-country-code (the pusher's
    /// `country_code` of this partner).
    #[arg(long, default_value = "DE")]
    country_code: String,
    /// Its party id: 2.2.1 and 2.3.0 requests must name it in OCPI-to-party-id (the pusher's
    /// `party_id`).
    #[arg(long, default_value = "PRT")]
    party_id: String,
    /// Check every object against the rules of its OCPI version.
    #[arg(long, value_enum, default_value = "on")]
    object_rules: Switch,
    /// How it refuses an object that breaks the rules.
    #[arg(long, value_enum, default_value = "ocpi2001")]
    rejection: RejectionStyle,
    /// Log every OCPI request with its answer.
    #[arg(long)]
    log_requests: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum RejectionStyle {
    /// HTTP 400 with an OCPI envelope, status_code 2001.
    Ocpi2001,
    /// HTTP 422 with a web framework's validation body, no envelope.
    Http422,
}

#[derive(Clone, Copy, ValueEnum)]
enum Version {
    #[value(name = "2.3.0")]
    V230,
    #[value(name = "2.2.1")]
    V221,
    #[value(name = "2.1.1")]
    V211,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encoding {
    Base64,
    Plain,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    if cli.token.trim().is_empty() {
        bail!("--token is empty: give the token the pusher is configured to send");
    }
    for (what, value, len) in [
        ("--country-code", &cli.country_code, 2),
        ("--party-id", &cli.party_id, 3),
    ] {
        if value.chars().count() != len {
            bail!("{what} {value:?}: use {len} characters (ISO 3166-1 alpha-2 / OCPI party id)");
        }
    }
    let base = match cli.ocpi_version {
        Version::V230 => PartnerOptions::v230(),
        Version::V221 => PartnerOptions::v221(),
        Version::V211 => PartnerOptions::v211(),
    };
    let expect_base64_token = match cli.token_encoding {
        Some(encoding) => encoding == Encoding::Base64,
        None => base.expect_base64_token,
    };
    let options = PartnerOptions {
        token: cli.token.clone(),
        expect_base64_token,
        expect_to: Some((cli.country_code.clone(), cli.party_id.clone())),
        record_requests: false,
        demo_control: true,
        log_requests: cli.log_requests,
        object_rules: cli.object_rules == Switch::On,
        rejection: match cli.rejection {
            RejectionStyle::Ocpi2001 => Rejection::Ocpi2001,
            RejectionStyle::Http422 => Rejection::Http422,
        },
        ..base
    };
    let version = options.version.as_str();
    let partner = OcpiPartner::start_at(cli.listen, cli.public_url.clone(), options)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another program using that port?",
                cli.listen
            )
        })?;
    let rules = if partner.options().object_rules {
        "object rules on"
    } else {
        "object rules off"
    };
    println!(
        "demo partner {} {}: OCPI {version} ({rules}), versions URL {}, demo control {}/demo/state",
        cli.country_code,
        cli.party_id,
        partner.versions_url(),
        partner.base_url()
    );
    println!("listening on {}", partner.local_addr());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    partner.go_down().await;
    let state = partner.state(false);
    println!(
        "demo partner stopped: {} requests accepted, {} not",
        state.accepted, state.failed
    );
    Ok(())
}
