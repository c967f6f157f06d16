//! Unit tests of the `--config` loader: merging, sections, and every error's line.

use super::*;
use crate::cli::Command;

const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1";

/// Writes `text` to a file (mode from the umask) and parses `args` with `--config` naming it.
fn load(text: &str, args: &[&str]) -> Result<Cli, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let config = path.display().to_string();
    let mut argv = vec!["rolesanywhere-agent"];
    argv.extend(args);
    argv.extend(["--config", &config]);
    try_parse_from(argv)
}

fn file_error(text: &str, args: &[&str]) -> ConfigFileError {
    match load(text, args) {
        Err(LoadError::File(e)) => e,
        Err(LoadError::Clap(e)) => panic!("clap error: {e}"),
        Ok(_) => panic!("accepted: {text}"),
    }
}

fn serve(text: &str, args: &[&str]) -> crate::cli::ServeArgs {
    let mut all = vec!["serve"];
    all.extend(args);
    match load(text, &all).unwrap_or_else(|e| panic!("{e:?}")).command {
        Command::Serve(a) => a,
        _ => panic!("not serve"),
    }
}

#[test]
fn file_values_fill_the_flags_the_command_line_did_not_give() {
    let a = serve(
        "certificate = \"/c.pem\"\nport = 9000\nno-verify-ssl = true\nallow-host = [\"a.test\", \"b.test\"]\nrefresh-before = \"5m\"\ntrust-anchor-arn = \"x\"\n",
        &["--port", "9100", "--trust-anchor-arn", TA],
    );
    assert_eq!(a.creds.identity.cert.certificate.as_deref(), Some("/c.pem"));
    assert_eq!(a.port, 9100, "the command line wins");
    assert_eq!(a.creds.trust_anchor_arn.as_deref(), Some(TA));
    assert!(a.creds.no_verify_ssl);
    assert_eq!(a.allow_host.len(), 2);
    assert_eq!(a.creds.refresh_before.as_secs(), 300);
    // A repeatable flag on the command line replaces the file's list.
    let a = serve(
        "allow-host = [\"a.test\", \"b.test\"]\n",
        &["--allow-host", "c.test"],
    );
    assert_eq!(a.allow_host.len(), 1);
}

#[test]
fn a_section_applies_to_its_subcommand_only_and_wins_over_the_top_level() {
    let text = "session-duration = 1800\nsocket = \"/top.sock\"\n[serve]\nport = 9000\nsession-duration = 2700\n[credential-process]\nno-cache = true\n";
    let a = serve(text, &[]);
    assert_eq!(a.port, 9000);
    assert_eq!(a.creds.session_duration, 2700);
    let Command::CredentialProcess(c) = load(text, &["credential-process"]).unwrap().command else {
        panic!("not credential-process")
    };
    assert_eq!(c.creds.session_duration, 1800);
    assert!(c.no_cache);
    // The top-level `socket` is not a flag of update.
    let e = file_error(text, &["update"]);
    assert!(
        matches!(&e, ConfigFileError::OtherSubcommand { key, line: 2, owners, .. } if key == "socket" && owners == "credential-process, serve, doctor"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("[credential-process]"), "{e:?}");
}

#[test]
fn a_flag_of_the_command_line_drops_the_file_value_it_conflicts_with() {
    let a = serve("socket = \"/s.sock\"\n", &["--no-socket"]);
    assert!(a.no_socket && a.socket.is_none());
    let e = file_error("socket = \"/s.sock\"\nno-socket = true\n", &["serve"]);
    assert!(
        matches!(
            e,
            ConfigFileError::Conflict {
                first_line: 1,
                second_line: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_keys_name_their_line_and_the_nearest_flag() {
    let e = file_error("port = 1\n\nprot = 2\n", &["serve"]);
    assert_eq!(
        e.to_string(),
        format!(
            "config file {}, line 3: unknown key 'prot' for serve",
            match &e {
                ConfigFileError::UnknownKey { path, .. } => path.clone(),
                _ => panic!("{e}"),
            }
        )
    );
    assert_eq!(e.hint().unwrap(), "did you mean 'port'?");
    let e = file_error("[serve]\ntrust_anchor_arn = \"x\"\n", &["update"]);
    assert!(
        matches!(&e, ConfigFileError::UnknownKey { line: 2, nearest: Some(n), .. } if n == "trust-anchor-arn"),
        "{e}"
    );
    let e = file_error("zzzzzz = 1\n", &["update"]);
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("update accepts:") && hint.contains("once"),
        "{hint}"
    );
    let e = file_error("[srve]\nport = 1\n", &["serve"]);
    assert!(
        matches!(&e, ConfigFileError::UnknownKey { line: 1, nearest: Some(n), .. } if n == "serve"),
        "{e}"
    );
    let e = file_error("config = \"/other.toml\"\n", &["serve"]);
    assert!(
        matches!(e, ConfigFileError::NotInFile { line: 1, .. }),
        "{e}"
    );
}

#[test]
fn wrong_types_and_bad_values_name_the_key_and_line() {
    for (text, expected, found) in [
        ("port = \"9911\"", "an integer", "a string"),
        ("certificate = 3", "a string", "an integer"),
        ("no-socket = \"yes\"", "a boolean", "a string"),
        ("allow-host = \"a.test\"", "an array of strings", "a string"),
        (
            "allow-host = [\"a\", 1]",
            "an array of strings",
            "an integer",
        ),
        ("serve = 1", "a table of flags", "an integer"),
    ] {
        let e = file_error(&format!("\n{text}\n"), &["serve"]);
        assert!(
            matches!(&e, ConfigFileError::WrongType { line: 2, expected: x, found: f, .. } if *x == expected && *f == found),
            "{text}: {e}"
        );
    }
    let e = file_error("hop-limit = 0\n", &["serve"]);
    assert!(
        matches!(&e, ConfigFileError::BadValue { line: 1, key, .. } if key == "hop-limit"),
        "{e}"
    );
    let e = file_error("bind = \"localhost:x\"\n", &["serve"]);
    assert!(e.to_string().contains("line 1: 'bind'"), "{e}");
}

#[test]
fn syntax_errors_give_the_position_but_never_the_line() {
    let e = file_error("port = 1\npkcs8-password = \"hunter2\n", &["serve"]);
    assert!(matches!(e, ConfigFileError::Syntax { line: 2, .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
}

#[test]
fn a_secret_in_a_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    for (text, key) in [
        ("port = 1\npkcs8-password = \"hunter2\"\n", "pkcs8-password"),
        // In the section of another subcommand: still in the file.
        (
            "[update]\ntpm-key-password = \"hunter2\"\n",
            "tpm-key-password",
        ),
        (
            "private-key = \"pkcs11:token=t;object=k?pin-value=1234\"\n",
            "private-key",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let argv = ["x", "serve", "--config", path.to_str().unwrap()];
        let Err(LoadError::File(e)) = try_parse_from(argv) else {
            panic!("accepted a group-readable secret")
        };
        assert!(
            matches!(&e, ConfigFileError::LooseSecret { key: k, mode: 0o640, .. } if k == key),
            "{e}"
        );
        assert!(!format!("{e} {e:?}").contains("hunter2"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(try_parse_from(argv).is_ok());
    }
    // Without a secret, the mode does not matter.
    std::fs::write(&path, "port = 1\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(try_parse_from(["x", "serve", "--config", path.to_str().unwrap()]).is_ok());
}

#[test]
fn a_missing_or_special_file_is_an_error_naming_it() {
    let Err(LoadError::File(e)) =
        try_parse_from(["x", "serve", "--config", "/nonexistent/agent.toml"])
    else {
        panic!("read a missing file")
    };
    assert!(
        e.to_string()
            .starts_with("cannot read config file /nonexistent/agent.toml (from --config)"),
        "{e}"
    );
    let Err(LoadError::File(e)) = try_parse_from(["x", "serve", "--config", "/dev/null"]) else {
        panic!("read a device")
    };
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

/// The subcommands that take `--config`, and the TOML type each of their flags takes.
#[test]
fn the_keys_are_the_flags_of_each_subcommand() {
    let cli = Cli::command();
    let taking: Vec<&str> = cli
        .get_subcommands()
        .filter(|c| takes_config(c))
        .map(|c| c.get_name())
        .collect();
    for name in ["credential-process", "serve", "update"] {
        assert!(taking.contains(&name), "{name} takes no --config");
    }
    let serve = cli.find_subcommand("serve").unwrap();
    let kind = |long: &str| {
        Kind::of(
            serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap(),
        )
    };
    assert_eq!(kind("port"), Kind::Integer);
    assert_eq!(kind("hop-limit"), Kind::Integer);
    assert_eq!(kind("session-duration"), Kind::Integer);
    assert_eq!(kind("allow-host"), Kind::List);
    assert_eq!(kind("reuse-pin"), Kind::Bool);
    assert_eq!(kind("refresh-before"), Kind::String);
    assert_eq!(kind("pkcs8-password"), Kind::String);
}

#[test]
fn nearest_reads_underscores_as_dashes_and_ignores_far_keys() {
    let flags = ["trust-anchor-arn", "port", "profile-arn"];
    assert_eq!(
        nearest("trust_anchor_arn", flags.into_iter()).as_deref(),
        Some("trust-anchor-arn")
    );
    assert_eq!(
        nearest("profile-ar", flags.into_iter()).as_deref(),
        Some("profile-arn")
    );
    assert_eq!(nearest("colour", flags.into_iter()), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}
