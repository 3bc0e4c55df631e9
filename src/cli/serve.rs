//! `webhooks serve`: a local development server. Each HTTP request runs the CGI as a real CGI
//! process (this same binary with the hidden `cgi` subcommand, so it works when cargo built only
//! `webhooks`), with an RFC 3875 environment and the body on stdin. A background thread runs the
//! dispatcher every few seconds. Not for production: there, Apache runs `webhooks.cgi` and cron
//! runs `webhooks dispatch`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use clap::Args;

use crate::config::Config;
use crate::store::Store;

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// The REMOTE_USER pages are shown as.
    #[arg(long, default_value = "dev")]
    pub user: String,
    /// How often the dispatcher runs.
    #[arg(long, default_value = "5s", value_parser = crate::config::duration_arg)]
    pub dispatch_every: Duration,
}

pub const SCRIPT_NAME: &str = "";

/// What a first run writes into the new `.env` besides the key: a development server exists to
/// try the product against receivers on the same machine, which production refuses.
pub const LOCAL_NETWORKS: &str = "127.0.0.0/8,::1/128";

pub fn run(args: &ServeArgs) -> Result<()> {
    let cfg = match Config::load() {
        Ok(c) if c.env_file.is_some() && c.secret_key.is_some() => c,
        _ => {
            println!("first run: initialising a local .env and database in {}", std::env::current_dir()?.display());
            crate::cli::setup::init_with(
                &[
                    "# Written by `webhooks serve` for local development: deliveries may reach receivers",
                    "# on this machine. Production refuses every non-public address unless listed here.",
                    &format!("WEBHOOKS_ALLOWED_NETWORKS={LOCAL_NETWORKS}"),
                ],
                Some(&format!("http://{}{SCRIPT_NAME}", args.addr)),
            )?;
            Config::load()?
        }
    };
    Store::open(&cfg.database)?;
    let env_file = cfg.env_file.clone().ok_or_else(|| anyhow!("no .env after init"))?;
    let server = tiny_http::Server::http(&args.addr).map_err(|e| anyhow!("cannot listen on {}: {e}", args.addr))?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;

    // The dispatcher reads the configuration afresh before every run, as each cron run does, so
    // an edit of the .env (WEBHOOKS_ALLOWED_NETWORKS, say) applies at the next run.
    let every = args.dispatch_every;
    std::thread::spawn(move || loop {
        match Config::load().and_then(|cfg| crate::outbound::dispatch::run(&cfg)) {
            Ok(s) if s.sent + s.unsent + s.released > 0 => println!("{}", s.line()),
            Ok(_) => {}
            Err(e) => eprintln!("webhooks serve: dispatcher: {e:#}"),
        }
        std::thread::sleep(every);
    });

    println!("QSM Webhooks (development) at http://{}/", args.addr);
    println!("pages are shown as user {:?} (--user); configuration: {}", args.user, env_file.display());
    println!("{}", local_receivers_line(&cfg, &env_file));
    println!("create an API token with: {} token create --app", shell_path(&exe));
    println!("the dispatcher runs every {}s and rereads the .env each time; stop with Ctrl-C", every.as_secs());

    for request in server.incoming_requests() {
        let exe = exe.clone();
        let env_file = env_file.clone();
        let user = args.user.clone();
        let addr = args.addr.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(request, &exe, &env_file, &user, &addr) {
                eprintln!("webhooks serve: {e:#}");
            }
        });
    }
    Ok(())
}

/// Whether endpoints on this machine can be reached, and if not, the line that allows them.
fn local_receivers_line(cfg: &Config, env_file: &Path) -> String {
    let policy = cfg.policy();
    if policy.permits(IpAddr::from([127, 0, 0, 1])) {
        "receivers on this machine (http://127.0.0.1:PORT/…) may be used: WEBHOOKS_ALLOWED_NETWORKS allows them".into()
    } else {
        format!(
            "receivers on this machine are refused: to use one, add WEBHOOKS_ALLOWED_NETWORKS={LOCAL_NETWORKS} to {} (read at once, no restart)",
            env_file.display()
        )
    }
}

/// A path to type at a shell prompt: relative to the current directory when below it (the
/// binary cargo built is not on `PATH`), quoted when it needs to be.
fn shell_path(exe: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|rel| Path::new(".").join(rel)))
        .unwrap_or_else(|| exe.to_path_buf());
    let text = shown.to_string_lossy();
    if text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn handle(mut request: tiny_http::Request, exe: &PathBuf, env_file: &PathBuf, user: &str, addr: &str) -> Result<()> {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    // The body is streamed to the CGI, which enforces its limit while reading (as under Apache):
    // a chunked body has no CONTENT_LENGTH and is read to its end, never held here whole.
    let length = request.body_length();
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "80"));
    let mut cmd = Command::new(exe);
    cmd.arg("cgi")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WEBHOOKS_ENV", env_file)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "webhooks-serve")
        .env("SERVER_NAME", host)
        .env("SERVER_PORT", port)
        .env("REQUEST_METHOD", request.method().as_str())
        .env("SCRIPT_NAME", SCRIPT_NAME)
        .env("PATH_INFO", percent_decode(path))
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default())
        .env("REMOTE_USER", user)
        .env("AUTH_TYPE", "Basic")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for h in request.headers() {
        let name = h.field.as_str().as_str().to_ascii_uppercase().replace('-', "_");
        match name.as_str() {
            "CONTENT_TYPE" => {
                cmd.env("CONTENT_TYPE", h.value.as_str());
            }
            "CONTENT_LENGTH" | "PROXY" => {}
            _ => {
                cmd.env(format!("HTTP_{name}"), h.value.as_str());
            }
        }
    }
    // Pass through the process's WEBHOOKS_* overrides, as a wrapper script would.
    for (k, v) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("WEBHOOKS_") && k != "WEBHOOKS_ENV") {
            cmd.env(k, v);
        }
    }
    if let Some(n) = length {
        cmd.env("CONTENT_LENGTH", n.to_string());
    }
    let mut child = cmd.spawn().context("cannot start the CGI process")?;
    let mut stdin = child.stdin.take().expect("piped");
    let waiter = std::thread::spawn(move || child.wait_with_output());
    // The CGI may answer (413) without reading the whole body: a broken pipe ends the copy.
    let _ = std::io::copy(request.as_reader(), &mut stdin);
    drop(stdin);
    let output = waiter.join().map_err(|_| anyhow!("the CGI waiter panicked"))??;
    let (status, headers, body) = parse_cgi_output(&output.stdout)?;
    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    request.respond(response)?;
    Ok(())
}

/// Splits CGI output into status, headers and body (RFC 3875 section 6).
/// What a CGI wrote: the status, the headers, the body.
pub type CgiOutput = (u16, Vec<(String, String)>, Vec<u8>);

pub fn parse_cgi_output(out: &[u8]) -> Result<CgiOutput> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)))
        .ok_or_else(|| anyhow!("the CGI wrote no header block"))?;
    let head = String::from_utf8_lossy(&out[..split.0]);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("status") {
            status = v.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(500);
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok((status, headers, out[split.1..].to_vec()))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
