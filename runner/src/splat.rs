//! Kernel splats in console lines: what kind each is, and a title normalised so that the same
//! splat has the same title in every run (addresses, offsets, line numbers and pids dropped,
//! as syzkaller does for deduplication).

/// What a splat means for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The kernel cannot go on: panic, oops, BUG, general protection fault.
    Fatal,
    /// The kernel complained and went on: WARNING, KASAN, UBSAN, lockdep.
    Warning,
    /// Something stopped making progress: soft or hard lockup, RCU stall, hung task.
    Stall,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splat {
    pub kind: Kind,
    pub title: String,
}

/// Words at least one of which every splat line below holds.
static MARKERS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    aho_corasick::AhoCorasick::new([
        "BUG",
        "LOCKUP",
        "INFO: ",
        "Kernel panic",
        "UBSAN: ",
        "WARNING: ",
        "general protection",
        "Oops",
        "Unable to handle kernel ",
    ])
    .unwrap_or_else(|e| unreachable!("fixed patterns: {e}"))
});

/// Words of the kernel's messages when it runs out of memory: the OOM killer, an allocation
/// that failed, a panic for want of memory.
static OUT_OF_MEMORY: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::new([
            "Out of memory",
            "invoked oom-killer",
            "page allocation failure",
            "deadlocked on memory",
            "vmalloc error: ",
        ])
        .unwrap_or_else(|e| unreachable!("fixed patterns: {e}"))
    });

/// Whether a console line (already without its time stamp) is the kernel saying it ran out
/// of memory.
pub fn out_of_memory(line: &[u8]) -> bool {
    !line.starts_with(b"test_bpf: ")
        && !line.starts_with(b"harness: ")
        && OUT_OF_MEMORY.is_match(line)
}

/// How a test's or a case's message begins when the kernel splatted while it ran: `TEXT:
/// TITLE`.
pub const WHILE_IT_RAN: &str = "kernel splat while it ran";

/// Longest title kept: corrupted or interleaved lines can be very long.
const MAX_TITLE: usize = 120;

/// The splat a console line (already without its time stamp) starts, if any.
pub fn detect(line: &[u8]) -> Option<Splat> {
    // Nearly every line of a run is the module's or the guest's, and none of those is a splat;
    // of the others, one scan finds those that hold no splat's words at all.
    if line.starts_with(b"test_bpf: ") || line.starts_with(b"harness: ") || !MARKERS.is_match(line)
    {
        return None;
    }
    let text = crate::console::str_of(line);
    let text = strip_caller(text.trim());
    let splat = |kind, title: &str| {
        Some(Splat {
            kind,
            title: sanitize(title),
        })
    };
    // Stalls first: several of them start with `BUG:` or `INFO:` too.
    if text.contains("BUG: soft lockup") {
        return splat(
            Kind::Stall,
            &format!("BUG: soft lockup in {}", task_of(text)),
        );
    }
    if text.contains("hard LOCKUP") {
        return splat(Kind::Stall, "BUG: hard lockup");
    }
    if text.starts_with("rcu: INFO: ") && text.contains("stall") {
        return splat(Kind::Stall, "INFO: rcu detected stall");
    }
    if let Some(rest) = text.strip_prefix("INFO: task ") {
        if rest.contains("blocked for more than") {
            let task = rest.split(':').next().unwrap_or("?");
            return splat(Kind::Stall, &format!("INFO: task hung: {task}"));
        }
    }
    if let Some(rest) = text.strip_prefix("Kernel panic - not syncing: ") {
        return splat(Kind::Fatal, &format!("kernel panic: {}", normalize(rest)));
    }
    if let Some(rest) = text.strip_prefix("BUG: KASAN: ") {
        return splat(Kind::Warning, &format!("KASAN: {}", normalize(rest)));
    }
    if let Some(rest) = text.strip_prefix("UBSAN: ") {
        return splat(Kind::Warning, &format!("UBSAN: {}", normalize(rest)));
    }
    if let Some(rest) = text.strip_prefix("WARNING: ") {
        // `WARNING: CPU: 0 PID: 1 at kernel/bpf/core.c:12 f+0x1/0x2`: named by its function.
        let title = match rest.rsplit_once(" at ") {
            Some((_, place)) if rest.starts_with("CPU: ") => {
                let func = place.split_whitespace().nth(1).unwrap_or(place);
                format!("WARNING in {}", normalize(func))
            }
            _ => format!("WARNING: {}", normalize(rest)),
        };
        return splat(Kind::Warning, &title);
    }
    if let Some(rest) = text.strip_prefix("BUG: ") {
        return splat(Kind::Fatal, &format!("BUG: {}", normalize(rest)));
    }
    if let Some(rest) = text.strip_prefix("kernel BUG at ") {
        return splat(Kind::Fatal, &format!("kernel BUG at {}", normalize(rest)));
    }
    if text.starts_with("general protection fault") {
        return splat(Kind::Fatal, "general protection fault");
    }
    if text.starts_with("Oops") {
        return splat(Kind::Fatal, "Oops");
    }
    // MIPS prints `CPU 0 Unable to handle kernel paging request at virtual address ...`.
    if let Some(at) = text.find("Unable to handle kernel ") {
        let what = &text[at..];
        let what = what.split(" at ").next().unwrap_or(what);
        return splat(Kind::Fatal, &normalize(what));
    }
    None
}

/// Drops printk's caller id, `[    T42]` or `[  C1]`, that CONFIG_PRINTK_CALLER adds.
fn strip_caller(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((inside, after)) = rest.split_once(']') {
            let inside = inside.trim();
            let is_caller = inside.len() > 1
                && matches!(inside.as_bytes()[0], b'T' | b'C')
                && inside[1..].bytes().all(|b| b.is_ascii_digit());
            if is_caller {
                return after.trim_start();
            }
        }
    }
    text
}

/// The task a soft lockup names: `... stuck for 22s! [insmod:123]` gives `insmod`.
fn task_of(text: &str) -> String {
    text.rsplit_once('[')
        .and_then(|(_, t)| t.split([':', ']']).next())
        .unwrap_or("?")
        .to_owned()
}

/// Drops what differs between runs of the same splat: `f+0x10/0x20` becomes `f`,
/// `file.c:123` becomes `file.c`, hex numbers and lone numbers become `ADDR` and `NUM`.
fn normalize(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|word| {
            let (word, trail) = match word.strip_suffix([',', '!', ';']) {
                Some(w) => (w, &word[w.len()..]),
                None => (word, ""),
            };
            let word = match word.split_once("+0x") {
                Some((func, _)) => func,
                None => word,
            };
            // `file.c:123` and `file.c:123:4`.
            let word = [".c:", ".h:", ".S:"]
                .iter()
                .find_map(|ext| word.find(ext).map(|at| &word[..at + 2]))
                .unwrap_or(word);
            let bare = word.trim_start_matches("0x");
            let replaced = if word.starts_with("0x")
                || (bare.len() >= 8 && bare.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                "ADDR"
            } else if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
                "NUM"
            } else {
                word
            };
            format!("{replaced}{trail}")
        })
        .collect();
    words.join(" ")
}

/// Printable ASCII only, whitespace folded, at most [`MAX_TITLE`] characters.
fn sanitize(title: &str) -> String {
    let printable: String = title
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .collect();
    let folded = printable.split_whitespace().collect::<Vec<_>>().join(" ");
    folded.chars().take(MAX_TITLE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_running_out_of_memory_is_told_apart() {
        for line in [
            "bpf-agent invoked oom-killer: gfp_mask=0x40cc0(GFP_KERNEL|__GFP_COMP), order=0",
            "Out of memory: Killed process 93 (bpf-agent) total-vm:9000kB",
            "Kernel panic - not syncing: System is deadlocked on memory",
            "insmod: page allocation failure: order:4, mode:0xcc0(GFP_KERNEL)",
        ] {
            assert!(out_of_memory(line.as_bytes()), "{line}");
        }
        assert!(!out_of_memory(
            b"test_bpf: #7 Out of memory test jited:1 5 PASS"
        ));
        assert!(!out_of_memory(b"Memory: 23324K/49152K available"));
    }

    fn title(line: &str) -> Option<(Kind, String)> {
        detect(line.as_bytes()).map(|s| (s.kind, s.title))
    }

    #[test]
    fn titles_are_normalised() {
        let cases = [
            (
                "Kernel panic - not syncing: Fatal exception in interrupt",
                Kind::Fatal,
                "kernel panic: Fatal exception in interrupt",
            ),
            (
                "BUG: unable to handle page fault for address: 0000000000000010",
                Kind::Fatal,
                "BUG: unable to handle page fault for address: ADDR",
            ),
            (
                "general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP",
                Kind::Fatal,
                "general protection fault",
            ),
            ("Oops[#1]:", Kind::Fatal, "Oops"),
            (
                "kernel BUG at lib/test_bpf.c:1234!",
                Kind::Fatal,
                "kernel BUG at lib/test_bpf.c!",
            ),
            (
                "CPU 0 Unable to handle kernel paging request at virtual address 0000000000000000, epc == ffffffffc0001234",
                Kind::Fatal,
                "Unable to handle kernel paging request",
            ),
            (
                "WARNING: CPU: 0 PID: 87 at kernel/bpf/core.c:2155 bpf_prog_select_runtime+0x1c/0x180",
                Kind::Warning,
                "WARNING in bpf_prog_select_runtime",
            ),
            (
                "WARNING: possible circular locking dependency detected",
                Kind::Warning,
                "WARNING: possible circular locking dependency detected",
            ),
            (
                "BUG: KASAN: slab-out-of-bounds in bpf_jit_binary_alloc+0x40/0x120",
                Kind::Warning,
                "KASAN: slab-out-of-bounds in bpf_jit_binary_alloc",
            ),
            (
                "UBSAN: shift-out-of-bounds in kernel/bpf/core.c:1710:3",
                Kind::Warning,
                "UBSAN: shift-out-of-bounds in kernel/bpf/core.c",
            ),
            (
                "[    T31] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:88]",
                Kind::Stall,
                "BUG: soft lockup in insmod",
            ),
            (
                "rcu: INFO: rcu_sched self-detected stall on CPU",
                Kind::Stall,
                "INFO: rcu detected stall",
            ),
            (
                "INFO: task insmod:88 blocked for more than 120 seconds.",
                Kind::Stall,
                "INFO: task hung: insmod",
            ),
        ];
        for (line, kind, want) in cases {
            assert_eq!(title(line), Some((kind, want.to_owned())), "{line}");
        }
    }

    #[test]
    fn look_alikes_are_not_splats() {
        for line in [
            "ODEBUG: free active object",
            "test_bpf: #12 LD_ABS jited:1 7 PASS",
            "debug: no BUGs here",
            "harness: load-begin 0",
            "INFO: task list printed",
        ] {
            assert_eq!(title(line), None, "{line}");
        }
    }

    #[test]
    fn titles_are_printable_and_bounded() {
        let line = format!("Kernel panic - not syncing: \x1b[31m{}", "x".repeat(500));
        let t = detect(line.as_bytes()).unwrap().title;
        assert!(t.len() <= MAX_TITLE);
        assert!(t.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    }
}
