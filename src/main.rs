//! The binary: parse the command line, set up logging on stderr, run, and turn the outcome
//! into an exit code (0 success, 1 runtime failure, 2 usage or configuration error).

use std::process::ExitCode;

use clap::Parser as _;
use rolesanywhere_agent::cli::{Cli, Command};
use rolesanywhere_agent::error::{Report, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
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

/// Logs go to stderr (stdout carries credentials). `--debug` turns on our debug output;
/// `RUST_LOG` overrides everything.
fn init_logging(command: &Command) {
    let debug = match command {
        Command::CredentialProcess(a) => a.creds.debug,
        Command::Serve(a) => a.creds.debug,
        Command::Update(a) => a.creds.debug,
        Command::SignString(a) => a.debug,
        Command::ReadCertificateData(a) => a.debug,
        _ => false,
    };
    let default = match command {
        _ if debug => "rolesanywhere_agent=debug",
        Command::Emulate(_) | Command::Serve(_) | Command::Update(_) => "rolesanywhere_agent=info",
        _ => "rolesanywhere_agent=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
