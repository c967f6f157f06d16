//! The layering rule, checked: each top-level module may name (`crate::x`) only modules of a
//! lower layer, so no two modules depend on each other. Test code (`tests.rs` files and a
//! trailing `#[cfg(test)] mod tests`) may reach anywhere; comments are not dependencies.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. A module not listed fails the check: place it when adding it.
const LAYERS: &[&[&str]] = &[
    // Leaf helpers: depend on nothing here.
    &[
        "chain",
        "clock",
        "config",
        "credentials",
        "der",
        "files",
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

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The `crate::NAME` modules `text` names outside comments and its trailing test module.
fn names(text: &str) -> Vec<String> {
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
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Every `(from, to, file)` edge of the source tree under `src`.
fn edges(src: &Path) -> Vec<(String, String, String)> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
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

#[test]
fn the_scanner_sees_uses_and_skips_comments_and_tests() {
    let text = "use crate::session::X;\n// crate::agent in a comment\nfn f() { crate::metrics::global(); }\n#[cfg(test)]\nmod tests {\n    use crate::commands;\n}\n";
    assert_eq!(names(text), vec!["session", "metrics"]);
}
