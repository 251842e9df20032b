//! The README's operator walk-throughs, verbatim, against a live MEAO and a linked MEP started
//! from the demo's own configuration (`deploy/examples/`), as `scripts/run-demo.sh` leaves
//! them: every command of the `mecctl` walk-throughs and of the integrators' curl examples runs
//! in one bash session with the real `mecctl` binary, and its exit code (0, or the `# exit N`
//! the README announces) and output are checked. The walk-throughs run twice, since they leave
//! the demo as they found it. Then what the README does not show: every exit code, the token
//! cache (expiry, renewal after a refused token, no secret at hand), signed and zip packages,
//! --watch, -v, -o yaml and completions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use server_kit::testing::TestPki;

/// The README sections whose `sh` blocks are run, in order.
const SECTIONS: &[&str] = &[
    "## Walk-through: onboard a package (mecctl)",
    "## Walk-through: run an application (mecctl)",
    "## The APIs over HTTP (for integrators)",
];
/// The demo's MEAO URL in the README.
const DEMO_URL: &str = "http://127.0.0.1:8080";
const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One shell command of the README: its text and the exit code it announces.
#[derive(Debug, Clone)]
struct Step {
    command: String,
    exit: i32,
}

/// The commands of the `sh` blocks of `section`: continuation lines joined, comment lines
/// dropped, `# exit N` read from a trailing comment.
fn steps(readme: &str, section: &str) -> Vec<Step> {
    let start = readme
        .find(section)
        .unwrap_or_else(|| panic!("README has no section {section}"));
    let body = &readme[start + section.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut steps = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in body.lines() {
        if line.starts_with("```") {
            in_block = line.trim() == "```sh";
            continue;
        }
        if !in_block
            || (pending.is_empty()
                && (line.trim().is_empty() || line.trim_start().starts_with('#')))
        {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending);
        let exit = command
            .rfind("# exit ")
            .map(|at| {
                command[at + 7..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .unwrap_or(0);
        steps.push(Step { command, exit });
    }
    assert!(!steps.is_empty(), "no commands in {section}");
    steps
}

/// What one command did.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One bash session: variables and the working directory carry over between commands.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
    n: usize,
}

impl Shell {
    fn start(cwd: &Path, dir: &Path, env: &[(&str, String)]) -> Self {
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc"])
            .current_dir(cwd)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            dir: dir.to_owned(),
            n: 0,
        }
    }

    fn run(&mut self, command: &str) -> Outcome {
        self.n += 1;
        let n = self.n;
        let file = |ext: &str| self.dir.join(format!("step-{n}.{ext}"));
        std::fs::write(file("sh"), format!("{command}\n")).unwrap();
        writeln!(
            self.stdin,
            "source {} >{} 2>{} </dev/null; echo \"__done {n} $?\"",
            file("sh").display(),
            file("out").display(),
            file("err").display()
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let code = loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(300))
                .unwrap_or_else(|_| panic!("no end of {command}"));
            if let Some(rest) = line.strip_prefix(&format!("__done {n} ")) {
                break rest.trim().parse().unwrap();
            }
        };
        Outcome {
            code,
            stdout: std::fs::read_to_string(file("out")).unwrap(),
            stderr: std::fs::read_to_string(file("err")).unwrap(),
        }
    }

    /// Runs `command`, asserting its exit code; what it printed.
    fn expect(&mut self, command: &str, code: i32) -> Outcome {
        let o = self.run(command);
        assert_eq!(
            o.code, code,
            "{command}\nstdout:\n{}\nstderr:\n{}",
            o.stdout, o.stderr
        );
        o
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A check of the output of the README commands that contain `needle`.
type Check = (&'static str, fn(&Outcome));

fn has(o: &Outcome, all: &[&str]) {
    for needle in all {
        assert!(
            o.stdout.contains(needle),
            "{needle:?} not in stdout:\n{}\nstderr:\n{}",
            o.stdout,
            o.stderr
        );
    }
}

fn json(o: &Outcome) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

const CHECKS: &[Check] = &[
    ("mecctl config set-context demo", |o| {
        has(o, &["context demo"])
    }),
    ("mecctl login", |o| has(o, &["logged in to", "as oss"])),
    ("mecctl site ls", |o| {
        has(
            o,
            &["HEALTHY", "FREE-CPU", "paris-1", "lyon-1", "marseille-1"],
        );
        let paris = o.stdout.lines().find(|l| l.starts_with("paris-1")).unwrap();
        assert!(paris.contains("connected, "), "{paris}");
    }),
    ("mecctl package push $work/cdn-cache", |o| {
        for problem in [
            "cdn-cache.yaml#/appTrafficRule/0/action: \"FORWARD\" is not one of",
            "cdn-cache.yaml#: \"appDVersion\" is a required property",
        ] {
            assert!(o.stderr.contains(problem), "{problem} not in {}", o.stderr);
        }
        assert!(o.stderr.contains("failed onboarding"), "{}", o.stderr);
    }),
    (
        "mecctl package push deploy/examples/packages/cdn-cache",
        |o| has(o, &["cdn-cache-streamco-5", "ONBOARDED", "ENABLED"]),
    ),
    ("mecctl package ls", |o| {
        has(o, &["cdn-cache", "video-analytics", "ONBOARDED"])
    }),
    ("mecctl package get cdn-cache", |o| {
        has(o, &["StreamCo", "signed:     no", "streamco/edge-cache"])
    }),
    ("mecctl package appd cdn-cache -o json", |o| {
        assert_eq!(json(o)["appDId"], "cdn-cache-streamco-5")
    }),
    ("mecctl package disable", |o| has(o, &["DISABLED"])),
    ("mecctl package rm cdn-cache", |o| {
        has(o, &["deleted package cdn-cache"])
    }),
    ("--name va-paris --near 48.85,2.35 --wait", |o| {
        has(
            o,
            &[
                "instantiate va-paris: COMPLETED",
                "placement: paris-1",
                "RANK",
                "rejected:",
            ],
        );
        has(o, &["no x86_64 nodes: marseille-1"]);
    }),
    ("mecctl app ls", |o| {
        let line = o.stdout.lines().find(|l| l.contains("va-paris")).unwrap();
        for field in ["INSTANTIATED", "STARTED", "paris-1"] {
            assert!(line.contains(field), "{line}");
        }
    }),
    ("mecctl site get paris-1", |o| {
        has(o, &["mep link: connected", "INSTANCE", "READINESS"]);
        let line = o
            .stdout
            .lines()
            .find(|l| l.starts_with("va-paris"))
            .unwrap();
        assert!(
            line.contains("v1") && line.contains("INSTANTIATED"),
            "{line}"
        );
    }),
    ("mecctl app stop va-paris", |o| {
        has(o, &["stop va-paris: COMPLETED"])
    }),
    ("mecctl app start va-paris", |o| {
        has(o, &["start va-paris: COMPLETED"])
    }),
    ("mecctl op ls --instance va-paris", |o| {
        assert_eq!(o.stdout.matches("OPERATE").count(), 2, "{}", o.stdout);
        has(o, &["INSTANTIATE", "COMPLETED"]);
    }),
    ("mecctl app terminate va-paris", |o| {
        has(o, &["terminate va-paris: COMPLETED"])
    }),
    ("mecctl app rm va-paris", |o| has(o, &["deleted va-paris"])),
    ("--name va-nice --site nice-1 --wait", |o| {
        has(
            o,
            &["placement: no site can take it", "not a selected MEC host"],
        );
        assert!(
            o.stderr.contains("FAILED_TEMP: mecctl op retry"),
            "{}",
            o.stderr
        );
    }),
    ("mecctl op retry $OP --wait", |o| {
        has(o, &["COMPLETED", "placement: nice-1"])
    }),
    ("mecctl app rm va-nice", |o| has(o, &["deleted va-nice"])),
    (
        "onboarded_app_packages?filter=(eq,appProvider,ACME%20Vision)",
        |o| {
            let list = json(o);
            assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
            assert_eq!(list[0]["appDId"], VA);
        },
    ),
    (
        "app_lcm_op_occs?filter=(eq,lcmOperation,INSTANTIATE)",
        |o| {
            assert!(
                json(o)
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|op| op["lcmOperation"] == "INSTANTIATE")
            )
        },
    ),
    ("inventory/v1/placement", |o| {
        assert_eq!(json(o)["chosen"], "paris-1")
    }),
];

/// Runs every README step, checking exit codes and outputs.
fn walk(shell: &mut Shell, steps: &[Step], url: &str) {
    let mut checked = vec![false; CHECKS.len()];
    for step in steps {
        let command = step.command.replace(DEMO_URL, url);
        let outcome = shell.expect(&command, step.exit);
        for (i, (needle, check)) in CHECKS.iter().enumerate() {
            if step.command.contains(needle) {
                check(&outcome);
                checked[i] = true;
            }
        }
    }
    for (i, done) in checked.iter().enumerate() {
        assert!(done, "no README command contains {:?}", CHECKS[i].0);
    }
}

/// A package signing certificate and key issued by a CA the demo's MEAO is told to trust
/// (`dir/signer.pem`, `dir/signer.key`, `dir/package-ca.pem`).
fn package_signer(dir: &Path) -> PathBuf {
    use server_kit::testing::certificate;
    let (ca, ca_key) = certificate("package CA", None, true);
    let (cert, key) = certificate("ACME release signing", Some((&ca, &ca_key)), false);
    std::fs::write(dir.join("signer.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("signer.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("package-ca.pem"), ca.to_pem().unwrap()).unwrap();
    dir.join("package-ca.pem")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_throughs_run_verbatim_after_the_demo_starts() {
    let dir = tempfile::tempdir().unwrap();
    let signer = package_signer(dir.path());
    let (meao, mep) = e2e::demo(dir.path(), |meao| {
        // the MEAO also trusts the package signer's CA
        meao.packages.trust_anchors = vec![signer];
    })
    .await;
    let url = meao.api_root.clone();
    let home = dir.path().join("home");
    let steps_dir = dir.path().join("steps");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&steps_dir).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mecctl"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = vec![
        ("PATH", path),
        ("HOME", home.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.join(".config").display().to_string(),
        ),
        ("XDG_CACHE_HOME", home.join(".cache").display().to_string()),
        ("TMPDIR", dir.path().display().to_string()),
        ("LANG", "C.UTF-8".into()),
    ];
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let steps: Vec<Step> = SECTIONS.iter().flat_map(|s| steps(&readme, s)).collect();
    let zip = dir.path().join("cdn-cache.zip");
    std::fs::write(
        &zip,
        app_package::build::build(&repo().join("deploy/examples/packages/cdn-cache"), None)
            .unwrap(),
    )
    .unwrap();

    let (steps_dir2, repo_dir) = (steps_dir.clone(), repo());
    tokio::task::spawn_blocking(move || {
        let mut sh = Shell::start(&repo_dir, &steps_dir2, &env);
        // what scripts/run-demo.sh does once the services answer
        sh.expect(
            &format!("MECCTL_CONFIG=/dev/null MECCTL_SERVER={url} MECCTL_CLIENT_ID=oss MECCTL_CLIENT_SECRET=oss-secret mecctl package push deploy/examples/packages/video-analytics --wait"),
            0,
        );
        walk(&mut sh, &steps, &url);
        let after = |sh: &mut Shell| {
            let packages = json(&sh.expect("mecctl package ls -o json", 0));
            let apps = json(&sh.expect("mecctl app ls -o json", 0));
            let sites = sh.expect("mecctl site ls -o id", 0).stdout;
            (packages.as_array().unwrap().len(), apps.as_array().unwrap().len(), sites)
        };
        assert_eq!(
            after(&mut sh),
            (1, 0, "lyon-1\nmarseille-1\nparis-1\n".to_owned()),
            "the walk-throughs leave the demo as they found it"
        );
        walk(&mut sh, &steps, &url);
        beyond_the_readme(&mut sh, &zip);
    })
    .await
    .unwrap();
    meao.shutdown().await;
    mep.shutdown().await;
}

/// What the README does not show: exit codes, the token cache, signed and zip packages, watch.
fn beyond_the_readme(sh: &mut Shell, zip: &Path) {
    // exit codes: usage, not found, conflict, and -v shows the whole problem
    sh.expect("mecctl app frobnicate", 2);
    sh.expect("mecctl app deploy video-analytics --near nowhere", 2);
    let o = sh.expect("mecctl app get no-such-app", 4);
    assert!(
        o.stderr.contains("no application instance no-such-app"),
        "{}",
        o.stderr
    );
    sh.expect("mecctl op get 00000000-0000-0000-0000-000000000000", 4);
    let o = sh.expect("mecctl -v package rm video-analytics", 5);
    assert!(
        o.stderr.contains("\"status\":403") && o.stderr.contains("DELETE "),
        "{}",
        o.stderr
    );
    // the same AppD version twice: a conflict, reported as the failed onboarding it is
    let o = sh.expect(
        "mecctl package push deploy/examples/packages/video-analytics",
        5,
    );
    assert!(o.stderr.contains("already has appDId"), "{}", o.stderr);
    let packages = json(&sh.expect("mecctl package ls -o json", 0));
    let failed = packages
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.get("onboardingFailureDetails").is_some())
        .unwrap();
    sh.expect(
        &format!("mecctl package rm {}", failed["id"].as_str().unwrap()),
        0,
    );
    let o = sh.expect("mecctl app get video-analytics", 4);
    assert!(o.stderr.contains("no application instance"), "{}", o.stderr);

    // the token cache: used without a secret, renewed when expired or refused, else auth fails
    let cache = "$XDG_CACHE_HOME/mecctl/tokens.json";
    sh.expect("mecctl site ls -o id", 0);
    sh.expect(
        &format!("sed -i 's/\"expires-at\": [0-9]*/\"expires-at\": 1/' {cache}"),
        0,
    );
    let o = sh.expect("mecctl site ls", 3);
    assert!(o.stderr.contains("run mecctl login"), "{}", o.stderr);
    sh.expect("MECCTL_CLIENT_SECRET=oss-secret mecctl site ls -o id", 0);
    sh.expect("mecctl site ls -o id", 0);
    sh.expect(
        &format!("sed -i 's/\"access-token\": \"[^\"]*\"/\"access-token\": \"forged\"/' {cache}"),
        0,
    );
    sh.expect("MECCTL_CLIENT_SECRET=oss-secret mecctl site ls -o id", 0);
    sh.expect(&format!("! grep -q forged {cache}"), 0);
    sh.expect("echo wrong | mecctl login --secret-stdin", 3);
    sh.expect(
        "echo oss-secret > secret && mecctl login --secret-file secret && rm secret",
        0,
    );
    sh.expect("mecctl logout", 0);
    sh.expect("mecctl package ls", 3);
    sh.expect("echo oss-secret | mecctl login --secret-stdin", 0);
    sh.expect(&format!("test \"$(stat -c %a {cache})\" = 600"), 0);

    // a signed package built from its directory, and a zip as it is
    let sign = "--sign-cert $TMPDIR/signer.pem --sign-key $TMPDIR/signer.key";
    sh.expect(
        &format!("mecctl package push deploy/examples/packages/iot-gateway {sign} --wait"),
        0,
    );
    let o = sh.expect("mecctl package get iot-gateway", 0);
    assert!(o.stdout.contains("signed:     yes"), "{}", o.stdout);
    sh.expect(
        "mecctl package disable iot-gateway && mecctl package rm iot-gateway",
        0,
    );
    sh.expect(
        &format!(
            "mecctl package push {} --sign-cert $TMPDIR/c.pem --sign-key $TMPDIR/k.pem",
            zip.display()
        ),
        2,
    );
    let o = sh.expect(
        &format!("mecctl package push {} --wait -o id", zip.display()),
        0,
    );
    let id = o.stdout.trim().to_owned();
    assert_eq!(id.len(), 36, "{}", o.stdout);
    sh.expect(
        &format!("mecctl package disable {id} -o id && mecctl package rm {id}"),
        0,
    );

    // --wait gives up after --timeout; op watch follows the occurrence to its end
    sh.expect(
        "mecctl --timeout 0 app deploy video-analytics --name va-t --wait",
        7,
    );
    let o = sh.expect("mecctl op watch $(mecctl op ls --instance va-t -o id)", 0);
    assert!(o.stdout.contains("COMPLETED"), "{}", o.stdout);
    // --watch prints the list, then follows it until interrupted
    let o = sh.expect("timeout 3 mecctl app ls --watch", 124);
    assert_eq!(o.stdout.matches("INSTANTIATION").count(), 1, "{}", o.stdout);
    assert!(o.stdout.contains("va-t"), "{}", o.stdout);
    let o = sh.expect("mecctl site get paris-1 -o yaml", 0);
    assert!(
        o.stdout.contains("mep:") && o.stdout.contains("connected: true"),
        "{}",
        o.stdout
    );
    let o = sh.expect("mecctl app terminate va-t -o id", 0);
    sh.expect(&format!("mecctl op watch {}", o.stdout.trim()), 0);
    sh.expect("mecctl app rm va-t", 0);

    // a running operation cancelled: rolled back, FAILED_TEMP, then given up (the demo's sites
    // take 2 s to start a workload)
    let op = sh
        .expect("mecctl app deploy video-analytics --name va-c -o id", 0)
        .stdout;
    let op = op.trim();
    let o = sh.expect(&format!("mecctl op cancel {op} --wait"), 6);
    assert!(o.stderr.contains("ended FAILED_TEMP"), "{}", o.stderr);
    let o = sh.expect(&format!("mecctl op fail {op}"), 0);
    assert!(o.stdout.contains("FAILED"), "{}", o.stdout);
    sh.expect("mecctl app rm va-c", 0);

    let o = sh.expect("mecctl completion bash", 0);
    assert!(o.stdout.contains("_mecctl"), "{}", o.stdout);
    let o = sh.expect("mecctl --help", 0);
    assert!(o.stdout.contains("6  failed"), "{}", o.stdout);
    sh.expect("mecctl package appd video-analytics | head -1", 0);
}

/// A MEAO behind TLS: a context names the CA of its certificate; without it the connection is
/// refused (the system's roots do not know the test CA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_trusts_the_ca_of_a_tls_meao() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "MEAO CA");
    let (cert_file, key_file) = pki.issue("meao");
    let mut config = e2e::meao_config(dir.path());
    config.tls = Some(server_kit::serve::TlsConfig {
        cert_file,
        key_file,
        client_ca_file: None,
    });
    let meao = meao::server::Server::start(config).await.unwrap();
    let url = meao.api_root.clone();
    assert!(url.starts_with("https://"), "{url}");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let steps_dir = dir.path().join("steps");
    std::fs::create_dir_all(&steps_dir).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mecctl"));
    let env = vec![
        (
            "PATH",
            format!("{}:/usr/bin:/bin", bin.parent().unwrap().display()),
        ),
        ("HOME", home.display().to_string()),
        ("MECCTL_CLIENT_SECRET", "oss-secret".into()),
    ];
    let ca = pki.ca_file();
    tokio::task::spawn_blocking(move || {
        let mut sh = Shell::start(&home, &steps_dir, &env);
        sh.expect(
            &format!("mecctl config set-context tls --url {url} --client-id oss"),
            0,
        );
        let o = sh.expect("mecctl login", 1);
        assert!(o.stderr.contains("cannot reach the MEAO"), "{}", o.stderr);
        sh.expect(
            &format!("mecctl config set-context tls --ca-file {}", ca.display()),
            0,
        );
        sh.expect("mecctl login", 0);
        let o = sh.expect("mecctl site ls -o json", 0);
        assert_eq!(json(&o), serde_json::json!([]));
        let o = sh.expect("mecctl config get-contexts", 0);
        assert!(
            o.stdout.contains("ca.pem") && o.stdout.contains("*"),
            "{}",
            o.stdout
        );
    })
    .await
    .unwrap();
    meao.shutdown().await;
}
