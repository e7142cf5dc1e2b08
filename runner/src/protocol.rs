//! The guest's side of the conversation: the lines `images/init.c` prints.
//!
//! Every line that starts with `harness: ` must be one of [`GuestLine`]; anything else after
//! that prefix is a protocol error, never ignored.

use std::fmt;

pub const PREFIX: &[u8] = b"harness: ";

/// One protocol line from the guest's init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestLine {
    /// Init is running: the kernel booted.
    Start,
    /// A template guest (`snapshot`) booted and waits for its plan on the console: the host
    /// saves it now.
    Ready,
    /// `uname -r`.
    Uname(String),
    /// Init is about to load the test module for plan entry `index`.
    LoadBegin { index: usize },
    /// The load for plan entry `index` returned `status` (0: the module's tests all passed).
    LoadEnd { index: usize, status: i32 },
    /// A restored guest asks for its agent's bundle: the host puts it in the guest's
    /// shared-memory window ([`crate::qemu::Window`]) and says `bundle-ready` on the console.
    BundleWanted,
    /// Init is starting the agent on its bundle.
    AgentBegin,
    /// The agent exited with `status`.
    AgentEnd { status: i32 },
    /// Init could not do something it needed; the text says what.
    Error(String),
    /// Init finished the plan and is about to power off.
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ProtocolError {
    pub line: String,
    pub reason: &'static str,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad protocol line from the guest ({}): {:?}",
            self.reason, self.line
        )
    }
}

/// Parses a console line (already stripped of `\r` and time stamp). `None` if the line is not
/// a protocol line at all.
pub fn parse(text: &[u8]) -> Option<Result<GuestLine, ProtocolError>> {
    let rest = text.strip_prefix(PREFIX)?;
    let err = |reason| ProtocolError {
        line: String::from_utf8_lossy(text).into_owned(),
        reason,
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Some(Err(err("not UTF-8")));
    };
    let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let parsed = match verb {
        "start" if args.is_empty() => Ok(GuestLine::Start),
        "done" if args.is_empty() => Ok(GuestLine::Done),
        "ready" if args.is_empty() => Ok(GuestLine::Ready),
        "agent-begin" if args.is_empty() => Ok(GuestLine::AgentBegin),
        "bundle-wanted" if args.is_empty() => Ok(GuestLine::BundleWanted),
        "agent-end" => args
            .parse()
            .map(|status| GuestLine::AgentEnd { status })
            .map_err(|_| err("agent-end needs an exit status")),
        "uname" if !args.is_empty() => Ok(GuestLine::Uname(args.to_owned())),
        "error" if !args.is_empty() => Ok(GuestLine::Error(args.to_owned())),
        "load-begin" => args
            .parse()
            .map(|index| GuestLine::LoadBegin { index })
            .map_err(|_| err("load-begin needs a plan index")),
        "load-end" => {
            let mut words = args.split(' ');
            match (
                words.next().map(str::parse),
                words.next().map(str::parse),
                words.next(),
            ) {
                (Some(Ok(index)), Some(Ok(status)), None) => {
                    Ok(GuestLine::LoadEnd { index, status })
                }
                _ => Err(err("load-end needs a plan index and an exit status")),
            }
        }
        "start" | "done" | "ready" | "uname" | "error" | "agent-begin" | "bundle-wanted" => {
            Err(err("wrong arguments"))
        }
        _ => Err(err("unknown verb")),
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_verb() {
        let cases: [(&[u8], GuestLine); 10] = [
            (b"harness: agent-begin", GuestLine::AgentBegin),
            (b"harness: bundle-wanted", GuestLine::BundleWanted),
            (b"harness: ready", GuestLine::Ready),
            (b"harness: agent-end 0", GuestLine::AgentEnd { status: 0 }),
            (b"harness: start", GuestLine::Start),
            (
                b"harness: uname 6.1.0-56-amd64",
                GuestLine::Uname("6.1.0-56-amd64".into()),
            ),
            (b"harness: load-begin 3", GuestLine::LoadBegin { index: 3 }),
            (
                b"harness: load-end 3 1",
                GuestLine::LoadEnd {
                    index: 3,
                    status: 1,
                },
            ),
            (
                b"harness: error no /proc",
                GuestLine::Error("no /proc".into()),
            ),
            (b"harness: done", GuestLine::Done),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Some(Ok(want)));
        }
    }

    #[test]
    fn other_lines_are_not_protocol() {
        assert_eq!(parse(b"test_bpf: #0 TAX jited:1 PASS"), None);
        assert_eq!(parse(b"harness:start"), None);
    }

    #[test]
    fn malformed_protocol_lines_are_errors() {
        for line in [
            &b"harness: hello"[..],
            b"harness: start now",
            b"harness: load-begin x",
            b"harness: load-end 1",
            b"harness: load-end 1 0 9",
            b"harness: uname",
            b"harness: \xff",
        ] {
            assert!(matches!(parse(line), Some(Err(_))), "{line:?}");
        }
    }
}
