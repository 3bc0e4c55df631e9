//! docs/operator.md, run as written: every `sh` block, in order, against a fresh home directory
//! holding the release tarball. `crontab` is a stand-in that keeps the table in a file, so the
//! test can then run the installed line as cron would.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::bin_path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_operator_guide_installs_backs_up_upgrades_and_rotates() {
    let guide = std::fs::read_to_string(repo().join("docs/operator.md")).unwrap();
    let mut script = String::from("set -euo pipefail\n");
    let mut rest = guide.as_str();
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").unwrap();
        script.push_str(&body[..end]);
        rest = &body[end + 3..];
    }
    assert!(script.contains("bin/webhooks init") && script.contains("rotate-key") && script.contains("backup"));

    let home = tempfile::tempdir().unwrap();
    // The release tarball as .ci/release names and packs it, in the home directory.
    let version = env!("CARGO_PKG_VERSION");
    assert!(script.contains(&format!("VERSION={version}\n")), "the guide names this release's version");
    let name = format!("qsm-webhooks-{version}-x86_64-linux-gnu");
    let staging = tempfile::tempdir().unwrap();
    let bin_dir = bin_path("webhooks").parent().unwrap().to_path_buf();
    let packed =
        Command::new(repo().join(".ci/package")).arg(&bin_dir).arg(staging.path().join(&name)).output().unwrap();
    assert!(packed.status.success(), "{}", String::from_utf8_lossy(&packed.stderr));
    let tarball = home.path().join(format!("{name}.tar.gz"));
    let tar = Command::new("tar").arg("-C").arg(staging.path()).arg("-czf").arg(&tarball).arg(&name).output().unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    // A crontab that keeps its table in a file. Like the real one, `-l` fails while there is
    // none, and the new table replaces the old only once read in full: so the guide's
    // `crontab -l | … | crontab -` line meets a user without a crontab every time (it used to
    // race with the writer's truncation and fail only now and then).
    let tools = home.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let table = home.path().join("crontab.txt");
    std::fs::write(
        tools.join("crontab"),
        format!(
            "#!/bin/sh\nif [ \"$1\" = -l ]; then cat '{t}' 2>/dev/null || exit 1; else cat > '{t}.new' && mv '{t}.new' '{t}'; fi\n",
            t = table.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(tools.join("crontab"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let path = format!("{}:{}", tools.display(), std::env::var("PATH").unwrap_or_default());
    // Traced (`-x`, to stderr, shown only on failure): a failing command in the guide's script
    // may print nothing itself (`crontab -l` without a table); the trace names it.
    let out = Command::new("bash")
        .args(["-x", "-c"])
        .arg(&script)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let install = home.path().join("webhooks");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&install), 0o700);
    assert_eq!(mode(&install.join(".env")), 0o600);
    assert_eq!(mode(&install.join("var/webhooks.db")), 0o600);
    let cgi = home.path().join("public_html/cgi-bin/webhooks.cgi");
    assert_eq!(mode(&cgi), 0o755);
    assert!(stdout.contains("token: qsm_"), "{stdout}");
    assert!(
        stdout.contains("ok       database schema is current") && !stdout.contains("PROBLEM"),
        "doctor is satisfied: {stdout}"
    );
    assert!(stdout.contains("re-encrypted 0 endpoint secrets"));
    assert!(std::fs::read_dir(install.join("var")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("backup-")));

    // The installed CGI answers through its wrapper, from the cgi-bin directory, with a bare
    // environment as suexec gives it.
    let page = Command::new(&cgi)
        .env_clear()
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", "/api/v1/event-types")
        .current_dir(cgi.parent().unwrap())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).starts_with("Status: 200 OK"));

    // The crontab line, run as cron would.
    let table = std::fs::read_to_string(&table).unwrap();
    let line = table.lines().find(|l| l.contains("dispatch")).expect("a dispatch line was installed");
    let command = line.splitn(6, ' ').nth(5).unwrap();
    let ran = Command::new("sh").arg("-c").arg(command).env_clear().env("HOME", home.path()).output().unwrap();
    assert!(ran.status.success());
    assert!(std::fs::read_to_string(install.join("var/dispatch.log")).unwrap().starts_with("dispatch run_"));
}
