//! JIT images as assembly, for failure reports: the architecture's objdump on the raw bytes.

use std::io::Write;
use std::process::Command;

use crate::arch::Arch;

/// The instructions of a JIT image, one per line (`offset: bytes  mnemonic operands`).
pub fn jit_image(arch: Arch, image: &[u8]) -> Result<String, String> {
    let toolchain = arch.toolchain();
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    file.write_all(image)
        .map_err(|e| format!("cannot write a temporary file: {e}"))?;
    let output = Command::new(toolchain.objdump)
        .arg("-D")
        .args(toolchain.objdump_raw)
        .arg(file.path())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", toolchain.objdump))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            toolchain.objdump,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // Everything after the `<.data>:` header is the listing.
    let listing = text
        .split_once("<.data>:")
        .map_or(text.as_ref(), |(_, rest)| rest);
    Ok(listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_bytes_become_instructions() {
        let text = jit_image(Arch::X86_64, &[0x48, 0x31, 0xc0, 0xc3]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("xor") && lines[0].contains("%rax"),
            "{text}"
        );
        assert!(lines[1].contains("ret"), "{text}");
    }
}
