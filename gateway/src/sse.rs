//! The watch on an upstream's streamed (SSE) answer to a request. Events are relayed as each one
//! completes — a progress notification reaches the client while the call runs — and the stream
//! is held to what the client is owed: the response to its request, in time.
//!
//! - An event whose data is not one JSON object ends the relay: the client gets a JSON-RPC error
//!   for its request instead of garbage.
//! - No event for `idle` (the upstream timeout; every event, progress included, restarts it, as
//!   the spec allows), or the whole answer running past `total`: a JSON-RPC error saying so.
//! - The upstream's stream ending, or breaking, before the response: a JSON-RPC error saying so
//!   — unless its events carried ids, which makes it resumable: the spec lets a server close such
//!   a stream early, and the client reconnects with `Last-Event-ID` for the rest (an error there
//!   would be taken for the answer).
//!
//! Once the response has been relayed, whatever follows passes on unchecked until the upstream
//! closes. Comments (`: …`), event ids and `retry:` lines pass through as they are.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use switchboard_domain::finding::FindingCode;

use crate::observe::{Answer, OnAnswer};
use crate::rpc::{self, code};

/// What the watch needs to know of one event's data (the rest is skipped, not built).
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// How an event's data reads.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A message that is not the response (a notification, a request to the client).
    Other,
    /// The response to the client's request.
    Response,
    /// Not one JSON-RPC message.
    Garbage,
}

fn classify(data: &[u8], id: &Value) -> Seen {
    // One JSON-RPC message is an object (a derived struct would take an array too).
    if data.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
        return Seen::Garbage;
    }
    match serde_json::from_slice::<Probe>(data) {
        Ok(p) if p.id.as_ref() == Some(id) && (p.result.is_some() || p.error.is_some()) => Seen::Response,
        Ok(_) => Seen::Other,
        Err(_) => Seen::Garbage,
    }
}

/// Splits bytes into SSE events: an event ends at a blank line (lines end with CRLF, LF or CR).
/// The scan resumes where it stopped, so a large event arriving in many chunks costs one pass.
#[derive(Default)]
struct Framer {
    buf: BytesMut,
    /// Where the scan stopped, and where the line it was in began.
    scanned: usize,
    line: usize,
}

impl Framer {
    /// The next complete event in the buffer (its raw bytes, the blank line included).
    fn next_event(&mut self) -> Option<Bytes> {
        let b = &self.buf[..];
        let (mut line, mut i) = (self.line, self.scanned);
        while let Some(c) = b.get(i) {
            if !matches!(c, b'\n' | b'\r') {
                i += 1;
                continue;
            }
            let end = match (c, b.get(i + 1)) {
                // Perhaps half of a CRLF: wait for more.
                (b'\r', None) => break,
                (b'\r', Some(b'\n')) => i + 2,
                _ => i + 1,
            };
            if i == line {
                (self.scanned, self.line) = (0, 0);
                return Some(self.buf.split_to(end).freeze());
            }
            (line, i) = (end, end);
        }
        (self.scanned, self.line) = (i, line);
        None
    }
}

/// The lines of an event, whatever ends them (CRLF, LF or CR).
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|c| matches!(c, b'\n' | b'\r')).unwrap_or(rest.len());
        let line = rest.get(..end).unwrap_or_default();
        let skip = match (rest.get(end), rest.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        rest = rest.get(end + skip..).unwrap_or_default();
        Some(line)
    })
}

/// The data of an event: its `data:` lines joined with `\n`.
fn data_of(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut first = true;
    for line in lines(event) {
        let Some(rest) = line.strip_prefix(b"data") else { continue };
        let value = match rest.first() {
            Some(b':') => rest.get(1..).map(|v| v.strip_prefix(b" ").unwrap_or(v)).unwrap_or_default(),
            None => &[][..],
            // `dataX: …` is another field.
            Some(_) => continue,
        };
        if !first {
            out.push(b'\n');
        }
        out.extend_from_slice(value);
        first = false;
    }
    out
}

/// Whether an event has a non-empty `id:` field.
fn has_event_id(event: &[u8]) -> bool {
    lines(event).any(|line| line.strip_prefix(b"id:").is_some_and(|v| !v.strip_prefix(b" ").unwrap_or(v).is_empty()))
}

/// How long a watched answer may take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// Longest silence between two events.
    pub(crate) idle: Duration,
    /// Longest the whole answer may last.
    pub(crate) total: Duration,
    /// Largest single event.
    pub(crate) max_event: usize,
}

fn error_event(id: &Value, c: i64, message: &str, finding: FindingCode) -> Bytes {
    let body = rpc::finding_error(Some(id), c, message, finding);
    Bytes::from(format!("event: message\ndata: {body}\n\n"))
}

impl State {
    /// Ends the watch with a JSON-RPC error for the request, and reports the failure.
    fn fail(&mut self, c: i64, message: &str, finding: FindingCode) -> Bytes {
        self.done = true;
        if let Some(report) = self.on_answer.take() {
            report(Answer::Failed(finding, message));
        }
        error_event(&self.id, c, message, finding)
    }

    fn too_large(&mut self) -> Bytes {
        self.fail(
            code::UPSTREAM_INVALID,
            "the MCP server sent a message larger than the gateway accepts",
            FindingCode::UpstreamInvalid,
        )
    }
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

struct State {
    upstream: Upstream,
    framer: Framer,
    id: Value,
    answered: bool,
    /// An event carried an `id:`: the client can resume the stream with `Last-Event-ID`.
    resumable: bool,
    done: bool,
    deadlines: Deadlines,
    ends_at: Instant,
    on_answer: Option<OnAnswer>,
}

/// A watch dropped before its answer (the client went away, or a resumable stream ended): the
/// request is counted all the same.
impl Drop for State {
    fn drop(&mut self) {
        if let Some(report) = self.on_answer.take() {
            report(Answer::Cancelled);
        }
    }
}

/// Relays `upstream`, the SSE answer to the request `id`, under `deadlines`.
pub(crate) fn watch(
    upstream: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    id: Value,
    deadlines: Deadlines,
    on_answer: OnAnswer,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = State {
        upstream: Box::pin(upstream),
        framer: Framer::default(),
        id,
        answered: false,
        resumable: false,
        done: false,
        deadlines,
        ends_at: Instant::now() + deadlines.total,
        on_answer: Some(on_answer),
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if s.answered {
                // The client has its answer: what the buffer holds, then the rest as it comes,
                // unframed and unchecked, until the upstream closes or the call's time is up.
                if !s.framer.buf.is_empty() {
                    (s.framer.scanned, s.framer.line) = (0, 0);
                    return Some((Ok(s.framer.buf.split().freeze()), s));
                }
                let left = s.ends_at.saturating_duration_since(Instant::now());
                return match tokio::time::timeout(left, s.upstream.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), s)),
                    _ => None,
                };
            }
            // Checked before waiting: an upstream that is always ready never lets a timeout fire.
            if Instant::now() >= s.ends_at {
                let why = "the MCP server did not finish answering within the gateway's call timeout";
                let e = s.fail(code::UPSTREAM_UNAVAILABLE, why, FindingCode::UpstreamTimeout);
                return Some((Ok(e), s));
            }
            if let Some(event) = s.framer.next_event() {
                if event.len() > s.deadlines.max_event {
                    let e = s.too_large();
                    return Some((Ok(e), s));
                }
                s.resumable |= has_event_id(&event);
                let data = data_of(&event);
                if data.is_empty() {
                    // A comment, a keep-alive, an id or retry line: relayed as it is.
                    return Some((Ok(event), s));
                }
                return Some(match classify(&data, &s.id) {
                    Seen::Response => {
                        s.answered = true;
                        if let Some(report) = s.on_answer.take() {
                            report(Answer::Answered);
                        }
                        (Ok(event), s)
                    }
                    Seen::Other => (Ok(event), s),
                    Seen::Garbage => {
                        let e = s.fail(
                            code::UPSTREAM_INVALID,
                            "the MCP server answered something that is not MCP",
                            FindingCode::UpstreamInvalid,
                        );
                        (Ok(e), s)
                    }
                });
            }
            if s.framer.buf.len() > s.deadlines.max_event {
                let e = s.too_large();
                return Some((Ok(e), s));
            }
            let wait = s.deadlines.idle.min(s.ends_at.saturating_duration_since(Instant::now()));
            let next = tokio::time::timeout(wait, s.upstream.next()).await;
            match next {
                Ok(Some(Ok(chunk))) => s.framer.buf.extend_from_slice(&chunk),
                Ok(end @ (None | Some(Err(_)))) => {
                    s.done = true;
                    let broke = end.is_some();
                    // A last event without its blank line still counts when it is the answer.
                    if !s.answered && !s.framer.buf.is_empty() {
                        s.framer.buf.extend_from_slice(b"\n\n");
                        if let Some(event) = s.framer.next_event()
                            && classify(&data_of(&event), &s.id) == Seen::Response
                        {
                            if let Some(report) = s.on_answer.take() {
                                report(Answer::Answered);
                            }
                            return Some((Ok(event), s));
                        }
                    }
                    if s.answered || s.resumable {
                        // The client may resume a resumable stream; one that broke (rather than
                        // closed) before its answer is counted as the server's failure all the same.
                        if broke && let Some(report) = s.on_answer.take() {
                            report(Answer::Failed(
                                FindingCode::UpstreamUnavailable,
                                "the MCP server's stream broke before it answered",
                            ));
                        }
                        return None;
                    }
                    let e = s.fail(
                        code::UPSTREAM_UNAVAILABLE,
                        "the MCP server's stream ended before it answered",
                        FindingCode::UpstreamUnavailable,
                    );
                    return Some((Ok(e), s));
                }
                Err(_) => {
                    let message = if Instant::now() >= s.ends_at {
                        "the MCP server did not finish answering within the gateway's call timeout"
                    } else {
                        "the MCP server did not answer in time (no message within the upstream timeout)"
                    };
                    let e = s.fail(code::UPSTREAM_UNAVAILABLE, message, FindingCode::UpstreamTimeout);
                    return Some((Ok(e), s));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use serde_json::json;

    use super::*;

    const D: Deadlines = Deadlines { idle: Duration::from_millis(200), total: Duration::from_secs(5), max_event: 1024 };

    fn chunks(parts: &[&str]) -> Vec<Result<Bytes, reqwest::Error>> {
        parts.iter().map(|p| Ok(Bytes::from(p.to_string()))).collect()
    }

    async fn relay(
        upstream: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
        d: Deadlines,
    ) -> String {
        let out: Vec<_> = watch(upstream, json!(7), d, Box::new(|_: Answer<'_>| {})).collect().await;
        out.into_iter().map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap()).collect()
    }

    #[test]
    fn events_are_split_at_blank_lines_whatever_the_line_ends() {
        let mut f = Framer::default();
        f.buf.extend_from_slice(b": hi\n\nevent: message\r\ndata: {}\r\n\r\ndata: x\r\rdata: y\n");
        assert_eq!(&f.next_event().unwrap()[..], b": hi\n\n");
        assert_eq!(&f.next_event().unwrap()[..], b"event: message\r\ndata: {}\r\n\r\n");
        assert_eq!(&f.next_event().unwrap()[..], b"data: x\r\r");
        assert!(f.next_event().is_none(), "an unfinished event waits");
        assert_eq!(data_of(b"event: message\ndata: {\"a\":\ndata:1}\nid: 3\n\n"), b"{\"a\":\n1}");
    }

    #[tokio::test]
    async fn progress_and_the_answer_pass_through_event_by_event() {
        let progress = r#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;
        let answer = r#"data: {"jsonrpc":"2.0","id":7,"result":{}}"#;
        let (a, b) = progress.split_at(10);
        let body = relay(stream::iter(chunks(&[a, &format!("{b}\n\n"), answer, "\n\n"])), D).await;
        assert_eq!(body, format!("{progress}\n\n{answer}\n\n"));
    }

    #[tokio::test]
    async fn garbage_ends_the_relay_with_an_error_for_the_request() {
        let body =
            relay(stream::iter(chunks(&["data: <html>oops</html>\n\n", "data: {\"id\":7,\"result\":{}}\n\n"])), D)
                .await;
        assert!(!body.contains("html"), "{body}");
        assert!(body.contains(r#""id":7"#) && body.contains("-31002") && body.contains("not MCP"), "{body}");
    }

    #[tokio::test]
    async fn a_stream_that_ends_or_stalls_before_the_answer_is_an_error_in_time() {
        let ended = relay(stream::iter(chunks(&["data: {\"method\":\"notifications/progress\"}\n\n"])), D).await;
        assert!(ended.contains("ended before it answered") && ended.contains("-31000"), "{ended}");

        let started = std::time::Instant::now();
        let stalled = relay(stream::iter(chunks(&[": open\n\n"])).chain(stream::pending()), D).await;
        assert!(stalled.starts_with(": open\n\n") && stalled.contains("did not answer in time"), "{stalled}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

        // Progress every 100 ms keeps it alive past the idle deadline, but not past the total.
        let tick = stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from_static(b"data: {\"method\":\"notifications/progress\"}\n\n")), ()))
        });
        let d = Deadlines { total: Duration::from_millis(700), ..D };
        let long = relay(tick, d).await;
        assert!(long.matches("notifications/progress").count() >= 4, "{long}");
        assert!(long.contains("call timeout"), "{long}");
    }

    #[test]
    fn lines_end_however_they_end_and_only_objects_are_messages() {
        assert_eq!(data_of(b"data: {\"a\":\rdata: 1}\r\r"), b"{\"a\":\n1}");
        assert!(has_event_id(b"data: x\rid: 7\r\r"));
        assert_eq!(classify(br#"[7, {"result": {}}]"#, &json!(7)), Seen::Garbage);
        assert_eq!(classify(br#" {"id": 7, "result": {}}"#, &json!(7)), Seen::Response);
        // A big event in many chunks is found once its blank line arrives.
        let mut f = Framer::default();
        for _ in 0..100 {
            f.buf.extend_from_slice(b"data: xxxxxxxxxx");
            assert!(f.next_event().is_none());
        }
        f.buf.extend_from_slice(b"\n\n");
        assert_eq!(f.next_event().map(|e| e.len()), Some(1602));
    }

    #[tokio::test]
    async fn a_flood_of_progress_does_not_outlive_the_call_timeout_and_after_the_answer_bytes_flow_raw() {
        let flood =
            stream::repeat_with(|| Ok(Bytes::from_static(b"data: {\"method\":\"notifications/progress\"}\n\n")));
        let d = Deadlines { total: Duration::from_millis(300), ..D };
        let started = std::time::Instant::now();
        let out: Vec<_> = watch(flood, json!(7), d, Box::new(|_: Answer<'_>| {})).collect().await;
        let last = out
            .last()
            .and_then(|b| b.as_ref().ok())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        assert!(last.contains("call timeout"), "{last}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // After the answer, a line that never ends is relayed as it comes, not held.
        let body = relay(stream::iter(chunks(&["data: {\"id\":7,\"result\":{}}\n\n", "no end in sight"])), D).await;
        assert!(body.ends_with("no end in sight"), "{body}");
    }

    #[tokio::test]
    async fn a_resumable_stream_may_end_before_the_answer() {
        // Event ids make the stream resumable: the client reconnects with Last-Event-ID.
        let body = relay(
            stream::iter(chunks(&[
                "id: ev-1\ndata: \n\n",
                "id: ev-2\ndata: {\"method\":\"notifications/progress\"}\n\n",
            ])),
            D,
        )
        .await;
        assert!(!body.contains("error"), "{body}");
        assert!(body.ends_with("notifications/progress\"}\n\n"), "{body}");
        // An empty id does not count.
        let body = relay(stream::iter(chunks(&["id:\ndata: {\"method\":\"notifications/progress\"}\n\n"])), D).await;
        assert!(body.contains("ended before it answered"), "{body}");
    }

    #[tokio::test]
    async fn after_the_answer_nothing_is_checked_and_a_last_unterminated_answer_counts() {
        let body =
            relay(stream::iter(chunks(&["data: {\"id\":7,\"error\":{\"code\":1}}\n\n", "data: junk\n\n"])), D).await;
        assert!(body.ends_with("data: junk\n\n"), "{body}");
        let body = relay(stream::iter(chunks(&["data: {\"id\":7,\"result\":{}}"])), D).await;
        assert_eq!(body, "data: {\"id\":7,\"result\":{}}\n\n");
        let big = format!("data: {{\"id\":7,\"result\":\"{}\"}}\n\n", "x".repeat(2000));
        let body = relay(stream::iter(chunks(&[&big])), D).await;
        assert!(body.contains("larger than the gateway accepts"), "{body}");
    }
}
