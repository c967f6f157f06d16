//! The layering rule, checked: each top-level module may name (`crate::x`) only modules of a
//! lower layer, so no two modules depend on each other. Test code (`tests.rs` files and a
//! trailing `#[cfg(test)] mod tests`) may reach anywhere; comments are not dependencies.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. A module not listed fails the check: place it when adding it.
const LAYERS: &[&[&str]] = &[
    // Leaf helpers: depend on nothing here.
    &["der", "files", "percent", "timefmt"],
    // Helpers built on those.
    &[
        "chain",
        "clock",
        "config",
        "credentials",
        "metrics",
        "private_dir",
        "signing",
    ],
    &["signer", "pki", "credentials_file", "endpoint"],
    // Identity (keys and certificates) and the on-disk credentials cache.
    &["identity", "disk_cache"],
    // The CreateSession client and session preparation.
    &["session"],
    // The credential cache, refresh and rotation; the local CreateSession service.
    &["agent", "emulate"],
    // The HTTP and Unix socket endpoints serving the agent's credentials.
    &["server"],
    // The raw command line and the top-level error every command ends with.
    &["cli", "error"],
    &["commands"],
];

/// The same rule inside a module whose submodules depend on one another: each submodule may
/// name (`super::x`, `crate::PARENT::x`) only submodules of a lower layer. Items of the
/// parent module itself (`super::Item`) are below every submodule.
const SUBLAYERS: &[(&str, &[&[&str]])] = &[(
    "agent",
    &[
        // What `status` reports (plain data); the cache and its `Loader` trait.
        &["status", "cache", "notify"],
        // The client of a running agent (it reads the status type).
        &["client"],
        // The CreateSession loader and the expiry watch, on top of the cache.
        &["expiry", "loader"],
        // Follows renewals and swaps the loader's identity: it drives the loader, so the
        // loader reaches it only through its `BeforeSession` trait.
        &["rotation"],
    ],
)];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The `crate::NAME` modules `text` names outside comments and its trailing test module.
fn names(text: &str) -> Vec<String> {
    names_after(text, "crate::")
}

/// The names that follow `prefix` in `text`, outside comments and its trailing test module.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if line.starts_with("//") {
            continue;
        }
        let mut from = 0;
        while let Some(at) = line[from..].find(prefix).map(|at| from + at) {
            from = at + prefix.len();
            // `super::super::x` is not `super::x`, nor `a::crate::x` a crate path.
            let before = &line[..at];
            if before.ends_with("::") || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let name: String = line[from..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "super" {
                found.push(name);
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The module a file belongs to: the first component of its path relative to its parent
/// module's directory (`agent/cache.rs` and `agent/cache/tests.rs` are both `cache`).
fn module_of(rel: &Path) -> String {
    rel.components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Every `(from, to, file)` edge of the source tree under `src`.
fn edges(src: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let top = module_of(rel);
        if top == "main" || top == "lib" || top == "layers" || rel.ends_with("tests.rs") {
            continue;
        }
        for name in names(&std::fs::read_to_string(&file).unwrap()) {
            if name != top {
                out.push((top.clone(), name, rel.display().to_string()));
            }
        }
    }
    out
}

#[test]
fn no_module_names_one_of_its_own_layer_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = BTreeMap::new();
    for (from, to, file) in edges(&src) {
        let problem = match (layer_of(&from), layer_of(&to)) {
            (None, _) => format!("{from} is in no layer of src/layers.rs"),
            (_, None) => format!("{to} is in no layer of src/layers.rs"),
            (Some(a), Some(b)) if b >= a => format!("{from} uses {to} ({file})"),
            _ => continue,
        };
        wrong.insert(problem, ());
    }
    let wrong: Vec<_> = wrong.into_keys().collect();
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// Every `(from, to, file)` edge between the submodules of `src/PARENT`.
fn sub_edges(src: &Path, parent: &str) -> Vec<(String, String, String)> {
    let dir = src.join(parent);
    let mut out = Vec::new();
    for path in rust_files(&dir) {
        let rel = path.strip_prefix(&dir).unwrap();
        if rel == Path::new("mod.rs") || rel.ends_with("tests.rs") {
            continue;
        }
        let sub = module_of(rel);
        // `super::` from `agent/x.rs` is the parent; from `agent/x/y.rs` it is `x`.
        let depth = rel.components().count();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut found = names_after(&text, &"super::".repeat(depth));
        found.extend(names_after(&text, &format!("crate::{parent}::")));
        for name in found {
            let is_sub = dir.join(format!("{name}.rs")).exists() || dir.join(&name).is_dir();
            if is_sub && name != sub {
                out.push((sub.clone(), name, format!("{parent}/{}", rel.display())));
            }
        }
    }
    out
}

#[test]
fn no_submodule_names_one_of_its_own_layer_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (parent, layers) in SUBLAYERS {
        let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
        for (from, to, file) in sub_edges(&src, parent) {
            match (layer_of(&from), layer_of(&to)) {
                (Some(a), Some(b)) if b < a => {}
                (None, _) | (_, None) => wrong.push(format!(
                    "{parent}::{from} or {parent}::{to} is in no layer of SUBLAYERS ({file})"
                )),
                _ => wrong.push(format!("{parent}::{from} uses {parent}::{to} ({file})")),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_submodule_scanner_tells_siblings_from_the_parent() {
    let text = "use super::cache::X;\nuse super::super::metrics;\nuse super::Item;\n";
    assert_eq!(names_after(text, "super::"), vec!["cache", "Item"]);
    assert_eq!(names_after(text, "super::super::"), vec!["metrics"]);
}

#[test]
fn the_scanner_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::session::X;\n// crate::agent in a comment\nfn f() { crate::metrics::global(); }\n#[cfg(test)]\nmod tests {\n    use crate::commands;\n}\n";
    assert_eq!(names(text), vec!["session", "metrics"]);
}
