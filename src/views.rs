//! Server-rendered HTML with Tera. Templates are compiled into the binary (so a CGI never fails
//! on a missing file) from `templates/`; Tera escapes every value by default.

use std::sync::OnceLock;

use tera::{Context, Tera};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("index.html", include_str!("../templates/index.html")),
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

pub fn error_page(status: u16, message: &str) -> String {
    let mut ctx = Context::new();
    ctx.insert("status", &status);
    ctx.insert("reason", crate::cgi::reason(status));
    ctx.insert("message", message);
    render("error.html", &ctx).unwrap_or_else(|_| format!("{status} {}", crate::cgi::reason(status)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_compile_and_escape() {
        let html = super::error_page(404, "<script>alert(1)</script>");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
