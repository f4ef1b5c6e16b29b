//! The net under "no panic reachable from input": a handler that panics answers a 500 problem
//! without detail, the connection and the worker thread survive, and the panic is logged once
//! with its backtrace and counted in `switchboard_panics_total`.

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use reqwest::StatusCode;

use crate::helpers::{TestApp, captured_logs};

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_logged_once_and_counted() {
    let app = TestApp::spawn().await;
    switchboard_api::panics::install_hook();
    let before = switchboard_api::panics::PANICS.get();
    let state = app.state.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route(
                "/boom",
                web::get().to(|| async {
                    let state = "a state whose 32nd byte falls inside ☃";
                    #[expect(clippy::string_slice, reason = "the panic under test")]
                    let cut = &state[..38];
                    cut.to_owned()
                }),
            )
            .route("/fine", web::get().to(|| async { "fine" }))
            .wrap(from_fn(switchboard_api::middleware::observe))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);

    // One keep-alive connection: it survives the panics, and so does the one worker thread.
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    for _ in 0..2 {
        let res = client.get(format!("{base}/boom")).send().await.expect("an answer, not a dropped connection");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = res.json().await.expect("problem");
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("byte index"), "no internals in the body: {body}");
    }
    assert_eq!(client.get(format!("{base}/fine")).send().await.expect("fine").text().await.expect("text"), "fine");

    assert_eq!(switchboard_api::panics::PANICS.get() - before, 2);
    assert!(app.state.metrics.render().expect("metrics").contains("switchboard_panics_total"));
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("logs")).into_owned();
    let logged: Vec<&str> = logs.lines().filter(|l| l.contains("byte index 38 is not a char boundary")).collect();
    assert_eq!(logged.len(), 2, "each panic logged once: {logged:#?}");
    assert!(logged.iter().all(|l| l.contains("backtrace=") && l.contains("panics.rs")), "{logged:#?}");
    // Back to the default hook for whatever else runs in this process.
    let _ = std::panic::take_hook();
}
