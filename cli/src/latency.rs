//! Timing every call: one clock reading before and one after each operation, recorded
//! into the calling thread's own HDR histograms and merged when the threads are done.
//!
//! The clock is [`Instant`] (the vDSO `clock_gettime`, about 20 ns here; the TSC read
//! directly costs nearly as much in a VM and is not portable). Each figure therefore
//! includes roughly one clock reading; [`clock_overhead`] measures how much, and the
//! summary says so. Recording (a few ns into a thread-local histogram) happens after
//! the second reading, outside the timed region, and no thread touches another's
//! histogram, so measuring adds no shared cache line to the fast path.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Instant;

/// The longest latency recorded exactly; longer ones saturate at it: one minute.
const MAX_NS: u64 = 60_000_000_000;
/// Significant figures kept: every recorded value is exact to within 0.1%, and values
/// below 2048 ns are exact.
const SIGFIG: u8 = 3;

/// An empty latency histogram, in nanoseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, SIGFIG).expect("1 ns .. 60 s at 3 digits is valid")
}

/// The kinds of call a device queue times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// An epoch pin and a `map` of one buffer (and, when locked, taking the lock).
    Map,
    /// An epoch pin, an `unmap` of one buffer and the gather's release.
    Unmap,
    /// One page's translation by the device.
    Translate,
    /// `alloc_fast` of the buffer's IOVA range.
    IovaAlloc,
    /// `free_fast` of it.
    IovaFree,
    /// With `--dirty`: the device's write of one page, `mark_dirty` (the hardware's
    /// atomic update of the leaf's dirty state), and when locked, the shared lock.
    DmaWrite,
}

impl Call {
    /// The name the summary prints.
    pub fn name(self) -> &'static str {
        match self {
            Call::Map => "map",
            Call::Unmap => "unmap",
            Call::Translate => "translate",
            Call::IovaAlloc => "iova alloc",
            Call::IovaFree => "iova free",
            Call::DmaWrite => "dma write",
        }
    }
}

/// One thread's histograms, one per [`Call`].
#[derive(Debug, Clone)]
pub struct CallTimes {
    hists: [Histogram<u64>; 6],
}

impl Default for CallTimes {
    fn default() -> Self {
        CallTimes {
            hists: std::array::from_fn(|_| histogram()),
        }
    }
}

impl CallTimes {
    /// Runs `f`, timing it as a `call`.
    #[inline(always)]
    pub fn timed<T>(&mut self, call: Call, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let ns = start.elapsed().as_nanos();
        self.record(call, u64::try_from(ns).unwrap_or(u64::MAX));
        out
    }

    /// Records one `call` of `ns` nanoseconds (beyond a minute, as a minute).
    #[inline(always)]
    pub fn record(&mut self, call: Call, ns: u64) {
        self.hists[call as usize].saturating_record(ns);
    }

    /// The histogram of `call`.
    pub fn get(&self, call: Call) -> &Histogram<u64> {
        &self.hists[call as usize]
    }

    /// Adds another thread's figures to these.
    pub fn merge(&mut self, other: &CallTimes) {
        for (mine, theirs) in self.hists.iter_mut().zip(&other.hists) {
            mine.add(theirs)
                .expect("histograms of one shape always add");
        }
    }
}

/// The percentiles of the JSON's full ladder, with their quantiles written out:
/// `99.9 / 100` is a hair above 0.999 in floating point, which would move the rank of
/// p99.9 of 1000 calls from the 999th to the 1000th.
const LADDER: [(f64, f64); 9] = [
    (50.0, 0.5),
    (75.0, 0.75),
    (90.0, 0.9),
    (95.0, 0.95),
    (99.0, 0.99),
    (99.5, 0.995),
    (99.9, 0.999),
    (99.99, 0.9999),
    (99.999, 0.99999),
];

/// One distribution's summary, in nanoseconds.
///
/// Percentiles follow HdrHistogram: the value at percentile `p` is the largest value
/// equivalent (within the histogram's 0.1% precision) to the recorded value of rank
/// `ceil(p / 100 * calls)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Calls recorded.
    pub calls: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Fastest call.
    pub min_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p99_9_ns: u64,
    /// Slowest call.
    pub max_ns: u64,
    /// `[percentile, ns]` pairs of the ladder 50 .. 99.999.
    pub percentiles: Vec<(f64, u64)>,
}

impl Latency {
    /// The summary of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        let at = |q: f64| h.value_at_quantile(q);
        if h.is_empty() {
            return Latency {
                calls: 0,
                mean_ns: 0.0,
                min_ns: 0,
                p50_ns: 0,
                p99_ns: 0,
                p99_9_ns: 0,
                max_ns: 0,
                percentiles: LADDER.iter().map(|&(p, _)| (p, 0)).collect(),
            };
        }
        Latency {
            calls: h.len(),
            mean_ns: h.mean(),
            min_ns: h.min(),
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            p99_9_ns: at(0.999),
            max_ns: h.max(),
            percentiles: LADDER.iter().map(|&(p, q)| (p, at(q))).collect(),
        }
    }
}

/// What timing costs: the median of an empty timed region, in ns. Every latency the
/// summary prints includes about this much.
pub fn clock_overhead() -> u64 {
    let mut t = CallTimes::default();
    for _ in 0..20_000 {
        t.timed(Call::Map, || ());
    }
    t.get(Call::Map).value_at_quantile(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = (u64, u64)>) -> Histogram<u64> {
        let mut h = histogram();
        for (v, n) in values {
            h.record_n(v, n).unwrap();
        }
        h
    }

    #[test]
    fn uniform_distribution_has_exact_percentiles() {
        // 1..=1000 ns once each: below 2048 ns every value is its own bucket.
        let l = Latency::of(&hist((1..=1000).map(|v| (v, 1))));
        assert_eq!(l.calls, 1000);
        assert_eq!(l.min_ns, 1);
        assert_eq!(l.p50_ns, 500);
        assert_eq!(l.p99_ns, 990);
        assert_eq!(l.p99_9_ns, 999);
        assert_eq!(l.max_ns, 1000);
        assert_eq!(l.mean_ns, 500.5);
        assert_eq!(l.percentiles[0], (50.0, 500));
        assert_eq!(l.percentiles[2], (90.0, 900));
        assert_eq!(l.percentiles[8], (99.999, 1000));
    }

    #[test]
    fn one_stall_in_512_calls_shows_at_p99_9_not_in_the_mean() {
        // 511 fast calls of 100 ns and one of 2^20 - 1 ns (exact at 3 digits: the top
        // of its 512 ns bucket), ten times over.
        let stall = (1 << 20) - 1;
        let l = Latency::of(&hist([(100, 5110), (stall, 10)]));
        assert_eq!((l.p50_ns, l.p99_ns), (100, 100));
        // rank ceil(0.999 * 5120) = 5115 > 5110: a stall.
        assert_eq!(l.p99_9_ns, stall);
        assert_eq!(l.max_ns, stall);
        // The mean is 2.1 us: twenty times the typical call, a thousandth of the stall.
        assert_eq!(l.mean_ns.round(), 2147.0);
    }

    #[test]
    fn thread_histograms_merge() {
        let mut a = CallTimes::default();
        let mut b = CallTimes::default();
        for _ in 0..3 {
            a.record(Call::Unmap, 300);
        }
        b.record(Call::Unmap, 700);
        b.record(Call::Translate, 20);
        a.merge(&b);
        let l = Latency::of(a.get(Call::Unmap));
        assert_eq!((l.calls, l.p50_ns, l.max_ns), (4, 300, 700));
        assert_eq!(a.get(Call::Translate).len(), 1);
        assert!(a.get(Call::Map).is_empty());
    }

    #[test]
    fn empty_distribution_is_all_zero() {
        let l = Latency::of(&histogram());
        assert_eq!((l.calls, l.p50_ns, l.max_ns), (0, 0, 0));
    }

    #[test]
    fn timing_records_one_call() {
        let mut t = CallTimes::default();
        assert_eq!(t.timed(Call::IovaFree, || 7), 7);
        assert_eq!(t.get(Call::IovaFree).len(), 1);
        assert!(clock_overhead() < 1_000_000);
    }
}
