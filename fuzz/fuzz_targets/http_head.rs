//! Raw bytes from a client, through the server's real accept loop and connection handler
//! (hyper with our limits, the head and idle timers) to the routes, over an in-memory
//! stream.
//!
//! The first byte picks the listener (bit 0 clear: the TCP endpoints, IMDS, container and
//! health; set: the unix socket's) and whether the client shuts its side down after the
//! input (bit 1). `@TOKEN@` in the input is replaced by a valid IMDS token.
//! Oracle: a response carries the credentials only if the request had a credential.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::server::Limits;
use rolesanywhere_agent_fuzz::{
    TOKEN_MARKER, assert_no_secret_unless, authorised, listener, replace, runtime,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let Some((&which, raw)) = data.split_first() else {
        return;
    };
    let (listener, token) = listener(which & 1 == 1);
    let half_close = which & 2 == 2;
    let input = replace(raw, TOKEN_MARKER, &token);
    let output = runtime().block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut read, mut write) = tokio::io::split(client);
        let send = async {
            // The server may close before reading everything: that is an answer too.
            let _ = write.write_all(&input).await;
            // Else the stream stays open: the server answers, then its idle timer (on the
            // paused clock, at once) closes the connection.
            if half_close {
                let _ = write.shutdown().await;
            }
        };
        let receive = async {
            let mut out = Vec::new();
            let _ = read.read_to_end(&mut out).await;
            out
        };
        let client = async { tokio::join!(send, receive).1 };
        tokio::select! {
            () = listener.serve(server, Limits::default()) => Vec::new(),
            out = client => out,
        }
    });
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&output));
    }
    assert_no_secret_unless(authorised(raw), &output);
});
