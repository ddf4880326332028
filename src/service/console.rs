//! The admin console: a small single-page app at `/admin` (HTML, JS and CSS from
//! `src/service/console/`, embedded in the wasm gzipped by `build.rs` and served as they are
//! with `Content-Encoding: gzip`), and the read-only views of a tenant it needs under
//! the admin API (`/admin/api/tenants/{t}/Users|Groups[/{id}]`, `/tolerances`).
//!
//! The static files need no credential: the console asks for the `ADMIN_TOKEN`, keeps it in
//! the tab's `sessionStorage` and sends it as a bearer token to `/admin/api`, which checks it.
//! They are served with a strict Content-Security-Policy (scripts and styles from this origin
//! only, nothing inline, no framing).

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::ResourceType;
use crate::service::http::{Method, Request, Response};
use crate::service::tenant::{SCIM_PATH, TENANT_PREFIX};
use crate::store::{Db, Store};
use serde_json::json;

const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz"));
const CONSOLE_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/console.js.gz"));
const CONSOLE_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/console.css.gz"));

/// Scripts, styles and API calls from this origin only; no inline code, plugins, framing or
/// form posts (every form is handled by the script).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// FNV-1a, computed at compile time: the files' ETags change exactly when their content does.
/// (A `const fn` cannot call `slice::get`; the loop bound keeps the index in range, and the
/// input is the embedded files, never a request.)
#[allow(clippy::indexing_slicing)]
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

const INDEX_TAG: u64 = fnv1a(INDEX_HTML);
const JS_TAG: u64 = fnv1a(CONSOLE_JS);
const CSS_TAG: u64 = fnv1a(CONSOLE_CSS);

/// The console's static files: `Some` for `/admin`, `/admin/`, `/admin/console.js` and
/// `/admin/console.css` (405 for methods other than GET and HEAD), `None` for any other path.
pub fn asset(req: &Request) -> Option<Response> {
    let (body, content_type, tag) = match req.path.as_str() {
        "/admin" | "/admin/" | "/admin/index.html" => {
            (INDEX_HTML, "text/html; charset=utf-8", INDEX_TAG)
        }
        "/admin/console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8", JS_TAG),
        "/admin/console.css" => (CONSOLE_CSS, "text/css; charset=utf-8", CSS_TAG),
        _ => return None,
    };
    if !matches!(req.method, Method::Get | Method::Head) {
        let e = ScimError::method_not_allowed("method not allowed here; allowed: GET, HEAD");
        return Some(security_headers(Response::error(&e)).with_header("allow", "GET, HEAD"));
    }
    if !accepts_gzip(req.header("accept-encoding")) {
        let e = ScimError::new(
            406,
            None,
            "the console is served gzip-encoded; send Accept-Encoding: gzip (every browser does)",
        );
        return Some(security_headers(Response::error(&e)));
    }
    let etag = format!("\"{tag:016x}\"");
    let fresh = req
        .header("if-none-match")
        .is_some_and(|h| h.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        Response::empty(304)
    } else {
        let mut r = Response::empty(200)
            .with_header("content-type", content_type)
            .with_header("content-encoding", "gzip");
        if req.method == Method::Get {
            r.body = body.to_vec();
        }
        r
    };
    // Revalidated on every load (a 304 when unchanged), so a deploy is picked up at once.
    resp = resp
        .with_header("etag", etag)
        .with_header("cache-control", "no-cache")
        .with_header("vary", "accept-encoding");
    Some(security_headers(resp))
}

/// RFC 9110 §12.5.3: no header accepts any coding; otherwise `gzip` (or `*`) must be listed
/// without `q=0`.
fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(h) = header else {
        return true;
    };
    h.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn security_headers(resp: Response) -> Response {
    resp.with_header("content-security-policy", CSP)
        .with_header("x-frame-options", "DENY")
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header("cross-origin-opener-policy", "same-origin")
}

/// `GET /admin/api/tenants/{t}/{view}/{tail..}` (the admin credential is already checked):
/// `Users` and `Groups` list or get as the tenant through the SCIM code path (filter, sortBy,
/// startIndex, count, attributes, ... as in SCIM); `tolerances` counts the IdP tolerances
/// that fired.
pub async fn api<D: Db>(
    ctx: &crate::service::ctx::Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    view: &str,
    tail: &[&str],
) -> Result<Response> {
    let no_tenant = || ScimError::not_found(format!("no tenant '{}'", store.tenant()));
    let resp = if view == "tolerances" {
        if !tail.is_empty() {
            return Err(not_found(req));
        }
        let counts = store.tolerance_counts().await?.ok_or_else(no_tenant)?;
        let list: Vec<_> = counts
            .iter()
            .map(|t| json!({"name": t.name, "count": t.count, "lastSeen": t.last_seen}))
            .collect();
        let mut r = Response::json(200, &json!({ "tolerances": list }));
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        r.with_header("content-type", "application/json; charset=utf-8")
    } else {
        let rt = ResourceType::from_endpoint(view).ok_or_else(|| not_found(req))?;
        let id = match tail {
            [] => None,
            [id] => Some(*id),
            _ => return Err(not_found(req)),
        };
        store.tenant_record().await?.ok_or_else(no_tenant)?;
        let base = format!("{}{TENANT_PREFIX}{}{SCIM_PATH}", req.origin, store.tenant());
        crate::service::scim::read(ctx, store, req, rt, id, &base).await?
    };
    Ok(resp.with_header("cache-control", "no-store"))
}

fn not_found(req: &Request) -> ScimError {
    ScimError::not_found(format!(
        "no admin resource at '{}'; see /admin/api/tenants",
        req.path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Server;
    use serde_json::Value;

    const ADMIN: &str = "admin-console-test-token-0123456789";
    const ORIGIN: &str = "https://scim.test";

    type H = Server;

    /// What the console tests do on top of the shared test server.
    trait ConsoleHarness {
        fn admin(&mut self, m: Method, path: &str, body: Option<Value>) -> Response;
        fn tenant_with_data(&mut self, t: &str) -> (String, String, String);
    }

    impl ConsoleHarness for H {
        fn admin(&mut self, m: Method, path: &str, body: Option<Value>) -> Response {
            self.call(m, &format!("/admin/api{path}"), ADMIN, body)
        }

        /// Tenant `t` with a user `alice@t.test` in group `Sales`; answers the SCIM token.
        fn tenant_with_data(&mut self, t: &str) -> (String, String, String) {
            let r = self.admin(Method::Post, "/tenants", Some(json!({"id": t})));
            assert_eq!(r.status, 201);
            let token = self
                .admin(Method::Post, &format!("/tenants/{t}/tokens"), None)
                .body_json()["token"]
                .as_str()
                .unwrap()
                .to_string();
            let scim = format!("/t/{t}/scim/v2");
            let user = self.call(
                Method::Post,
                &format!("{scim}/Users"),
                &token,
                Some(json!({"schemas": [crate::proto::schema::USER_SCHEMA], "userName": format!("alice@{t}.test")})),
            );
            assert_eq!(user.status, 201);
            let uid = user.body_json()["id"].as_str().unwrap().to_string();
            let group = self.call(
                Method::Post,
                &format!("{scim}/Groups"),
                &token,
                Some(json!({"schemas": [crate::proto::schema::GROUP_SCHEMA], "displayName": "Sales", "members": [{"value": uid}]})),
            );
            assert_eq!(group.status, 201);
            let gid = group.body_json()["id"].as_str().unwrap().to_string();
            (token, uid, gid)
        }
    }

    fn get(path: &str) -> Request {
        Request::new(Method::Get, path, ORIGIN)
    }

    #[test]
    fn static_files_have_types_and_a_strict_policy() {
        let mut h = H::new(&[], Some(ADMIN));
        for (path, ty) in [
            ("/admin", "text/html"),
            ("/admin/", "text/html"),
            ("/admin/console.js", "text/javascript"),
            ("/admin/console.css", "text/css"),
        ] {
            let r = h.send(get(path));
            assert_eq!(r.status, 200, "{path}");
            assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
            assert_eq!(r.header("content-security-policy"), Some(CSP));
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.header("cache-control"), Some("no-cache"));
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(r.body.as_slice()),
                &mut text,
            )
            .expect("a gzip body");
            let file = match path {
                "/admin/console.js" => include_str!("console/console.js"),
                "/admin/console.css" => include_str!("console/console.css"),
                _ => include_str!("console/index.html"),
            };
            assert_eq!(text, file, "{path} serves the file as it is");
            // Revalidation: the same ETag answers 304 without a body.
            let tag = r.header("etag").unwrap().to_string();
            let again = h.send(get(path).with_header("if-none-match", &tag));
            assert_eq!(again.status, 304);
            assert!(again.body.is_empty());
        }
        let head = h.send(Request::new(Method::Head, "/admin", ORIGIN));
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        let post = h.send(Request::new(Method::Post, "/admin", ORIGIN));
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
        let identity_only = get("/admin").with_header("accept-encoding", "identity, gzip;q=0");
        assert_eq!(h.send(identity_only).status, 406);
        let browser = get("/admin").with_header("accept-encoding", "gzip, deflate, br, zstd");
        assert_eq!(h.send(browser).status, 200);
        assert_eq!(h.send(get("/admin/other.js")).status, 404);
        assert_eq!(h.send(get("/adminx")).status, 404);
    }

    #[test]
    fn the_page_has_no_inline_code_and_labels_every_input() {
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
        let html = include_str!("console/index.html");
        for tag in html.split("<script").skip(1) {
            assert!(tag.trim_start().starts_with("src="), "inline script: {tag}");
        }
        assert!(!html.contains(" style="), "inline style attribute");
        for tag in html.split('<').skip(1) {
            let inside = &tag[..tag.find('>').unwrap_or(tag.len())];
            let handler = inside
                .split_whitespace()
                .skip(1)
                .any(|a| a.starts_with("on"));
            assert!(!handler, "inline event handler: <{inside}>");
        }
        for input in html
            .split("<input")
            .skip(1)
            .chain(html.split("<select").skip(1))
        {
            let attrs = &input[..input.find('>').unwrap()];
            let id = attrs
                .split("id=\"")
                .nth(1)
                .map(|s| &s[..s.find('"').unwrap()]);
            let labelled = match id {
                Some(id) => html.contains(&format!("for=\"{id}\"")),
                None => false,
            } || attrs.contains("type=\"checkbox\""); // wrapped in its <label>
            assert!(labelled, "unlabelled control: <input{attrs}>");
        }
        assert!(html.contains("aria-live=\"polite\""));
        assert!(
            !include_str!("console/console.js").contains("innerHTML"),
            "values go in as text only"
        );
        assert!(
            !include_str!("console/console.js").contains("localStorage"),
            "the token stays per tab"
        );
    }

    #[test]
    fn directory_lists_and_gets_as_the_tenant_read_only() {
        let mut h = H::new(&[], Some(ADMIN));
        let (token, uid, gid) = h.tenant_with_data("acme");
        h.tenant_with_data("globex");
        let r = h.admin(
            Method::Get,
            "/tenants/acme/Users?filter=userName%20sw%20%22alice%22&count=10",
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let list = r.body_json();
        assert_eq!(list["totalResults"], 1, "only acme's user: {list}");
        assert_eq!(list["Resources"][0]["userName"], "alice@acme.test");
        assert_eq!(
            list["Resources"][0]["meta"]["location"],
            format!("{ORIGIN}/t/acme/scim/v2/Users/{uid}")
        );
        let user = h
            .admin(Method::Get, &format!("/tenants/acme/Users/{uid}"), None)
            .body_json();
        assert_eq!(user["groups"][0]["value"], gid.as_str());
        let group = h
            .admin(Method::Get, &format!("/tenants/acme/Groups/{gid}"), None)
            .body_json();
        assert_eq!(group["members"][0]["value"], uid.as_str());
        // Another tenant's id is not found through this tenant.
        assert_eq!(
            h.admin(Method::Get, &format!("/tenants/globex/Users/{uid}"), None)
                .status,
            404
        );
        let bad = h.admin(
            Method::Get,
            "/tenants/acme/Users?filter=userName%20zz",
            None,
        );
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body_json()["error"], "invalid_request");
        assert_eq!(
            h.admin(Method::Get, "/tenants/nope/Users", None).status,
            404
        );
        assert_eq!(
            h.admin(Method::Delete, &format!("/tenants/acme/Users/{uid}"), None)
                .status,
            405
        );
        assert_eq!(
            h.admin(Method::Post, "/tenants/acme/Users", None).status,
            405
        );
        assert_eq!(
            h.admin(Method::Get, "/tenants/acme/Users/a/b", None).status,
            404
        );
        // Only the admin token: a SCIM token of the tenant is refused.
        let scim = h.call(Method::Get, "/admin/api/tenants/acme/Users", &token, None);
        assert_eq!(scim.status, 401);
    }

    #[test]
    fn tolerances_count_per_name() {
        let mut h = H::new(&[], Some(ADMIN));
        let (token, uid, _) = h.tenant_with_data("acme");
        let empty = h.admin(Method::Get, "/tenants/acme/tolerances", None);
        assert_eq!(empty.status, 200);
        assert_eq!(empty.body_json(), json!({"tolerances": []}));
        for _ in 0..2 {
            let r = h.call(
                Method::Patch,
                &format!("/t/acme/scim/v2/Users/{uid}"),
                &token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
                })),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
        let r = h.admin(Method::Get, "/tenants/acme/tolerances", None);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let list = r.body_json()["tolerances"].as_array().unwrap().clone();
        let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["booleanString", "capitalizedOp"]);
        assert!(list.iter().all(|t| t["count"] == 2));
        assert!(list[0]["lastSeen"].as_str().unwrap().starts_with("20"));
        assert_eq!(
            h.admin(Method::Get, "/tenants/nope/tolerances", None)
                .status,
            404
        );
        assert_eq!(
            h.admin(Method::Get, "/tenants/acme/tolerances/x", None)
                .status,
            404
        );
    }
}
