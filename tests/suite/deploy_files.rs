//! The files an operator copies stay true to the code: `.env.example` lists every key with its
//! default, the cgi-bin wrapper runs the CGI, the crontab line runs the dispatcher.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::{bin_path, Env};
use webhooks::config::KEYS;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn env_example_lists_every_key_with_its_default_and_a_comment() {
    let text = repo(".env.example");
    let lines: Vec<&str> = text.lines().collect();
    let assignments: Vec<(usize, &str, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && l.contains('='))
        .map(|(i, l)| {
            let (k, v) = l.split_once('=').unwrap();
            (i, k, v)
        })
        .collect();
    let keys: Vec<&str> = assignments.iter().map(|(_, k, _)| *k).collect();
    let expected: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(keys, expected, ".env.example and config::KEYS list the same keys in the same order");
    for (i, key, value) in assignments {
        let k = KEYS.iter().find(|k| k.name == key).unwrap();
        assert_eq!(value.trim_matches('"'), k.default, "{key}: default in .env.example (quotes are .env syntax)");
        assert!(lines[i - 1].starts_with('#'), "{key} has a comment above it");
    }
    // And the example, as a file, loads to exactly the defaults.
    let raw = webhooks::config::read_env_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example")).unwrap();
    let from_example = webhooks::config::Config::from_raw(&raw, None, "/x".into()).unwrap();
    let defaults = webhooks::config::Config::from_raw(&Default::default(), None, "/x".into()).unwrap();
    assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
}

#[test]
fn the_cgi_wrapper_runs_the_cgi_with_its_configuration() {
    let env = Env::new();
    env.init();
    let install = env.dir.path();
    std::fs::create_dir_all(install.join("bin")).unwrap();
    common::copy_program(&bin_path("webhooks-cgi"), &install.join("bin/webhooks-cgi"));
    let wrapper = repo("cgi-bin/webhooks.cgi").replace("/home/USER/webhooks", &install.to_string_lossy());
    let cgi_dir = tempfile::tempdir().unwrap();
    let script = cgi_dir.path().join("webhooks.cgi");
    std::fs::write(&script, wrapper).unwrap();
    let out = Command::new("sh")
        .arg(&script)
        .env_clear()
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", "/")
        .env("REMOTE_USER", "alice")
        .current_dir(cgi_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 200 OK"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("<h1>Dashboard</h1>") && text.contains("Waiting deliveries"), "{text}");
}

#[test]
fn the_crontab_line_runs_a_dispatch() {
    let env = Env::new();
    env.init();
    let install = env.dir.path();
    std::fs::create_dir_all(install.join("bin")).unwrap();
    common::copy_program(&bin_path("webhooks"), &install.join("bin/webhooks"));
    let line =
        repo("crontab.example").lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().to_string();
    // The line `doctor` and the dashboard print is this same line.
    let mut cfg = webhooks::config::Config::from_raw(&Default::default(), None, "/home/USER/webhooks".into()).unwrap();
    assert_eq!(cfg.cron_line(), line, "crontab.example and Config::cron_line say the same");
    cfg.root = install.to_path_buf();
    let command = cfg.cron_line().splitn(6, ' ').nth(5).unwrap().to_string();
    // cron gives a bare environment.
    let out = Command::new("sh").arg("-c").arg(&command).env_clear().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(install.join("var/dispatch.log")).unwrap();
    assert!(log.starts_with("dispatch run_"), "{log}");
    assert_eq!(env.count("runs"), 1);
}

#[test]
fn htaccess_passes_authorization_and_denies_everything_else() {
    // The directives of each file, without comments: (outside the webhooks.cgi block, inside it).
    let directives = |path: &str| -> (Vec<String>, Vec<String>) {
        let text = repo(path);
        let lines: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
        let start = lines
            .iter()
            .position(|l| l == "<Files \"webhooks.cgi\">")
            .unwrap_or_else(|| panic!("{path}: no webhooks.cgi block"));
        let end = start + lines[start..].iter().position(|l| l == "</Files>").unwrap();
        let inside = lines[start + 1..end].to_vec();
        let outside = lines[..start].iter().chain(&lines[end + 1..]).cloned().collect();
        (outside, inside)
    };
    let (common, open) = directives("cgi-bin/.htaccess");
    let (common_pw, protected) = directives("cgi-bin/.htaccess-password");
    for needed in ["CGIPassAuth On", "<FilesMatch \".*\">", "Require all denied"] {
        assert!(common.iter().any(|l| l == needed), "{needed}");
    }
    assert_eq!(common, common_pw, "the two options differ only in who may reach webhooks.cgi");
    assert_eq!(open, vec!["Require all granted"]);
    assert!(protected.contains(&"Require valid-user".to_string()) && protected.contains(&"<RequireAny>".to_string()));
    let exprs: Vec<&String> = protected.iter().filter(|l| l.starts_with("Require expr")).collect();
    assert_eq!(exprs.len(), 2, "{protected:?}");
    assert!(exprs.iter().all(|e| !e.contains('\\')), "no backslash in an expression: {exprs:?}");
    let path_expr = exprs[0];
    for path in ["api/", "in/", "login(/check|/continue)?$", "static/"] {
        assert!(path_expr.contains(path), "{path_expr}");
    }
}

#[test]
fn docs_list_every_key_failure_code_and_event_type() {
    let config = repo("docs/configuration.md");
    for k in KEYS {
        let default = if k.default.is_empty() { String::new() } else { format!("`{}`", k.default) };
        let row = config.lines().find(|l| l.starts_with(&format!("| `{}` |", k.name)));
        let row = row.unwrap_or_else(|| panic!("docs/configuration.md lacks {}", k.name));
        assert!(row.contains(&default), "{}: default {default} not in {row}", k.name);
    }
    let trouble = repo("docs/troubleshooting.md");
    for code in webhooks::model::delivery::FailureCode::ALL {
        let (code, meaning) = (code.as_str(), code.meaning());
        let row = trouble.lines().find(|l| l.starts_with(&format!("| `{code}` |")));
        let row = row.unwrap_or_else(|| panic!("troubleshooting lacks {code}"));
        let columns: Vec<String> = row.split(" | ").map(|c| c.replace('`', "")).collect();
        assert_eq!(columns[1], meaning, "{code}: the docs and FailureCode::meaning say the same");
        assert!(columns.len() == 3 && columns[2].len() > 10, "{code} says what to do");
    }
    let inbound = repo("docs/inbound.md");
    for reason in webhooks::model::inbound::Reason::ALL {
        let row = inbound.lines().find(|l| l.starts_with(&format!("| `{}` |", reason.as_str())));
        let row = row.unwrap_or_else(|| panic!("docs/inbound.md lacks the reject reason {}", reason.as_str()));
        let columns: Vec<String> = row.split(" | ").map(|c| c.replace('`', "")).collect();
        assert_eq!(
            columns[1],
            reason.meaning().replace('`', ""),
            "{}: the docs and Reason::meaning say the same",
            reason.as_str()
        );
        assert!(columns[2].starts_with(&reason.status().to_string()), "{}: the docs give its status", reason.as_str());
    }
    for p in webhooks::model::inbound::Provider::ALL {
        assert!(inbound.contains(&format!("| `{p}` |")), "docs/inbound.md lacks {p}");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/inbound/{p}.md")).exists(),
            "docs/inbound/{p}.md"
        );
    }
    let types = repo("docs/event-types.md");
    for t in webhooks::model::schema::catalog() {
        assert!(types.contains(&format!("## `{}`", t.name)), "event-types lacks {}", t.name);
        for f in t.data_schema()["required"].as_array().unwrap() {
            assert!(types.contains(&format!("**`{}`**", f.as_str().unwrap())));
        }
    }
}

/// `.ci/release` keeps its tools inside the checkout: Python packages only into a virtual
/// environment under `target/` (Debian 12's own python3 refuses `pip install` outside one), Zig
/// and cargo-zigbuild among them, nothing with `cargo install` into the user's home.
#[test]
fn the_release_script_installs_its_tools_under_target_only() {
    let script = repo(".ci/release");
    let venv_python = "\"$tools/venv/bin/python3\"";
    assert!(script.contains("tools=\"$PWD/target/ci/release-tools\""), "{script}");
    assert!(script.contains("python3 -m venv \"$tools/venv\""), "{script}");
    for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if line.contains("pip install") {
            assert!(line.trim_start().starts_with(venv_python), "pip outside the venv: {line}");
        }
        assert!(!line.contains("cargo install"), "a tool installed outside the venv: {line}");
    }
    assert!(
        script.lines().any(|l| l.contains("pip install") && l.contains("ziglang") && l.contains("cargo-zigbuild")),
        "Zig and cargo-zigbuild come into the venv: {script}"
    );
}
