//! The few packets of GDB's remote serial protocol the harness sends to QEMU's gdbstub, for
//! what QMP cannot do: write a CPU register of a paused guest. Only `g` and `G`, all
//! registers at once: QEMU answers `p` and `P` only to a client that read its target
//! description, which QEMU 7.2 has none of for MIPS.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::arch::Endian;

#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    #[error("cannot connect to QEMU's gdbstub socket {path}")]
    Connect { path: String, source: io::Error },
    #[error("cannot talk to QEMU's gdbstub")]
    Io(#[from] io::Error),
    #[error("QEMU's gdbstub closed its socket")]
    Closed,
    #[error("QEMU's gdbstub answered `{packet}` with `{reply}`")]
    Refused { packet: String, reply: String },
    #[error("QEMU's gdbstub sent {got} bytes of registers, not the {wanted} expected")]
    Short { got: usize, wanted: usize },
}

/// A session with QEMU's gdbstub. Connecting stops the guest; [`Gdb::detach`] starts it.
pub struct Gdb {
    stream: UnixStream,
}

impl Gdb {
    /// Connects to the gdbstub at `socket`; `timeout` bounds every read.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Gdb, GdbError> {
        let stream = UnixStream::connect(socket).map_err(|source| GdbError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Gdb { stream })
    }

    /// The current CPU's registers in GDB's order, each as the bytes the target holds.
    pub fn read_registers(&mut self) -> Result<Vec<u8>, GdbError> {
        let reply = self.exchange("g")?;
        // An empty reply: not supported; `Enn` (odd, so not hex): an error.
        match crate::cases::parse_hex(&reply) {
            Ok(registers) if !registers.is_empty() => Ok(registers),
            _ => Err(GdbError::Refused {
                packet: "g".to_owned(),
                reply,
            }),
        }
    }

    /// Writes `registers`, the first registers in GDB's order (a prefix of what
    /// [`Gdb::read_registers`] gives): QEMU writes as many as the bytes cover.
    pub fn write_registers(&mut self, registers: &[u8]) -> Result<(), GdbError> {
        let hex: String = registers.iter().map(|b| format!("{b:02x}")).collect();
        self.expect_ok(&format!("G{hex}"))
    }

    /// Ends the session; QEMU's gdbstub starts the guest again.
    pub fn detach(mut self) -> Result<(), GdbError> {
        self.expect_ok("D")
    }

    fn expect_ok(&mut self, packet: &str) -> Result<(), GdbError> {
        match self.exchange(packet)? {
            reply if reply == "OK" => Ok(()),
            reply => Err(GdbError::Refused {
                packet: packet.to_owned(),
                reply,
            }),
        }
    }

    /// Sends `packet`, acknowledges the reply and returns its data.
    fn exchange(&mut self, packet: &str) -> Result<String, GdbError> {
        write!(self.stream, "${packet}#{:02x}", checksum(packet.as_bytes()))?;
        let reply = self.read_packet()?;
        self.stream.write_all(b"+")?;
        Ok(reply)
    }

    /// The data of the next packet; acknowledgements (`+`) before it are skipped, and so is
    /// the checksum: the socket is local.
    fn read_packet(&mut self) -> Result<String, GdbError> {
        let mut data = Vec::new();
        let mut started = false;
        loop {
            match (self.byte()?, started) {
                (b'$', false) => started = true,
                (b'#', true) => {
                    self.byte()?;
                    self.byte()?;
                    return Ok(String::from_utf8_lossy(&data).into_owned());
                }
                (byte, true) => data.push(byte),
                (_, false) => {}
            }
        }
    }

    fn byte(&mut self) -> Result<u8, GdbError> {
        let mut byte = [0u8];
        match self.stream.read(&mut byte)? {
            0 => Err(GdbError::Closed),
            _ => Ok(byte[0]),
        }
    }
}

fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// Flips bit `bit` of `value`, a register's bytes in `endian` order.
pub fn flip_bit(value: &mut [u8], endian: Endian, bit: u32) {
    let byte = (bit / 8) as usize;
    let index = match endian {
        Endian::Little => byte,
        Endian::Big => value.len().wrapping_sub(byte + 1),
    };
    if let Some(b) = value.get_mut(index) {
        *b ^= 1 << (bit % 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_bit_flips_in_the_targets_byte_order() {
        let mut cause = [0x00, 0x80, 0x80, 0x50, 0, 0, 0, 0]; // 0x50808000, little-endian
        flip_bit(&mut cause, Endian::Little, 27);
        assert_eq!(cause, [0x00, 0x80, 0x80, 0x58, 0, 0, 0, 0]);
        let mut big = [0x50, 0x80, 0x80, 0x00];
        flip_bit(&mut big, Endian::Big, 27);
        assert_eq!(big, [0x58, 0x80, 0x80, 0x00]);
    }

    /// A stub that answers each packet from `replies`, and records what it was sent.
    fn fake_stub(
        socket: &Path,
        replies: &'static [&'static str],
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(socket).expect("bind");
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = io::BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut packets = Vec::new();
            for reply in replies {
                let mut packet = Vec::new();
                reader.read_until(b'#', &mut packet).expect("packet");
                let mut sum = [0u8; 2];
                reader.read_exact(&mut sum).expect("checksum");
                let text = String::from_utf8_lossy(&packet).into_owned();
                let body = text.trim_start_matches('$').trim_end_matches('#');
                assert_eq!(
                    String::from_utf8_lossy(&sum),
                    format!("{:02x}", checksum(body.as_bytes()))
                );
                packets.push(body.to_owned());
                let sum = checksum(reply.as_bytes());
                write!(writer, "+${reply}#{sum:02x}").expect("reply");
                let mut ack = [0u8];
                reader.read_exact(&mut ack).expect("ack");
                assert_eq!(&ack, b"+");
            }
            packets
        })
    }

    #[test]
    fn registers_are_read_and_a_prefix_written_then_the_stub_detached() -> Result<(), GdbError> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("gdb.sock");
        let stub = fake_stub(&socket, &["0100000002000000", "OK", "OK"]);
        let mut gdb = Gdb::connect(&socket, Duration::from_secs(5))?;
        let registers = gdb.read_registers()?;
        assert_eq!(registers, [1, 0, 0, 0, 2, 0, 0, 0]);
        let mut first = registers[..4].to_vec();
        flip_bit(&mut first, Endian::Little, 1);
        gdb.write_registers(&first)?;
        gdb.detach()?;
        let sent = stub.join().expect("stub");
        assert_eq!(sent, ["g", "G03000000", "D"]);
        Ok(())
    }

    #[test]
    fn an_error_or_empty_reply_is_refused_with_the_packet() -> Result<(), GdbError> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("gdb.sock");
        let stub = fake_stub(&socket, &["E14", ""]);
        let mut gdb = Gdb::connect(&socket, Duration::from_secs(5))?;
        let error = gdb.read_registers().expect_err("E14 is an error");
        assert_eq!(error.to_string(), "QEMU's gdbstub answered `g` with `E14`");
        let error = gdb.read_registers().expect_err("nothing is an error");
        assert_eq!(error.to_string(), "QEMU's gdbstub answered `g` with ``");
        stub.join().expect("stub");
        Ok(())
    }
}
