//! Server-rendered HTML with Tera. Templates are compiled into the binary (so a CGI never fails
//! on a missing file) from `templates/`; Tera escapes every value by default.

use std::sync::OnceLock;

use tera::{Context, Tera};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("dashboard.html", include_str!("../templates/dashboard.html")),
    ("endpoints.html", include_str!("../templates/endpoints.html")),
    ("endpoint_fields.html", include_str!("../templates/endpoint_fields.html")),
    ("endpoint_new.html", include_str!("../templates/endpoint_new.html")),
    ("endpoint.html", include_str!("../templates/endpoint.html")),
    ("endpoint_delete.html", include_str!("../templates/endpoint_delete.html")),
    ("deliveries.html", include_str!("../templates/deliveries.html")),
    ("delivery.html", include_str!("../templates/delivery.html")),
    ("tokens.html", include_str!("../templates/tokens.html")),
    ("docs_verify.html", include_str!("../templates/docs_verify.html")),
    ("signed_out.html", include_str!("../templates/signed_out.html")),
];

fn tera() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = Tera::default();
        t.add_raw_templates(TEMPLATES.to_vec()).expect("templates compile (tested)");
        t.autoescape_on(vec![".html"]);
        t
    })
}

pub fn render(name: &str, ctx: &Context) -> anyhow::Result<String> {
    Ok(tera().render(name, ctx)?)
}

/// A page for an error, without navigation (it may be shown to someone not signed in).
pub fn error_page(status: u16, message: &str, base: &str) -> String {
    let mut ctx = Context::new();
    ctx.insert("base", base);
    ctx.insert("title", crate::cgi::reason(status));
    ctx.insert("status", &status);
    ctx.insert("reason", crate::cgi::reason(status));
    ctx.insert("message", message);
    render("error.html", &ctx).unwrap_or_else(|_| format!("{status} {}", crate::cgi::reason(status)))
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
    fn templates_compile_and_escape() {
        let html = super::error_page(404, "<script>alert(1)</script>", "/x");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
