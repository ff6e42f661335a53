//! Starting the system's binaries as child processes with their logs in files, and stopping
//! them with SIGTERM (as an orchestrator would) when the demo ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running child process.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

/// Spawns `bin_dir/name args…` with `env`, logging to `logs/name.log`.
pub fn spawn(
    bin_dir: &Path,
    logs: &Path,
    name: &'static str,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<Proc> {
    let log = logs.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let child = Command::new(bin_dir.join(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "could not start {name} from {}: {e} (run `cargo build --bins` first)",
                bin_dir.display()
            )
        })?;
    Ok(Proc { name, child, log })
}

/// Runs a command to completion and returns its stdout.
pub async fn run(
    bin_dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<String> {
    let out = Command::new(bin_dir.join(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "{name} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Proc {
    /// Fails when the process already exited (with the tail of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            anyhow::bail!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after ten seconds.
    pub async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _ = self.child.kill().await;
    }
}
