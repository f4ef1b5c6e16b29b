//! The guarded client never connects to a forbidden address: the bad-input corpus of
//! security-reliability.md §6.1 against a loopback canary that counts connections.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_discovery::http::{Lookup, headers};
use switchboard_discovery::policy::AllowEntry;
use switchboard_discovery::{FetchError, Fetcher, Limits, NetworkPolicy};
use url::Url;

use crate::fake::{Fake, Route};

/// A resolver answering from a table and recording every question.
#[derive(Default)]
struct Recording {
    table: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl Lookup for Recording {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        self.asked.lock().expect("lock").push(host.to_owned());
        let found = self.table.get(host).cloned();
        Box::pin(async move { found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")) })
    }
}

/// A listener that only counts the connections it accepts.
fn canary() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

fn fetcher(policy: NetworkPolicy, table: &[(&str, &[&str])], limits: Limits) -> (Fetcher, Arc<Recording>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let table =
        table.iter().map(|(h, ips)| ((*h).to_owned(), ips.iter().map(|i| i.parse().expect("ip")).collect())).collect();
    let lookup = Arc::new(Recording { table, asked: Mutex::default() });
    (Fetcher::with_lookup(policy, limits, lookup.clone()).expect("fetcher"), lookup)
}

#[tokio::test]
async fn forbidden_addresses_are_never_connected_to() {
    let (port, hits) = canary();
    let (f, lookup) = fetcher(
        NetworkPolicy::default(),
        &[
            ("evil.test", &["127.0.0.1"]),
            ("mixed.test", &["93.184.216.34", "127.0.0.1"]),
            ("mapped.test", &["::ffff:127.0.0.1"]),
            ("metadata.test", &["169.254.169.254"]),
            ("ula.test", &["fd00::1"]),
        ],
        Limits::default(),
    );
    let corpus = [
        format!("https://127.0.0.1:{port}/"),
        format!("https://2130706433:{port}/"),
        format!("https://0x7f000001:{port}/"),
        format!("https://0177.0.0.1:{port}/"),
        format!("https://127.1:{port}/"),
        format!("https://0x7f.1:{port}/"),
        format!("https://[::1]:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
        format!("https://[::ffff:7f00:1]:{port}/"),
        format!("https://[0:0:0:0:0:ffff:127.0.0.1]:{port}/"),
        format!("https://0.0.0.0:{port}/"),
        format!("https://0:{port}/"),
        format!("https://169.254.169.254:{port}/latest/meta-data/"),
        format!("https://evil.test:{port}/"),
        format!("https://mixed.test:{port}/"),
        format!("https://mapped.test:{port}/"),
        format!("https://metadata.test:{port}/"),
        format!("https://ula.test:{port}/"),
    ];
    for raw in &corpus {
        let url = Url::parse(raw).expect("url");
        let got = f.get(&url, headers(&[])).await;
        assert_eq!(got.as_ref().err(), Some(&FetchError::Blocked), "{raw}: {:?}", got.as_ref().map(|r| r.status));
    }
    for raw in [format!("http://127.0.0.1:{port}/"), format!("http://evil.test:{port}/")] {
        let got = f.get(&Url::parse(&raw).expect("url"), headers(&[])).await;
        assert!(matches!(got, Err(FetchError::Blocked | FetchError::InsecureUrl)), "{raw}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a forbidden address was connected to");
    assert!(
        lookup.asked.lock().expect("lock").iter().all(|h| h.ends_with(".test")),
        "IP literals never reach the resolver"
    );
    // The refusal says nothing about the address.
    assert_eq!(FetchError::Blocked.to_string(), "blocked by network policy");
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let (canary_port, hits) = canary();
    let fake = Fake::start();
    fake.route("GET", "/to-canary", Route::status(302).header("location", &format!("http://127.0.0.1:{canary_port}/")));
    fake.route(
        "GET",
        "/to-canary-https",
        Route::status(302).header("location", &format!("https://127.0.0.1:{canary_port}/")),
    );
    fake.route(
        "GET",
        "/to-metadata",
        Route::status(307).header("location", "http://169.254.169.254/latest/meta-data/"),
    );
    fake.route("GET", "/loop-a", Route::status(302).header("location", "/loop-b"));
    fake.route("GET", "/loop-b", Route::status(302).header("location", "/loop-a"));
    fake.route("POST", "/post", Route::status(307).header("location", "/elsewhere"));
    fake.route("GET", "/ok", Route::status(200));
    fake.route("GET", "/hop1", Route::status(301).header("location", "/ok"));
    // Only `allowed.test` (the fake) is reachable: private networks stay closed.
    let policy = NetworkPolicy { allow_private_networks: false, allow: vec![AllowEntry::Host("allowed.test".into())] };
    let (f, _) = fetcher(policy, &[("allowed.test", &["127.0.0.1"])], Limits::default());
    let base = format!("http://allowed.test:{}", fake.port);
    let get = |p: &str| {
        let f = f.clone();
        let url = Url::parse(&format!("{base}{p}")).expect("url");
        async move { f.get(&url, headers(&[])).await }
    };
    assert_eq!(get("/hop1").await.map(|r| r.status.as_u16()).ok(), Some(200));
    assert_eq!(get("/to-canary").await.err(), Some(FetchError::InsecureUrl));
    assert_eq!(get("/to-canary-https").await.err(), Some(FetchError::Blocked));
    assert_eq!(get("/to-metadata").await.err(), Some(FetchError::InsecureUrl));
    assert_eq!(get("/loop-a").await.err(), Some(FetchError::TooManyRedirects(3)));
    let post = f.post(&Url::parse(&format!("{base}/post")).expect("url"), headers(&[]), b"secret=1".to_vec()).await;
    assert_eq!(post.err(), Some(FetchError::RedirectNotFollowed));
    assert_eq!(fake.hits("/elsewhere"), 0, "a credential-bearing POST follows no redirect");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // With https required everywhere, a redirect to a private IP literal is refused as such.
    let strict = NetworkPolicy::default();
    let (f, _) = fetcher(strict, &[], Limits::default());
    let err = f
        .get(&Url::parse(&format!("https://[::ffff:169.254.169.254]:{canary_port}/")).expect("url"), headers(&[]))
        .await
        .err();
    assert_eq!(err, Some(FetchError::Blocked));
}

#[tokio::test]
async fn slow_and_huge_responses_are_cut_off() {
    let fake = Fake::start();
    fake.route("GET", "/slow", Route { status: 200, trickle: true, ..Route::default() });
    fake.route("GET", "/hang", Route { status: 200, delay: Duration::from_secs(30), ..Route::default() });
    fake.route("GET", "/huge", Route { status: 200, flood: 50 * 1024 * 1024, ..Route::default() });
    fake.route("GET", "/huge-declared", Route { status: 200, body: vec![b'x'; 2 * 1024 * 1024], ..Route::default() });
    let limits = Limits {
        connect_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(2),
        max_body_bytes: 1024 * 1024,
        max_redirects: 3,
    };
    let (f, _) = fetcher(NetworkPolicy { allow_private_networks: true, allow: vec![] }, &[], limits);
    for (path, want) in [
        ("/slow", FetchError::Timeout),
        ("/hang", FetchError::Timeout),
        ("/huge", FetchError::TooLarge(1024 * 1024)),
        ("/huge-declared", FetchError::TooLarge(1024 * 1024)),
    ] {
        let started = Instant::now();
        let got = f.get(&Url::parse(&format!("{}{path}", fake.base)).expect("url"), headers(&[])).await;
        assert_eq!(got.err(), Some(want), "{path}");
        assert!(started.elapsed() < Duration::from_secs(4), "{path} took {:?}", started.elapsed());
    }
}
