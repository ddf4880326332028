//! The crate's layering, checked: `proto` → `store` → `service` → `worker`, each folder under
//! `src/` using only the ones before it, no import cycle between modules, and no function
//! outside tests longer than [`MAX_FN_LINES`]. Read from the
//! source text (every `crate::…` and `super::…` path outside tests), so a violation fails
//! `cargo test` with the file and the path that broke it, before anyone has to find it in
//! review.

// A test: failing loudly is its job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function body allowed outside tests: one that does not fit on a screen or two
/// does more than one thing.
const MAX_FN_LINES: usize = 100;

/// The layers, lowest first.
const LAYERS: [&str; 4] = ["proto", "store", "service", "worker"];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines, as a path below the crate root (`src/store/query/mod.rs` →
/// `["store", "query"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Test-only code: files named for tests, and a file's inline `#[cfg(test)] mod tests`.
fn production_text(file: &Path, text: &str) -> Option<String> {
    let name = file.file_name()?.to_string_lossy().to_string();
    if name.ends_with("_tests.rs")
        || name == "tests.rs"
        || name == "differential.rs"
        || name == "testing.rs"
    {
        return None;
    }
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    // Comments may name modules of any layer; only code counts.
    let code: Vec<&str> = text[..cut]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    Some(code.join("\n"))
}

/// The module paths a file's code names: `crate::a::b::Item` and `super::sibling::Item`.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent_of(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `scim_edge::crate::`-like or `super::super::`: not a root path
            }
            let mut path = base.clone();
            let mut tail = rest;
            loop {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                if end == 0 {
                    break;
                }
                path.push(tail[..end].to_string());
                match tail[end..].strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            out.push(path);
        }
    }
    out
}

/// The module `super::` names: the parent of a file's module (for a `mod.rs`, its module is
/// the folder, so `super` is the folder's parent).
fn parent_of(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

struct Graph {
    /// module → modules it uses (children using their ancestors are left out: a parent
    /// declares its children, which naturally use its types).
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    /// (file, path) of each reference to a higher layer.
    violations: Vec<String>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g = Graph {
        edges: BTreeMap::new(),
        violations: Vec::new(),
    };
    for file in &files {
        let module = module_of(&src, file);
        let Some(layer) = module.first().and_then(|l| rank(l)) else {
            continue; // lib.rs, testing.rs
        };
        let text = std::fs::read_to_string(file).unwrap();
        let Some(code) = production_text(file, &text) else {
            continue;
        };
        for path in references(&module, &code) {
            let Some(target) = resolve(&path, &modules) else {
                continue; // an item of the crate root (e.g. `crate::PATCH_SUPPORTED`)
            };
            if let Some(t) = target.first().and_then(|l| rank(l)) {
                if t > layer {
                    g.violations.push(format!(
                        "{}: uses {} (layer '{}' may not use '{}')",
                        file.strip_prefix(&src).unwrap().display(),
                        path.join("::"),
                        LAYERS[layer],
                        LAYERS[t]
                    ));
                }
            }
            let ancestor = module.starts_with(&target);
            if !ancestor {
                g.edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_layer_uses_a_layer_above_it() {
    let g = graph();
    assert!(
        g.violations.is_empty(),
        "imports against the layering:\n{}",
        g.violations.join("\n")
    );
}

#[test]
fn no_module_cycles() {
    let g = graph();
    let found = cycles(&g.edges);
    assert!(found.is_empty(), "import cycles: {found:?}");
}

/// The checks see what they are meant to: a known edge exists, and a planted upward import
/// and cycle are reported.
#[test]
fn the_checks_can_fail() {
    let g = graph();
    let edge = |a: &str, b: &str| {
        let key: Vec<String> = a.split("::").map(str::to_string).collect();
        let val: Vec<String> = b.split("::").map(str::to_string).collect();
        g.edges.get(&key).is_some_and(|t| t.contains(&val))
    };
    assert!(edge("service::scim", "store"), "{:?}", g.edges.keys());
    assert!(edge("store::query", "proto::filter"));
    let refs = references(
        &["proto".into(), "resource".into()],
        "use crate::store::Db;\nlet x = super::schema::split_urn(k);",
    );
    assert_eq!(
        refs,
        vec![
            vec!["store".to_string(), "Db".to_string()],
            vec![
                "proto".to_string(),
                "schema".to_string(),
                "split_urn".to_string()
            ],
        ]
    );
    let mut planted = BTreeMap::new();
    let a = vec!["proto".to_string(), "a".to_string()];
    let b = vec!["proto".to_string(), "b".to_string()];
    planted.insert(a.clone(), BTreeSet::from([b.clone()]));
    planted.insert(b, BTreeSet::from([a]));
    assert_eq!(cycles(&planted).len(), 1);
}

/// The text with string and char literals and comments blanked out (newlines kept), so
/// braces can be counted.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                out.push(blank(b[i]));
                i += 1;
            }
            out.push_str("  ");
            i += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let close: Vec<char> = close.chars().collect();
            i = j + 1;
            while i < b.len() && !b[i..].starts_with(&close) {
                out.push(blank(b[i]));
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&x) = b.get(i) {
                    out.push(blank(x));
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `(name, line, length in lines)` of every function with a body.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let before = &line[..at];
        if !before.split_whitespace().all(|w| {
            matches!(w, "pub" | "async" | "const" | "unsafe" | "extern") || w.starts_with("pub(")
        }) {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i64;
        let mut opened = false;
        for (m, l) in lines.iter().enumerate().skip(n) {
            if !opened && l.trim_end().ends_with(';') && !l.contains('{') {
                break; // a declaration without a body
            }
            for ch in l.chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                out.push((name.clone(), n + 1, m - n + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_outside_tests_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let Some(_) = production_text(file, &text) else {
            continue;
        };
        let code = code_only(&text);
        let cut = code.find("#[cfg(test)]\nmod tests").unwrap_or(code.len());
        for (name, line, len) in functions(&code[..cut]) {
            if len > MAX_FN_LINES {
                long.push(format!(
                    "{}:{line} fn {name}: {len} lines",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn function_lengths_are_measured_on_code_not_literals() {
    let text = "fn a() {\n    let s = \"{{{\";\n    let c = '{';\n    // {\n}\nfn b<'x>(v: &'x str) -> &'x str { v }\n";
    let fns = functions(&code_only(text));
    assert_eq!(fns, vec![("a".to_string(), 1, 5), ("b".to_string(), 6, 1)]);
}
