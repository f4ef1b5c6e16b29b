//! An RFC 9110 §11.6.1 `WWW-Authenticate` parser.
//!
//! A header holds one or more challenges, separated by commas, each a scheme followed by either a
//! token68 or comma-separated `name=value` parameters, where the value is a token or a quoted string
//! with backslash escapes and names are case-insensitive. Commas separate both challenges and
//! parameters, so the parser looks one token ahead: `name =` continues the current challenge, a
//! bare token starts the next one. Several header fields are joined with `,` before parsing.
//!
//! The parser is linear in the input and bounded in what it keeps, so a hostile 64 KiB header costs
//! one pass.

use std::fmt;

/// How many challenges and parameters are kept; the rest of a hostile header is ignored.
const MAX_CHALLENGES: usize = 32;
const MAX_PARAMS: usize = 64;

/// One challenge: `Bearer realm="x", scope="a b"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub token68: Option<String>,
    /// Parameter names lowercased; values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The first value of parameter `name` (case-insensitive).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed WWW-Authenticate header at byte {}: {}", self.at, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchars are ASCII, so the slice is valid UTF-8.
        self.s.get(start..self.i).filter(|t| !t.is_empty()).map(|t| String::from_utf8_lossy(t).into_owned())
    }

    fn err(&self, reason: &'static str) -> ParseError {
        ParseError { at: self.i, reason }
    }

    fn quoted(&mut self) -> Result<String, ParseError> {
        // at the opening quote
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted string")),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| self.err("quoted string is not UTF-8"));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                        None => return Err(self.err("unterminated escape")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// After a comma: is what follows `name =` (a parameter) rather than a new scheme?
    fn next_is_param(&self) -> bool {
        let mut j = self.i;
        while matches!(self.s.get(j), Some(b' ' | b'\t' | b',')) {
            j += 1;
        }
        let start = j;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == start {
            return false;
        }
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        self.s.get(j) == Some(&b'=')
    }

    /// A token68 (`abc==`) that ends the challenge, if that is what comes next.
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_token68) {
            j += 1;
        }
        if j == start {
            return None;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let end = j;
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        // A token68 ends the challenge; anything else after it (`a=b`, `realm="x"`) is a parameter.
        if !matches!(self.s.get(j), None | Some(b',')) {
            return None;
        }
        self.i = j;
        self.s.get(start..end).map(|t| String::from_utf8_lossy(t).into_owned())
    }
}

/// Parses every challenge of a `WWW-Authenticate` value.
pub fn parse(header: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut c = Cursor { s: header.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        while matches!(c.peek(), Some(b' ' | b'\t' | b',')) {
            c.i += 1;
        }
        if c.peek().is_none() {
            break;
        }
        let scheme = c.token().ok_or_else(|| c.err("expected an auth scheme"))?;
        let mut challenge = Challenge { scheme, token68: None, params: Vec::new() };
        let had_space = matches!(c.peek(), Some(b' ' | b'\t'));
        c.ows();
        if had_space && !matches!(c.peek(), None | Some(b',')) {
            if let Some(t) = c.token68() {
                challenge.token68 = Some(t);
            } else {
                loop {
                    c.ows();
                    let name = c.token().ok_or_else(|| c.err("expected a parameter name"))?.to_ascii_lowercase();
                    c.ows();
                    if c.peek() != Some(b'=') {
                        return Err(c.err("expected `=` after a parameter name"));
                    }
                    c.i += 1;
                    c.ows();
                    let value = match c.peek() {
                        Some(b'"') => c.quoted()?,
                        _ => c.token().ok_or_else(|| c.err("expected a token or a quoted string"))?,
                    };
                    if challenge.params.len() < MAX_PARAMS {
                        challenge.params.push((name, value));
                    }
                    c.ows();
                    match c.peek() {
                        None => break,
                        Some(b',') if c.next_is_param() => {
                            while matches!(c.peek(), Some(b' ' | b'\t' | b',')) {
                                c.i += 1;
                            }
                        }
                        Some(b',') => break,
                        Some(_) => return Err(c.err("expected `,` between parameters")),
                    }
                }
            }
        }
        if out.len() < MAX_CHALLENGES {
            out.push(challenge);
        }
    }
    Ok(out)
}

/// What the MCP authorization spec reads from a `Bearer` challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The `Bearer` challenge of a header value (several header fields joined with `,`), if any.
pub fn bearer(header: &str) -> Result<Option<BearerChallenge>, ParseError> {
    Ok(parse(header)?.into_iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer")).map(|c| BearerChallenge {
        resource_metadata: c.param("resource_metadata").map(str::to_owned),
        scope: c.param("scope").map(str::to_owned).filter(|s| !s.trim().is_empty()),
        error: c.param("error").map(str::to_owned),
        error_description: c.param("error_description").map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn real_headers() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case<'_>] = &[
            (
                r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#,
                "Bearer",
                &[("resource_metadata", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp")],
            ),
            (
                r#"Bearer realm="OAuth", error="invalid_token", error_description="Missing or invalid access token""#,
                "Bearer",
                &[
                    ("realm", "OAuth"),
                    ("error", "invalid_token"),
                    ("error_description", "Missing or invalid access token"),
                ],
            ),
            (
                r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://a.example/.well-known/oauth-protected-resource""#,
                "Bearer",
                &[
                    ("error", "insufficient_scope"),
                    ("scope", "files:read files:write"),
                    ("resource_metadata", "https://a.example/.well-known/oauth-protected-resource"),
                ],
            ),
            ("Bearer error=invalid_token", "Bearer", &[("error", "invalid_token")]),
            (
                r#"bearer   Resource_Metadata = "https://x.example/prm" ,scope="a""#,
                "bearer",
                &[("resource_metadata", "https://x.example/prm"), ("scope", "a")],
            ),
            (r#"Bearer realm="a \"quoted\" \\ value""#, "Bearer", &[("realm", r#"a "quoted" \ value"#)]),
            ("Bearer", "Bearer", &[]),
        ];
        for (header, scheme, expected) in cases {
            let got = parse(header).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(got.len(), 1, "{header}: {got:?}");
            assert_eq!(got[0].scheme, *scheme);
            assert_eq!(params(&got[0]), *expected, "{header}");
        }
    }

    #[test]
    fn several_challenges_in_one_header() {
        let got = parse(r#"Basic realm="simple", Bearer realm="api", scope="read write", resource_metadata="https://r.example/prm", Negotiate, Other abc123=="#).expect("parses");
        let schemes: Vec<_> = got.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "Negotiate", "Other"]);
        assert_eq!(got[1].param("scope"), Some("read write"));
        assert_eq!(got[1].param("RESOURCE_METADATA"), Some("https://r.example/prm"));
        assert_eq!(got[3].token68.as_deref(), Some("abc123=="));
        let b = bearer(r#"Basic realm="x", Bearer scope="s""#).expect("parses").expect("bearer");
        assert_eq!(b.scope.as_deref(), Some("s"));
        assert!(bearer(r#"Basic realm="x""#).expect("parses").is_none());
    }

    #[test]
    fn token68_and_params_are_told_apart() {
        let got = parse("Basic dXNlcjpwYXNz, Bearer error=x").expect("parses");
        assert_eq!(got[0].token68.as_deref(), Some("dXNlcjpwYXNz"));
        assert_eq!(got[1].param("error"), Some("x"));
        let got = parse("Bearer a=b").expect("parses");
        assert_eq!(got[0].token68, None);
        assert_eq!(got[0].param("a"), Some("b"));
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for bad in [r#"Bearer realm="unterminated"#, r#"Bearer realm="a" scope="b""#, "=Bearer", r#"Bearer realm="a\"#]
        {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for odd in ["", "   ", ",,,", "Bearer ,", "Bearer,Basic"] {
            assert!(parse(odd).is_ok(), "{odd}");
        }
    }

    #[test]
    fn huge_headers_stay_bounded() {
        let many = (0..5000).map(|i| format!("p{i}=\"{}\"", "x".repeat(8))).collect::<Vec<_>>().join(", ");
        let header = format!("Bearer {many}");
        assert!(header.len() > 64 * 1024);
        let got = parse(&header).expect("parses");
        assert_eq!(got[0].params.len(), MAX_PARAMS);
        let long_value = format!("Bearer scope=\"{}\"", "a".repeat(64 * 1024));
        assert_eq!(bearer(&long_value).expect("parses").and_then(|b| b.scope).map(|s| s.len()), Some(64 * 1024));
        let many_challenges = "Basic, ".repeat(20_000);
        assert_eq!(parse(&many_challenges).expect("parses").len(), MAX_CHALLENGES);
        let unterminated = format!("Bearer realm=\"{}", "y".repeat(64 * 1024));
        assert!(parse(&unterminated).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn quote(v: &str) -> String {
            format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any header a server can send (any Unicode, any bytes read as Latin-1) parses or
            /// is refused with a position inside it — never a panic.
            #[test]
            fn any_header_parses_or_is_refused(header in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                for h in [header, bytes.iter().map(|&b| char::from(b)).collect::<String>()] {
                    if let Err(e) = parse(&h) {
                        prop_assert!(e.at <= h.len());
                    }
                    let _ = bearer(&h);
                }
            }

            /// Structured noise: challenge-shaped input with arbitrary Unicode values.
            #[test]
            fn challenge_shaped_noise_never_panics(parts in proptest::collection::vec(
                prop_oneof![Just(",".to_owned()), Just("=".to_owned()), Just("\"".to_owned()), Just("\\".to_owned()),
                    Just(" ".to_owned()), "[A-Za-z_]{1,8}", "\\PC{0,8}"], 0..40)) {
                let _ = parse(&parts.concat());
            }

            /// Quoted values come back exactly as the server meant them, escapes undone.
            #[test]
            fn quoted_values_round_trip(url in "\\PC{0,80}", scope in "[a-z:]{1,10}( [a-z:]{1,10}){0,3}", desc in "\\PC{0,40}") {
                let header = format!("Bearer resource_metadata={}, scope={}, error_description={}, Basic realm=x", quote(&url), quote(&scope), quote(&desc));
                let b = bearer(&header).map_err(|e| TestCaseError::fail(e.to_string()))?.ok_or_else(|| TestCaseError::fail("no bearer"))?;
                prop_assert_eq!(b.resource_metadata.as_deref(), Some(url.as_str()));
                prop_assert_eq!(b.scope.as_deref(), Some(scope.as_str()));
                prop_assert_eq!(b.error_description.as_deref(), Some(desc.as_str()));
            }
        }
    }
}
