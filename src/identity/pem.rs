//! A small PEM reader that keeps every block's label and headers, so key files can be told
//! apart (`ENCRYPTED PRIVATE KEY`, legacy `Proc-Type: 4,ENCRYPTED`, `TSS2 PRIVATE KEY`)
//! instead of being silently skipped. Block contents are zeroized on drop because they may
//! be private keys.

use base64::Engine as _;
use zeroize::Zeroizing;

/// One `-----BEGIN label-----` ... `-----END label-----` block.
pub struct Block {
    pub label: String,
    /// RFC 1421 headers such as `Proc-Type`; present only in legacy encrypted keys.
    pub has_headers: bool,
    pub der: Zeroizing<Vec<u8>>,
}

/// Why a file that looks like PEM could not be read. Never carries the file's contents.
#[derive(Debug, PartialEq, Eq)]
pub enum PemError {
    /// No `-----BEGIN` line at all: not PEM (maybe DER).
    NotPem,
    /// A block with this label has no matching END line.
    Unterminated(String),
    /// A block with this label is not valid base64.
    BadBase64(String),
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemError::NotPem => f.write_str("no PEM block found"),
            PemError::Unterminated(l) => write!(f, "the {l} block has no END line"),
            PemError::BadBase64(l) => write!(f, "the {l} block is not valid base64"),
        }
    }
}

/// Whether the bytes contain a PEM armour line at all.
pub fn looks_like_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Splits `data` into its PEM blocks, in order. Text outside blocks is ignored, as
/// OpenSSL does (certificate files often carry `subject=` lines).
pub fn parse(data: &[u8]) -> Result<Vec<Block>, PemError> {
    let text = String::from_utf8_lossy(data);
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = armour_label(line, "-----BEGIN ") else {
            continue;
        };
        let mut body = Zeroizing::new(String::new());
        let mut has_headers = false;
        let mut ended = false;
        for inner in lines.by_ref() {
            if armour_label(inner, "-----END ").is_some() {
                ended = true;
                break;
            }
            let inner = inner.trim();
            if inner.contains(':') {
                has_headers = true;
                continue;
            }
            body.push_str(inner);
        }
        if !ended {
            return Err(PemError::Unterminated(label.to_string()));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| PemError::BadBase64(label.to_string()))?;
        blocks.push(Block {
            label: label.to_string(),
            has_headers,
            der: Zeroizing::new(der),
        });
    }
    if blocks.is_empty() {
        return Err(PemError::NotPem);
    }
    Ok(blocks)
}

fn armour_label<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim()
        .strip_prefix(prefix)?
        .strip_suffix("-----")
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_headers_and_ignores_text_between_blocks() {
        let pem = b"subject=CN=x\n-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
            junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nBAU=\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse(pem).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(&blocks[0].der[..], &[1, 2, 3]);
        assert!(!blocks[0].has_headers);
        assert_eq!(blocks[1].label, "RSA PRIVATE KEY");
        assert!(blocks[1].has_headers);
        assert_eq!(&blocks[1].der[..], &[4, 5]);
    }

    #[test]
    fn reports_problems_without_contents() {
        assert_eq!(parse(b"hello").err(), Some(PemError::NotPem));
        assert_eq!(
            parse(b"-----BEGIN X-----\nAQID\n").err(),
            Some(PemError::Unterminated("X".into()))
        );
        let err = parse(b"-----BEGIN KEY-----\nsecret!!\n-----END KEY-----\n")
            .err()
            .unwrap();
        assert_eq!(err, PemError::BadBase64("KEY".into()));
        assert!(!err.to_string().contains("secret"));
    }
}
