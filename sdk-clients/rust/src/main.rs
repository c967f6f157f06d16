//! Resolves credentials with one provider of the AWS SDK for Rust's `aws-config` and prints,
//! per resolution, `{"provider":…,"access_key_id":…,"expiry":UNIX_SECONDS}` on one line: the
//! SDK matrix (`scripts/sdk-matrix.sh`) compares them with what the agent served. The secret
//! and the session token are never printed, only whether they are present.
//!
//! Usage: sdk-client-rust imds|ecs|process|chain [TIMES [INTERVAL_SECONDS]]
//! `process` reads the command from `SDK_MATRIX_CREDENTIAL_PROCESS`; the others take their
//! settings from the environment, as an application would.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use aws_config::credential_process::CredentialProcessProvider;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

async fn provider(name: &str) -> Result<SharedCredentialsProvider, String> {
    Ok(match name {
        "imds" => SharedCredentialsProvider::new(ImdsCredentialsProvider::builder().build()),
        "ecs" => SharedCredentialsProvider::new(EcsCredentialsProvider::builder().build()),
        "process" => {
            let command = std::env::var("SDK_MATRIX_CREDENTIAL_PROCESS")
                .map_err(|_| "SDK_MATRIX_CREDENTIAL_PROCESS is not set".to_string())?;
            SharedCredentialsProvider::new(CredentialProcessProvider::new(command))
        }
        "chain" => SharedCredentialsProvider::new(DefaultCredentialsChain::builder().build().await),
        other => {
            return Err(format!(
                "unknown provider {other:?}: use imds, ecs, process or chain"
            ));
        }
    })
}

async fn run(args: &[String]) -> Result<(), String> {
    let name = args.first().map(String::as_str).unwrap_or("chain");
    let times: u32 = match args.get(1) {
        Some(t) => t
            .parse()
            .map_err(|_| format!("TIMES {t:?} is not a number"))?,
        None => 1,
    };
    let interval: u64 = match args.get(2) {
        Some(t) => t
            .parse()
            .map_err(|_| format!("INTERVAL_SECONDS {t:?} is not a number"))?,
        None => 0,
    };
    let provider = provider(name).await?;
    for i in 0..times {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(interval)).await;
        }
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("{name}: {}", aws_config_error(&e)))?;
        let expiry = creds
            .expiry()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs().to_string())
            .unwrap_or_else(|| "null".to_string());
        println!(
            "{{\"provider\":\"{name}\",\"access_key_id\":\"{}\",\"secret\":{},\"token\":{},\"expiry\":{expiry}}}",
            creds.access_key_id(),
            !creds.secret_access_key().is_empty(),
            creds.session_token().is_some_and(|t| !t.is_empty()),
        );
    }
    Ok(())
}

/// The error with its sources, since the SDK's top-level message is often only a category.
fn aws_config_error(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdk-client-rust: {e}");
            ExitCode::FAILURE
        }
    }
}
