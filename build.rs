//! Copies the D1 migrations into `OUT_DIR` without their comment lines, for the Durable Object
//! backend to compile in (`src/store/object.rs`): an object migrates itself from these, and
//! the comments, written for people reading `schema/migrations`, are 40% of the bytes the wasm
//! (budgeted at 1 MiB) would otherwise carry. Only whole comment lines are dropped, so no
//! statement changes.

use std::error::Error;
use std::fs;
use std::path::Path;

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::var("OUT_DIR")?;
    println!("cargo::rerun-if-changed=schema/migrations");
    for entry in fs::read_dir("schema/migrations")? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".sql") {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let kept: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(Path::new(&out).join(name), kept)?;
    }
    Ok(())
}
