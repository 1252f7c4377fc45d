//! The examples in the documentation (doc comments of this crate, and the README) use only what a user of
//! `bus_client` can reach, and so do the programs in `examples/`: none of them names an internal crate (`shmbus_os`, `shmbus_ring`, `shmbus_shm`,
//! `shmbus_proto`), which doc-tests compile against but a user's program does not depend on.

use std::path::{Path, PathBuf};

const INTERNAL: [&str; 4] = ["shmbus_os", "shmbus_ring", "shmbus_shm", "shmbus_proto"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read the source directory") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The doc text of a source line, if it is a doc comment.
fn doc_text(line: &str) -> Option<&str> {
    let t = line.trim_start();
    t.strip_prefix("///").or_else(|| t.strip_prefix("//!")).map(|d| d.strip_prefix(' ').unwrap_or(d))
}

/// Whether a code block with this info string holds Rust (`bare`: what a block without one holds).
fn is_rust(info: &str, bare: bool) -> bool {
    let words = ["rust", "no_run", "compile_fail", "should_panic", "ignore", "edition2021"];
    match info.trim() {
        "" => bare,
        i => i.split(',').any(|w| words.contains(&w.trim())),
    }
}

/// The lines inside Rust code blocks of `text`, where `doc` turns a line into its doc text (or `None`).
fn fenced<'a>(text: &'a str, doc: fn(&'a str) -> Option<&'a str>, bare: bool) -> Vec<(usize, &'a str)> {
    let mut inside = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(d) = doc(line) else {
            inside = false;
            continue;
        };
        if d.trim_start().starts_with("```") {
            inside = !inside && is_rust(d.trim_start().trim_start_matches('`'), bare);
            continue;
        }
        if inside {
            out.push((n + 1, d));
        }
    }
    out
}

fn offenders(file: &Path, lines: Vec<(usize, &str)>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|(_, l)| INTERNAL.iter().any(|c| l.contains(c)))
        .map(|(n, l)| format!("{}:{n}: {}", file.display(), l.trim()))
        .collect()
}

#[test]
fn doc_examples_use_only_the_public_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read a source file");
        bad.extend(offenders(f, fenced(&text, doc_text, true)));
    }
    let mut examples = Vec::new();
    rust_files(&root.join("examples"), &mut examples);
    for f in &examples {
        let text = std::fs::read_to_string(f).expect("read an example");
        bad.extend(offenders(f, text.lines().enumerate().map(|(n, l)| (n + 1, l)).collect()));
    }
    let readme = root.join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("read the README");
    bad.extend(offenders(&readme, fenced(&text, Some, false)));
    assert!(files.len() > 20, "found the sources");
    assert!(bad.is_empty(), "examples naming crates users cannot reach:\n{}", bad.join("\n"));
}
