//! Start-up: the binary with no config, with `--listen`, and each config error
//! (exit code 2, naming the key and the file).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_LISTEN");
    command
}

/// Runs sluice with `toml` as its config file; returns (exit code, stderr).
fn run_with_config(toml: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("sluice-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("case-{:x}.toml", fxhash(toml)));
    std::fs::write(&file, toml).unwrap();
    let output = sluice()
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SLUICE_TEST_MISSING_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr, file.display().to_string())
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn assert_config_error(toml: &str, must_name: &[&str]) {
    let (code, stderr, file) = run_with_config(toml);
    assert_eq!(code, Some(2), "exit code 2 for {toml:?}; stderr: {stderr}");
    assert!(stderr.contains(&file), "names the file: {stderr}");
    for word in must_name {
        assert!(stderr.contains(word), "names {word:?}: {stderr}");
    }
}

#[test]
fn bad_toml_exits_2() {
    assert_config_error("listen = \"127.0.0.1:7800\"\n[limits\n", &["line 2"]);
}

#[test]
fn an_unknown_key_exits_2_naming_it() {
    assert_config_error("heartbeat_sec = 5\n", &["heartbeat_sec"]);
    assert_config_error("[limits]\nmax_body = 5\n", &["limits", "max_body"]);
    assert_config_error(
        "[[models]]\nname = \"m\"\nprovider = \"mock\"\nttft = 1\n",
        &["models[0]", "ttft"],
    );
}

#[test]
fn every_example_config_in_the_repository_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let toml = std::fs::read_to_string(&path).unwrap();
        // Every key variable set, as a user following the file's comment would.
        let parsed = sluice::config::Config::parse(&toml, |_| Some("sk-example".to_owned()));
        assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed.err());
        seen += 1;
    }
    assert!(seen >= 5, "{seen} example configs");
}

#[test]
fn a_store_ca_file_needs_rediss_and_a_readable_pem() {
    assert_config_error(
        "[store]\nredis_url = \"redis://127.0.0.1:6379\"\nca_file = \"ca.pem\"\n",
        &["store.ca_file", "rediss://"],
    );
    assert_config_error(
        "[store]\nredis_url = \"rediss://u:p@127.0.0.1:6379\"\nca_file = \"/nonexistent/ca.pem\"\n",
        &["store.ca_file", "/nonexistent/ca.pem"],
    );
    let not_pem = std::env::temp_dir().join(format!("sluice-not-pem-{}.txt", std::process::id()));
    std::fs::write(&not_pem, "hello").unwrap();
    assert_config_error(
        &format!(
            "[store]\nredis_url = \"rediss://u:p@127.0.0.1:6379\"\nca_file = \"{}\"\n",
            not_pem.display()
        ),
        &["store.ca_file", "no PEM certificate"],
    );
}

#[test]
fn bad_midstream_settings_exit_2_naming_the_key() {
    let route =
        "[[models]]\nname = \"m\"\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";
    assert_config_error(
        &format!("{route}midstream = \"maybe\"\n"),
        &["models[0].midstream", "maybe"],
    );
    for attempts in [0, 6] {
        assert_config_error(
            &format!("{route}midstream = \"continue\"\nmidstream_attempts = {attempts}\n"),
            &["models[0].midstream_attempts", "between 1 and 5"],
        );
    }
    assert_config_error(
        &format!("{route}hedge_after_ms = 500\n"),
        &["models[0].hedge_after_ms", "fallbacks"],
    );
}

#[test]
fn a_wrong_type_exits_2_naming_the_key() {
    assert_config_error("[timeouts]\nidle_ms = \"soon\"\n", &["timeouts.idle_ms"]);
}

#[test]
fn an_unknown_provider_exits_2_naming_it() {
    assert_config_error(
        "[[models]]\nname = \"x\"\nprovider = \"skynet\"\n",
        &["models[0].provider", "skynet"],
    );
}

#[test]
fn a_missing_env_var_exits_2_naming_the_key_and_variable() {
    assert_config_error(
        "[[models]]\nname = \"gpt\"\nprovider = \"openai\"\napi_key_env = \"SLUICE_TEST_MISSING_KEY\"\n",
        &["models[0].api_key_env", "SLUICE_TEST_MISSING_KEY"],
    );
}

#[test]
fn references_to_missing_models_exit_2() {
    assert_config_error("default_model = \"nope\"\n", &["default_model", "nope"]);
    assert_config_error(
        "[[models]]\nname = \"a\"\nprovider = \"mock\"\nfallbacks = [\"ghost\"]\n",
        &["models[0].fallbacks", "ghost"],
    );
}

#[test]
fn a_missing_file_exits_2() {
    let output = sluice()
        .args(["--config", "/nonexistent/sluice.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/sluice.toml"));
}

/// Starts the binary and reads the address it logs.
fn start(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = sluice()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

#[test]
fn runs_with_no_config_and_listen_from_flag_or_env() {
    for (args, env) in [
        (vec!["--listen", "127.0.0.1:0"], vec![]),
        (vec![], vec![("SLUICE_LISTEN", "127.0.0.1:0")]),
    ] {
        let (mut child, addr) = start(&args, &env);
        let health =
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5));
        assert!(health.is_ok(), "serving on {addr}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn the_shipped_configs_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = sluice::config::Config::load(&path, |_| Some("sk-placeholder".into()));
            assert!(
                config.is_ok(),
                "{}: {}",
                path.display(),
                config.unwrap_err()
            );
            loaded += 1;
        }
    }
    assert!(loaded >= 1);
}

#[test]
fn unreadable_tls_files_exit_2_naming_the_key() {
    assert_config_error(
        "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
        &["tls.cert_file", "/nonexistent/cert.pem"],
    );
    let dir = std::env::temp_dir().join(format!("sluice-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "this is no key\n").unwrap();
    assert_config_error(
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            not_a_key.display()
        ),
        &["tls.key_file", "PKCS#8"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_store_url_exits_2_naming_the_key_and_never_echoes_it() {
    let (code, stderr, _) =
        run_with_config("[store]\nredis_url = \"http://:hunter2@127.0.0.1:6379\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("store.redis_url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    assert_config_error("[store]\nkey_prefix = \"a b\"\n", &["store.key_prefix"]);
    // Braces would be a Redis Cluster hash tag.
    assert_config_error(
        "[store]\nkey_prefix = \"{app}\"\n",
        &["store.key_prefix", "braces"],
    );
}

#[test]
fn a_store_cluster_needs_a_redis_url_and_nodes_of_the_same_scheme() {
    assert_config_error("[store]\ncluster = true\n", &["store.cluster", "redis_url"]);
    assert_config_error("[store]\ncluster = \"yes\"\n", &["store.cluster"]);
    let (code, stderr, _) = run_with_config(
        "[store]\nredis_url = \"redis://127.0.0.1:7000\"\ncluster = [\"redis://127.0.0.1:7001\", \"http://:hunter2@127.0.0.1:7002\"]\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("store.cluster[1]"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    assert_config_error(
        "[store]\nredis_url = \"redis://127.0.0.1:7000\"\ncluster = [\"rediss://127.0.0.1:7001\"]\n",
        &["store.cluster[0]", "same scheme"],
    );
}

#[test]
fn listen_takes_localhost_and_health_probes_the_listen_address() {
    let (mut child, addr) = start(&["--listen", "localhost:0"], &[]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // `health` without --url probes where SLUICE_LISTEN says sluice is.
    let probe = |listen: &str| {
        sluice()
            .arg("health")
            .env("SLUICE_LISTEN", listen)
            .output()
            .unwrap()
    };
    let answered = probe(&addr);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let refused = probe(&addr);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&addr));
    // A bad address says what it wants.
    let bad = sluice().args(["--listen", "localhost"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("IP:PORT"));
}

#[test]
fn check_config_validates_a_file_without_serving() {
    let dir = std::env::temp_dir().join(format!("sluice-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "heartbeat_secs = 5\n").unwrap();
    let checked = sluice().arg("check-config").arg(&good).output().unwrap();
    assert_eq!(checked.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("valid"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "heartbeat_sec = 5\n").unwrap();
    let failed = sluice().arg("check-config").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("heartbeat_sec") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}
