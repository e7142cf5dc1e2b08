//! Checks that a binary placed in a guest image was built for that guest.

use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile32, ElfFile64, FileHeader};
use object::{Endianness, FileKind};

use crate::arch::{Arch, ElfIdent, Endian};

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file")]
    NotElf { path: PathBuf },
    #[error("{path} is not a valid ELF file")]
    Malformed {
        path: PathBuf,
        #[source]
        source: object::read::Error,
    },
    #[error(
        "{path} is built for {found}, but the {arch} guest needs {wanted}: \
         use the {arch} build of this file"
    )]
    WrongTarget {
        path: PathBuf,
        arch: Arch,
        found: String,
        wanted: String,
    },
}

/// Reads the ELF identity (machine, byte order, class) of `data`.
pub fn ident_of(data: &[u8]) -> Result<Option<ElfIdent>, object::read::Error> {
    let kind = match FileKind::parse(data) {
        Ok(kind) => kind,
        Err(_) => return Ok(None),
    };
    let ident = match kind {
        FileKind::Elf32 => header_ident(ElfFile32::<Endianness>::parse(data)?.elf_header())?,
        FileKind::Elf64 => header_ident(ElfFile64::<Endianness>::parse(data)?.elf_header())?,
        _ => return Ok(None),
    };
    Ok(Some(ident))
}

fn header_ident<H: FileHeader<Endian = Endianness>>(
    header: &H,
) -> Result<ElfIdent, object::read::Error> {
    let endian = header.endian()?;
    Ok(ElfIdent {
        machine: header.e_machine(endian),
        endian: match endian {
            Endianness::Little => Endian::Little,
            Endianness::Big => Endian::Big,
        },
        is_64: header.is_type_64(),
    })
}

/// Fails unless the file at `path` is an ELF file for `arch`.
pub fn check_file(path: &Path, arch: Arch) -> Result<(), ElfError> {
    let data = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_owned(),
        source,
    })?;
    check_bytes(path, &data, arch)
}

/// Fails unless `data` (read from `path`) is an ELF file for `arch`.
pub fn check_bytes(path: &Path, data: &[u8], arch: Arch) -> Result<(), ElfError> {
    let found = ident_of(data)
        .map_err(|source| ElfError::Malformed {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| ElfError::NotElf {
            path: path.to_owned(),
        })?;
    let wanted = arch.elf();
    if found == wanted {
        Ok(())
    } else {
        Err(ElfError::WrongTarget {
            path: path.to_owned(),
            arch,
            found: describe(found),
            wanted: describe(wanted),
        })
    }
}

fn describe(ident: ElfIdent) -> String {
    let machine = match ident.machine {
        object::elf::EM_X86_64 => "x86-64".to_owned(),
        object::elf::EM_386 => "i386".to_owned(),
        object::elf::EM_MIPS => "MIPS".to_owned(),
        object::elf::EM_AARCH64 => "AArch64".to_owned(),
        object::elf::EM_ARM => "ARM".to_owned(),
        object::elf::EM_RISCV => "RISC-V".to_owned(),
        other => format!("machine {other}"),
    };
    let class = if ident.is_64 { "64-bit" } else { "32-bit" };
    let endian = match ident.endian {
        Endian::Little => "little-endian",
        Endian::Big => "big-endian",
    };
    format!("{class} {endian} {machine}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header: enough for `object` to identify the file.
    fn elf_header(class64: bool, big: bool, machine: object::elf::Machine) -> Vec<u8> {
        let mut h = vec![0u8; if class64 { 64 } else { 52 }];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if class64 { 2 } else { 1 };
        h[5] = if big { 2 } else { 1 };
        h[6] = 1;
        let put16 = |h: &mut Vec<u8>, at: usize, v: u16| {
            let b = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            h[at..at + 2].copy_from_slice(&b);
        };
        put16(&mut h, 16, 1); // ET_REL
        put16(&mut h, 18, machine.0);
        h[20] = if big { 0 } else { 1 };
        h[23] = if big { 1 } else { 0 };
        let ehsize = h.len() as u16;
        put16(&mut h, if class64 { 52 } else { 40 }, ehsize);
        h
    }

    #[test]
    fn accepts_matching_elf() {
        let data = elf_header(true, false, object::elf::EM_MIPS);
        check_bytes(Path::new("busybox"), &data, Arch::Mips64el).unwrap();
        let data = elf_header(true, false, object::elf::EM_X86_64);
        check_bytes(Path::new("busybox"), &data, Arch::X86_64).unwrap();
    }

    #[test]
    fn rejects_wrong_machine_endian_or_class() {
        let cases = [
            (
                elf_header(true, false, object::elf::EM_X86_64),
                "64-bit little-endian x86-64",
            ),
            (
                elf_header(true, true, object::elf::EM_MIPS),
                "64-bit big-endian MIPS",
            ),
            (
                elf_header(false, false, object::elf::EM_MIPS),
                "32-bit little-endian MIPS",
            ),
        ];
        for (data, found) in cases {
            let err = check_bytes(Path::new("x/busybox"), &data, Arch::Mips64el).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "x/busybox is built for {found}, but the mips64el guest needs \
                     64-bit little-endian MIPS: use the mips64el build of this file"
                )
            );
        }
    }

    #[test]
    fn rejects_non_elf() {
        let err = check_bytes(Path::new("init"), b"#!/bin/sh\n", Arch::X86_64).unwrap_err();
        assert_eq!(err.to_string(), "init is not an ELF file");
    }
}
