//! The `keyring import|delete` flags; [`crate::commands`] runs them.

use secrecy::SecretString;

use super::secret;

#[derive(clap::Args, Debug, Clone)]
pub struct KeyringArgs {
    #[command(subcommand)]
    pub action: KeyringAction,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeyringAction {
    /// Check a private key file and store it, as PKCS#8, in the OS keyring; then use it
    /// with --private-key keyring:SERVICE/ACCOUNT
    Import(ImportArgs),
    /// Delete a stored key
    Delete(DeleteArgs),
}

/// Where the entry is: the flags `import` and `delete` share.
#[derive(clap::Args, Debug, Clone)]
pub struct EntryArgs {
    /// Service name of the entry (no '/')
    #[arg(long, value_name = "SERVICE")]
    pub service: String,
    /// Account name of the entry
    #[arg(long, value_name = "ACCOUNT")]
    pub account: String,
    /// Which keyring to store in or delete from
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendArg {
    /// The Secret Service when one is reachable, else the kernel keyring (delete: every
    /// backend that has the entry)
    Auto,
    /// The freedesktop Secret Service on the D-Bus session bus (GNOME Keyring, KWallet, KeePassXC)
    SecretService,
    /// The Linux kernel keyring (session keyring; gone at reboot)
    Keyutils,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub entry: EntryArgs,
    /// Password of an encrypted PKCS#8 key (else ROLESANYWHERE_PKCS8_PASSWORD, else a prompt on a terminal)
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    pub pkcs8_password: Option<SecretString>,
    /// Store an encrypted key decrypted (by default it stays encrypted and needs its password at each use)
    #[arg(long)]
    pub decrypt: bool,
    /// Overwrite an existing entry
    #[arg(long)]
    pub replace: bool,
    /// The key: PKCS#8, PKCS#1, SEC1 or encrypted PKCS#8, PEM or DER; '-' reads standard input
    #[arg(value_name = "KEY")]
    pub key: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub entry: EntryArgs,
}
