//! Server-rendered HTML with Tera. Templates are compiled into the binary (so a CGI never fails
//! on a missing file) from `templates/`; Tera escapes every value by default.

use tera::{Context, Tera};

use crate::model::{Error, Result};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("endpoints.html", include_str!("../../templates/endpoints.html")),
    ("endpoint_fields.html", include_str!("../../templates/endpoint_fields.html")),
    ("endpoint_new.html", include_str!("../../templates/endpoint_new.html")),
    ("endpoint.html", include_str!("../../templates/endpoint.html")),
    ("endpoint_delete.html", include_str!("../../templates/endpoint_delete.html")),
    ("deliveries.html", include_str!("../../templates/deliveries.html")),
    ("delivery.html", include_str!("../../templates/delivery.html")),
    ("tokens.html", include_str!("../../templates/tokens.html")),
    ("docs_verify.html", include_str!("../../templates/docs_verify.html")),
    ("signed_out.html", include_str!("../../templates/signed_out.html")),
    ("cookies_blocked.html", include_str!("../../templates/cookies_blocked.html")),
    ("sources.html", include_str!("../../templates/sources.html")),
    ("source_new.html", include_str!("../../templates/source_new.html")),
    ("source.html", include_str!("../../templates/source.html")),
    ("inbound_request.html", include_str!("../../templates/inbound_request.html")),
];

/// The templates `name` needs: itself, the base it extends, and what it includes.
fn needed(name: &str) -> Vec<(&'static str, &'static str)> {
    let includes: &[&str] = match name {
        "endpoint_new.html" | "endpoint.html" => &["endpoint_fields.html"],
        _ => &[],
    };
    TEMPLATES.iter().filter(|(n, _)| *n == name || *n == "base.html" || includes.contains(n)).copied().collect()
}

/// Parses the templates page `name` needs. Each CGI process renders one page, so only those are
/// parsed (parsing all of them would cost more than the rendering). Public so the benchmark can
/// show what parsing costs a page.
pub fn compile(name: &str) -> Result<Tera> {
    let mut t = Tera::default();
    t.autoescape_on(vec![".html"]);
    t.add_raw_templates(needed(name)).map_err(|e| Error::internal(&format!("template {name}"), e))?;
    Ok(t)
}

/// Renders one page.
pub fn render(name: &str, ctx: &Context) -> Result<String> {
    compile(name)?.render(name, ctx).map_err(|e| Error::internal(&format!("rendering {name}"), e))
}

/// A page for an error, without navigation (it may be shown to someone not signed in).
pub fn error_page(status: u16, message: &str, base: &str) -> String {
    error_page_for(status, message, base, None, &Look::default())
}

/// How a page looks: framed by the host application (`embed`: without the product's header)
/// and with the host's stylesheet (`theme`: its version, for the URL), or neither.
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub embed: bool,
    pub theme: Option<String>,
}

impl Look {
    pub fn insert(&self, ctx: &mut Context) {
        ctx.insert("embed", &self.embed);
        ctx.insert("theme", &self.theme);
    }
}

/// Who sees an error page when they are signed in: their name, whether they are an admin, and
/// the CSRF token of the sign-out form. With it, the page has the navigation of every page.
pub struct SignedIn<'a> {
    pub user: &'a str,
    pub admin: bool,
    pub csrf: &'a str,
}

/// A page for an error, with the navigation when the viewer is signed in.
pub fn error_page_for(status: u16, message: &str, base: &str, viewer: Option<SignedIn<'_>>, look: &Look) -> String {
    let mut ctx = Context::new();
    look.insert(&mut ctx);
    if let Some(v) = viewer {
        ctx.insert("viewer", &serde_json::json!({"user": v.user, "admin": v.admin}));
        ctx.insert("csrf", v.csrf);
        ctx.insert("nav", "");
    }
    ctx.insert("base", base);
    ctx.insert("title", crate::web::cgi::reason(status));
    ctx.insert("status", &status);
    ctx.insert("reason", crate::web::cgi::reason(status));
    ctx.insert("message", message);
    render("error.html", &ctx).unwrap_or_else(|_| format!("{status} {}", crate::web::cgi::reason(status)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut on_disk: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        on_disk.sort();
        let mut listed: Vec<String> = super::TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn every_template_compiles_with_what_it_needs() {
        for (name, _) in super::TEMPLATES {
            let t = super::compile(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(t.get_template_names().any(|n| n == *name), "{name} is not among what it compiled");
        }
    }

    #[test]
    fn error_pages_render_with_and_without_a_viewer() {
        let signed_in = super::SignedIn { user: "alice", admin: false, csrf: "t" };
        let html = super::error_page_for(404, "gone", "/x", Some(signed_in), &super::Look::default());
        assert!(html.contains("<h1>404 Not Found</h1>") && html.contains("<span>alice</span>"), "{html}");
        let html = super::error_page(404, "gone", "/x");
        assert!(html.contains("<h1>404 Not Found</h1>") && !html.contains("<nav"), "{html}");
    }

    #[test]
    fn templates_compile_and_escape() {
        let html = super::error_page(404, "<script>alert(1)</script>", "/x");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
