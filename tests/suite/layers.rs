//! The layers of `src/` (docs/architecture.md): every module's `crate::` and `super::` paths, read
//! from the source, must point down the layers (model < config, store < outbound < inbound <
//! web, cli), with no cycle between modules anywhere; only `store/` names rusqlite or writes
//! SQL; and only the engine files name an engine.
//! `cargo test --test suite layers:: -- --nocapture` prints the folder graph and the files with SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The rank of each folder: a module may use modules of its own folder and of lower ranks.
/// `config` and `store` share a rank so that neither uses the other; so do `web` and `cli` (the
/// `webhooks` binary hands the CLI the CGI's entry point).
fn rank(folder: &str) -> Option<u8> {
    Some(match folder {
        "model" => 0,
        "config" | "store" => 1,
        "outbound" => 2,
        "inbound" => 3,
        "web" | "cli" => 4,
        _ => return None,
    })
}

/// Every module (`store/claim`, `store` for `store/mod.rs`, `config`) with its source, test
/// modules cut off (tests may reach anywhere).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace(".rs", "");
            if rel == "lib" {
                continue;
            }
            let name = rel.strip_suffix("/mod").unwrap_or(&rel).to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(name, code);
        }
    }
    out
}

/// The paths after `crate::` or `super::`, with `{a, b::{c}}` groups expanded.
fn paths(code: &str, prefix: &str) -> Vec<Vec<String>> {
    fn parse(chars: &[char], i: &mut usize, base: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = base;
        loop {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
            if *i < chars.len() && chars[*i] == '{' {
                *i += 1;
                loop {
                    parse(chars, i, path.clone(), out);
                    while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
                        *i += 1;
                    }
                    if *i >= chars.len() || chars[*i] == '}' {
                        *i += 1;
                        return;
                    }
                }
            }
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            let ident: String = chars[start..*i].iter().collect();
            if !ident.is_empty() && ident != "self" {
                path.push(ident);
            }
            if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
                *i += 2;
                continue;
            }
            out.push(path);
            return;
        }
    }
    let chars: Vec<char> = code.chars().collect();
    let pat: Vec<char> = prefix.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + pat.len() <= chars.len() {
        let before_ok = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        if before_ok && chars[i..i + pat.len()] == pat[..] {
            i += pat.len();
            parse(&chars, &mut i, Vec::new(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// `pub use name::{A, B};` in a folder's `mod.rs`: which module each re-exported name is from.
fn reexports(mods: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, code) in mods {
        for line in code.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
            if line.starts_with("crate::") {
                continue;
            }
            for p in paths(&format!("crate::{line}"), "crate::") {
                if p.len() == 2 {
                    out.insert(format!("{name}/{}", p[1]), format!("{name}/{}", p[0]));
                }
            }
        }
    }
    out
}

/// The module edges (from, to) of the crate.
fn edges(mods: &BTreeMap<String, String>) -> BTreeSet<(String, String)> {
    let re = reexports(mods);
    let resolve = |segments: &[String]| -> Option<String> {
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("/");
            if mods.contains_key(&candidate) {
                let next = segments.get(n).map(|s| format!("{candidate}/{s}"));
                return Some(next.and_then(|k| re.get(&k).cloned()).unwrap_or(candidate));
            }
        }
        None
    };
    let mut out = BTreeSet::new();
    for (name, code) in mods {
        let parent: Vec<String> = name.split('/').map(String::from).collect();
        let mut targets = Vec::new();
        for p in paths(code, "crate::") {
            targets.extend(resolve(&p));
        }
        // `super::` is the enclosing folder's module (none above a top-level folder's `mod.rs`).
        let is_folder = mods.keys().any(|k| k.starts_with(&format!("{name}/")));
        let up = if is_folder { parent.len().saturating_sub(1) } else { parent.len() - 1 };
        if up > 0 {
            for p in paths(code, "super::") {
                let mut full = parent[..up].to_vec();
                full.extend(p);
                targets.extend(resolve(&full));
            }
        }
        for t in targets {
            if t != *name {
                out.insert((name.clone(), t));
            }
        }
    }
    out
}

fn folder(module: &str) -> &str {
    module.split('/').next().unwrap()
}

#[test]
fn every_path_points_down_the_layers() {
    let mods = modules();
    assert!(mods.len() > 30 && mods.contains_key("store/queue"), "the source was read: {:?}", mods.keys());
    let mut wrong = Vec::new();
    let mut folders: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (from, to) in edges(&mods) {
        let (a, b) = (folder(&from), folder(&to));
        let (ra, rb) = (rank(a).unwrap_or_else(|| panic!("{a} is not a layer")), rank(b).unwrap());
        if a != b {
            *folders.entry((a.to_string(), b.to_string())).or_default() += 1;
            if rb >= ra {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    println!("folder -> folder (module edges):");
    for ((a, b), n) in &folders {
        println!("  {a} -> {b} ({n})");
    }
    assert!(wrong.is_empty(), "paths that point up or sideways: {wrong:#?}");
    assert!(folders.contains_key(&("web".into(), "store".into())), "edges were found");
}

#[test]
fn no_module_imports_itself_in_a_cycle() {
    let mods = modules();
    let edges = edges(&mods);
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &edges {
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    // Depth-first search; a node met again while on the stack closes a cycle.
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for &m in next.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            match state.get(m) {
                Some(1) => {
                    let at = stack.iter().position(|s| *s == m).unwrap();
                    cycles.push(format!("{} -> {m}", stack[at..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(m, next, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
    for m in mods.keys() {
        if !state.contains_key(m.as_str()) {
            visit(m, &next, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(edges.len() > 100, "the graph was read: {} edges", edges.len());
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn only_the_store_names_rusqlite_or_writes_sql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sql = ["rusqlite", "SELECT ", "INSERT INTO", "DELETE FROM", "PRAGMA ", "UPDATE ", "last_insert_rowid"];
    let mut with_sql = BTreeSet::new();
    for (name, _) in modules() {
        let file =
            if src.join(&name).is_dir() { src.join(&name).join("mod.rs") } else { src.join(format!("{name}.rs")) };
        let text = std::fs::read_to_string(&file).unwrap();
        if sql.iter().any(|s| text.contains(s)) {
            with_sql.insert(name);
        }
    }
    println!("files with SQL: {} ({with_sql:?})", with_sql.len());
    let outside: Vec<&String> = with_sql.iter().filter(|m| folder(m) != "store").collect();
    assert!(outside.is_empty(), "SQL outside store/: {outside:?}");
    assert!(with_sql.contains("store/queue") && with_sql.contains("store/events"), "the check finds SQL");
}

/// The files that say what differs between the engines: the driver, each engine's own file
/// and each engine's queue statements.
const ENGINE_FILES: &[&str] =
    &["store/sql", "store/sqlite", "store/postgres", "store/queue/sqlite", "store/queue/postgres"];

/// The only other files that may name an engine: the store's face, where it is chosen from the
/// location (`Store::open_unmigrated`, `connect`), the location itself (a file or a
/// `postgres://` URL), and `migrate-store`, which copies a SQLite installation into PostgreSQL
/// by definition.
const NAMING_AN_ENGINE: &[&str] = &["store", "model/location", "store/migrate_store"];

/// The code of a module without its comments, string literals and `mod` lines: what it does,
/// not what it says or how its folder is laid out.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == 'r'
            && matches!(chars.get(i + 1), Some('"') | Some('#'))
            && (i == 0 || !chars[i - 1].is_alphanumeric())
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let rest: String = chars[j + 1..].iter().collect();
            i = j
                + 1
                + rest.find(&close).map(|k| rest[..k].chars().count() + close.len()).unwrap_or(rest.chars().count());
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3; // a char literal such as '"'
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.lines()
        .filter(|l| !l.trim_start().starts_with("pub mod ") && !l.trim_start().starts_with("mod "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each module's identifiers that name an engine (`is_postgres`, `Conn::Sqlite`, `rusqlite`,
/// `postgres::…`).
fn engine_names(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let lower = word.to_ascii_lowercase();
        if lower.contains("sqlite") || lower.contains("postgres") {
            found.push(word.to_string());
        }
    }
    found
}

#[test]
fn only_the_engine_files_name_an_engine() {
    let mut naming: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, code) in modules() {
        let names = engine_names(&code_only(&code));
        if !names.is_empty() && !ENGINE_FILES.contains(&name.as_str()) {
            naming.insert(name, names);
        }
    }
    println!("outside the engine files, naming an engine: {naming:?}");
    let unexpected: Vec<&String> = naming.keys().filter(|m| !NAMING_AN_ENGINE.contains(&m.as_str())).collect();
    assert!(unexpected.is_empty(), "files that name an engine outside the engine files: {naming:#?}");
    assert!(NAMING_AN_ENGINE.len() <= 3, "at most three places outside the engine files name an engine");
    assert!(naming.contains_key("store"), "the check finds engine names");
}

#[test]
fn the_engine_check_reads_code_not_words() {
    let code = code_only(
        "// on PostgreSQL\nlet x = \"SQLite\";\npub mod sqlite;\nif store.is_postgres() {}\nlet q = '\"'; Conn::Sqlite(c)",
    );
    assert_eq!(engine_names(&code), vec!["is_postgres", "Sqlite"]);
}

#[test]
fn the_cli_never_uses_the_web() {
    let mods = modules();
    let from_cli: Vec<(String, String)> =
        edges(&mods).into_iter().filter(|(a, b)| folder(a) == "cli" && folder(b) == "web").collect();
    assert!(from_cli.is_empty(), "cli/ uses web/: {from_cli:?}");
    assert!(edges(&mods).iter().any(|(a, b)| folder(a) == "cli" && folder(b) == "store"), "edges were read");
}

#[test]
fn the_path_reader_expands_groups() {
    let got =
        paths("use crate::store::{self, claim::{Claim, Due}, Db};\nlet x = crate::model::time::now_ms();", "crate::");
    let got: Vec<String> = got.iter().map(|p| p.join("::")).collect();
    assert_eq!(got, vec!["store", "store::claim::Claim", "store::claim::Due", "store::Db", "model::time::now_ms"]);
}
