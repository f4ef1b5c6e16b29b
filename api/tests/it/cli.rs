//! The `switchboard` binary itself: help, admin commands, the first start of an embedded install.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard")
}

#[test]
fn every_subcommand_explains_itself() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["worker", "--help"],
        &["migrate", "--help"],
        &["openapi", "--help"],
        &["admin", "--help"],
        &["admin", "tenant", "create", "--help"],
        &["admin", "api-key", "create", "--help"],
    ] {
        let out = run(dir.path(), args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{args:?}: {text}");
    }
    let top = String::from_utf8_lossy(&run(dir.path(), &["--help"]).stdout).into_owned();
    for word in ["serve", "worker", "migrate", "openapi", "admin"] {
        assert!(top.contains(word), "{top}");
    }
}

#[test]
fn admin_commands_create_tenants_and_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(dir.path(), &["admin", "tenant", "create", "Acme", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tenant: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(tenant["slug"], "acme");
    assert!(tenant["api_key"].as_str().is_some_and(|k| k.starts_with("sb_")));
    let id = tenant["id"].as_str().expect("id");
    let out = run(dir.path(), &["admin", "api-key", "create", "--tenant", id, "--name", "ci", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(key["tenant_id"], id);
    assert_ne!(key["api_key"], tenant["api_key"]);
    let out = run(dir.path(), &["admin", "api-key", "create", "--tenant", &uuid::Uuid::now_v7().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = run(dir.path(), &["admin", "tenant", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    for args in [
        &["admin", "grant", "list", "--tenant", id, "--user", "nobody", "--json"][..],
        &["admin", "issuance", "list", "--tenant", id, "--json"],
    ] {
        let out = run(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"), serde_json::json!([]));
    }
}

#[test]
fn first_start_creates_a_default_tenant_and_a_private_key_file() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let started = Instant::now();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_MASTER_KEY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read as _, Write as _};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                break started.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "serve did not become ready");
        std::thread::sleep(Duration::from_millis(25));
    };
    let key_file = dir.path().join("data/bootstrap-api-key");
    let key = std::fs::read_to_string(&key_file).expect("bootstrap key written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(dir.path().join("data/master.key")).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("wait");
    let logs = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = logs.lines().filter(|l| l.contains("bootstrap-api-key")).collect();
    assert_eq!(lines.len(), 1, "one log line names the key file: {logs}");
    assert!(!logs.contains(key.trim()), "the key itself is not logged");
    assert!(key.trim().starts_with("sb_"));
    eprintln!("ready after {ready:?} (debug build)");
}

/// A loopback stand-in for an OpenTelemetry collector: records the request line and content type of
/// every request and answers 200.
fn fake_collector() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    let mut content_type = String::new();
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).expect("header");
                        let h = h.trim_end().to_owned();
                        if h.is_empty() {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if let Some(v) = lower.strip_prefix("content-type:") {
                            content_type = v.trim().to_owned();
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).expect("body");
                    record.lock().expect("lock").push(format!("{} {content_type} {}", line.trim_end(), body.len()));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn json_logs_and_otlp_traces() {
    let dir = tempfile::tempdir().expect("dir");
    let (collector, seen) = fake_collector();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{collector}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read as _, Write as _};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "serve did not answer");
        std::thread::sleep(Duration::from_millis(25));
    }
    // Traces are exported in batches; shutting down flushes the last one.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "request" && l["status"] == 200), "{stdout}");
    assert!(lines.iter().all(|l| l.get("level").is_some() && l.get("timestamp").is_some()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().expect("lock").clone();
        if let Some(req) = got.iter().find(|r| r.starts_with("POST /v1/traces")) {
            assert!(req.contains("application/x-protobuf"), "{req}");
            break;
        }
        assert!(Instant::now() < deadline, "no trace export reached the collector: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `switchboard ticket`, offline: narrow, inspect, verify — no database, no network.
#[test]
fn tickets_are_narrowed_inspected_and_verified_offline() {
    use switchboard_domain::ticket::{SigningKey, TicketClaims, mint};
    let dir = tempfile::tempdir().expect("dir");
    let key = SigningKey::generate();
    let agent = switchboard_domain::AgentId::new();
    let claims = TicketClaims {
        user_id: "user-1".into(),
        agents: vec![agent],
        expires_at: std::time::SystemTime::now() + Duration::from_secs(3600),
        subject: Some("orchestrator".into()),
        max_delegation_depth: 2,
        audience: None,
    };
    let (root, _) = mint(switchboard_domain::TenantId::new(), &key, &claims).expect("mint");
    let pk = key.public_hex();
    let out = run(
        dir.path(),
        &[
            "ticket",
            "attenuate",
            "--ticket",
            &root,
            "--public-key",
            &pk,
            "--tools",
            "db_query",
            "--ttl",
            "30m",
            "--cap",
            "db_query.max_rows=100",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let worker = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(worker.starts_with("sbt_") && worker != root);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("db_query.max_rows <= 100") && report.contains("1 of 2"), "{report}");

    let out = run(dir.path(), &["ticket", "inspect", "--ticket", &worker, "--public-key", &pk, "--json"]);
    let grants: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((grants["depth"].as_u64(), grants["subject"].as_str()), (Some(1), Some("orchestrator")), "{grants}");
    assert_eq!(grants["tools"], serde_json::json!(["db_query"]));

    let verify = |tool: &str, args: &str| {
        let agent = agent.to_string();
        run(
            dir.path(),
            &[
                "ticket",
                "verify",
                "--ticket",
                &worker,
                "--public-key",
                &pk,
                "--agent",
                &agent,
                "--tool",
                tool,
                "--args",
                args,
            ],
        )
    };
    let ok = verify("db_query", r#"{"max_rows": 50}"#);
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("allowed (delegation depth 1)"));
    let over = verify("db_query", r#"{"max_rows": 250}"#);
    assert_eq!(over.status.code(), Some(1));
    let text = String::from_utf8_lossy(&over.stdout);
    assert!(text.contains("caps it at 100") && text.contains("block 1, check 2"), "{text}");
    let other = verify("drop_table", "{}");
    assert!(
        String::from_utf8_lossy(&other.stdout).contains("block 1, check 0"),
        "{}",
        String::from_utf8_lossy(&other.stdout)
    );

    // Widening is refused with the reason, and nothing is printed as a ticket.
    let out = run(dir.path(), &["ticket", "attenuate", "--ticket", &worker, "--public-key", &pk, "--ttl", "2h"]);
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot make it last longer"));
    let out = run(
        dir.path(),
        &["ticket", "attenuate", "--ticket", &worker, "--public-key", &pk, "--cap", "db_query.max_rows"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tool.argument=max"));
}
