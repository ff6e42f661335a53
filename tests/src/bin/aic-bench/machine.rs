//! Readings from `/proc` (process and machine CPU, peak memory) and a description of the
//! machine and checkout a run was measured on.

use serde_json::{Value, json};

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on Linux for every
/// architecture this runs on: the kernel exports it in these units whatever its own `HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/PID/stat` says of a process so far.
struct ProcStat {
    comm: String,
    /// CPU time (user + system), µs.
    cpu_us: f64,
    /// Minor page faults: pages the kernel had to map (and zero) on first touch.
    minor_faults: f64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `stat` file of `/proc`'s, a process's or one of its threads' (`/proc/PID/task/TID/stat`).
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (head, after) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i)?.parse::<f64>().ok();
    Some(ProcStat {
        comm,
        cpu_us: (field(11)? + field(12)?) * 1_000_000.0 / TICKS_PER_SECOND,
        minor_faults: field(7)?,
    })
}

/// The worker processes' minor page faults so far.
fn workers_faults(workers: &[u32]) -> f64 {
    workers
        .iter()
        .filter_map(|p| proc_stat(*p))
        .map(|s| s.minor_faults)
        .sum()
}

/// The machine's CPU time so far, from `/proc/stat`, in microseconds.
#[derive(Debug, Clone, Copy)]
struct MachineTimes {
    /// Every process's (broker, database, worker, this client and the sandbox) and the
    /// kernel's, and `steal`: the processes' own times carry some of it (the by-whom split
    /// came out above the machine's busy time without it), so it stays in, as in earlier runs.
    busy: f64,
    /// Taken by the hypervisor for other guests while this one had work: a run with much of it
    /// was measured on a disturbed machine.
    steal: f64,
    all: f64,
}

fn machine_us() -> Option<MachineTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let all: f64 = f.iter().sum();
    let steal = *f.get(7)?;
    let busy = all - f.get(3)? - f.get(4)?;
    let us = 1_000_000.0 / TICKS_PER_SECOND;
    Some(MachineTimes {
        busy: busy * us,
        steal: steal * us,
        all: all * us,
    })
}

/// The machine's CPU by whom, µs (in total, or per execution).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ByProcess {
    /// RabbitMQ (`beam.smp`).
    pub rabbitmq: f64,
    /// Every `postgres` process.
    pub postgres: f64,
    /// The worker processes.
    pub workers: f64,
    /// This process: the client publishing requests and reading results, and the sandbox.
    pub bench_client_and_sandbox: f64,
    /// Of `bench_client_and_sandbox`, the sandbox's thread (`aic-sandbox`): the vendor's
    /// stand-in, whose cost a real vendor pays on its own machines, not the pipeline's.
    pub vendor_stand_in: f64,
    /// The rest of the machine's busy time (the kernel's threads: block I/O, network).
    pub other: f64,
}

/// The name the sandbox's thread runs under (`Sandbox::start_on_own_thread`).
const SANDBOX_THREAD: &str = "aic-sandbox";

/// The CPU time so far of this process's threads named `name`, µs.
fn own_threads_us(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(|e| parse_stat(&std::fs::read_to_string(e.ok()?.path().join("stat")).ok()?))
        .filter(|s| s.comm == name)
        .map(|s| s.cpu_us)
        .sum()
}

/// Every process's CPU so far, by whom (`other` is left at 0: it is the machine's remainder).
fn by_process(workers: &[u32]) -> ByProcess {
    let me = std::process::id();
    let mut s = ByProcess {
        vendor_stand_in: own_threads_us(SANDBOX_THREAD),
        ..ByProcess::default()
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return s;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Some(ProcStat { comm, cpu_us, .. }) = proc_stat(pid) else {
            continue;
        };
        if workers.contains(&pid) {
            s.workers += cpu_us;
        } else if pid == me {
            s.bench_client_and_sandbox += cpu_us;
        } else if comm == "beam.smp" {
            s.rabbitmq += cpu_us;
        } else if comm == "postgres" {
            s.postgres += cpu_us;
        }
    }
    s
}

/// The CPU spent while a scenario ran: the workers' own (from their `/proc/PID/stat`), the
/// whole machine's, and the machine's split by whom ([`ByProcess`]).
#[derive(Debug)]
pub struct CpuWindow {
    workers: Vec<u32>,
    machine: Option<MachineTimes>,
    start: ByProcess,
    faults: f64,
}

/// What a [`CpuWindow`] measured, per execution.
#[derive(Debug)]
pub struct CpuSpent {
    /// The workers' own CPU per execution, µs.
    pub workers_us: f64,
    /// The workers' minor page faults per execution.
    pub workers_faults: f64,
    /// The machine's busy CPU per execution, µs (every process and the kernel).
    pub machine_us: Option<f64>,
    /// The machine's busy share of its cores while the scenario ran, %.
    pub machine_busy_pct: Option<f64>,
    /// The share of the cores' time the hypervisor gave to other guests while the scenario
    /// ran, %: a run with much of it was measured on a disturbed machine.
    pub machine_steal_pct: Option<f64>,
    /// The machine's CPU per execution by whom, µs.
    pub by_process_us: Option<ByProcess>,
}

impl CpuWindow {
    /// Starts measuring (`workers`: the worker processes' ids).
    pub fn start(workers: &[u32]) -> Self {
        Self {
            workers: workers.to_vec(),
            machine: machine_us(),
            start: by_process(workers),
            faults: workers_faults(workers),
        }
    }

    /// What was spent since the start, divided by `executions`.
    pub fn end(&self, executions: usize) -> CpuSpent {
        let n = executions.max(1) as f64;
        let (now, then) = (by_process(&self.workers), self.start);
        let per = |after: f64, before: f64| (after - before) / n;
        let machine = self.machine.zip(machine_us());
        let busy = machine.map(|(m0, m1)| (m1.busy - m0.busy) / n);
        let share = |f: fn(&MachineTimes) -> f64| {
            machine.map(|(m0, m1)| 100.0 * (f(&m1) - f(&m0)) / (m1.all - m0.all).max(1.0))
        };
        let workers_us = per(now.workers, then.workers);
        CpuSpent {
            workers_us,
            workers_faults: (workers_faults(&self.workers) - self.faults) / n,
            machine_us: busy,
            machine_busy_pct: share(|m| m.busy),
            machine_steal_pct: share(|m| m.steal),
            by_process_us: busy.map(|busy| {
                let process = per(now.bench_client_and_sandbox, then.bench_client_and_sandbox);
                let mut s = ByProcess {
                    rabbitmq: per(now.rabbitmq, then.rabbitmq),
                    postgres: per(now.postgres, then.postgres),
                    workers: workers_us,
                    bench_client_and_sandbox: process,
                    // `/proc` gives CPU times in whole ticks, and truncates a process's user and
                    // system times apart from its threads': over a window of a few ticks the
                    // thread can read up to two more than its process. Never more than the
                    // process it is part of.
                    vendor_stand_in: per(now.vendor_stand_in, then.vendor_stand_in).min(process),
                    other: 0.0,
                };
                s.other = (busy - s.rabbitmq - s.postgres - s.workers - s.bench_client_and_sandbox)
                    .max(0.0);
                s
            }),
        }
    }
}

/// A process's peak resident memory (`VmHWM`), in MiB.
pub fn proc_peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// What a run was measured on and with, for comparing runs over time: the CPU model, cores,
/// memory and kernel, and the commit of the checkout (`-dirty` with uncommitted changes).
pub fn describe() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_string());
    json!({
        "cpu_model": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_mib": memory_mib,
        "kernel": kernel,
        "commit": commit(),
    })
}

fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A thread's own CPU is found by its name, and only its: the stand-in's column counts the
    /// sandbox's thread, not the rest of the process.
    #[test]
    fn a_threads_cpu_is_read_by_its_name() {
        const NAME: &str = "aic-test-spin";
        let (done, spun) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name(NAME.into())
            .spawn(move || {
                // Spins until its own stat shows 50 ms of CPU (5 clock ticks), then stays alive,
                // idle, until it is read.
                let deadline = Instant::now() + Duration::from_secs(30);
                while own_threads_us(NAME) < 50_000.0 && Instant::now() < deadline {
                    std::hint::black_box((0..10_000u64).sum::<u64>());
                }
                let _ = done.send(());
                let _ = stopped.recv();
            })
            .expect("a thread");
        spun.recv().expect("the thread spun");
        let spent = own_threads_us(NAME);
        stop.send(()).expect("the thread waits");
        spinner.join().expect("the thread ends");
        assert!(spent >= 50_000.0, "{spent} µs");
        // Its CPU is part of the process's: at least as much, but for the process's user and
        // system times each truncated to whole ticks apart from the thread's (two at most).
        let process = proc_stat(std::process::id()).expect("own stat").cpu_us;
        let tick = 1_000_000.0 / TICKS_PER_SECOND;
        assert!(process + 2.0 * tick >= spent, "{process} against {spent}");
        assert_eq!(own_threads_us("aic-no-such-thread"), 0.0);
    }
}
