//! `webhooks-cgi`, deployed as `cgi-bin/webhooks.cgi`: one HTTP request per process (RFC 3875).

fn main() {
    // Started by itself after an intake when WEBHOOKS_DISPATCH_ON_INTAKE is on.
    if std::env::args().nth(1).as_deref() == Some(webhooks::web::routes::ON_INTAKE_ARG) {
        std::process::exit(webhooks::web::routes::on_intake_main());
    }
    std::process::exit(webhooks::web::routes::main());
}
