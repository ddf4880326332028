//! Compresses the admin console's static files at build time. They are embedded in the
//! worker's wasm, whose size is budgeted (1 MiB raw); gzip-9 keeps about a quarter of their
//! bytes, and every browser takes them as they are (`Content-Encoding: gzip`), so the worker
//! never decompresses anything.

// A build script that cannot read the repository's own files must stop the build: these
// expects fail `cargo build`, never a request.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::path::Path;

const CONSOLE: &[&str] = &["index.html", "console.js", "console.css"];

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in CONSOLE {
        let src = Path::new("src/service/console").join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read(&src).expect("console file is readable");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&text).expect("compress in memory");
        let bytes = gz.finish().expect("compress in memory");
        std::fs::write(Path::new(&out).join(format!("{name}.gz")), bytes).expect("write OUT_DIR");
    }
}
