//! The real `sluice` binary as a child process, with a config file: for
//! what only a process shows (signals, exit codes, its log, a SIGKILL).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The release-or-debug `sluice` binary, running with a config file.
pub struct Sluice {
    pub child: Child,
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    /// The config file written for it, removed with it.
    config: Option<std::path::PathBuf>,
}

impl Sluice {
    pub fn start(config_toml: &str, args: &[&str]) -> Sluice {
        Sluice::start_with_env(config_toml, args, &[])
    }

    /// As [`Sluice::start`], with `env` added to its environment.
    pub fn start_with_env(config_toml: &str, args: &[&str], env: &[(&str, &str)]) -> Sluice {
        let path = std::env::temp_dir().join(format!(
            "sluice-ops-{}-{}.toml",
            std::process::id(),
            fastrand()
        ));
        std::fs::write(&path, config_toml).unwrap();
        let mut with_config = vec!["--config", path.to_str().unwrap()];
        with_config.extend_from_slice(args);
        let mut sluice = Sluice::run(&with_config, env);
        sluice.config = Some(path);
        sluice
    }

    /// The binary with no config file: the embedded default.
    pub fn embedded() -> Sluice {
        Sluice::run(&[], &[])
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Sluice {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("SLUICE_CONFIG")
            .env("RUST_LOG", "sluice=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let addr: String = line[at + 20..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("sluice started");
        Sluice {
            child,
            base: format!("http://{addr}"),
            lines,
            config: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sluice did not exit within {within:?}");
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}

pub fn fastrand() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}
