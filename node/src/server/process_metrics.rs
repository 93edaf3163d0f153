//! Process metrics with the Go client's names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...), read from `/proc/self` at each
//! scrape.
//!
//! The prometheus crate's `process` feature would pull procfs and libc for the same seven
//! numbers; `/proc` is plain text. Off Linux the collector exposes nothing.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Linux reports CPU times in USER_HZ ticks, which the kernel ABI fixes at 100 on every
/// architecture Strata builds for (sysconf(_SC_CLK_TCK) answers the same constant).
const TICKS_PER_SECOND: f64 = 100.0;

/// The collector registered in every process' registry.
#[derive(Debug)]
pub struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: Counter,
    resident: Gauge,
    virt: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
    threads: Gauge,
}

impl ProcessCollector {
    /// A collector of this process.
    pub fn new() -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        let c = ProcessCollector {
            descs: Vec::new(),
            cpu: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))?,
            resident: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            virt: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
            max_fds: gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )?,
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            threads: gauge("process_threads", "Number of OS threads in the process.")?,
        };
        let descs = c.parts().iter().flat_map(|m| m.desc()).cloned().collect();
        Ok(ProcessCollector { descs, ..c })
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu,
            &self.resident,
            &self.virt,
            &self.open_fds,
            &self.max_fds,
            &self.start_time,
            &self.threads,
        ]
    }

    /// Reads `/proc/self`; a file that cannot be read leaves its metrics at their last value.
    fn refresh(&self) {
        if let Some(s) = read("/proc/self/stat").as_deref().and_then(Stat::parse) {
            let cpu = (s.utime + s.stime) as f64 / TICKS_PER_SECOND;
            // A counter only goes up; the kernel's CPU time does too.
            let delta = cpu - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.virt.set(s.vsize as f64);
            self.threads.set(s.threads as f64);
            if let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time) {
                self.start_time
                    .set(boot as f64 + s.starttime as f64 / TICKS_PER_SECOND);
            }
        }
        if let Some(kb) = read("/proc/self/status").as_deref().and_then(resident_kb) {
            self.resident.set((kb * 1024) as f64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries; Go's client counts it too.
            self.open_fds.set(dir.count() as f64);
        }
        if let Some(max) = read("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files)
        {
            self.max_fds.set(max);
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        self.parts().iter().flat_map(|m| m.collect()).collect()
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The fields of `/proc/self/stat` that matter here.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize: u64,
}

impl Stat {
    /// Parses after the command name, which is in parentheses and may itself hold spaces or
    /// parentheses (hence the last `)`).
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // Fields from the third (state) on; man proc numbers them from 1.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| -> Option<u64> { f.get(i - 3)?.parse().ok() };
        Some(Stat {
            utime: n(14)?,
            stime: n(15)?,
            threads: n(20)?,
            starttime: n(22)?,
            vsize: n(23)?,
        })
    }
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, in kB.
fn resident_kb(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`unlimited` as +Inf).
fn max_open_files(text: &str) -> Option<f64> {
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_after_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (tokio (x) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 \
                    123456 987654321 2048 18446744073709551615";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                threads: 9,
                starttime: 123456,
                vsize: 987654321,
            })
        );
        assert_eq!(Stat::parse("42 (x) S 1"), None);
    }

    #[test]
    fn limits_status_and_boot_time_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(
            max_open_files("Max open files  unlimited unlimited files"),
            Some(f64::INFINITY)
        );
        assert_eq!(resident_kb("Name:\tx\nVmRSS:\t  5120 kB\n"), Some(5120));
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_reports_memory_fds_and_start_time() {
        let c = ProcessCollector::new().expect("collector");
        let families = c.collect();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .map(|f| {
                    let m = &f.get_metric()[0];
                    if name.ends_with("_total") {
                        m.get_counter().get_value()
                    } else {
                        m.get_gauge().get_value()
                    }
                })
                .unwrap_or(f64::NAN)
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let start = value("process_start_time_seconds");
        assert!(
            start > now - 86_400.0 && start <= now + 1.0,
            "{start} vs {now}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
