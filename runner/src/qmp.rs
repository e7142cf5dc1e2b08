//! QEMU's machine protocol (QMP): one JSON object a line each way, over the Unix socket a
//! [`crate::qemu::QemuConfig`]'s `qmp` names.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QEMU's QMP socket {path}")]
    Connect { path: String, source: io::Error },
    #[error("cannot talk to QEMU over QMP")]
    Io(#[from] io::Error),
    #[error("QEMU closed its QMP socket")]
    Closed,
    #[error("QMP sent something that is not JSON: {line}")]
    NotJson { line: String },
    #[error("QMP refused {command}: {error}")]
    Refused { command: String, error: String },
}

/// A QMP session in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket`, reads QEMU's greeting and leaves capabilities negotiation;
    /// `timeout` bounds every read. QEMU answers a command only once its machine is made,
    /// so a reply also says that every device, ROM and image loaded.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(socket).map_err(|source| QmpError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        qmp.reply()?; // the greeting
        qmp.execute(serde_json::json!({ "execute": "qmp_capabilities" }))?;
        Ok(qmp)
    }

    /// Sends `command` and returns its reply (events that arrive meanwhile are skipped).
    pub fn execute(&mut self, command: serde_json::Value) -> Result<serde_json::Value, QmpError> {
        writeln!(self.writer, "{command}")?;
        let reply = self.reply()?;
        if let Some(error) = reply.get("error") {
            return Err(QmpError::Refused {
                command: command.to_string(),
                error: error.to_string(),
            });
        }
        Ok(reply)
    }

    fn reply(&mut self) -> Result<serde_json::Value, QmpError> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(QmpError::Closed);
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|_| QmpError::NotJson { line })?;
            if value.get("event").is_none() {
                return Ok(value);
            }
        }
    }
}
