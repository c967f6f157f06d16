//! `update`: writes credentials into a profile of the shared credentials file, once
//! (`--once`) or every time the refresher obtains a new set, retrying failures instead of
//! exiting.

use std::path::Path;
use std::sync::Arc;

use super::session_flags;
use crate::agent::cache::CredentialCache;
use crate::agent::loader::SessionLoader;
use crate::cli::UpdateArgs;
use crate::clock::Clock;
use crate::credentials::Credentials;
use crate::credentials_file;
use crate::error::Error;
use crate::session::{PreparedSession, SessionClient};

pub async fn run(args: &UpdateArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    // Everything about the file that can be wrong is found before a session is asked for:
    // an unwritable profile name used to be refused only after the CreateSession.
    let path = credentials_file::default_path()?;
    credentials_file::preflight(&path, &args.profile)?;
    // Taken before the identity is read, so a renewal during start-up is still noticed.
    let spec = session_flags::spec(&args.creds)?;
    let baseline = crate::agent::rotation::Baseline::take(&spec.identity);
    let prepared = PreparedSession::load(&spec, clock.as_ref())?;
    let client = SessionClient::new(&prepared.endpoint, clock.clone())?;
    if args.once {
        let creds = client
            .create_session(&prepared.identity, &prepared.settings)
            .await?;
        return write(&path, &args.profile, &creds);
    }

    let status = Arc::new(crate::agent::expiry::IdentityStatus::new(
        crate::agent::expiry::CertDates::of(&prepared.identity.certificate),
    ));
    let loader = Arc::new(SessionLoader::new(
        client,
        prepared.identity,
        prepared.settings,
    ));
    let cache = Arc::new(CredentialCache::new(
        loader.clone(),
        session_flags::policy(&args.creds),
        clock.clone(),
    ));
    // A renewed certificate is used for the next CreateSession, as in `serve`.
    let rotation = crate::agent::rotation::Rotation::new(
        spec,
        clock.clone(),
        loader,
        None,
        status.clone(),
        baseline,
    );
    let mut updates = cache.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let refresher = tokio::spawn(cache.clone().run_refresher(stopped()));
    tokio::spawn(rotation.run(stopped()));
    tokio::spawn(crate::agent::expiry::monitor(
        status,
        cache.clone(),
        clock,
        stopped(),
    ));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                let creds = updates.borrow_and_update().clone();
                if let Some(creds) = creds
                    && let Err(e) = write(&path, &args.profile, &creds)
                {
                    // The next refresh writes again; the file may be fixed by then.
                    tracing::error!("{}", crate::error::Report(&e));
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    Ok(())
}

fn write(path: &Path, profile: &str, creds: &Credentials) -> Result<(), Error> {
    credentials_file::update_profile(path, profile, creds)?;
    tracing::info!(
        path = %path.display(),
        profile,
        expiration = %crate::credentials::format_expiration(creds.expiration),
        "updated the shared credentials file"
    );
    Ok(())
}
