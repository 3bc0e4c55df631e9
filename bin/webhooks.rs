//! `webhooks`: the cron dispatcher and admin CLI. See `webhooks --help`.

fn main() {
    std::process::exit(webhooks::cli::main());
}
