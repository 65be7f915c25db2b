//! What the web port answers to a plain HTTP client: every page and script carries the security
//! headers, and a path that is not the page's is 404, not an empty 200.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> cezone_web::Application {
    start_with(|_| {}).await
}

async fn start_with(
    f: impl FnOnce(&mut cezone_platform::settings::Settings),
) -> cezone_web::Application {
    let mut settings = cezone_platform::settings::Settings::defaults();
    settings.web.port = 0;
    f(&mut settings);
    settings.auth.secret =
        cezone_platform::settings::Secret::new(cezone_platform::testing::random_secret());
    // The page's data is fetched lazily; no service needs to run for the static answers.
    cezone_web::Application::build(&settings).await.unwrap()
}

/// One HTTP/1.1 GET; the status code and the head (lower-cased) and body.
async fn get(web: &cezone_web::Application, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", web.port()))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // 0: closed without an answer.
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_unknown_paths_are_404() {
    let web = start().await;
    for path in ["/", "/scoreboard.js", "/scoreboard.css", "/healthz"] {
        let (status, head, _) = get(&web, path).await;
        assert_eq!(status, 200, "{path}: {head}");
        for h in [
            "content-security-policy: default-src 'none'; script-src 'self'",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
        ] {
            assert!(head.contains(h), "{path} lacks {h}: {head}");
        }
        assert!(!head.contains("unsafe-inline"), "{path}: {head}");
    }
    for path in [
        "/nope",
        "/index.html",
        "/api/nothing",
        "/scoreboard.js/x",
        "/%2e%2e/etc/passwd",
    ] {
        let (status, head, body) = get(&web, path).await;
        assert_eq!(status, 404, "{path}: {head}");
        assert!(body.contains("Not found"), "{path}: {body}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }
    web.stop().await;
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(s: &mut tokio::net::TcpStream) -> std::time::Duration {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(n.is_ok(), "the server kept the connection open for 20 s");
    started.elapsed()
}

#[tokio::test]
async fn slow_clients_are_let_go_and_connections_are_bounded() {
    let web = start_with(|s| {
        s.web.header_read_seconds = 1;
        s.grpc.max_connections = 3;
    })
    .await;
    // Slow loris: connects, sends half a request line and nothing more.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", web.port()))
        .await
        .unwrap();
    slow.write_all(b"GET / HT").await.unwrap();
    let took = closed_after(&mut slow).await;
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");

    // Three idle connections hold every place; a fourth is closed at once, and once they are
    // let go the page answers again.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", web.port()))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(("127.0.0.1", web.port()))
        .await
        .unwrap();
    let _ = fourth
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        fourth.read_to_end(&mut answer),
    )
    .await
    .expect("closed at once");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if get(&web, "/healthz").await.0 == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the page answers once the places are free");
    web.stop().await;
}
