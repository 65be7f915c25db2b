//! The workbench's templates, compiled into the binary and rendered with minijinja. Every
//! template name ends in `.html`, so everything inserted is HTML-escaped unless a template
//! says otherwise (none does).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("tasks.html", include_str!("templates/tasks.html")),
    ("upload.html", include_str!("templates/upload.html")),
    ("evidence.html", include_str!("templates/evidence.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("review.html", include_str!("templates/review.html")),
    ("statistics.html", include_str!("templates/statistics.html")),
    ("explain.html", include_str!("templates/explain.html")),
    ("approve.html", include_str!("templates/approve.html")),
    ("office.html", include_str!("templates/office.html")),
    ("surveys.html", include_str!("templates/surveys.html")),
    (
        "survey_mapping.html",
        include_str!("templates/survey_mapping.html"),
    ),
];

const SCRIPT: &str = include_str!("assets/workbench.js");
const STYLE: &str = include_str!("assets/workbench.css");

/// The workbench's own policy: its script and style only, documents shown in a frame of its
/// own origin, forms posted only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; frame-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Debug)]
pub struct Views {
    env: Environment<'static>,
}

impl Default for Views {
    fn default() -> Self {
        Self::new()
    }
}

impl Views {
    pub fn new() -> Views {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not compile: {e}"));
        }
        Views { env }
    }

    /// An HTML page, or a plain error page when the template fails (logged).
    pub fn html(&self, status: StatusCode, name: &str, ctx: &impl Serialize) -> Response {
        let body = self.env.get_template(name).and_then(|t| t.render(ctx));
        match body {
            Ok(html) => (
                status,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    ),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                    ),
                ],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(service = "web", template = name, error = %e, "a workbench page could not be rendered");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "页面出错 The page could not be shown\n",
                )
                    .into_response()
            }
        }
    }
}

pub async fn script() -> Response {
    crate::asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    crate::asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes_what_people_typed() {
        let views = Views::new();
        let res = views.html(
            StatusCode::OK,
            "error.html",
            &serde_json::json!({"title": "<script>alert(1)</script>", "detail": "a & b", "status": 400}),
        );
        assert_eq!(res.status(), StatusCode::OK);
        let html = views
            .env
            .get_template("error.html")
            .unwrap()
            .render(serde_json::json!({"title": "<script>x</script>", "detail": "", "status": 400}))
            .unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;"), "{html}");
        assert!(!html.contains("<script>x"));
    }
}
