//! `webhooks-cgi`, deployed as `cgi-bin/webhooks.cgi`: one HTTP request per process (RFC 3875).

fn main() {
    std::process::exit(webhooks::cgi::main());
}
