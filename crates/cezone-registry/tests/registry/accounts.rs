//! People's accounts over real gRPC, on SQLite and PostgreSQL: created, listed, disabled and
//! reset by the office; signing in without a token, the access token good on other calls, the
//! same answer for an unknown login and a wrong password, the lockout, disabled accounts,
//! refresh tokens rotated and ended, who may manage accounts, and bad input named by field.

use cezone_domain::access::{Principal, Role};
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, as_role};
use cezone_proto::common::v1::{
    CommunityType, ListAuditRequest, OrgLevel, PageRequest, RegionClass,
};
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

use super::{TestApp, spawn_app, unit};

const PASSWORD: &str = "长城 long passphrase";
const WRONG: &str = "the login or the password is wrong";

fn account(login: &str, role: &str) -> pr::CreateAccountRequest {
    pr::CreateAccountRequest {
        login: login.into(),
        display_name: "李伟".into(),
        role: role.into(),
        password: PASSWORD.into(),
        ..Default::default()
    }
}

async fn client_as(t: &TestApp, bearer: &Bearer) -> RegistryServiceClient<AuthChannel> {
    RegistryServiceClient::new(cezone_client::connect(&t.app.url(), bearer).await.unwrap())
}

async fn with_token(t: &TestApp, token: &str) -> RegistryServiceClient<AuthChannel> {
    client_as(t, &Bearer::token(token).unwrap()).await
}

/// A client sending no token at all.
async fn anonymous(t: &TestApp) -> RegistryServiceClient<tonic::transport::Channel> {
    RegistryServiceClient::new(cezone_client::connect_plain(&t.app.url()).await.unwrap())
}

async fn login(
    t: &TestApp,
    login: &str,
    password: &str,
) -> Result<pr::LoginResponse, tonic::Status> {
    anonymous(t)
        .await
        .login(pr::LoginRequest {
            login: login.into(),
            password: password.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn refresh(t: &TestApp, token: &str) -> Result<pr::LoginResponse, tonic::Status> {
    anonymous(t)
        .await
        .refresh(pr::RefreshRequest {
            refresh_token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn accounts(t: &mut TestApp) -> Vec<pr::Account> {
    t.client
        .list_accounts(pr::ListAccountsRequest { page: None })
        .await
        .unwrap()
        .into_inner()
        .accounts
}

fn field(e: &tonic::Status) -> String {
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    violations(e)
        .first()
        .map(|(f, _)| f.clone())
        .unwrap_or_default()
}

async fn accounts_are_created_listed_disabled_and_reset(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let a = t
        .client
        .create_account(account(" li.wei ", "inspector"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.login, "li.wei");
    assert_eq!(a.display_name, "李伟");
    assert_eq!(a.role, "inspector");
    assert!(a.active && a.last_login_at.is_empty() && a.locked_until.is_empty());
    assert!(!format!("{a:?}").contains("passphrase"));
    let err = t
        .client
        .create_account(account("li.wei", "inspector"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let mut finance = account("财政局.张", "responsible_unit");
    finance.unit = "finance".into();
    t.client.create_account(finance).await.unwrap();

    // The password is stored as an argon2id PHC string, and only so.
    let row = t
        .app
        .db
        .query_one(Statement::from_string(
            t.app.db.get_database_backend(),
            "SELECT password_hash FROM registry_accounts WHERE login = 'li.wei'".to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    let hash: String = row.try_get("", "password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("passphrase"));

    // Listed by login, paged.
    let all = accounts(&mut t).await;
    assert_eq!(
        all.iter().map(|a| a.login.as_str()).collect::<Vec<_>>(),
        ["li.wei", "财政局.张"]
    );
    assert_eq!(all[1].unit, "finance");
    let first = t
        .client
        .list_accounts(pr::ListAccountsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.accounts.len(), 1);
    let next = first.page.unwrap().next_page_token;
    assert!(!next.is_empty());
    let second = t
        .client
        .list_accounts(pr::ListAccountsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: next,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.accounts[0].login, "财政局.张");

    // Disabled: listed as such, and cannot sign in even with the right password.
    login(&t, "li.wei", PASSWORD).await.unwrap();
    let d = t
        .client
        .disable_account(pr::DisableAccountRequest {
            login: "li.wei".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!d.active);
    let err = login(&t, "li.wei", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("disabled"), "{err:?}");
    assert!(!accounts(&mut t).await[0].active);
    let err = t
        .client
        .disable_account(pr::DisableAccountRequest {
            login: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Enabled again: it signs in with its password as it was; enabling twice changes nothing.
    for _ in 0..2 {
        let e = t
            .client
            .enable_account(pr::EnableAccountRequest {
                login: "li.wei".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(e.active);
    }
    login(&t, "li.wei", PASSWORD).await.unwrap();
    t.client
        .disable_account(pr::DisableAccountRequest {
            login: "li.wei".into(),
        })
        .await
        .unwrap();
    let err = t
        .client
        .enable_account(pr::EnableAccountRequest {
            login: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // A reset: a short password is refused by field; a good one is set.
    let err = t
        .client
        .reset_password(pr::ResetPasswordRequest {
            login: "财政局.张".into(),
            new_password: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field(&err), "new_password");
    t.client
        .reset_password(pr::ResetPasswordRequest {
            login: "财政局.张".into(),
            new_password: "another passphrase".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        login(&t, "财政局.张", PASSWORD)
            .await
            .unwrap_err()
            .message(),
        WRONG
    );
    login(&t, "财政局.张", "another passphrase").await.unwrap();

    // Every change audited, by whom, and never a password.
    let audit = t
        .client
        .list_audit(ListAuditRequest {
            action: "account.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    for action in [
        "account.create",
        "account.disable",
        "account.enable",
        "account.reset_password",
        "account.login",
        "account.login_failed",
    ] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action} missing: {audit:#?}"
        );
    }
    let create = audit.iter().find(|e| e.action == "account.create").unwrap();
    assert!(create.actor.contains("evaluation_office"), "{create:?}");
    for e in &audit {
        assert!(
            !e.details_json.contains("passphrase") && !e.details_json.contains("argon2"),
            "{e:?}"
        );
    }
    t.app.stop().await;
}

async fn a_person_signs_in_without_a_token_and_the_token_works(backend: Backend) {
    let mut t = spawn_app(backend).await;
    t.client
        .create_account(account("li.wei", "inspector"))
        .await
        .unwrap();
    let pair = login(&t, "li.wei", PASSWORD).await.unwrap();
    let a = pair.account.as_ref().unwrap();
    assert_eq!(a.role, "inspector");
    assert!(!a.last_login_at.is_empty());
    assert!(!pair.refresh_token.is_empty() && !pair.refresh_expires_at.is_empty());
    // A short-lived token for the account's principal, the login name its subject.
    let who = t._env.keys().verify(&pair.access_token).unwrap();
    assert_eq!(
        who,
        Principal::new("li.wei", Role::Inspector, None, None).unwrap()
    );
    let expires = chrono::DateTime::parse_from_rfc3339(&pair.expires_at).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((13..=15).contains(&minutes), "{minutes}");

    // Good on other calls, with the account's role: an inspector reads but manages nothing.
    let mut me = with_token(&t, &pair.access_token).await;
    me.list_org_units(pr::ListOrgUnitsRequest::default())
        .await
        .unwrap();
    me.list_frameworks(pr::ListFrameworksRequest { page: None })
        .await
        .unwrap();
    let err = me
        .list_accounts(pr::ListAccountsRequest { page: None })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("li.wei"), "{err:?}");

    // An unknown login and a wrong password: one answer.
    let wrong = login(&t, "li.wei", "not the passphrase").await.unwrap_err();
    let unknown = login(&t, "nobody", "not the passphrase").await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), WRONG);
    assert_eq!(unknown.message(), WRONG);
    // Bad input is named, before anything is looked up.
    assert_eq!(
        field(&login(&t, "  ", PASSWORD).await.unwrap_err()),
        "login"
    );
    assert_eq!(
        field(&login(&t, "li.wei", "").await.unwrap_err()),
        "password"
    );

    // Exactly Login and Refresh pass without a token.
    let mut nobody = anonymous(&t).await;
    for err in [
        nobody
            .list_accounts(pr::ListAccountsRequest { page: None })
            .await
            .unwrap_err(),
        nobody
            .create_account(account("x.y", "inspector"))
            .await
            .unwrap_err(),
        nobody
            .logout(pr::LogoutRequest {
                refresh_token: pair.refresh_token.clone(),
            })
            .await
            .unwrap_err(),
        nobody
            .list_org_units(pr::ListOrgUnitsRequest::default())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    assert_eq!(accounts(&mut t).await.len(), 1);
    t.app.stop().await;
}

async fn five_failures_lock_the_account_even_against_the_right_password(backend: Backend) {
    let mut t = spawn_app(backend).await;
    t.client
        .create_account(account("li.wei", "inspector"))
        .await
        .unwrap();
    t.client
        .create_account(account("wang.fang", "inspector"))
        .await
        .unwrap();

    // Failures must be in a row: a success starts the count again.
    for _ in 0..3 {
        login(&t, "wang.fang", "not the passphrase")
            .await
            .unwrap_err();
    }
    login(&t, "wang.fang", PASSWORD).await.unwrap();
    for _ in 0..4 {
        login(&t, "wang.fang", "not the passphrase")
            .await
            .unwrap_err();
    }
    login(&t, "wang.fang", PASSWORD).await.unwrap();

    for i in 1..=5 {
        let err = login(&t, "li.wei", "not the passphrase").await.unwrap_err();
        assert_eq!(err.message(), WRONG, "failure {i}");
    }
    let right = login(&t, "li.wei", PASSWORD).await.unwrap_err();
    let wrong = login(&t, "li.wei", "not the passphrase").await.unwrap_err();
    assert_eq!(right.code(), Code::Unauthenticated);
    assert!(right.message().contains("locked until"), "{right:?}");
    // Locked: the answer does not tell a right password from a wrong one.
    assert_eq!(right.message(), wrong.message());
    let listed = accounts(&mut t).await;
    let li = listed.iter().find(|a| a.login == "li.wei").unwrap();
    assert_eq!(li.failed_attempts, 5);
    assert!(!li.locked_until.is_empty());
    let until = chrono::DateTime::parse_from_rfc3339(&li.locked_until).unwrap();
    let minutes = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((13..=15).contains(&minutes), "{minutes}");

    // A reset unlocks.
    t.client
        .reset_password(pr::ResetPasswordRequest {
            login: "li.wei".into(),
            new_password: "a fresh passphrase".into(),
        })
        .await
        .unwrap();
    let pair = login(&t, "li.wei", "a fresh passphrase").await.unwrap();
    assert_eq!(pair.account.unwrap().failed_attempts, 0);

    let audit = t
        .client
        .list_audit(ListAuditRequest {
            action: "account.login_failed".into(),
            target: "li.wei".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(audit.len(), 7, "{audit:#?}");
    assert!(audit.iter().any(|e| e.details_json.contains("locked")));
    t.app.stop().await;
}

async fn refresh_tokens_rotate_and_end(backend: Backend) {
    let mut t = spawn_app(backend).await;
    t.client
        .create_account(account("li.wei", "inspector"))
        .await
        .unwrap();
    t.client
        .create_account(account("wang.fang", "inspector"))
        .await
        .unwrap();
    let first = login(&t, "li.wei", PASSWORD).await.unwrap();
    let second = refresh(&t, &first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.account.as_ref().unwrap().login, "li.wei");
    with_token(&t, &second.access_token)
        .await
        .list_org_units(pr::ListOrgUnitsRequest::default())
        .await
        .unwrap();
    // The old one stopped working with its first use.
    let err = refresh(&t, &first.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(field(&refresh(&t, " ").await.unwrap_err()), "refresh_token");
    assert_eq!(
        refresh(&t, "not-a-token").await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // Someone else's refresh token is not theirs to end.
    let theirs = login(&t, "wang.fang", PASSWORD).await.unwrap();
    let err = with_token(&t, &theirs.access_token)
        .await
        .logout(pr::LogoutRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Signing out ends it.
    let mut me = with_token(&t, &second.access_token).await;
    let out = me
        .logout(pr::LogoutRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(out.revoked);
    assert!(refresh(&t, &second.refresh_token).await.is_err());
    let again = me
        .logout(pr::LogoutRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.revoked);

    // A disabled account cannot refresh.
    let pair = login(&t, "wang.fang", PASSWORD).await.unwrap();
    t.client
        .disable_account(pr::DisableAccountRequest {
            login: "wang.fang".into(),
        })
        .await
        .unwrap();
    let err = refresh(&t, &pair.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    t.app.stop().await;
}

async fn only_the_office_and_district_it_manage_accounts(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let town = Principal::new(
        "guicheng",
        Role::Town,
        Some(UnitId::parse("towns").unwrap()),
        Some(OrgUnitId::parse("nanhai.guicheng").unwrap()),
    )
    .unwrap();
    let dept = Principal::new(
        "finance",
        Role::ResponsibleUnit,
        Some(UnitId::parse("finance").unwrap()),
        None,
    )
    .unwrap();
    let keys = t._env.keys();
    let callers = [
        Bearer::minted(keys.clone(), town),
        Bearer::minted(keys.clone(), dept),
        as_role(Role::Inspector),
        as_role(Role::Service),
    ];
    for bearer in &callers {
        let mut c = client_as(&t, bearer).await;
        let refusals = [
            c.create_account(account("x.y", "inspector"))
                .await
                .unwrap_err(),
            c.list_accounts(pr::ListAccountsRequest { page: None })
                .await
                .unwrap_err(),
            c.disable_account(pr::DisableAccountRequest {
                login: "x.y".into(),
            })
            .await
            .unwrap_err(),
            c.reset_password(pr::ResetPasswordRequest {
                login: "x.y".into(),
                new_password: "a fresh passphrase".into(),
            })
            .await
            .unwrap_err(),
        ];
        for err in refusals {
            assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
            assert!(err.message().contains("manage accounts"), "{err:?}");
        }
    }
    assert!(accounts(&mut t).await.is_empty());
    // District IT may: that is how the first accounts are made.
    let mut admin = client_as(&t, &as_role(Role::DistrictAdmin)).await;
    admin
        .create_account(account("office", "evaluation_office"))
        .await
        .unwrap();
    assert_eq!(accounts(&mut t).await.len(), 1);
    t.app.stop().await;
}

async fn bad_accounts_are_refused_by_field_and_nothing_is_stored(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let c = &mut t.client;
    let mut d = unit("nanhai", OrgLevel::District, "", CommunityType::Unspecified);
    d.region = RegionClass::PearlRiverDelta as i32;
    c.create_org_unit(d).await.unwrap();
    c.create_org_unit(unit(
        "nanhai.guicheng",
        OrgLevel::Town,
        "nanhai",
        CommunityType::Unspecified,
    ))
    .await
    .unwrap();
    c.create_org_unit(unit(
        "nanhai.guicheng.c001",
        OrgLevel::Community,
        "nanhai.guicheng",
        CommunityType::Urban,
    ))
    .await
    .unwrap();

    let with = |f: &dyn Fn(&mut pr::CreateAccountRequest)| {
        let mut r = account("guicheng.office", "town");
        r.unit = "towns".into();
        r.org_unit = "nanhai.guicheng".into();
        f(&mut r);
        r
    };
    let cases: Vec<(pr::CreateAccountRequest, &str, &str)> = vec![
        (
            with(&|r| r.password = "short".into()),
            "password",
            "at least 10",
        ),
        (with(&|r| r.login = "a\u{7}b".into()), "login", "control"),
        (with(&|r| r.login = "x".repeat(65)), "login", "at most 64"),
        (with(&|r| r.login = String::new()), "login", "empty"),
        (
            with(&|r| r.display_name = " ".into()),
            "display_name",
            "empty",
        ),
        (with(&|r| r.role = "root".into()), "role", "'root'"),
        (with(&|r| r.role = "service".into()), "role", "service"),
        (
            with(&|r| r.org_unit = String::new()),
            "org_unit",
            "org unit",
        ),
        (
            with(&|r| r.org_unit = "nanhai.guicheng.c001".into()),
            "org_unit",
            "community",
        ),
        (
            with(&|r| r.org_unit = "nanhai.nowhere".into()),
            "org_unit",
            "nanhai.nowhere",
        ),
        (
            with(&|r| r.unit = "Not A Unit".into()),
            "unit",
            "Not A Unit",
        ),
        (
            with(&|r| {
                r.role = "inspector".into();
                r.org_unit = String::new();
            }),
            "unit",
            "inspector",
        ),
        (
            with(&|r| {
                r.role = "responsible_unit".into();
                r.unit = String::new();
                r.org_unit = String::new();
            }),
            "unit",
            "needs a unit",
        ),
    ];
    for (request, want, says) in cases {
        let err = t.client.create_account(request.clone()).await.unwrap_err();
        assert_eq!(field(&err), want, "{request:?}: {err:?}");
        let why = &violations(&err)[0].1;
        assert!(why.contains(says), "{want}: {why}");
        assert!(
            !why.contains("passphrase") && !why.contains("short"),
            "{why}"
        );
    }
    assert!(accounts(&mut t).await.is_empty());
    // The same request with its fields right: a town account for a town.
    let a = t
        .client
        .create_account(with(&|_| {}))
        .await
        .unwrap()
        .into_inner();
    // A login of 64 Chinese characters is one of 64 characters.
    t.client
        .create_account(account(&"桂".repeat(64), "inspector"))
        .await
        .unwrap();
    assert_eq!(
        (a.unit.as_str(), a.org_unit.as_str()),
        ("towns", "nanhai.guicheng")
    );
    t.app.stop().await;
}

cezone_platform::contract_tests!(
    accounts_are_created_listed_disabled_and_reset,
    a_person_signs_in_without_a_token_and_the_token_works,
    five_failures_lock_the_account_even_against_the_right_password,
    refresh_tokens_rotate_and_end,
    only_the_office_and_district_it_manage_accounts,
    bad_accounts_are_refused_by_field_and_nothing_is_stored,
);
