//! The binary: parse the command line, set up logging on stderr, run, and turn the outcome
//! into an exit code (0 success, 1 runtime failure, 2 usage or configuration error).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use rolesanywhere_agent::chain::Chain;
use rolesanywhere_agent::cli::Command;
use rolesanywhere_agent::error::{Report, exit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let dump_guard = forbid_core_dumps();
    // After the line above: the config file may hold a password.
    let cli = match rolesanywhere_agent::cli::config_file::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {}", Chain::new(&e, e.hint()));
            return ExitCode::from(exit::USAGE as u8);
        }
    };
    init_logging(&cli.command);
    if let Err(e) = dump_guard {
        tracing::warn!(
            "cannot mark the process non-dumpable ({e}): a core dump or a debugger of this user could read its keys and credentials"
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME as u8);
        }
    };
    match runtime.block_on(rolesanywhere_agent::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", Report(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Security: every subcommand may hold a private key, a PIN, a password or credentials in
/// memory, so the process is made non-dumpable before anything is read: no core file is
/// written when it crashes (a core of `serve` held the secret key, the IMDS token and the
/// raw EC key), and processes of the same user cannot ptrace it or read its memory through
/// /proc. Done first, for every subcommand, so no code path loads a secret before it.
fn forbid_core_dumps() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// Logs go to stderr (stdout carries credentials). `--debug` turns on our debug output;
/// `RUST_LOG` overrides everything.
fn init_logging(command: &Command) {
    let debug = match command {
        Command::CredentialProcess(a) => a.creds.debug,
        Command::Serve(a) => a.creds.debug,
        Command::Update(a) => a.creds.debug,
        Command::SignString(a) => a.debug,
        Command::ReadCertificateData(a) => a.debug,
        Command::Doctor(a) => a.creds.debug,
        _ => false,
    };
    let default = match command {
        _ if debug => "rolesanywhere_agent=debug",
        Command::Emulate(_) | Command::Serve(_) | Command::Update(_) => "rolesanywhere_agent=info",
        _ => "rolesanywhere_agent=warn",
    };
    // `Targets` reads the usual `RUST_LOG` forms (`debug`, `rolesanywhere_agent=trace,hyper=info`)
    // without the regex engine an `EnvFilter` brings, which is most of a megabyte of binary.
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, ignored) = match from_env.as_deref().map(str::parse::<Targets>) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (default_filter(default), Some(e)),
        None => (default_filter(default), None),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(ansi),
        )
        .with(filter)
        .init();
    if let Some(e) = ignored {
        tracing::warn!(
            "RUST_LOG is not a list of TARGET=LEVEL directives ({e}); using the default log level. Hint: RUST_LOG=debug or RUST_LOG=rolesanywhere_agent=trace"
        );
    }
}

fn default_filter(directives: &str) -> Targets {
    directives
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::WARN))
}
