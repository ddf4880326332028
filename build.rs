//! Shrinks what the worker embeds, at build time: its wasm size is budgeted (scripts/test.sh).
//! The admin console's static files are gzipped (gzip-9 keeps about a quarter of their bytes;
//! every browser takes them as they are with `Content-Encoding: gzip`, so the worker never
//! decompresses anything), and the SCIM schema files, kept readable in the repository, are
//! embedded without their indentation (the worker parses them; whitespace is all that goes).
//! The D1 migrations are copied without their comment lines for the Durable Object backend to
//! compile in (`src/store/object.rs`: an object migrates itself from these); the comments,
//! written for people reading `schema/migrations`, are 40% of their bytes. Only whole comment
//! lines are dropped, so no statement changes.

// A build script that cannot read the repository's own files must stop the build: these
// expects fail `cargo build`, never a request.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::path::Path;

const CONSOLE: &[&str] = &["index.html", "console.js", "console.css"];
const SCHEMAS: &[&str] = &["user.json", "group.json", "enterprise_user.json"];

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in SCHEMAS {
        let src = Path::new("schema/scim").join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read_to_string(&src).expect("schema file is readable");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("schema file is JSON");
        std::fs::write(Path::new(&out).join(name), doc.to_string()).expect("write OUT_DIR");
    }
    for name in CONSOLE {
        let src = Path::new("src/service/console").join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read(&src).expect("console file is readable");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&text).expect("compress in memory");
        let bytes = gz.finish().expect("compress in memory");
        std::fs::write(Path::new(&out).join(format!("{name}.gz")), bytes).expect("write OUT_DIR");
    }
    migrations(Path::new(&out));
}

fn migrations(out: &Path) {
    println!("cargo:rerun-if-changed=schema/migrations");
    for entry in std::fs::read_dir("schema/migrations").expect("migrations are readable") {
        let path = entry.expect("migrations are readable").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("migration is readable");
        let kept: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(out.join(name), kept).expect("write OUT_DIR");
    }
}
