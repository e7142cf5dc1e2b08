//! The uncompressed kernel out of a compressed `vmlinuz`, taken out once on the host.
//!
//! Under TCG a guest spends seconds of every boot decompressing its own kernel (and, on x86,
//! in the firmware and real-mode setup that precede that). QEMU can boot both arches' kernels
//! uncompressed, so the harness decompresses each kernel once:
//!
//! - x86_64: a bzImage's payload is the ELF `vmlinux` itself. QEMU boots it through its PVH
//!   entry (the Xen `PHYS32_ENTRY` note, CONFIG_PVH), skipping SeaBIOS's boot and the
//!   decompressor: the first test comes about 3 s sooner.
//! - MIPS: Debian's Malta kernels are an ELF wrapper ("zboot") that xz-decompresses the real
//!   kernel to its load address and jumps to its entry. The harness takes the xz stream out of
//!   the wrapper's `.data`, reads the entry out of the wrapper's last jump, and writes an ELF
//!   with one segment that QEMU's Malta loader boots directly, with the same arguments the
//!   wrapper would have passed on: about 2 s sooner.
//!
//! Anything else (an uncompressed image, another compressor, a layout not known here) is
//! booted as it is.

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection};

use crate::arch::Arch;

/// Where Malta kernels are linked (`load-$(CONFIG_MIPS_MALTA)` in the kernel's
/// arch/mips/mti-malta/Platform): the wrapper decompresses to this address.
pub const MALTA_LOAD_ADDRESS: u64 = 0xffff_ffff_8010_0000;

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
/// `jalr t9`.
const JALR_T9: u32 = 0x0320_f809;
/// MIPS register t9, which the wrapper jumps through.
const T9: u32 = 25;

#[derive(Debug, thiserror::Error)]
pub enum UnwrapError {
    #[error("not a 64-bit MIPS ELF")]
    Elf(#[from] object::Error),
    #[error("the kernel's xz stream does not decompress: {0}")]
    Xz(std::io::Error),
    #[error("the wrapper's entry {entry:#x} lies outside the {size}-byte kernel it unpacks")]
    Entry { entry: u64, size: usize },
    #[error("cannot write the unwrapped kernel")]
    Write(#[from] object::write::Error),
}

/// The uncompressed kernel in `image` for `arch`, as an ELF QEMU boots; `None` when `image`
/// is to be booted as it is.
pub fn unwrap(arch: Arch, image: &[u8]) -> Result<Option<Vec<u8>>, UnwrapError> {
    match arch {
        Arch::X86_64 => unwrap_bzimage(image),
        Arch::Mips64el => unwrap_zboot(image, MALTA_LOAD_ADDRESS),
        // These kernels are built here and booted as the `vmlinux` ELF they are.
        Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => Ok(None),
    }
}

/// The ELF `vmlinux` a bzImage carries, if it is xz-compressed and has a PVH entry.
fn unwrap_bzimage(image: &[u8]) -> Result<Option<Vec<u8>>, UnwrapError> {
    // The setup header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202, the number of
    // setup sectors at 0x1f1, the payload's offset and length at 0x248 and 0x24c from the end
    // of the setup code.
    let field = |at: usize| -> Option<u32> {
        let bytes = image.get(at..at + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Ok(None);
    }
    let (Some(offset), Some(length)) = (field(0x248), field(0x24c)) else {
        return Ok(None);
    };
    let setup_sectors = match image.get(0x1f1) {
        Some(0) | None => 4,
        Some(&n) => usize::from(n),
    };
    let start = (setup_sectors + 1) * 512 + offset as usize;
    let Some(payload) = image.get(start..start + length as usize) else {
        return Ok(None);
    };
    if !payload.starts_with(XZ_MAGIC) {
        return Ok(None);
    }
    let vmlinux = xz(payload)?;
    Ok(has_pvh_entry(&vmlinux).then_some(vmlinux))
}

/// Whether an x86_64 ELF kernel has the note QEMU's PVH boot needs.
fn has_pvh_entry(vmlinux: &[u8]) -> bool {
    /// XEN_ELFNOTE_PHYS32_ENTRY.
    const PHYS32_ENTRY: elf::NoteType = elf::NoteType(18);
    let Ok(file) = ElfFile64::<Endianness>::parse(vmlinux) else {
        return false;
    };
    let (header, endian) = (file.elf_header(), file.endian());
    let Ok(segments) = header.program_headers(endian, vmlinux) else {
        return false;
    };
    segments.iter().any(|segment| {
        let Ok(Some(mut notes)) = segment.notes(endian, vmlinux) else {
            return false;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian) == PHYS32_ENTRY {
                return true;
            }
        }
        false
    })
}

fn xz(stream: &[u8]) -> Result<Vec<u8>, UnwrapError> {
    let mut out = Vec::new();
    // One xz stream; whatever follows it is not read.
    std::io::copy(&mut liblzma::read::XzDecoder::new(stream), &mut out).map_err(UnwrapError::Xz)?;
    Ok(out)
}

/// The kernel inside a MIPS zboot `wrapper`, as an ELF with one segment at `load_address`.
fn unwrap_zboot(wrapper: &[u8], load_address: u64) -> Result<Option<Vec<u8>>, UnwrapError> {
    let Ok(file) = ElfFile64::<Endianness>::parse(wrapper) else {
        return Ok(None);
    };
    if file.elf_header().e_machine(file.endian()) != elf::EM_MIPS {
        return Ok(None);
    }
    let (Some(text), Some(data)) = (file.section_by_name(".text"), file.section_by_name(".data"))
    else {
        return Ok(None);
    };
    let data = data.data()?;
    let Some(start) = data.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC) else {
        return Ok(None);
    };
    let Some(entry) = kernel_entry(text.data()?, file.endian()) else {
        return Ok(None);
    };
    // What follows the stream in `.data` (padding, the appended size) is not read.
    let kernel = xz(&data[start..])?;
    if entry < load_address || entry - load_address >= kernel.len() as u64 {
        return Err(UnwrapError::Entry {
            entry,
            size: kernel.len(),
        });
    }
    let flags = file.elf_header().e_flags(file.endian());
    Ok(Some(write_elf(
        &kernel,
        load_address,
        entry,
        flags,
        file.endian(),
    )?))
}

/// The address the wrapper jumps to once the kernel is unpacked: the target of its last
/// `jalr t9`, built up just before it by `lui`, `ori`, `daddiu` and `dsll` (the kernel's
/// `PTR_LA t9, KERNEL_ENTRY` in arch/mips/boot/compressed/head.S).
fn kernel_entry(text: &[u8], endian: Endianness) -> Option<u64> {
    let words: Vec<u32> = text
        .chunks_exact(4)
        .map(|c| {
            let bytes = [c[0], c[1], c[2], c[3]];
            match endian {
                Endianness::Little => u32::from_le_bytes(bytes),
                Endianness::Big => u32::from_be_bytes(bytes),
            }
        })
        .collect();
    // head.S calls decompress_kernel through t9 first, then the kernel.
    let jump = words.iter().rposition(|&w| w == JALR_T9)?;
    let lui = words[..jump]
        .iter()
        .rposition(|&w| w >> 26 == 0x0f && (w >> 16) & 31 == T9)?;
    let mut t9: u64 = 0;
    for &word in &words[lui..jump] {
        let (op, rs, rt) = (word >> 26, (word >> 21) & 31, (word >> 16) & 31);
        let imm = u64::from(word & 0xffff);
        let simm = i64::from((word & 0xffff) as u16 as i16) as u64;
        match op {
            // lui: the immediate in bits 16..31, sign-extended to 64 bits.
            0x0f if rt == T9 => t9 = i64::from(((word & 0xffff) << 16) as i32) as u64,
            // ori, daddiu, addiu (32-bit, sign-extended).
            0x0d if rt == T9 && rs == T9 => t9 |= imm,
            0x19 if rt == T9 && rs == T9 => t9 = t9.wrapping_add(simm),
            0x09 if rt == T9 && rs == T9 => {
                t9 = i64::from((t9 as u32).wrapping_add(simm as u32) as i32) as u64
            }
            // SPECIAL: dsll and dsll32 of t9 by `sa`.
            0x00 if (word >> 11) & 31 == T9 && rt == T9 => {
                let sa = (word >> 6) & 31;
                match word & 0x3f {
                    0x38 => t9 <<= sa,
                    0x3c => t9 <<= sa + 32,
                    _ => return None,
                }
            }
            // An instruction that writes t9 some other way: not the layout known here.
            _ if rt == T9 || (op == 0 && (word >> 11) & 31 == T9) => return None,
            _ => {}
        }
    }
    Some(t9)
}

/// An executable ELF with the kernel as its one segment.
fn write_elf(
    kernel: &[u8],
    load_address: u64,
    entry: u64,
    flags: elf::FileFlags,
    endian: Endianness,
) -> Result<Vec<u8>, object::write::Error> {
    const ALIGN: u64 = 0x1000;
    let mut out = Vec::new();
    let mut writer = object::write::elf::Writer::new(endian, true, &mut out);
    writer.reserve_file_header();
    writer.reserve_program_headers(1);
    let offset = writer.reserve(kernel.len() as u64, ALIGN);
    writer.write_file_header(&object::write::elf::FileHeader {
        os_abi: elf::ELFOSABI_SYSV,
        abi_version: 0,
        e_type: elf::ET_EXEC,
        e_machine: elf::EM_MIPS,
        e_entry: entry,
        e_flags: flags,
    })?;
    writer.write_align_program_headers();
    writer.write_program_header(&object::write::elf::ProgramHeader {
        p_type: elf::PT_LOAD,
        p_flags: elf::PF_R | elf::PF_W | elf::PF_X,
        p_offset: offset,
        p_vaddr: load_address,
        p_paddr: load_address,
        p_filesz: kernel.len() as u64,
        p_memsz: kernel.len() as u64,
        p_align: ALIGN,
    });
    writer.write_align(ALIGN);
    writer.write(kernel);
    Ok(out)
}

/// What a guest restored from a snapshot boots instead of `kernel`: QEMU reads a kernel
/// (and its image) whatever happens, though the restored guest's memory comes from the
/// snapshot. With the stand-in and no image, a restore reads a few hundred bytes instead of
/// Debian's 59 MB x86_64 `vmlinux`, and holds 5 to 6 MB less (the image QEMU kept). The
/// stand-in is an ELF with `kernel`'s header and notes (x86_64's PVH entry, which picks QEMU's
/// boot path and so the option ROM the snapshot holds) and one 16-byte segment where the
/// kernel's first one starts. `None` when `kernel` is no ELF (a bzImage): it is then loaded
/// as it is.
pub fn stand_in(kernel: &[u8]) -> Option<Vec<u8>> {
    match kernel.get(..5)? {
        [0x7f, b'E', b'L', b'F', 1] => stand_in_of::<elf::FileHeader32<Endianness>>(kernel),
        [0x7f, b'E', b'L', b'F', 2] => stand_in_of::<elf::FileHeader64<Endianness>>(kernel),
        _ => None,
    }
}

fn stand_in_of<Elf: FileHeader<Endian = Endianness>>(kernel: &[u8]) -> Option<Vec<u8>> {
    const SEGMENT: u64 = 16;
    let header = Elf::parse(kernel).ok()?;
    let endian = header.endian().ok()?;
    let headers = header.program_headers(endian, kernel).ok()?;
    let first = headers.iter().find(|h| h.p_type(endian) == elf::PT_LOAD)?;
    let notes: Vec<(&Elf::ProgramHeader, &[u8])> = headers
        .iter()
        .filter(|h| h.p_type(endian) == elf::PT_NOTE)
        .map(|h| h.data(endian, kernel).ok().map(|data| (h, data)))
        .collect::<Option<_>>()?;
    let mut out = Vec::new();
    let mut writer = object::write::elf::Writer::new(endian, header.is_type_64(), &mut out);
    writer.reserve_file_header();
    writer.reserve_program_headers(1 + notes.len() as u32);
    let offsets: Vec<u64> = notes
        .iter()
        .map(|(_, data)| writer.reserve(data.len() as u64, 4))
        .collect();
    let segment = writer.reserve(SEGMENT, SEGMENT);
    writer
        .write_file_header(&object::write::elf::FileHeader::from_raw(endian, header))
        .ok()?;
    writer.write_align_program_headers();
    writer.write_program_header(&object::write::elf::ProgramHeader {
        p_offset: segment,
        p_filesz: SEGMENT,
        p_memsz: SEGMENT,
        p_align: SEGMENT,
        ..object::write::elf::ProgramHeader::from_raw(endian, first)
    });
    for ((note, _), &offset) in notes.iter().zip(&offsets) {
        writer.write_program_header(&object::write::elf::ProgramHeader {
            p_offset: offset,
            p_vaddr: 0,
            p_paddr: 0,
            ..object::write::elf::ProgramHeader::from_raw(endian, *note)
        });
    }
    for (_, data) in &notes {
        writer.write_align(4);
        writer.write(data);
    }
    writer.write_align(SEGMENT);
    writer.write(&[0; SEGMENT as usize]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn the_entry_is_the_target_of_the_last_jump() {
        // From Debian's 6.1.0-50-5kc-malta wrapper: the call to decompress_kernel, then
        // `lui t9,0x80b4; ori t9,t9,0x9f68; jalr t9`.
        let text = le(&[
            0x3c19_8126, // lui t9,0x8126
            0x6739_11c8, // daddiu t9,t9,4552
            JALR_T9,
            0x0000_0000,
            0x0200_2025, // move a0,s0
            0x3c19_80b4, // lui t9,0x80b4
            0x3739_9f68, // ori t9,t9,0x9f68
            JALR_T9,
            0x0000_0000,
            0x1000_ffff, // b .
        ]);
        assert_eq!(
            kernel_entry(&text, Endianness::Little),
            Some(0xffff_ffff_80b4_9f68)
        );
    }

    #[test]
    fn a_64_bit_address_built_in_steps() {
        // PTR_LA of 0x0000_0001_2345_6789 without sign extension games: lui, daddiu, dsll,
        // daddiu, dsll, daddiu.
        let text = le(&[
            0x3c19_0000, // lui t9,0
            0x6739_0001, // daddiu t9,t9,1
            0x0019_cc38, // dsll t9,t9,16
            0x6739_2345, // daddiu t9,t9,0x2345
            0x0019_cc38, // dsll t9,t9,16
            0x6739_6789, // daddiu t9,t9,0x6789
            JALR_T9,
        ]);
        assert_eq!(kernel_entry(&text, Endianness::Little), Some(0x1_2345_6789));
    }

    #[test]
    fn a_stand_in_keeps_the_header_and_loads_sixteen_bytes_where_the_kernel_starts() {
        let kernel = vec![0x5a; 3 << 20];
        let flags = elf::EF_MIPS_ARCH_64R2;
        let elf = write_elf(
            &kernel,
            MALTA_LOAD_ADDRESS,
            0xffff_ffff_8040_0000,
            flags,
            Endianness::Little,
        )
        .unwrap();
        let small = stand_in(&elf).expect("an ELF has a stand-in");
        assert!(small.len() < 4096, "{} bytes", small.len());
        let file = ElfFile64::<Endianness>::parse(small.as_slice()).unwrap();
        let header = file.elf_header();
        assert_eq!(header.e_machine(Endianness::Little), elf::EM_MIPS);
        assert_eq!(header.e_flags(Endianness::Little), flags);
        assert_eq!(file.entry(), 0xffff_ffff_8040_0000);
        let segments = header
            .program_headers(Endianness::Little, small.as_slice())
            .unwrap();
        let [load] = segments else {
            panic!("{} segments", segments.len())
        };
        assert_eq!(load.p_type(Endianness::Little), elf::PT_LOAD);
        assert_eq!(load.p_paddr(Endianness::Little), MALTA_LOAD_ADDRESS);
        assert_eq!(load.p_filesz(Endianness::Little), 16);
        assert!(stand_in(b"MZ a bzImage, no ELF").is_none());
    }

    #[test]
    fn unknown_layouts_are_left_alone() {
        assert!(unwrap(Arch::Mips64el, b"not an elf").unwrap().is_none());
        assert!(unwrap(Arch::X86_64, b"not a bzImage").unwrap().is_none());
        let text = le(&[0x3c19_80b4, 0x0320_c825 /* move t9,t9 */, JALR_T9]);
        assert_eq!(kernel_entry(&text, Endianness::Little), None);
    }
}
