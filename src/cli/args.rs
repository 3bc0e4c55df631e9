//! The command line: every command of `webhooks` with its flags and help text (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::serve;
use crate::config;

#[derive(Parser)]
#[command(name = "webhooks", version, about = "QSM Webhooks: dispatcher and administration")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the database and, if missing, a .env with a fresh WEBHOOKS_SECRET_KEY (idempotent).
    Init {
        /// The CGI script's public URL, written to the .env as WEBHOOKS_PUBLIC_URL, e.g.
        /// https://example.org/cgi-bin/webhooks.cgi
        #[arg(long)]
        public_url: Option<String>,
    },
    /// One cron run: deliver what is due within the budgets, then apply retention.
    Dispatch {
        #[arg(long)]
        json: bool,
        /// Keep running, one run per interval (e.g. 1m), for hosts that allow a worker.
        #[arg(long, value_parser = config::duration_arg)]
        every: Option<Duration>,
    },
    /// Record an event from the shell (same validation and fan-out as the HTTP intake).
    Emit {
        #[arg(long)]
        user: String,
        #[arg(long = "type")]
        event_type: String,
        /// The event's data: JSON, @file, or - for standard input.
        #[arg(long)]
        data: String,
        #[arg(long)]
        occurred_at: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        /// On FIFO endpoints, events with the same key are delivered one at a time, in order.
        #[arg(long)]
        ordering_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// The delivery log, newest first.
    Deliveries {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Every attempt of one delivery.
    Attempts {
        delivery_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a delivery again now, or every dead delivery of an endpoint.
    Retry {
        delivery_id: Option<String>,
        #[arg(long, requires = "endpoint", conflicts_with = "delivery_id")]
        dead: bool,
        #[arg(long)]
        endpoint: Option<String>,
        /// Instead of sending it again, let the FIFO key this dead delivery blocks move on.
        #[arg(long, requires = "delivery_id", conflicts_with = "dead")]
        discard: bool,
        /// Send again the endpoint's deliveries made from this time on (2026-11-23,
        /// 2026-11-23T10:00 UTC, or RFC 3339): counted first, sent with --yes.
        #[arg(long, requires = "endpoint", conflicts_with_all = ["delivery_id", "dead"])]
        since: Option<String>,
        /// With --since: up to this time (default now).
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// With --since: every delivery that ended, not only the dead ones.
        #[arg(long, requires = "since")]
        all: bool,
        /// With --since: send them (without it, only count them).
        #[arg(long, requires = "since")]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Sign-in sessions: `sessions revoke --user U` ends every one of a user's.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Manage inbound sources: provider webhooks verified, logged and relayed (admins).
    #[command(subcommand)]
    Source(Box<SourceCmd>),
    /// The inbound request log, newest first; `inbound recheck ID` verifies a reject again.
    #[command(args_conflicts_with_subcommands = true)]
    Inbound {
        #[command(subcommand)]
        command: Option<InboundCmd>,
        /// A source's id or name.
        #[arg(long)]
        source: Option<String>,
        /// accepted, duplicate or rejected.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the database (safe while the CGI and cron are running).
    Backup {
        /// The new file to write, e.g. var/backup-2026-11-23.db
        to: PathBuf,
    },
    /// Copy this SQLite installation into an empty PostgreSQL database and point .env at it.
    MigrateStore {
        /// The PostgreSQL database: postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require]
        #[arg(long)]
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace WEBHOOKS_SECRET_KEY with a new one and re-encrypt every endpoint secret under it.
    RotateKey,
    /// Check the deployment: every problem found, each with its fix (exit 1 when any).
    Doctor,
    /// Apply retention now.
    Purge {
        #[arg(long)]
        json: bool,
    },
    /// Queue depth, oldest due delivery, last dispatcher run.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The metrics in Prometheus' text format (docs/operator.md, "Monitoring").
    Metrics {
        /// Write them to this file instead, atomically (a temporary file beside it, then
        /// renamed): for node_exporter's textfile collector, from cron.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Receiver-side troubleshooting: check a delivery's signature.
    Verify {
        /// The endpoint secret (whsec_…); repeat to try several.
        #[arg(long, required = true)]
        secret: Vec<String>,
        /// A received header as 'name: value'; repeat for each.
        #[arg(long, required = true)]
        header: Vec<String>,
        /// The raw body: @file, or - for standard input.
        #[arg(long)]
        body: String,
        /// Compare the timestamp against this Unix time instead of now.
        #[arg(long)]
        now: Option<i64>,
    },
    /// Print a portal link: signed, expiring, single-use, opening the pages as a user (what the
    /// host application issues; `login-link` is its former name).
    #[command(alias = "login-link")]
    PortalLink {
        #[arg(long)]
        user: String,
        /// How long the link stays valid (10s up to WEBHOOKS_LOGIN_LINK_TTL, its default).
        #[arg(long)]
        ttl: Option<String>,
        /// Open the pages framed (without their header), for the host application's own page.
        #[arg(long)]
        embed: bool,
        /// The page it lands on, e.g. /endpoints or /deliveries?status=dead (default: the dashboard).
        #[arg(long)]
        page: Option<String>,
        /// The CGI's public URL, e.g. https://example.com/cgi-bin/webhooks.cgi
        /// Default: WEBHOOKS_PUBLIC_URL.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Local development server: runs the CGI per request and the dispatcher every few seconds.
    Serve(serve::ServeArgs),
    /// Run as the CGI program (what webhooks-cgi does).
    #[command(hide = true)]
    Cgi,
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Create an endpoint; prints its id and secret (shown once).
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        url: String,
        /// Types to receive, with * wildcards (email.*,usage.threshold); none = every type.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        order: OrderFlags,
        #[command(flatten)]
        extra: HeaderFlags,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        /// Replaces the filters; pass --events '' for every type.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        order: OrderFlags,
        #[command(flatten)]
        extra: HeaderFlags,
        #[arg(long)]
        json: bool,
    },
    Disable {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable; for an endpoint the system disabled, --replay sends its held deliveries and the
    /// dead ones since its failures began, in order, --discard marks the held ones dead.
    Enable {
        id: String,
        #[arg(long, conflicts_with = "discard")]
        replay: bool,
        #[arg(long)]
        discard: bool,
        #[arg(long)]
        json: bool,
    },
    Delete {
        id: String,
    },
    /// Send a webhook.test delivery now and show what happened (nothing is recorded).
    Test {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// New primary secret; the old one keeps signing for the grace period.
    RotateSecret {
        id: String,
        #[arg(long, value_parser = config::duration_arg)]
        grace: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SessionsCmd {
    /// End every sign-in session of a user: their cookies no longer sign in anywhere.
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token (shown once): for one user, or --app for the host application.
    Create {
        #[arg(long, conflicts_with = "app", required_unless_present = "app")]
        user: Option<String>,
        #[arg(long)]
        app: bool,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: String,
    },
}

/// What a source's settings flags set (each applies to some providers only).
#[derive(clap::Args, Default)]
pub struct SourceSettings {
    /// Wait this long without an accepted request before raising source.silent (e.g. 1d); `off` for never.
    #[arg(long)]
    pub expected_gap: Option<String>,
    /// The largest body this source takes (e.g. 25MiB for mail); `default` for WEBHOOKS_INBOUND_MAX_BODY.
    #[arg(long)]
    pub max_body: Option<String>,
    /// postmark: the user name of the Basic credentials (default postmark).
    #[arg(long)]
    pub username: Option<String>,
    /// circle: where public keys are fetched (default https://api.circle.com/v2/notifications/publicKey).
    #[arg(long)]
    pub key_url: Option<String>,
    /// circle: the API key sent to the key server ('' removes it).
    #[arg(long)]
    pub api_key: Option<String>,
    /// hmac: the signature header, e.g. X-Signature.
    #[arg(long)]
    pub header: Option<String>,
    /// hmac: sha256 (default) or sha512.
    #[arg(long)]
    pub algorithm: Option<String>,
    /// hmac: hex (default) or base64.
    #[arg(long)]
    pub encoding: Option<String>,
    /// hmac: text before the signature, e.g. sha256=
    #[arg(long)]
    pub prefix: Option<String>,
    /// hmac: the header carrying the provider's event id.
    #[arg(long)]
    pub id_header: Option<String>,
    /// hmac: a JSON pointer to the event id in the body, e.g. /id
    #[arg(long)]
    pub id_pointer: Option<String>,
}

#[derive(Subcommand)]
pub enum SourceCmd {
    /// Create a source; prints its id, its URL and (once) its secret.
    Add {
        #[arg(long)]
        name: String,
        /// stripe, github, shopify, slack, standard, postmark, circle, hmac or woocommerce.
        #[arg(long)]
        provider: String,
        /// The provider's signing secret (required for stripe, shopify, slack, woocommerce; generated otherwise).
        #[arg(long)]
        secret: Option<String>,
        /// Where accepted requests are relayed; repeat for several.
        #[arg(long = "forward-url")]
        forward_url: Vec<String>,
        #[command(flatten)]
        settings: SourceSettings,
        /// The CGI's public URL, to print the source's URL, e.g. https://example.com/cgi-bin/webhooks.cgi
        /// Default: WEBHOOKS_PUBLIC_URL.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// A source with its URL, forward destinations, secrets in use and last 24 hours.
    Show {
        id: String,
        /// Default: WEBHOOKS_PUBLIC_URL.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Add a forward destination (prints its signing secret once).
        #[arg(long = "add-forward")]
        add_forward: Vec<String>,
        #[command(flatten)]
        settings: SourceSettings,
        /// Default: WEBHOOKS_PUBLIC_URL.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Circle: store a public key (base64 DER or PEM: @file, - or the value) under its key id.
    AddKey {
        id: String,
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        public_key: String,
    },
    /// A new secret (given, or generated where the provider lets us); the old ones keep verifying for the grace period.
    RotateSecret {
        id: String,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long, value_parser = config::duration_arg)]
        grace: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Delete the source with its request log and forward destinations.
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum InboundCmd {
    /// One request: redacted headers, the body, the verification result.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Verify a rejected request again with the source's current secrets; relay it if it now verifies.
    Recheck {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// An endpoint's ordering (docs/ordering.md).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OrderFlags {
    /// none, or fifo: one delivery at a time per ordering key, in the order the events came.
    #[arg(long)]
    pub ordering: Option<String>,
    /// Under fifo, what a dead delivery does to its key: continue, or block until retried or discarded.
    #[arg(long = "fifo-on-dead")]
    pub fifo_on_dead: Option<String>,
    /// Requests per second at most, across every dispatcher (e.g. 5 or 0.5); none removes the limit.
    #[arg(long = "max-per-second", value_name = "N|none")]
    pub max_per_second: Option<String>,
    /// Requests at once at most, across every dispatcher; none removes the limit.
    #[arg(long = "max-in-flight", value_name = "N|none")]
    pub max_in_flight: Option<String>,
}

/// An endpoint's custom headers and extra signature (docs/signing.md).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HeaderFlags {
    /// A custom header sent with every delivery, 'Name: value'; repeat for several. Replaces
    /// those it has. Values are sealed at rest and never shown again.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// Removes every custom header.
    #[arg(long = "clear-headers", conflicts_with = "header")]
    pub clear_headers: bool,
    /// none, or spatie: also sign as spatie/laravel-webhook-client checks (Signature header).
    #[arg(long = "signature-compat")]
    pub signature_compat: Option<String>,
}
