//! Signing in and out. The sign-in form carries a token double-submitted in a cookie of its
//! own (there is no session yet to hold it); a successful sign-in starts a session and sends
//! the person back to the page that asked for it.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_proto::registry::v1 as pr;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, COOKIE, PRE_COOKIE, Person, Tokens};
use super::{PageError, Workbench, finish};
use crate::api::Service;
use crate::api::errors::GatewayError;

/// Where a sign-in may send the person back to: a workbench page, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/work/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/work/login")
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/work/".into(),
    }
}

/// Percent-encodes a path for the `next` query parameter.
pub fn encode_next(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

fn render(
    wb: &Workbench,
    status: StatusCode,
    headers: &HeaderMap,
    next: &str,
    login: &str,
    error: Option<String>,
) -> Response {
    let token = session::random_token();
    let mut res = wb.0.views.html(
        status,
        "login.html",
        &json!({ "csrf": token, "next": next, "login": login, "error": error }),
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(PRE_COOKIE, &token, session::over_tls(headers), None),
    );
    res
}

pub async fn form(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if wb.0.sessions.find(&headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    render(&wb, StatusCode::OK, &headers, &next, "", None)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

pub async fn submit(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let pre = session::cookie(&headers, PRE_COOKIE);
    if !pre.is_some_and(|p| session::same_token(&p, &f.csrf)) {
        return finish(&wb, Err(PageError::BadFormToken));
    }
    let answer: Result<pr::LoginResponse, GatewayError> = wb
        .gateway()
        .unary(
            Service::Registry,
            "Login",
            &HeaderMap::new(),
            pr::LoginRequest {
                login: f.login.clone(),
                password: f.password,
            },
        )
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(GatewayError::Status { status, .. })
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated
                    | tonic::Code::InvalidArgument
                    | tonic::Code::PermissionDenied
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::ResourceExhausted
            ) =>
        {
            return render(
                &wb,
                StatusCode::UNAUTHORIZED,
                &headers,
                &next,
                &f.login,
                Some(status.message().to_string()),
            );
        }
        Err(e) => return finish(&wb, Err(e.into())),
    };
    let person = answer.account.as_ref().map(Person::from_account);
    let (Some(Ok(person)), Some(tokens)) = (person, Tokens::from_login(&answer)) else {
        tracing::error!(service = "web", login = %f.login, "a sign-in answer could not be read");
        return finish(
            &wb,
            Err(PageError::Unavailable(
                "the registry's sign-in answer".into(),
            )),
        );
    };
    tracing::info!(service = "web", login = %person.login, role = %person.principal.role, "signed in to the workbench");
    let (id, _) = wb.0.sessions.start(person, tokens);
    let secure = session::over_tls(&headers);
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(COOKIE, &id, secure, None),
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(PRE_COOKIE, "", secure, Some(0)),
    );
    res
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Form(f): Form<SignOutForm>,
) -> Response {
    let result = async {
        let caller = wb.caller(&headers, "/work/").await?;
        caller.check_form(f.csrf.as_deref())?;
        if let Some(session) = wb.0.sessions.end(&caller.id) {
            let refresh = session.tokens.lock().await.refresh.clone();
            // The refresh token dies with the session; a failure here only leaves it to expire.
            let revoked: Result<pr::LogoutResponse, _> = wb
                .gateway()
                .unary(
                    Service::Registry,
                    "Logout",
                    &caller.auth,
                    pr::LogoutRequest {
                        refresh_token: refresh,
                    },
                )
                .await;
            if let Err(e) = revoked {
                tracing::warn!(service = "web", error = %e, "signing out could not revoke the refresh token");
            }
        }
        let mut res = Redirect::to("/work/login").into_response();
        res.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(COOKIE, "", session::over_tls(&headers), Some(0)),
        );
        Ok(res)
    }
    .await;
    finish(&wb, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_workbench_pages() {
        assert_eq!(
            safe_next(Some("/work/review?state=1")),
            "/work/review?state=1"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/work/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/work/");
        assert_eq!(safe_next(Some("/work/login")), "/work/");
        assert_eq!(safe_next(None), "/work/");
        assert_eq!(encode_next("/work/x?a=1&b=2"), "/work/x%3Fa%3D1%26b%3D2");
    }
}
