//! Small numeric helpers for the reports.

/// The `p`-th percentile (0–100) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// This process's resident memory (MiB).
pub fn rss_mib() -> Option<f64> {
    rss_mib_of(std::process::id())
}

/// A process's resident memory, from `/proc/<pid>/status` (MiB).
pub fn rss_mib_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(super::report::round(kib / 1024.0, 1))
}

/// A process's CPU time so far (user and system, seconds), from `/proc/<pid>/stat`.
pub fn cpu_s_of(pid: u32) -> Option<f64> {
    stat_cpu_s(pid, false)
}

/// The same, the children it has reaped included: what `wait4` reports for it when
/// it exits.
pub fn cpu_s_with_reaped_of(pid: u32) -> Option<f64> {
    stat_cpu_s(pid, true)
}

fn stat_cpu_s(pid: u32, reaped: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the line, 12 to 15
    // after the name.
    let fields = if reaped { 11..15 } else { 11..13 };
    let mut ticks = 0u64;
    for i in fields {
        ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / ticks_per_second())
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`: every
/// process counts (the worker, the receiver, nats-server, the publisher), which is
/// what a delivery costs the machine.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    busy: u64,
    total: u64,
}

/// CPU spent between two readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUse {
    /// CPU-seconds spent busy, all cores together.
    pub busy_s: f64,
    /// Busy share of all cores over the interval (1.0: every core busy throughout).
    pub utilisation: f64,
}

impl CpuMeter {
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal …
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        let idle = at(3) + at(4);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        Some(Self {
            busy,
            total: busy + idle,
        })
    }

    /// What was spent since `earlier`.
    pub fn since(&self, earlier: &Self) -> CpuUse {
        let busy = self.busy.saturating_sub(earlier.busy);
        let total = self.total.saturating_sub(earlier.total);
        CpuUse {
            busy_s: busy as f64 / ticks_per_second(),
            utilisation: if total > 0 {
                busy as f64 / total as f64
            } else {
                0.0
            },
        }
    }
}

impl CpuUse {
    /// Busy CPU microseconds per unit of work (a POST, a delivery).
    pub fn us_per(&self, units: u64) -> f64 {
        if units == 0 {
            return 0.0;
        }
        super::report::round(self.busy_s * 1e6 / units as f64, 1)
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// `a / b`, rounded; 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        super::report::round(a / b, 3)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 99.0), 0);
        assert_eq!(percentile(&[7], 1.0), 7);
    }

    #[test]
    fn cpu_use_between_two_readings() {
        let a = CpuMeter::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3").unwrap();
        let b = CpuMeter::parse("cpu  250 0 100 900 50 0 50 0 0 0\n").unwrap();
        let used = b.since(&a);
        let hz = ticks_per_second();
        assert!((used.busy_s - 250.0 / hz).abs() < 1e-9, "{used:?}");
        assert!((used.utilisation - 250.0 / 350.0).abs() < 1e-9, "{used:?}");
        assert!(CpuMeter::parse("intr 1 2").is_none());
        assert!(CpuMeter::now().is_some());
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_mib().is_some_and(|m| m > 0.0));
        assert!(rss_mib_of(std::process::id()).is_some_and(|m| m > 0.0));
        assert!(cpu_s_of(std::process::id()).is_some_and(|s| s >= 0.0));
        assert!(cpu_s_with_reaped_of(std::process::id()).is_some_and(|s| s >= 0.0));
    }
}
