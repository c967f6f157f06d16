//! The shared credentials file as `update` writes it: exact bytes for the edge cases the Go
//! helper gets wrong, and the file-system guarantees (0600, atomic, symlinks followed).

use std::fs;
use std::path::Path;

use rolesanywhere_agent::credentials::Credentials;
use rolesanywhere_agent::credentials_file::{CredentialsFileError, render, update_profile};
use secrecy::SecretString;

fn creds() -> Credentials {
    Credentials {
        access_key_id: "ASIANEW".into(),
        secret_access_key: SecretString::from("new/secret+key".to_string()),
        session_token: SecretString::from("NEWTOKEN==".to_string()),
        expiration: time::macros::datetime!(2030-01-01 00:00:00 UTC),
        role_arn: None,
    }
}

fn render_str(existing: &str, profile: &str) -> String {
    let out = render(existing, profile, &creds()).to_string();
    // Rendering is idempotent: a second update changes nothing more.
    assert_eq!(render(&out, profile, &creds()).as_str(), out);
    out
}

const NEW: &str = "aws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\n";

const SEVERAL: &str = "\
# AWS credentials
; kept by hand

[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = DEFAULTSECRET

[work]
# the work account
region = eu-west-1
aws_access_key_id = OLDKEY
output = json
aws_secret_access_key = OLDSECRET
aws_session_token = OLDTOKEN

# personal account below
[personal]
aws_access_key_id = PERSONAL
";

#[test]
fn target_in_the_middle_keeps_comments_other_profiles_and_extra_keys() {
    assert_eq!(
        render_str(SEVERAL, "work"),
        "\
# AWS credentials
; kept by hand

[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = DEFAULTSECRET

[work]
# the work account
region = eu-west-1
aws_access_key_id = ASIANEW
output = json
aws_secret_access_key = new/secret+key
aws_session_token = NEWTOKEN==

# personal account below
[personal]
aws_access_key_id = PERSONAL
"
    );
}

#[test]
fn target_at_the_end_keeps_its_last_line() {
    // The Go helper drops the final profile's last line; here `output` survives.
    let old = "[a]\nx = 1\n\n[b]\nregion = us-east-1\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\noutput = text\n";
    assert_eq!(
        render_str(old, "b"),
        "[a]\nx = 1\n\n[b]\nregion = us-east-1\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\noutput = text\n"
    );
}

#[test]
fn missing_keys_go_after_the_last_key_before_the_next_sections_comments() {
    assert_eq!(
        render_str(SEVERAL, "default"),
        "\
# AWS credentials
; kept by hand

[default]
aws_access_key_id = ASIANEW
aws_secret_access_key = new/secret+key
aws_session_token = NEWTOKEN==

[work]
# the work account
region = eu-west-1
aws_access_key_id = OLDKEY
output = json
aws_secret_access_key = OLDSECRET
aws_session_token = OLDTOKEN

# personal account below
[personal]
aws_access_key_id = PERSONAL
"
    );
    assert_eq!(
        render_str(SEVERAL, "personal"),
        format!(
            "{}aws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\n",
            SEVERAL.replace("= PERSONAL", "= ASIANEW")
        )
    );
}

#[test]
fn a_section_without_keys_gets_them_right_after_its_header() {
    assert_eq!(
        render_str("[a]\n\n# about b\n[b]\nk = v\n", "a"),
        format!("[a]\n{NEW}\n# about b\n[b]\nk = v\n")
    );
}

#[test]
fn a_missing_profile_is_appended_after_a_blank_line() {
    assert_eq!(
        render_str(SEVERAL, "new"),
        format!("{SEVERAL}\n[new]\n{NEW}")
    );
    // Already ending in a blank line: no second one.
    assert_eq!(
        render_str("[a]\nk = v\n\n", "new"),
        format!("[a]\nk = v\n\n[new]\n{NEW}")
    );
    // Only comments: still separated.
    assert_eq!(
        render_str("# nothing yet\n", "default"),
        format!("# nothing yet\n\n[default]\n{NEW}")
    );
}

#[test]
fn a_missing_final_newline_is_kept_when_editing_in_place() {
    assert_eq!(
        render_str("[a]\naws_access_key_id = OLD\nregion = r", "a"),
        "[a]\naws_access_key_id = ASIANEW\nregion = r\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN=="
    );
    assert_eq!(
        render_str(
            "[a]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = C",
            "a"
        ),
        format!("[a]\n{}", NEW.trim_end_matches('\n'))
    );
    // The last line itself is rewritten and still has no newline.
    assert_eq!(
        render_str("[a]\nregion = r\naws_session_token = OLD", "a"),
        "[a]\nregion = r\naws_session_token = NEWTOKEN==\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key"
    );
}

#[test]
fn a_missing_final_newline_is_added_before_an_appended_profile() {
    assert_eq!(
        render_str("[a]\nk = v", "b"),
        format!("[a]\nk = v\n\n[b]\n{NEW}")
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let old = "; windows\r\n[default]\r\naws_access_key_id = OLD\r\nregion = us-east-1\r\n\r\n[other]\r\nk = v\r\n";
    let crlf_new = NEW.replace('\n', "\r\n");
    assert_eq!(
        render_str(old, "default"),
        "; windows\r\n[default]\r\naws_access_key_id = ASIANEW\r\nregion = us-east-1\r\naws_secret_access_key = new/secret+key\r\naws_session_token = NEWTOKEN==\r\n\r\n[other]\r\nk = v\r\n"
    );
    assert_eq!(
        render_str(old, "added"),
        format!("{old}\r\n[added]\r\n{crlf_new}")
    );
    // CRLF without a final line ending.
    assert_eq!(
        render_str("[a]\r\nk = v", "a"),
        format!("[a]\r\nk = v\r\n{}", crlf_new.trim_end_matches("\r\n"))
    );
}

#[test]
fn duplicate_keys_keep_the_first_position_and_lose_the_rest() {
    let old = "[a]\naws_access_key_id = 1\nregion = r\naws_access_key_id = 2\nAWS_ACCESS_KEY_ID=3\naws_secret_access_key = S\naws_session_token = T\naws_session_token = T2\n[b]\naws_access_key_id = B\n";
    assert_eq!(
        render_str(old, "a"),
        "[a]\naws_access_key_id = ASIANEW\nregion = r\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\n[b]\naws_access_key_id = B\n"
    );
}

#[test]
fn section_headers_and_keys_tolerate_spacing_and_case() {
    let old = "[ default ]\n  Aws_Access_Key_Id=OLD\naws_secret_access_key   =OLD\naws_session_token\t=\tOLD\n[other]\naws_access_key_id = X\n";
    assert_eq!(
        render_str(old, "default"),
        "[ default ]\n  Aws_Access_Key_Id=ASIANEW\naws_secret_access_key   =new/secret+key\naws_session_token\t=\tNEWTOKEN==\n[other]\naws_access_key_id = X\n"
    );
    // The section name itself is exact: `[Default]` is another profile.
    assert_eq!(
        render_str("[Default]\nk = v\n", "default"),
        format!("[Default]\nk = v\n\n[default]\n{NEW}")
    );
}

#[test]
fn keys_of_other_profiles_are_never_touched() {
    let old = "[a]\naws_access_key_id = A\n[b]\naws_access_key_id = B\n";
    let out = render_str(old, "b");
    assert!(
        out.starts_with("[a]\naws_access_key_id = A\n[b]\n"),
        "{out}"
    );
}

// ---- the file system ----

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_new_file_and_its_directory_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("home/.aws/credentials");
    update_profile(&path, "default", &creds()).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("[default]\n{NEW}")
    );
    // The lock file that serialises writers stays beside the file.
    assert_eq!(
        names_in(path.parent().unwrap()),
        ["credentials", "credentials.lock"]
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&tmp.path().join("home")), 0o700);
    }
}

#[test]
fn updating_twice_edits_in_place_and_leaves_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("credentials");
    fs::write(&path, SEVERAL).unwrap();
    update_profile(&path, "work", &creds()).unwrap();
    update_profile(&path, "work", &creds()).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        render(SEVERAL, "work", &creds()).as_str()
    );
    assert_eq!(names_in(tmp.path()), ["credentials", "credentials.lock"]);
}

#[cfg(unix)]
#[test]
fn a_world_readable_file_is_tightened_to_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("credentials");
    fs::write(&path, "[default]\nregion = r\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    update_profile(&path, "default", &creds()).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("[default]\nregion = r\n{NEW}")
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_is_kept_and_its_target_updated() {
    let tmp = tempfile::tempdir().unwrap();
    let dotfiles = tmp.path().join("dotfiles");
    let aws = tmp.path().join(".aws");
    fs::create_dir(&dotfiles).unwrap();
    fs::create_dir(&aws).unwrap();
    let target = dotfiles.join("credentials");
    fs::write(&target, "[other]\nk = v\n").unwrap();
    let link = aws.join("credentials");
    // A relative link, as dotfile managers often make.
    std::os::unix::fs::symlink("../dotfiles/credentials", &link).unwrap();

    update_profile(&link, "default", &creds()).unwrap();

    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../dotfiles/credentials")
    );
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("[other]\nk = v\n\n[default]\n{NEW}")
    );
    assert_eq!(mode(&target), 0o600);
    // Writers lock beside the file they replace, the link's target.
    assert_eq!(names_in(&dotfiles), ["credentials", "credentials.lock"]);
    assert_eq!(names_in(&aws), ["credentials"]);
}

#[cfg(unix)]
#[test]
fn a_dangling_symlink_creates_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("real/credentials");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    update_profile(&link, "default", &creds()).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("[default]\n{NEW}")
    );
}

#[test]
fn a_non_utf8_file_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("credentials");
    fs::write(&path, b"[default]\n\xff\xfe\n").unwrap();
    let err = update_profile(&path, "default", &creds()).unwrap_err();
    assert!(matches!(err, CredentialsFileError::NotUtf8 { .. }), "{err}");
    assert!(err.to_string().contains("credentials"));
    assert!(err.hint().is_some());
    assert_eq!(fs::read(&path).unwrap(), b"[default]\n\xff\xfe\n");
}

#[cfg(unix)]
#[test]
fn an_unwritable_directory_is_an_error_that_names_the_file_and_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // Others may enter (root runs the update below as nobody); nobody may write in `ro`.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("ro");
    fs::create_dir(&dir).unwrap();
    let path = dir.join("credentials");
    fs::write(&path, "[default]\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    let err = update_as_non_root(&path);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let text = format!("{err} {err:?} {:?}", err.hint());
    // The lock file beside it is the first thing written, so that is what fails.
    assert!(matches!(err, CredentialsFileError::Lock { .. }), "{text}");
    assert!(text.contains("credentials.lock"), "{text}");
    assert!(err.hint().is_some(), "{text}");
    assert!(
        !text.contains("new/secret") && !text.contains("NEWTOKEN"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "[default]\n");
}

/// `update_profile(path)`, which must fail, run with the permissions of a user: as root (CI
/// runs as root, and root writes anywhere) on a thread that is nobody for the call. The
/// thread's uids are set with the raw syscall, which changes that thread only (glibc's
/// setresuid would change the whole test process), and the saved uid stays root so the
/// thread can change back.
#[cfg(unix)]
fn update_as_non_root(path: &Path) -> CredentialsFileError {
    use rustix::process::{Uid, geteuid};
    if !geteuid().is_root() {
        return update_profile(path, "default", &creds()).unwrap_err();
    }
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let (root, nobody) = (Uid::ROOT, Uid::from_raw(65534));
        rustix::thread::set_thread_res_uid(nobody, nobody, root).unwrap();
        let result = update_profile(&path, "default", &creds());
        rustix::thread::set_thread_res_uid(root, root, root).unwrap();
        result.unwrap_err()
    })
    .join()
    .unwrap()
}
