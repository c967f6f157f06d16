//! The agent socket's answer as `credential-process` reads it: the input is what a process
//! listening on the socket sends back (status line, headers, maybe chunked body), served
//! over a real unix socket to the real client.
#![no_main]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::agent::client::{AgentAnswer, ask};
use rolesanywhere_agent_fuzz::NOW;

struct Agent {
    path: PathBuf,
    _dir: tempfile::TempDir,
    answers: SyncSender<Vec<u8>>,
    done: Mutex<Receiver<()>>,
}

/// A thread that answers each connection with the next input, after reading the request
/// (closing unread would make the client's write fail instead of its read).
fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("fuzz: temp dir: {e}"));
        let path = dir.path().join("agent.sock");
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("fuzz: bind the socket: {e}"));
        let (answers, next) = sync_channel::<Vec<u8>>(1);
        let (served, done) = sync_channel::<()>(1);
        std::thread::spawn(move || {
            for answer in next {
                if let Ok((mut stream, _)) = listener.accept() {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(&answer);
                }
                let _ = served.send(());
            }
        });
        Agent {
            path,
            _dir: dir,
            answers,
            done: Mutex::new(done),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let agent = agent();
    if agent.answers.send(data.to_vec()).is_err() {
        return;
    }
    let answer = ask(&agent.path, "0123456789abcdef", NOW);
    if let Ok(done) = agent.done.lock() {
        let _ = done.recv();
    }
    match answer {
        Some(AgentAnswer::Declined(status)) => assert_ne!(status, 200),
        // What `credential-process` would print: the client checked it is credential JSON
        // that is still valid.
        Some(AgentAnswer::Credentials(json)) => {
            let v: serde_json::Value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("printed an answer that is not JSON: {e}"));
            assert_eq!(v["Version"], 1);
        }
        None => {}
    }
});
