//! The console's front end, embedded in the binary: one HTML page (a single-page app whose
//! pages are `#/pipes`, `#/pipe/NAME`, `#/create`, `#/instances`), the sign-in page, one
//! stylesheet and plain ES modules (`app.js`, the pages; `chart.js`, inline SVG charts). No
//! JavaScript toolchain builds them and nothing is loaded from elsewhere (see [`CSP`]).

/// Nothing but this origin: no external fonts, scripts or requests; no inline scripts.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");
const SIGN_IN: &str = include_str!("assets/signin.html");

/// The app's page.
pub fn app_page() -> String {
    INDEX.to_string()
}

/// The sign-in page, with `message` (why the last try failed) when there is one.
pub fn sign_in_page(message: Option<&str>) -> String {
    let shown = match message {
        Some(m) => format!(r#"<p class="error" role="alert">{}</p>"#, escape(m)),
        None => String::new(),
    };
    SIGN_IN.replace("<!--message-->", &shown)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A file under `/console/assets/`: its content type, bytes, and whether it is served without
/// a session (the sign-in page's stylesheet only).
pub fn file(name: &str) -> Option<(&'static str, &'static [u8], bool)> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "console.css" => (
            "text/css; charset=utf-8",
            include_bytes!("assets/console.css"),
            true,
        ),
        "app.js" => (JS, include_bytes!("assets/app.js"), false),
        "chart.js" => (JS, include_bytes!("assets/chart.js"), false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_message_is_escaped() {
        let page = sign_in_page(Some("<b>&"));
        assert!(page.contains("&lt;b&gt;&amp;"));
        assert!(!sign_in_page(None).contains("role=\"alert\""));
    }

    #[test]
    fn only_the_stylesheet_is_public() {
        assert!(file("console.css").is_some_and(|f| f.2));
        assert!(file("app.js").is_some_and(|f| !f.2));
        assert!(file("../mod.rs").is_none());
    }
}
