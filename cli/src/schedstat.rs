//! How much CPU a thread got, and how long it waited for one, from Linux's
//! `/proc/thread-self/schedstat`.
//!
//! On a busy machine (other work, or fewer CPUs than device queues plus the dumper)
//! the queues wait for a CPU, and their throughput then measures the machine as much as
//! the design; the summary says so when that wait is large.

use std::fs;

/// A thread's scheduler times, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadCpu {
    /// Time spent running on a CPU.
    pub on_cpu_ns: u64,
    /// Time spent runnable but waiting for a CPU.
    pub waited_ns: u64,
}

impl ThreadCpu {
    /// The calling thread's times so far; `None` where the kernel does not tell.
    pub fn now() -> Option<Self> {
        parse(&fs::read_to_string("/proc/thread-self/schedstat").ok()?)
    }

    /// The times between `earlier` and `self`.
    pub fn since(self, earlier: ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            on_cpu_ns: self.on_cpu_ns.saturating_sub(earlier.on_cpu_ns),
            waited_ns: self.waited_ns.saturating_sub(earlier.waited_ns),
        }
    }
}

/// `schedstat`'s first two fields: time on a CPU and time waiting on a run queue.
fn parse(text: &str) -> Option<ThreadCpu> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some(ThreadCpu {
        on_cpu_ns: fields.next()?.ok()?,
        waited_ns: fields.next()?.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_two_fields() {
        assert_eq!(
            parse("934589 2279579 3\n"),
            Some(ThreadCpu {
                on_cpu_ns: 934_589,
                waited_ns: 2_279_579
            })
        );
        assert_eq!(parse("12"), None);
        assert_eq!(parse("x y z"), None);
        let a = ThreadCpu {
            on_cpu_ns: 10,
            waited_ns: 5,
        };
        let b = ThreadCpu {
            on_cpu_ns: 25,
            waited_ns: 9,
        };
        assert_eq!(
            b.since(a),
            ThreadCpu {
                on_cpu_ns: 15,
                waited_ns: 4
            }
        );
    }
}
