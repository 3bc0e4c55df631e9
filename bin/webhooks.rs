//! `webhooks`: the cron dispatcher and admin CLI. See `webhooks --help`.

fn main() {
    // `webhooks cgi` answers one request as the CGI binary does.
    std::process::exit(webhooks::cli::main(webhooks::web::routes::main));
}
