//! Runtime-independent HTTP request and response values. The Workers glue converts to and from
//! these, so routing and every handler run natively under `cargo test` exactly as in workerd.

use crate::proto::error::ScimError;
use serde_json::Value;

pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded per segment later by the router (ids may contain escapes).
    pub path: String,
    /// Decoded query pairs in order of appearance.
    pub query: Vec<(String, String)>,
    /// Header names are lower-cased on construction.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Scheme and authority the client used, e.g. `https://scim.example.com`, for `meta.location`.
    pub origin: String,
    /// The query as received, undecoded: a request handed on to a tenant's Durable Object
    /// carries it unchanged ([`Request::path_and_query`]).
    pub raw_query: Option<String>,
}

impl Request {
    pub fn new(method: Method, url_path_and_query: &str, origin: &str) -> Request {
        let (path, raw_query) = match url_path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (url_path_and_query, None),
        };
        let query = raw_query.as_deref().map(parse_query).unwrap_or_default();
        Request {
            method,
            path: path.to_string(),
            query,
            headers: Vec::new(),
            body: Vec::new(),
            origin: origin.trim_end_matches('/').to_string(),
            raw_query,
        }
    }

    /// The path and query as received.
    pub fn path_and_query(&self) -> String {
        match &self.raw_query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query parameter names are matched case-insensitively: IdPs differ in how they spell
    /// `startIndex` and `excludedAttributes`, and RFC 7644 treats them as attribute-like names.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the body as a JSON object after checking its media type. An absent Content-Type
    /// is accepted (several IdPs omit it on PATCH); anything other than JSON is 415.
    pub fn json_body(&self) -> Result<Value, ScimError> {
        if let Some(ct) = self.header("content-type") {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media != SCIM_MEDIA_TYPE && media != "application/json" {
                return Err(ScimError::unsupported_media_type(format!(
                    "Content-Type '{media}' is not supported; send application/scim+json or application/json"
                )));
            }
        }
        if self.body.is_empty() {
            return Err(ScimError::invalid_syntax(
                "the request body is empty; a JSON object is required",
            ));
        }
        let text = std::str::from_utf8(&self.body).map_err(|e| {
            ScimError::invalid_syntax(format!(
                "the request body is not valid UTF-8 (byte {})",
                e.valid_up_to()
            ))
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(ScimError::invalid_syntax(
                "the request body must be a JSON object",
            ));
        }
        Ok(value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Lines for the operator's log, never sent to the client (e.g. which IdP quirks a
    /// request relied on).
    pub notes: Vec<String>,
    /// A tenant's object's answer to a client, left in the runtime ([`Passed`]): its body
    /// and headers are sent as the object gave them, with `headers` added after them.
    pub passed: Option<Passed>,
}

/// An answer the runtime holds and the service only hands on (`ctx::Forward::relay`): the
/// body of a tenant's object's answer reaches the client without being copied into wasm
/// and out again. Opaque here; only the glue that made it (`crate::worker`) opens it.
#[derive(Clone)]
pub struct Passed(pub std::rc::Rc<dyn std::any::Any>);

impl std::fmt::Debug for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passed(..)")
    }
}

impl PartialEq for Passed {
    /// The same answer, not equal contents: the service cannot see those.
    fn eq(&self, other: &Passed) -> bool {
        std::rc::Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Response {
    pub fn json(status: u16, value: &Value) -> Response {
        Response::json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
    }

    /// A JSON response whose body is already serialised.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![(
                "content-type".into(),
                format!("{SCIM_MEDIA_TYPE}; charset=utf-8"),
            )],
            body,
            notes: Vec::new(),
            passed: None,
        }
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            notes: Vec::new(),
            passed: None,
        }
    }

    pub fn error(err: &ScimError) -> Response {
        let mut resp = Response::json(err.status, &err.to_json());
        if err.status == 401 {
            resp.headers
                .push(("www-authenticate".into(), "Bearer realm=\"scim\"".into()));
        }
        if err.status == 503 {
            // A tenant's move is minutes, not hours: ask for a retry soon (RFC 9110 §10.2.3).
            resp.headers.push(("retry-after".into(), "60".into()));
        }
        resp
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// `name` with this one value, replacing any it had (`with_header` appends).
    pub fn set_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.with_header(name, value)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn with_notes(mut self, notes: impl IntoIterator<Item = String>) -> Response {
        self.notes.extend(notes);
        self
    }

    /// An answer of `status` whose body and headers the runtime holds ([`Passed`]).
    pub fn passed(status: u16, answer: Passed) -> Response {
        Response {
            passed: Some(answer),
            ..Response::empty(status)
        }
    }

    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `application/x-www-form-urlencoded` decoding of a query string: `+` is a space and
/// malformed escapes are kept literally rather than rejected, as browsers do.
/// Splits an absolute URL as the runtime serialises it (WHATWG: scheme and host lowercased,
/// default port dropped) into its origin and its path with the query, without a URL parser:
/// the `url` crate and its IDNA tables cost the worker more than 40 KB of wasm for what is a
/// split of an already normalised string. User info is not part of the origin; a fragment is
/// never sent. `None` for anything that is not `scheme://authority[/path]`.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or_default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    let path_and_query = if tail.starts_with('?') || tail.is_empty() {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Some((format!("{scheme}://{host}"), path_and_query))
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes; invalid UTF-8 after decoding is replaced rather than failing so
/// that the filter parser can report a precise error instead of a generic one.
/// The non-empty `/`-separated segments of a path, percent-decoded.
pub fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if let (b'%', [h, l, after @ ..]) = (b, tail) {
            if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                out.push(h * 16 + l);
                rest = after;
                continue;
            }
        }
        out.push(b);
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (unreserved characters kept).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `uri` with `params` appended to its query (RFC 6749 §4.1.2: the registered URI's own
/// query is kept).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_encode(v));
        sep = '&';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_with_plus_and_escapes() {
        let q = parse_query("filter=userName+eq+%22a%40b.c%22&count=10&flag");
        assert_eq!(q[0], ("filter".into(), "userName eq \"a@b.c\"".into()));
        assert_eq!(q[1], ("count".into(), "10".into()));
        assert_eq!(q[2], ("flag".into(), "".into()));
    }

    #[test]
    fn set_header_replaces_what_with_header_appends() {
        let r = Response::empty(200)
            .with_header("X-Request-Id", "object")
            .with_header("vary", "a")
            .set_header("x-request-id", "worker");
        let ids: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "x-request-id")
            .collect();
        assert_eq!(ids, [&("x-request-id".to_string(), "worker".to_string())]);
        assert_eq!(r.header("vary"), Some("a"));
    }

    #[test]
    fn unknown_methods_are_other_never_get() {
        // The Workers glue once took the method from `worker::Request::method()`, which maps
        // PROPFIND and every other unknown method to GET (found by the e2e bad-input corpus).
        for m in ["PROPFIND", "PURGE", "TRACE", "get2", ""] {
            assert_eq!(Method::parse(m), Method::Other, "{m}");
        }
        assert_eq!(Method::parse("patch"), Method::Patch);
    }

    #[test]
    fn broken_escapes_are_kept() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%42"), "AB");
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let s = "a b/c?d%e\"f";
        assert_eq!(
            percent_decode(&crate::proto::resource::percent_encode_segment(s)),
            s
        );
    }

    #[test]
    fn json_body_checks_media_type_and_shape() {
        let r = Request::new(Method::Post, "/x", "http://h")
            .with_header("Content-Type", "text/plain")
            .with_body("{}");
        assert_eq!(r.json_body().unwrap_err().status, 415);
        let r = Request::new(Method::Post, "/x", "http://h").with_body("[1]");
        assert_eq!(r.json_body().unwrap_err().status, 400);
        let r = Request::new(Method::Post, "/x", "http://h").with_body("{\"a\":");
        assert_eq!(r.json_body().unwrap_err().status, 400);
        let r = Request::new(Method::Post, "/x", "http://h")
            .with_header("content-type", "application/scim+json; charset=utf-8")
            .with_body("{\"a\":1}");
        assert_eq!(r.json_body().unwrap()["a"], 1);
    }

    #[test]
    fn urls_split_into_origin_and_path_with_query() {
        let split = split_url;
        assert_eq!(
            split("https://scim.example.com/scim/v2/Users?filter=userName%20eq%20%22a%22#x"),
            Some((
                "https://scim.example.com".into(),
                "/scim/v2/Users?filter=userName%20eq%20%22a%22".into()
            ))
        );
        assert_eq!(
            split("http://127.0.0.1:8787/admin"),
            Some(("http://127.0.0.1:8787".into(), "/admin".into()))
        );
        assert_eq!(
            split("https://user:pw@h.test"),
            Some(("https://h.test".into(), "/".into()))
        );
        assert_eq!(
            split("https://h.test?x=1"),
            Some(("https://h.test".into(), "/?x=1".into()))
        );
        assert_eq!(split("not a url"), None);
        assert_eq!(split("https:///path"), None);
    }
}
