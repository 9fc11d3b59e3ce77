//! `pusher parked list|replay|discard`: how an operator steers a partner's parked messages
//! (see [`crate::parking`] for how they get there).
//!
//! All three read the parking queue the same way: `basic.get` without acking, so the messages
//! read are held by this command's channel and nobody else's. What is not acked goes back to the
//! head of the queue, in order, when the channel closes (a crash of the command included);
//! nothing is ever nack-requeued, which on a quorum queue without a delivery limit would move
//! the message to the back. The parking queue is declared without a delivery limit (see
//! [`crate::topology`]), because every such return counts as a delivery.
//!
//! - **list** reads up to `--limit` messages, shows them and closes: they all stay, in order.
//! - **replay** reads every ready message (the count it shows is what it holds, so nothing
//!   parked afterwards is touched), keeps those selected by `--table` / `--limit`, and asks for
//!   confirmation. Several parked messages of one record become one message carrying the
//!   record's newest parked state ([`crate::lanes::coalesce`], the pusher's own rule: an update
//!   run keeps every changed column, an insert among them makes it a full object), so the
//!   partner never gets an older parked state after a newer one. Records go out in the order of
//!   their oldest parked change, so a Location still precedes the EVSEs that were refused for
//!   lack of it. CDRs among them are released in the CDR ledger first ([`crate::cdr_ledger::release`]),
//!   so a CDR parked with an unknown outcome is POSTed again (a person checked the partner: that
//!   is what replaying it says); one the ledger records as delivered is not. Each message is
//!   published to the partner's queue with publisher confirms, park headers removed and replay
//!   headers added, and its parked originals are acked only after the confirm: a crash in
//!   between leaves a copy in both queues (a duplicate, never a loss).
//! - **discard** reads every ready message, says how many it holds and asks; it acks exactly
//!   those, so a message parked after the count was shown stays.
//!
//! A replayed change lands behind what waits in the partner's queue. If a newer change of the
//! same record reached the partner since it was parked, the pusher's memory of the newest `seq`
//! pushed per record ([`crate::lanes`]) acknowledges the replayed older state unsent. That
//! memory is per pusher process and bounded (100,000 recent records per partner): after a
//! restart or a hand-over, or for a record not pushed for a long while, an older replayed state
//! can overwrite a newer one at the partner (which may refuse it as older than what it holds).
//! Replay while the partner's pusher runs, soon after fixing the cause.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use change_message::{Message, RowChange};
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::Serialize;

use crate::cdr_ledger::{self, LedgerError, Release};
use crate::config::{redact_url, Config, PartnerConfig};
use crate::lanes::coalesce;
use crate::mapping::{render, Method, Module};
use crate::parking::{
    now_rfc3339, HEADER_PARKED_AT, HEADER_PARKED_BY, HEADER_PARTNER, HEADER_REASON,
};
use crate::senders::{self, first_publisher};
use crate::topology;

mod read;
use read::ParkedReader;

/// Header of a replayed message: when it was replayed (RFC 3339 UTC).
pub const HEADER_REPLAYED_AT: &str = "x-replayed-at";
/// Header of a replayed message: how many times it was replayed so far.
pub const HEADER_REPLAYS: &str = "x-replays";
/// Header of a replayed message: why it had been parked, in case it is parked again.
pub const HEADER_PREVIOUS_REASON: &str = "x-previous-park-reason";
/// What the broker adds to a delivery; meaningless once the message is published again.
const BROKER_DELIVERY_HEADERS: [&str; 2] = ["x-delivery-count", "x-acquired-count"];
/// Publishes waiting for their confirms at once during a replay.
const CONFIRM_BATCH: usize = 256;

/// The `pusher parked` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ParkedCommand {
    /// Show a partner's parked messages (oldest first) with why they were parked, and how many
    /// there are. They all stay parked, in order.
    List {
        /// The partner's `id` in the configuration.
        partner: String,
        /// Show at most this many (the total is counted anyway).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send parked messages back into the partner's queue, once their cause is fixed: the
    /// pusher delivers them again (several of one record as one message of its newest state;
    /// CDRs are released in the CDR ledger so they are POSTed again).
    Replay {
        /// The partner's `id` in the configuration.
        partner: String,
        /// Only messages of this table (`database.table`, or the table name alone).
        #[arg(long)]
        table: Option<String>,
        /// At most this many parked messages, oldest first.
        #[arg(long)]
        limit: Option<usize>,
        /// Messages read, merged per record and published at a time (with at most 64 MiB of
        /// bodies): the memory the replay holds, however many messages are parked.
        #[arg(long, default_value_t = read::WINDOW_MESSAGES, value_parser = clap::value_parser!(usize))]
        window: usize,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Delete a partner's parked messages for good: says how many, asks for that number (or
    /// `yes`), then removes exactly those.
    Discard {
        /// The partner's `id` in the configuration.
        partner: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// What went wrong; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    #[error(
        "partner `{partner}` is not in the configuration (its partners: {known}); name one by \
         the `id` of its [[partner]] entry"
    )]
    UnknownPartner { partner: String, known: String },
    #[error(
        "cannot connect to the broker at {url}: {source}; check that RabbitMQ runs there, \
         broker.url (or PUSHER_BROKER_URL) and [broker.tls]"
    )]
    Connect { url: String, source: lapin::Error },
    #[error(
        "queue `{queue}` of partner {partner} does not exist on the broker: run `pusher setup` \
         with this configuration to declare the partner's queues"
    )]
    QueueMissing { partner: String, queue: String },
    #[error("{what} failed: {source}; check the broker (its log says why) and try again")]
    Broker { what: String, source: lapin::Error },
    #[error(
        "refusing to {action} the parked messages of partner {partner} without a confirmation: \
         standard input is not a terminal, so nobody can type it; look at them with `pusher \
         parked list {partner}`, then pass --yes"
    )]
    NoTerminal {
        action: &'static str,
        partner: String,
    },
    #[error("nothing {done}: the answer was {answer:?}, not {count} or yes")]
    NotConfirmed {
        done: &'static str,
        answer: String,
        count: usize,
    },
    #[error("cannot read the confirmation from standard input: {0}")]
    Prompt(std::io::Error),
    #[error("{0}; nothing was replayed")]
    Ledger(#[from] LedgerError),
    #[error(
        "replay stopped after {replayed} of {planned} messages: {reason}; what was not \
         replayed is still parked: run the replay again"
    )]
    ReplayStopped {
        replayed: usize,
        planned: usize,
        reason: String,
    },
}

/// One parked message as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedMessage {
    /// 1 for the oldest (the head of the parking queue).
    pub position: usize,
    /// `database.table`, when the message is a readable change (or says so in its headers).
    pub table: Option<String>,
    /// The record's primary key.
    pub key: Option<serde_json::Value>,
    pub operation: Option<String>,
    pub seq: Option<u64>,
    /// The change's `id`.
    pub id: Option<String>,
    pub reason: String,
    pub parked_at: Option<String>,
    pub parked_by: Option<String>,
    /// How many times it was replayed before.
    pub replays: u64,
    /// False for a body that is not a change message this pusher can read.
    pub readable: bool,
}

/// The result of `list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub partner: String,
    pub queue: String,
    /// Messages in the parking queue (ready, not held by another command).
    pub total: usize,
    pub shown: usize,
    pub messages: Vec<ParkedMessage>,
    /// Set when the parking queue was declared with other arguments than the pusher's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A message read from the parking queue and held (unacked) by this command.
#[derive(Debug, Clone)]
pub struct Held {
    pub tag: u64,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

/// One message a replay publishes, and the parked messages it stands for.
#[derive(Debug, Clone)]
pub struct Planned {
    pub body: Vec<u8>,
    pub properties: BasicProperties,
    /// Delivery tags of the parked messages it replaces.
    pub sources: Vec<u64>,
    /// The CDR ledger key, for a CDR the partner receives.
    pub cdr: Option<String>,
}

/// What a replay does.
#[derive(Debug, Clone, Default)]
pub struct ReplayPlan {
    /// In publishing order.
    pub messages: Vec<Planned>,
    /// How many parked messages it replays (at least `messages.len()`).
    pub parked: usize,
    /// Parked messages per table (`unreadable` for bodies that are no change).
    pub by_table: BTreeMap<String, usize>,
}

/// What `replay` did.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub parked: usize,
    pub published: usize,
    pub queue: String,
    /// CDR ledger outcome per CDR key.
    pub cdrs: Vec<(String, Release)>,
}

/// Runs one subcommand, printing its results.
pub async fn run(config: &Config, command: ParkedCommand) -> Result<(), ParkedError> {
    match command {
        ParkedCommand::List {
            partner,
            limit,
            json,
        } => {
            let listing = list(config, &partner, limit).await?;
            if let Some(warning) = &listing.warning {
                eprintln!("warning: {warning}");
            }
            if json {
                match serde_json::to_string_pretty(&listing) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("cannot print the listing as JSON: {e}"),
                }
            } else {
                print!("{}", render_listing(&listing));
            }
            Ok(())
        }
        ParkedCommand::Replay {
            partner,
            table,
            limit,
            window,
            yes,
        } => {
            let selection = Selection {
                table: table.as_deref(),
                limit,
                window: window.max(1),
            };
            let done = replay(config, &partner, selection, yes).await?;
            print!("{}", render_replayed(&partner, &done));
            Ok(())
        }
        ParkedCommand::Discard { partner, yes } => {
            let (count, queue) = discard(config, &partner, yes).await?;
            if count == 0 {
                println!("partner {partner}: no parked messages in {queue}; nothing discarded");
            } else {
                println!("partner {partner}: discarded {count} parked message(s) from {queue}");
            }
            Ok(())
        }
    }
}

/// Lists up to `limit` parked messages of `partner`, oldest first, and counts them all. Every
/// message read goes back to its place. Holds a description per message shown, no bodies.
pub async fn list(config: &Config, partner: &str, limit: usize) -> Result<Listing, ParkedError> {
    let partner = find_partner(config, partner)?;
    let connection = connect(config).await?;
    let result = async {
        let ready = queue_depth(&connection, &partner, &partner.parking_queue).await? as usize;
        let warning = parking_arguments_warning(&connection, config, &partner).await;
        let channel = open_channel(&connection, "a channel to read parked messages").await?;
        let mut reader = ParkedReader::new(&channel, &partner.parking_queue, limit.min(ready));
        let mut messages = Vec::new();
        while let Some(held) = reader.next().await? {
            messages.push(describe(messages.len() + 1, &held));
        }
        // Closing the channel hands every message read back to the head of the queue.
        close_channel(channel).await;
        Ok(Listing {
            partner: partner.id.clone(),
            queue: partner.parking_queue.clone(),
            total: ready.max(messages.len()),
            shown: messages.len(),
            messages,
            warning,
        })
    }
    .await;
    close_connection(connection).await;
    result
}

/// Which parked messages a replay takes, and how many it holds at a time.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// Only messages of this table.
    pub table: Option<&'a str>,
    /// At most this many, oldest first.
    pub limit: Option<usize>,
    /// Messages per window (see [`replay`]).
    pub window: usize,
}

/// Replays the parked messages of `partner` chosen by `selection` into its queue (see the
/// module documentation); asks first unless `yes`. Works one window of `selection.window`
/// messages (or [`read::WINDOW_BYTES`] of bodies) at a time: a window is merged per record,
/// published with confirms and removed before the next is read, so a record parked in two
/// windows goes out as two messages, in order.
pub async fn replay(
    config: &Config,
    partner: &str,
    selection: Selection<'_>,
    yes: bool,
) -> Result<Replayed, ParkedError> {
    let Selection {
        table,
        limit,
        window,
    } = selection;
    let partner = find_partner(config, partner)?;
    refuse_without_terminal("replay", &partner.id, yes)?;
    let connection = connect(config).await?;
    let result = async {
        queue_depth(&connection, &partner, &partner.queue).await?;
        // Everything ready now; what is parked later is behind and never read.
        let ready = queue_depth(&connection, &partner, &partner.parking_queue).await? as usize;
        if let Some(warning) = parking_arguments_warning(&connection, config, &partner).await {
            eprintln!("warning: {warning}");
        }
        let mut outcome = Replayed {
            parked: 0,
            published: 0,
            queue: partner.queue.clone(),
            cdrs: Vec::new(),
        };
        if !yes {
            let survey = survey(&connection, &partner, table, limit, ready).await?;
            if survey.parked == 0 {
                return Ok(outcome);
            }
            confirm(&survey.question(&partner), survey.parked, "replayed")?;
        }
        let channel = open_channel(&connection, "a channel to replay parked messages").await?;
        let mut reader = ParkedReader::new(&channel, &partner.parking_queue, ready);
        let mut left = limit.unwrap_or(usize::MAX);
        while left > 0 {
            let held = reader.window(window, read::WINDOW_BYTES).await?;
            if held.is_empty() {
                break;
            }
            let plan = plan_replay(&held, &partner, table, Some(left));
            drop(held);
            left -= plan.parked;
            let keys: Vec<String> = plan.messages.iter().filter_map(|m| m.cdr.clone()).collect();
            if !keys.is_empty() {
                let released = cdr_ledger::release(&config.pusher.state_dir, &partner.id, &keys)?;
                outcome.cdrs.extend(released);
            }
            publish_plan(
                &channel,
                &partner.queue,
                config.broker.senders.own(),
                &plan,
                &mut outcome,
            )
            .await?;
        }
        // A graceful close makes sure the broker processed every ack before we report; what
        // was read and not selected goes back to the head of the parking queue.
        channel
            .close(200, ShortString::from("replayed"))
            .await
            .map_err(|source| ParkedError::ReplayStopped {
                replayed: outcome.published,
                planned: outcome.published,
                reason: format!(
                    "the broker did not confirm the removal from the parking queue ({source}); \
                     replayed messages may still be listed there too"
                ),
            })?;
        Ok(outcome)
    }
    .await;
    close_connection(connection).await;
    result
}

/// What a replay would take, counted before asking: bodies are read and dropped.
struct Survey {
    parked: usize,
    by_table: BTreeMap<String, usize>,
    cdrs: usize,
}

impl Survey {
    fn question(&self, partner: &PartnerConfig) -> String {
        let mut question = format!(
            "partner {}: {} parked message(s) ({}) will be published again to {}, the states \
             of one record as one message of its newest parked state",
            partner.id,
            self.parked,
            tally(&self.by_table),
            partner.queue,
        );
        if self.cdrs > 0 {
            let _ = write!(
                question,
                "; {} CDR(s) among them are released in the CDR ledger, so the pusher POSTs \
                 them again unless the ledger records the partner already took them",
                self.cdrs
            );
        }
        question
    }
}

/// Counts what a replay of `table`/`limit` would take from the `ready` messages, on a channel
/// of its own that hands them all back.
async fn survey(
    connection: &Connection,
    partner: &PartnerConfig,
    table: Option<&str>,
    limit: Option<usize>,
    ready: usize,
) -> Result<Survey, ParkedError> {
    let channel = open_channel(connection, "a channel to count parked messages").await?;
    let mut reader = ParkedReader::new(&channel, &partner.parking_queue, ready);
    let mut survey = Survey {
        parked: 0,
        by_table: BTreeMap::new(),
        cdrs: 0,
    };
    let limit = limit.unwrap_or(usize::MAX);
    while survey.parked < limit {
        let Some(held) = reader.next().await? else {
            break;
        };
        if table.is_some_and(|t| !table_matches(&held, t)) {
            continue;
        }
        survey.parked += 1;
        *survey.by_table.entry(table_of(&held)).or_insert(0) += 1;
        if let Ok(Message::Change(change)) = Message::from_slice(&held.body) {
            survey.cdrs += usize::from(cdr_key(partner, &change).is_some());
        }
    }
    close_channel(channel).await;
    Ok(survey)
}

/// Discards the parked messages of `partner` (after asking, unless `yes`); returns how many,
/// and the parking queue.
pub async fn discard(
    config: &Config,
    partner: &str,
    yes: bool,
) -> Result<(usize, String), ParkedError> {
    let partner = find_partner(config, partner)?;
    refuse_without_terminal("discard", &partner.id, yes)?;
    let connection = connect(config).await?;
    let result = async {
        let ready = queue_depth(&connection, &partner, &partner.parking_queue).await? as usize;
        let channel = open_channel(&connection, "a channel to discard parked messages").await?;
        // Everything ready now, and only that is removed: what is parked meanwhile is behind
        // it and never read. Counts, no bodies. Asked first, the count shown is what this
        // channel holds until the answer; with --yes each window is removed as it is read (a
        // queue holding many messages unacked hands out the next ones slowly).
        let mut reader = ParkedReader::new(&channel, &partner.parking_queue, ready);
        let (mut count, mut last, mut by_table) = (0, None, BTreeMap::new());
        loop {
            let window = reader
                .window(read::WINDOW_MESSAGES, read::WINDOW_BYTES)
                .await?;
            let Some(newest) = window.last().map(|h| h.tag) else {
                break;
            };
            count += window.len();
            last = Some(newest);
            for held in &window {
                *by_table.entry(table_of(held)).or_insert(0) += 1;
            }
            if yes {
                remove_up_to(&channel, &partner.parking_queue, newest).await?;
            }
        }
        let Some(last) = last else {
            close_channel(channel).await;
            return Ok((0, partner.parking_queue.clone()));
        };
        if !yes {
            let question = format!(
                "partner {}: {count} parked message(s) in {} ({}) will be DISCARDED for good",
                partner.id,
                partner.parking_queue,
                tally(&by_table)
            );
            if let Err(e) = confirm(&question, count, "discarded") {
                close_channel(channel).await;
                return Err(e);
            }
            remove_up_to(&channel, &partner.parking_queue, last).await?;
        }
        channel
            .close(200, ShortString::from("discarded"))
            .await
            .map_err(|source| ParkedError::Broker {
                what: format!(
                    "confirming the removal from {} (see `pusher parked list {}`)",
                    partner.parking_queue, partner.id
                ),
                source,
            })?;
        Ok((count, partner.parking_queue.clone()))
    }
    .await;
    close_connection(connection).await;
    result
}

/// Removes every message up to delivery tag `last` held on `channel`, and no other.
async fn remove_up_to(channel: &Channel, queue: &str, last: u64) -> Result<(), ParkedError> {
    channel
        .basic_ack(last, BasicAckOptions { multiple: true })
        .await
        .map_err(|source| ParkedError::Broker {
            what: format!("removing the parked messages from {queue}"),
            source,
        })
}

/// Which parked messages a replay publishes, merged per record, in what order.
pub fn plan_replay(
    held: &[Held],
    partner: &PartnerConfig,
    table: Option<&str>,
    limit: Option<usize>,
) -> ReplayPlan {
    let selected = held
        .iter()
        .filter(|h| table.is_none_or(|t| table_matches(h, t)))
        .take(limit.unwrap_or(usize::MAX));
    // Readable changes grouped per record, in order of first appearance; the rest alone.
    let mut groups: Vec<Vec<(&Held, RowChange)>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    let mut opaque: Vec<&Held> = Vec::new();
    let mut plan = ReplayPlan::default();
    for h in selected {
        plan.parked += 1;
        *plan.by_table.entry(table_of(h)).or_insert(0) += 1;
        match Message::from_slice(&h.body) {
            // A too-large marker has no row data to merge: it goes out alone, unchanged.
            Ok(Message::Change(change))
                if !change.key.is_empty() && !change.is_too_large_marker() =>
            {
                // Messages of one record merge only when the same broker user first published
                // them: the pushers judge a replay by that user, and one refused for its sender
                // must not lend its state to, or take it from, the bridge's.
                let sender = first_publisher(&h.properties)
                    .or_else(|| senders::user_of(&h.properties).map(str::to_string))
                    .unwrap_or_default();
                let record = format!("{sender}\u{0}{}", change.record_key());
                let index = *group_of.entry(record).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[index].push((h, change));
            }
            _ => opaque.push(h),
        }
    }
    for group in &mut groups {
        group.sort_by_key(|(h, c)| (c.seq, h.tag));
    }
    // Oldest parked change first: parents that were refused before their children stay first.
    groups.sort_by_key(|g| g.first().map(|(h, c)| (c.seq, h.tag)));
    for group in groups {
        let Some((newest, _)) = group.last() else {
            continue;
        };
        let sources = group.iter().map(|(h, _)| h.tag).collect();
        let changes: Vec<std::sync::Arc<RowChange>> = group
            .iter()
            .map(|(_, c)| std::sync::Arc::new(c.clone()))
            .collect();
        let previous = header_text(&newest.properties, HEADER_REASON);
        let (body, net) = if group.len() == 1 {
            (newest.body.clone(), changes.first().cloned())
        } else {
            let net = coalesce(&changes);
            let body = net
                .as_ref()
                .map(|n| Message::Change((**n).clone()).to_vec())
                .unwrap_or_else(|| newest.body.clone());
            (body, net)
        };
        let properties = replay_properties(
            &newest.properties,
            previous.as_deref(),
            net.as_ref().map(|n| n.op.as_str()),
        );
        let cdr = net.and_then(|n| cdr_key(partner, &n));
        plan.messages.push(Planned {
            body,
            properties,
            sources,
            cdr,
        });
    }
    for h in opaque {
        let previous = header_text(&h.properties, HEADER_REASON);
        plan.messages.push(Planned {
            body: h.body.clone(),
            properties: replay_properties(&h.properties, previous.as_deref(), None),
            sources: vec![h.tag],
            cdr: None,
        });
    }
    plan
}

/// The CDR ledger key of a change the partner receives as a CDR POST.
fn cdr_key(partner: &PartnerConfig, change: &RowChange) -> Option<String> {
    let mapping = partner.table(&change.database, &change.table)?;
    if mapping.module != Module::Cdrs {
        return None;
    }
    let plan = render(mapping, change, partner.version, change.is_snapshot()).ok()?;
    (plan.method == Method::Post).then_some(plan.record_id)
}

/// The original properties for publishing again: park and broker headers gone, replay headers
/// and the first publisher ([`senders::HEADER_PUBLISHED_BY`]) added; `operation` updates
/// `x-operation` of a merged message. The `user_id` is set when publishing.
fn replay_properties(
    original: &BasicProperties,
    previous_reason: Option<&str>,
    operation: Option<&str>,
) -> BasicProperties {
    let mut headers = original
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let replays = headers
        .get(HEADER_REPLAYS)
        .and_then(integer)
        .unwrap_or(0)
        .saturating_add(1);
    for name in [
        HEADER_REASON,
        HEADER_PARTNER,
        HEADER_PARKED_BY,
        HEADER_PARKED_AT,
    ]
    .into_iter()
    .chain(BROKER_DELIVERY_HEADERS)
    {
        headers.remove(name);
    }
    let text = |v: &str| AMQPValue::LongString(LongString::from(v));
    headers.insert(ShortString::from(HEADER_REPLAYED_AT), text(&now_rfc3339()));
    headers.insert(
        ShortString::from(HEADER_REPLAYS),
        AMQPValue::LongLongInt(i64::try_from(replays).unwrap_or(i64::MAX)),
    );
    if let Some(reason) = previous_reason {
        headers.insert(ShortString::from(HEADER_PREVIOUS_REASON), text(reason));
    }
    // Published again under the replaying user: who first published it stays.
    if let Some(first) = senders::published_by(original) {
        headers.insert(ShortString::from(senders::HEADER_PUBLISHED_BY), first);
    }
    if let Some(op) = operation {
        if headers.contains_key(change_message::headers::OPERATION) {
            headers.insert(
                ShortString::from(change_message::headers::OPERATION),
                text(op),
            );
        }
    }
    original
        .clone()
        .with_delivery_mode(2)
        .with_headers(FieldTable::from(headers))
}

/// Publishes the plan in order with confirms, as broker user `user` (the one this command logs
/// in as: the broker refuses any other `user_id`); acks each message's parked originals once
/// its publish is confirmed.
async fn publish_plan(
    channel: &Channel,
    queue: &str,
    user: &str,
    plan: &ReplayPlan,
    outcome: &mut Replayed,
) -> Result<(), ParkedError> {
    let planned = outcome.published + plan.messages.len();
    let stopped = |outcome: &Replayed, reason: String| ParkedError::ReplayStopped {
        replayed: outcome.published,
        planned,
        reason,
    };
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| stopped(outcome, format!("cannot turn on publisher confirms: {e}")))?;
    for batch in plan.messages.chunks(CONFIRM_BATCH) {
        let mut confirms = Vec::with_capacity(batch.len());
        for message in batch {
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    ShortString::from(queue),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    message
                        .properties
                        .clone()
                        .with_user_id(ShortString::from(user)),
                )
                .await
                .map_err(|e| stopped(outcome, format!("publishing to {queue} failed: {e}")))?;
            confirms.push((confirm, message));
        }
        for (confirm, message) in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {}
                Ok(Confirmation::Ack(Some(_))) => {
                    return Err(stopped(
                        outcome,
                        format!(
                            "the broker returned a message: queue {queue} no longer exists \
                             (run `pusher setup`)"
                        ),
                    ))
                }
                Ok(Confirmation::Nack(_)) => {
                    return Err(stopped(
                        outcome,
                        format!("the broker refused (nacked) a message for {queue}"),
                    ))
                }
                Err(e) => {
                    return Err(stopped(
                        outcome,
                        format!("no confirm for a message to {queue}: {e}"),
                    ))
                }
            }
            for tag in &message.sources {
                channel
                    .basic_ack(*tag, BasicAckOptions::default())
                    .await
                    .map_err(|e| {
                        stopped(
                            outcome,
                            format!(
                                "a message was replayed but its parked original could not be \
                                 removed ({e}): it may be listed (and replayed) once more"
                            ),
                        )
                    })?;
            }
            outcome.published += 1;
            outcome.parked += message.sources.len();
        }
    }
    Ok(())
}

/// How `list` shows one held message.
pub fn describe(position: usize, held: &Held) -> ParkedMessage {
    let change = match Message::from_slice(&held.body) {
        Ok(Message::Change(c)) => Some(c),
        _ => None,
    };
    let properties = &held.properties;
    let death = first_death(properties);
    let reason = header_text(properties, HEADER_REASON)
        .or_else(|| {
            death.as_ref().map(|d| {
                format!(
                    "dead-lettered by the broker from {} ({}, {} time(s)): it was handed out \
                     more often than broker.delivery_limit allows",
                    d.queue, d.reason, d.count
                )
            })
        })
        .unwrap_or_else(|| "no reason recorded".to_string());
    ParkedMessage {
        position,
        table: change
            .as_ref()
            .map(|c| format!("{}.{}", c.database, c.table))
            .or_else(|| header_table(properties)),
        key: change
            .as_ref()
            .map(|c| serde_json::Value::Object(c.key.clone())),
        operation: change
            .as_ref()
            .map(|c| c.op.as_str().to_string())
            .or_else(|| header_text(properties, change_message::headers::OPERATION)),
        seq: change.as_ref().map(|c| c.seq),
        id: change.as_ref().map(|c| c.id.clone()),
        reason,
        parked_at: header_text(properties, HEADER_PARKED_AT)
            .or_else(|| death.as_ref().and_then(|d| d.time.clone())),
        parked_by: header_text(properties, HEADER_PARKED_BY)
            .or_else(|| death.as_ref().map(|_| "the broker".to_string())),
        replays: properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(HEADER_REPLAYS))
            .and_then(integer)
            .unwrap_or(0),
        readable: change.is_some(),
    }
}

/// The listing as text for people.
pub fn render_listing(listing: &Listing) -> String {
    let mut out = String::new();
    if listing.total == 0 {
        let _ = writeln!(
            out,
            "partner {}: no parked messages in {}",
            listing.partner, listing.queue
        );
        return out;
    }
    for m in &listing.messages {
        let key = m
            .key
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_else(|| "-".into());
        let seq = m.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "#{} {} {} {} seq {}{}",
            m.position,
            m.table.as_deref().unwrap_or("(not a change message)"),
            key,
            m.operation.as_deref().unwrap_or("-"),
            seq,
            if m.replays > 0 {
                format!(" (replayed {} time(s) before)", m.replays)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "    parked at {} by {}",
            m.parked_at.as_deref().unwrap_or("-"),
            m.parked_by.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "    reason: {}", m.reason);
    }
    let _ = writeln!(
        out,
        "partner {}: {} parked message(s) in {} (showing {}{})",
        listing.partner,
        listing.total,
        listing.queue,
        listing.shown,
        if listing.shown < listing.total {
            "; --limit shows more"
        } else {
            ""
        }
    );
    out
}

fn render_replayed(partner: &str, done: &Replayed) -> String {
    let mut out = String::new();
    if done.parked == 0 {
        let _ = writeln!(
            out,
            "partner {partner}: no parked messages to replay; nothing was published"
        );
        return out;
    }
    for (key, release) in &done.cdrs {
        let line = match release {
            Release::Released => {
                format!("CDR {key}: released in the CDR ledger, it is POSTed again")
            }
            Release::NotRecorded => format!("CDR {key}: not in the CDR ledger, it is POSTed"),
            Release::Delivered { location } => format!(
                "CDR {key}: the CDR ledger records the partner took it{}: it is acknowledged \
                 without a POST",
                location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "partner {partner}: replayed {} parked message(s) into {} as {} message(s); the pusher \
         delivers them from there",
        done.parked, done.queue, done.published
    );
    out
}

/// `table: count` pairs for a summary line.
fn tally(by_table: &BTreeMap<String, usize>) -> String {
    by_table
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses early (before touching the broker) when no one could answer the question.
fn refuse_without_terminal(
    action: &'static str,
    partner: &str,
    yes: bool,
) -> Result<(), ParkedError> {
    if yes || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(ParkedError::NoTerminal {
            action,
            partner: partner.to_string(),
        })
    }
}

/// Asks the operator to type `count` or `yes`.
fn confirm(question: &str, count: usize, done: &'static str) -> Result<(), ParkedError> {
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "{question}.");
    let _ = write!(stderr, "Type {count} (or yes) to go on: ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(ParkedError::Prompt)?;
    let answer = answer.trim();
    if answer == count.to_string() || answer.eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(ParkedError::NotConfirmed {
            done,
            answer: answer.to_string(),
            count,
        })
    }
}

fn find_partner(
    config: &Config,
    partner: &str,
) -> Result<std::sync::Arc<PartnerConfig>, ParkedError> {
    config
        .partner(partner)
        .cloned()
        .ok_or_else(|| ParkedError::UnknownPartner {
            partner: partner.to_string(),
            known: config
                .partners
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

async fn connect(config: &Config) -> Result<Connection, ParkedError> {
    config
        .broker
        .connect(ConnectionProperties::default())
        .await
        .map_err(|source| ParkedError::Connect {
            url: redact_url(&config.broker.url),
            source,
        })
}

async fn open_channel(connection: &Connection, what: &str) -> Result<Channel, ParkedError> {
    connection
        .create_channel()
        .await
        .map_err(|source| ParkedError::Broker {
            what: format!("opening {what}"),
            source,
        })
}

async fn close_channel(channel: Channel) {
    tls_connect::broker::close_channel(&channel, "done").await;
}

async fn close_connection(connection: Connection) {
    tls_connect::broker::close(&connection, "done").await;
}

/// Ready messages in `queue`; [`ParkedError::QueueMissing`] when it does not exist.
async fn queue_depth(
    connection: &Connection,
    partner: &PartnerConfig,
    queue: &str,
) -> Result<u32, ParkedError> {
    // A refused passive declaration closes its channel: use one of its own.
    let channel = open_channel(connection, "a channel").await?;
    let declared = crate::topology::passive_declare(&channel, queue).await;
    match declared {
        Ok(q) => {
            close_channel(channel).await;
            Ok(q.message_count())
        }
        Err(e) if e.to_string().contains("NOT_FOUND") => Err(ParkedError::QueueMissing {
            partner: partner.id.clone(),
            queue: queue.to_string(),
        }),
        Err(source) => Err(ParkedError::Broker {
            what: format!("looking up queue {queue}"),
            source,
        }),
    }
}

/// Checks that the (existing) parking queue has the arguments the pusher declares: one with a
/// delivery limit drops messages that are read too often. Returns the warning, if any.
async fn parking_arguments_warning(
    connection: &Connection,
    config: &Config,
    partner: &PartnerConfig,
) -> Option<String> {
    let major = match topology::broker_major_version(&config.broker.url, &config.broker.tls).await {
        Ok(major) => major,
        Err(e) => return Some(format!("cannot check the parking queue's arguments: {e}")),
    };
    let channel = connection.create_channel().await.ok()?;
    let declared = channel
        .queue_declare(
            ShortString::from(partner.parking_queue.as_str()),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            topology::parking_queue_arguments(major),
        )
        .await;
    match declared {
        Ok(_) => {
            close_channel(channel).await;
            None
        }
        Err(source) => Some(
            topology::mismatch_or_broker(
                &partner.parking_queue,
                source,
                topology::parking_queue_fix(&partner.parking_queue, &partner.id),
            )
            .to_string(),
        ),
    }
}

/// A text header.
fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// `database.table` from the headers the bridge sets.
fn header_table(properties: &BasicProperties) -> Option<String> {
    let table = header_text(properties, change_message::headers::TABLE)?;
    Some(
        match header_text(properties, change_message::headers::DATABASE) {
            Some(db) => format!("{db}.{table}"),
            None => table,
        },
    )
}

/// The table a held message counts under in summaries.
fn table_of(held: &Held) -> String {
    match Message::from_slice(&held.body) {
        Ok(Message::Change(c)) => format!("{}.{}", c.database, c.table),
        _ => header_table(&held.properties).unwrap_or_else(|| "unreadable".to_string()),
    }
}

/// Whether a held message belongs to `table` (`database.table` or the table name alone).
fn table_matches(held: &Held, table: &str) -> bool {
    match Message::from_slice(&held.body) {
        Ok(Message::Change(c)) => {
            c.table == table || format!("{}.{}", c.database, c.table) == table
        }
        _ => false,
    }
}

fn integer(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        _ => None,
    }
}

/// The newest `x-death` entry: the broker dead-lettered the message (delivery limit).
struct Death {
    queue: String,
    reason: String,
    count: u64,
    time: Option<String>,
}

fn first_death(properties: &BasicProperties) -> Option<Death> {
    let AMQPValue::FieldArray(deaths) = properties.headers().as_ref()?.inner().get("x-death")?
    else {
        return None;
    };
    let AMQPValue::FieldTable(entry) = deaths.as_slice().first()? else {
        return None;
    };
    let text = |name: &str| match entry.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
        _ => None,
    };
    Some(Death {
        queue: text("queue").unwrap_or_else(|| "?".into()),
        reason: text("reason").unwrap_or_else(|| "?".into()),
        count: entry.inner().get("count").and_then(integer).unwrap_or(1),
        time: entry
            .inner()
            .get("time")
            .and_then(integer)
            .map(rfc3339_from_secs),
    })
}

/// Seconds since the epoch as RFC 3339 UTC.
fn rfc3339_from_secs(secs: u64) -> String {
    change_message::calendar::rfc3339_from_unix_seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use change_message::{Operation, Source};
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn partner() -> std::sync::Arc<PartnerConfig> {
        let mapping =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/ocpi-example/mapping.toml");
        let text = format!(
            r#"
[database]
user = "ocpi_reader"

[[partner]]
id = "acme"
ocpi_version = "2.2.1"
versions_url = "http://127.0.0.1:9/versions"
token_env = "ACME_TOKEN"
our_country_code = "NL"
our_party_id = "EXA"
country_code = "DE"
party_id = "ACM"
mapping = "{}"
"#,
            mapping.display()
        );
        let config = Config::parse(&text, Path::new("p.toml"), &|name| {
            (name == "ACME_TOKEN").then(|| "t".to_string())
        })
        .unwrap();
        config.partners[0].clone()
    }

    fn tariff(id: &str, op: Operation, seq: u64, price: u64, changed: &[&str]) -> RowChange {
        let row = |price: u64| {
            json!({"country_code": "NL", "party_id": "EXA", "id": id, "currency": "EUR",
                   "elements": format!("[{{\"price_components\":[{{\"type\":\"ENERGY\",\"price\":{price}}}]}}]"),
                   "deleted": 0, "last_updated": "2026-02-01T12:00:00.000"})
            .as_object()
            .unwrap()
            .clone()
        };
        RowChange {
            version: change_message::CONTRACT_VERSION,
            id: format!("binlog.000001:{seq}:0"),
            seq,
            op,
            database: "ocpi".into(),
            table: "tariffs".into(),
            key: json!({"country_code": "NL", "party_id": "EXA", "id": id})
                .as_object()
                .unwrap()
                .clone(),
            after: (op != Operation::Delete).then(|| row(price)),
            before: (op != Operation::Insert).then(|| row(price.saturating_sub(1))),
            changed: changed.iter().map(|c| c.to_string()).collect(),
            binary_columns: vec![],
            merged: 1,
            source: Source {
                server_id: 1,
                file: "binlog.000001".into(),
                pos: seq,
                row: 0,
                gtid: None,
                tx_index: 0,
                commit_time: "2026-02-01T12:00:00Z".into(),
            },
            snapshot: None,
            too_large: None,
        }
    }

    fn parked(tag: u64, change: &RowChange, reason: &str) -> Held {
        let mut headers = FieldTable::default();
        let text = |v: &str| AMQPValue::LongString(LongString::from(v));
        headers.insert(HEADER_REASON.into(), text(reason));
        headers.insert(HEADER_PARTNER.into(), text("acme"));
        headers.insert(HEADER_PARKED_BY.into(), text("host-1"));
        headers.insert(HEADER_PARKED_AT.into(), text("2026-02-01T12:00:00Z"));
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        headers.insert(
            change_message::headers::OPERATION.into(),
            text(change.op.as_str()),
        );
        Held {
            tag,
            body: Message::Change(change.clone()).to_vec(),
            properties: BasicProperties::default()
                .with_message_id(change.id.as_str().into())
                .with_headers(headers),
        }
    }

    fn change_of(planned: &Planned) -> RowChange {
        match Message::from_slice(&planned.body).unwrap() {
            Message::Change(c) => c,
            other => panic!("not a change: {other:?}"),
        }
    }

    #[test]
    fn parked_states_of_one_record_become_one_message_of_its_newest_state() {
        let p = partner();
        let held = vec![
            parked(1, &tariff("A", Operation::Update, 5, 5, &["elements"]), "r"),
            parked(2, &tariff("B", Operation::Insert, 7, 1, &[]), "r"),
            parked(3, &tariff("A", Operation::Update, 9, 9, &["currency"]), "r"),
        ];
        let plan = plan_replay(&held, &p, None, None);
        assert_eq!(plan.parked, 3);
        assert_eq!(plan.messages.len(), 2, "one message per record");
        let a = &plan.messages[0];
        assert_eq!(
            a.sources,
            vec![1, 3],
            "both of A's parked messages are covered"
        );
        let net = change_of(a);
        assert_eq!(net.seq, 9, "the newest parked state");
        assert_eq!(net.after, tariff("A", Operation::Update, 9, 9, &[]).after);
        assert_eq!(
            net.changed,
            vec!["elements", "currency"],
            "every changed column"
        );
        assert_eq!(net.merged, 2);
        assert_eq!(plan.messages[1].sources, vec![2]);
        assert_eq!(plan.by_table.get("ocpi.tariffs"), Some(&3));
    }

    #[test]
    fn parked_states_first_published_by_different_users_are_replayed_apart_with_their_publisher() {
        let p = partner();
        let mut bridge = parked(1, &tariff("A", Operation::Update, 5, 5, &["elements"]), "r");
        bridge.properties = bridge.properties.with_user_id("cdc-bridge".into());
        // Parked by a pusher for its sender: `x-published-by` names the stranger.
        let mut forged = parked(2, &tariff("A", Operation::Update, 9, 9, &["elements"]), "r");
        let mut headers = forged.properties.headers().clone().unwrap_or_default();
        headers.insert(
            senders::HEADER_PUBLISHED_BY.into(),
            AMQPValue::LongString(LongString::from("mallory")),
        );
        forged.properties = forged
            .properties
            .with_user_id("cdc-pusher".into())
            .with_headers(headers);
        let plan = plan_replay(&[bridge, forged], &p, None, None);
        assert_eq!(plan.messages.len(), 2, "never merged across publishers");
        let publishers: Vec<Option<String>> = plan
            .messages
            .iter()
            .map(|m| first_publisher(&m.properties))
            .collect();
        assert_eq!(
            publishers,
            vec![Some("cdc-bridge".to_string()), Some("mallory".to_string())]
        );
    }

    #[test]
    fn records_go_out_in_the_order_of_their_oldest_parked_change() {
        let p = partner();
        // B was parked first (seq 2) but sits behind A's newer message in the queue.
        let held = vec![
            parked(1, &tariff("A", Operation::Insert, 4, 1, &[]), "r"),
            parked(2, &tariff("B", Operation::Insert, 2, 1, &[]), "r"),
            parked(3, &tariff("B", Operation::Update, 6, 2, &["elements"]), "r"),
        ];
        let plan = plan_replay(&held, &p, None, None);
        let firsts: Vec<Vec<u64>> = plan.messages.iter().map(|m| m.sources.clone()).collect();
        assert_eq!(firsts, vec![vec![2, 3], vec![1]]);
        let b = change_of(&plan.messages[0]);
        assert_eq!(
            (b.op, b.seq),
            (Operation::Insert, 6),
            "an insert among them: full object"
        );
    }

    #[test]
    fn a_single_parked_message_is_replayed_as_it_was_with_replay_headers_instead_of_park_ones() {
        let p = partner();
        let change = tariff("A", Operation::Insert, 4, 1, &[]);
        let held = vec![parked(7, &change, "rejected: OCPI 2001")];
        let plan = plan_replay(&held, &p, None, None);
        let m = &plan.messages[0];
        assert_eq!(m.body, held[0].body, "body unchanged");
        assert_eq!(m.properties.message_id(), held[0].properties.message_id());
        let headers = m.properties.headers().clone().unwrap();
        for gone in [
            HEADER_REASON,
            HEADER_PARTNER,
            HEADER_PARKED_BY,
            HEADER_PARKED_AT,
            "x-delivery-count",
        ] {
            assert!(!headers.contains_key(gone), "{gone} still there");
        }
        assert_eq!(
            header_text(&m.properties, HEADER_PREVIOUS_REASON).as_deref(),
            Some("rejected: OCPI 2001")
        );
        assert!(header_text(&m.properties, HEADER_REPLAYED_AT).is_some());
        assert_eq!(
            headers.inner().get(HEADER_REPLAYS).and_then(integer),
            Some(1)
        );
        assert_eq!(m.properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(m.cdr, None);

        // Parked and replayed again: the count goes on.
        let again = Held {
            tag: 8,
            body: m.body.clone(),
            properties: m.properties.clone(),
        };
        let second = plan_replay(&[again], &p, None, None);
        let headers = second.messages[0].properties.headers().clone().unwrap();
        assert_eq!(
            headers.inner().get(HEADER_REPLAYS).and_then(integer),
            Some(2)
        );
        assert_eq!(
            describe(
                1,
                &Held {
                    tag: 8,
                    body: m.body.clone(),
                    properties: m.properties.clone()
                }
            )
            .replays,
            1
        );
    }

    #[test]
    fn table_and_limit_select_from_the_oldest_and_leave_the_rest() {
        let p = partner();
        let mut session = tariff("S1", Operation::Insert, 3, 1, &[]);
        session.table = "sessions".into();
        let held = vec![
            parked(1, &tariff("A", Operation::Insert, 1, 1, &[]), "r"),
            parked(2, &session, "r"),
            parked(3, &tariff("B", Operation::Insert, 5, 1, &[]), "r"),
            parked(4, &tariff("C", Operation::Insert, 6, 1, &[]), "r"),
        ];
        let plan = plan_replay(&held, &p, Some("tariffs"), Some(2));
        let sources: Vec<u64> = plan
            .messages
            .iter()
            .flat_map(|m| m.sources.clone())
            .collect();
        assert_eq!(sources, vec![1, 3]);
        let plan = plan_replay(&held, &p, Some("ocpi.sessions"), None);
        assert_eq!(plan.parked, 1);
        assert_eq!(plan.messages[0].sources, vec![2]);
        assert_eq!(plan_replay(&held, &p, Some("nope"), None).parked, 0);
    }

    #[test]
    fn unreadable_messages_are_replayed_unchanged_after_the_records() {
        let p = partner();
        let garbage = Held {
            tag: 1,
            body: b"not json".to_vec(),
            properties: BasicProperties::default(),
        };
        let held = vec![
            garbage,
            parked(2, &tariff("A", Operation::Insert, 1, 1, &[]), "r"),
        ];
        let plan = plan_replay(&held, &p, None, None);
        assert_eq!(plan.messages.len(), 2);
        assert_eq!(plan.messages[0].sources, vec![2]);
        assert_eq!(plan.messages[1].body, b"not json");
        assert_eq!(plan.by_table.get("unreadable"), Some(&1));
        let shown = describe(1, &held[0]);
        assert!(!shown.readable);
        assert_eq!(shown.reason, "no reason recorded");
    }

    #[test]
    fn a_cdr_is_planned_with_its_ledger_key() {
        let p = partner();
        let mut cdr = tariff("CDR1", Operation::Insert, 3, 1, &[]);
        cdr.table = "cdrs".into();
        let object = json!({"country_code": "NL", "party_id": "EXA", "id": "CDR1",
                            "last_updated": "2026-02-01T12:00:00Z"});
        cdr.after = Some(
            json!({"country_code": "NL", "party_id": "EXA", "id": "CDR1",
                   "ocpi_object": object.to_string(), "last_updated": "2026-02-01T12:00:00.000"})
            .as_object()
            .unwrap()
            .clone(),
        );
        let plan = plan_replay(&[parked(1, &cdr, "unknown outcome")], &p, None, None);
        assert_eq!(plan.messages[0].cdr.as_deref(), Some("cdrs/NL/EXA/CDR1"));
    }

    #[test]
    fn a_message_dead_lettered_by_the_broker_shows_why() {
        let mut death = FieldTable::default();
        death.insert("queue".into(), AMQPValue::LongString("ocpi.acme".into()));
        death.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        death.insert("time".into(), AMQPValue::Timestamp(1_769_947_200));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let held = Held {
            tag: 1,
            body: Message::Change(tariff("A", Operation::Insert, 1, 1, &[])).to_vec(),
            properties: BasicProperties::default().with_headers(headers),
        };
        let shown = describe(3, &held);
        assert!(
            shown
                .reason
                .contains("dead-lettered by the broker from ocpi.acme"),
            "{}",
            shown.reason
        );
        assert!(shown.reason.contains("delivery_limit"));
        assert_eq!(shown.parked_at.as_deref(), Some("2026-02-01T12:00:00Z"));
        assert_eq!(shown.parked_by.as_deref(), Some("the broker"));
        assert_eq!(shown.table.as_deref(), Some("ocpi.tariffs"));
        assert_eq!(shown.seq, Some(1));
        assert_eq!(shown.position, 3);
    }
}
