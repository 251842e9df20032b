//! Test support (feature `test-support`): a UPF peer, tests/pfcp-peer/upf_peer.py, a PFCP UP
//! function on scapy's codec that writes what it holds to a JSON file; and whether the machine
//! can build network namespaces for UPGW tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

/// The Python with scapy: `MECPLANE_PYTHON`, else `python3`; `None` (skip) when scapy is
/// missing, except under `CI=true`.
pub fn python() -> Option<String> {
    let python = std::env::var("MECPLANE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import scapy.contrib.pfcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {python} has no scapy: the PFCP peer tests cannot run"
    );
    eprintln!("{python} has no scapy: skipping the PFCP peer test");
    None
}

/// A running UPF peer (tests/pfcp-peer/upf_peer.py).
pub struct UpfPeer {
    /// Its PFCP address.
    pub addr: SocketAddr,
    python: String,
    state: PathBuf,
    child: Option<Child>,
}

impl UpfPeer {
    /// Starts a peer on 127.0.0.2 keeping its state in `dir`.
    pub fn start(python: &str, dir: &Path) -> Self {
        let probe = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut peer = Self {
            addr,
            python: python.to_owned(),
            state: dir.join("upf.json"),
            child: None,
        };
        peer.restart();
        peer
    }

    /// (Re)starts the peer process: a new Recovery Time Stamp, no sessions.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.state);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/pfcp-peer/upf_peer.py"
        );
        self.child = Some(
            Command::new(&self.python)
                .args([
                    script,
                    &self.addr.ip().to_string(),
                    &self.addr.port().to_string(),
                ])
                .arg(&self.state)
                .spawn()
                .unwrap(),
        );
        // scapy's import alone takes seconds on a loaded machine
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if self.state.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the PFCP peer did not start within 60 s");
    }

    /// Stops the peer.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its whole state.
    pub fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap()
    }

    /// The sessions as the peer holds them, ordered by CP SEID.
    pub fn sessions(&self) -> Vec<Value> {
        let mut s: Vec<Value> = self.state()["sessions"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        s.sort_by_key(|s| s["cp_seid"].as_u64());
        s
    }
}

impl Drop for UpfPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether this machine can build network namespaces with nftables (root, `ip`, `nft`);
/// under `CI=true` it must.
pub fn netns_capable() -> bool {
    let ok = Command::new("bash")
        .args([
            "-c",
            "[ \"$(id -u)\" = 0 ] && command -v nft && command -v ip",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no root, nft or ip: the UPGW tests cannot run"
    );
    if !ok {
        eprintln!("no root, nft or ip: skipping a UPGW test");
    }
    ok
}
