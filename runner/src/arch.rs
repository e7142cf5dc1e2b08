//! Guest architectures and the one table of their QEMU settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A guest architecture the harness can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    /// MIPS64 release 2, little endian (Malta, 5KEc).
    Mips64el,
    /// MIPS32 release 2, little endian (Malta, 24Kf): the 32-bit JIT, another code path.
    Mipsel,
    /// MIPS32 release 2, big endian: where byte-order bugs of the 32-bit JIT show. Debian
    /// ships no kernel or userland for it.
    Mips,
    /// MIPS64 release 6, little endian (Malta, I6400): R6 re-encodes branches, multiply and
    /// divide, so the 64-bit JIT emits other instructions. Built kernels only.
    Mips64r6el,
}

/// Byte order of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// What every ELF file put into a guest's image must say about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfIdent {
    /// `e_machine`, one of `object::elf::EM_*`.
    pub machine: object::elf::Machine,
    pub endian: Endian,
    pub is_64: bool,
}

/// How QEMU boots one architecture.
#[derive(Clone, Copy, Debug)]
pub struct QemuSettings {
    /// The system emulator binary.
    pub binary: &'static str,
    /// The Debian package that ships `binary`.
    pub package: &'static str,
    /// Machine and CPU selection, passed before everything else.
    pub machine_args: &'static [&'static str],
    /// The serial console device name inside the guest.
    pub console: &'static str,
    /// Guest memory in MiB, for kernels before 7.0 ([`Arch::memory_mib`] adds 7.x's).
    pub memory_mib: u32,
    /// Kernel command line the architecture needs, before the harness's own.
    pub cmdline: &'static str,
    /// Seconds from QEMU start to the guest's first protocol line, under TCG.
    /// The Debian amd64 kernel needs ~4 s, 5kc-malta ~1.5 s on the reference machine; the
    /// generous margin absorbs a loaded host without hiding a real boot hang for long.
    pub boot_timeout_secs: u64,
    /// QEMU has `ivshmem-plain`, the shared-memory window through which agent guests started
    /// from a snapshot get their bundle ([`crate::qemu::Window`]); without it they boot.
    pub shared_window: bool,
    /// QEMU's snapshot of the CPU leaves out the timer that raises its timer interrupt, and a
    /// load does not set it again (MIPS: the CP0 Count/Compare timer, QEMU 7.2 to 10). A
    /// restored guest then gets no timer interrupt until its kernel next writes Compare, which
    /// one saved with its tick running never does: its timers stop, RCU stalls, and the agent
    /// hangs a thousand cases later. [`crate::qemu::start_restore`] sets the timer again.
    pub restore_loses_timer: bool,
}

/// The C compiler that builds guest programs (the agent) for an architecture.
#[derive(Clone, Copy, Debug)]
pub struct Toolchain {
    pub cc: &'static str,
    /// The Debian packages of `cc` and of the C library it links statically: with
    /// `--no-install-recommends` a cross compiler comes without its libc.
    pub packages: &'static [&'static str],
    /// objdump for the architecture (it comes with the compiler), and how to make it read raw
    /// machine code: JIT images are bare bytes, not ELF files.
    pub objdump: &'static str,
    pub objdump_raw: &'static [&'static str],
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::X86_64,
        Arch::Mips64el,
        Arch::Mipsel,
        Arch::Mips,
        Arch::Mips64r6el,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Mips64el => "mips64el",
            Arch::Mipsel => "mipsel",
            Arch::Mips => "mips",
            Arch::Mips64r6el => "mips64r6el",
        }
    }

    /// Debian's name for the architecture (`dpkg --print-architecture`); big-endian MIPS
    /// left Debian with buster, so its name finds no packages in bookworm.
    pub fn debian_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Mips64el => "mips64el",
            Arch::Mipsel => "mipsel",
            Arch::Mips => "mips",
            // An unofficial port: bookworm's archive has no packages for it.
            Arch::Mips64r6el => "mips64r6el",
        }
    }

    /// The kernel's `ARCH=` and the prefix of the cross compiler that builds kernels.
    pub fn kbuild(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("x86", "x86_64-linux-gnu-"),
            Arch::Mips64el => ("mips", "mips64el-linux-gnuabi64-"),
            Arch::Mipsel => ("mips", "mipsel-linux-gnu-"),
            Arch::Mips => ("mips", "mips-linux-gnu-"),
            Arch::Mips64r6el => ("mips", "mipsisa64r6el-linux-gnuabi64-"),
        }
    }

    pub fn elf(self) -> ElfIdent {
        match self {
            Arch::X86_64 => ElfIdent {
                machine: object::elf::EM_X86_64,
                endian: Endian::Little,
                is_64: true,
            },
            Arch::Mips64el | Arch::Mips64r6el => ElfIdent {
                machine: object::elf::EM_MIPS,
                endian: Endian::Little,
                is_64: true,
            },
            Arch::Mipsel => ElfIdent {
                machine: object::elf::EM_MIPS,
                endian: Endian::Little,
                is_64: false,
            },
            Arch::Mips => ElfIdent {
                machine: object::elf::EM_MIPS,
                endian: Endian::Big,
                is_64: false,
            },
        }
    }

    pub fn toolchain(self) -> Toolchain {
        match self {
            Arch::X86_64 => Toolchain {
                cc: "x86_64-linux-gnu-gcc",
                packages: &["gcc", "libc6-dev"],
                objdump: "objdump",
                objdump_raw: &["-b", "binary", "-m", "i386:x86-64"],
            },
            Arch::Mips64el => Toolchain {
                cc: "mips64el-linux-gnuabi64-gcc",
                packages: &["gcc-mips64el-linux-gnuabi64", "libc6-dev-mips64el-cross"],
                objdump: "mips64el-linux-gnuabi64-objdump",
                // The 5KEc is MIPS64 release 2; the JIT emits r2 instructions.
                objdump_raw: &["-b", "binary", "-m", "mips:isa64r2", "-EL"],
            },
            Arch::Mipsel => Toolchain {
                cc: "mipsel-linux-gnu-gcc",
                packages: &["gcc-mipsel-linux-gnu", "libc6-dev-mipsel-cross"],
                objdump: "mipsel-linux-gnu-objdump",
                objdump_raw: &["-b", "binary", "-m", "mips:isa32r2", "-EL"],
            },
            Arch::Mips => Toolchain {
                cc: "mips-linux-gnu-gcc",
                packages: &["gcc-mips-linux-gnu", "libc6-dev-mips-cross"],
                objdump: "mips-linux-gnu-objdump",
                objdump_raw: &["-b", "binary", "-m", "mips:isa32r2", "-EB"],
            },
            // Debian's R6 cross compiler and C library: an R2 binary does not run on an R6
            // core (branch-likely and the old multiply encodings are gone).
            Arch::Mips64r6el => Toolchain {
                cc: "mipsisa64r6el-linux-gnuabi64-gcc",
                packages: &[
                    "gcc-mipsisa64r6el-linux-gnuabi64",
                    "libc6-dev-mips64r6el-cross",
                ],
                objdump: "mipsisa64r6el-linux-gnuabi64-objdump",
                objdump_raw: &["-b", "binary", "-m", "mips:isa64r6", "-EL"],
            },
        }
    }

    pub fn qemu(self) -> QemuSettings {
        match self {
            Arch::X86_64 => QemuSettings {
                binary: "qemu-system-x86_64",
                package: "qemu-system-x86",
                // The default `pc` machine. Without its default devices (`-nodefaults`, for
                // every arch) SeaBIOS spends no boot time on VGA, IDE, floppy and parallel
                // ports under TCG (0.53-0.65 s to the first test instead of 0.60-0.82 s,
                // built kernel).
                machine_args: &[],
                console: "ttyS0",
                // A guest touches nearly all the memory it is given, and holds it: its QEMU's
                // peak is about this plus 40 to 60 MiB. Debian's 6.1 kernel does not boot in
                // 80 MiB and runs every suite in 96; 6.12's and 7.2's kernel suites pass in 96
                // too (docs/speed.md, "Guest memory").
                memory_mib: 128,
                // The kernel calibrates the local APIC's timer against the PIT at boot, which
                // takes 0.22 s under TCG: a third of a minimal kernel's boot. A one-CPU guest
                // keeps time with the PIT and the TSC alone (first test after 0.36-0.41 s
                // instead of 0.53-0.65 s, built kernel).
                cmdline: "nolapic",
                boot_timeout_secs: 120,
                shared_window: true,
                restore_loses_timer: false,
            },
            Arch::Mips64el => QemuSettings {
                binary: "qemu-system-mips64el",
                package: "qemu-system-mips",
                // Malta is the board Debian's `*-malta` kernels are built for. QEMU's default CPU
                // for it is 32-bit; the 5KEc is a MIPS64r2 core that the 64-bit kernels accept.
                machine_args: &["-M", "malta", "-cpu", "5KEc"],
                console: "ttyS0",
                // Debian's 6.1 runs the kernel's suites in 64 MiB, but the harness's own run
                // out of it (the agent's bundle is in its image); both pass in 128.
                memory_mib: 128,
                cmdline: "",
                boot_timeout_secs: 120,
                shared_window: true,
                restore_loses_timer: true,
            },
            Arch::Mipsel => QemuSettings {
                binary: "qemu-system-mipsel",
                package: "qemu-system-mips",
                // QEMU's default Malta CPU, the 24Kf, is MIPS32 release 2.
                machine_args: &["-M", "malta"],
                console: "ttyS0",
                // A 32-bit kernel without HIGHMEM maps 256 MiB at most.
                memory_mib: 256,
                cmdline: "",
                boot_timeout_secs: 120,
                // Debian builds qemu-system-mipsel and qemu-system-mips without ivshmem.
                shared_window: false,
                restore_loses_timer: true,
            },
            // The same board and CPU in big-endian mode, QEMU's other binary.
            Arch::Mips => QemuSettings {
                binary: "qemu-system-mips",
                ..Arch::Mipsel.qemu()
            },
            // Malta takes MIPS64 release 6 cores too; the I6400 is QEMU's.
            Arch::Mips64r6el => QemuSettings {
                machine_args: &["-M", "malta", "-cpu", "I6400"],
                ..Arch::Mips64el.qemu()
            },
        }
    }
}

impl Arch {
    /// A guest's memory in MiB for a kernel of `version` (`None`: unknown, taken as the newest).
    /// 7.x's verifier needs more: its `compute_subprog_args` kvmallocs megabytes for a large
    /// program, and x86_64 Debian 7.2 runs out in 128 MiB in the conformance suite, and passes
    /// every suite in 144; 16 more are the margin. The 32-bit arches have all they can map.
    pub fn memory_mib(self, version: Option<(u32, u32)>) -> u32 {
        let base = self.qemu().memory_mib;
        let newer = version.is_none_or(|v| v >= (7, 0));
        match self {
            Arch::X86_64 | Arch::Mips64el | Arch::Mips64r6el if newer => base + 32,
            _ => base,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{0}`: expected one of x86_64, mips64el, mipsel, mips, mips64r6el")]
pub struct UnknownArch(String);

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "mips64el" => Ok(Arch::Mips64el),
            "mipsel" => Ok(Arch::Mipsel),
            "mips" => Ok(Arch::Mips),
            "mips64r6el" => Ok(Arch::Mips64r6el),
            _ => Err(UnknownArch(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_x_kernels_get_more_memory_on_the_64_bit_arches_only() {
        for arch in [Arch::X86_64, Arch::Mips64el, Arch::Mips64r6el] {
            let base = arch.qemu().memory_mib;
            assert_eq!(arch.memory_mib(Some((6, 12))), base);
            assert_eq!(arch.memory_mib(Some((7, 2))), base + 32);
            assert_eq!(
                arch.memory_mib(None),
                base + 32,
                "unknown is taken as the newest"
            );
        }
        for arch in [Arch::Mipsel, Arch::Mips] {
            assert_eq!(arch.memory_mib(Some((7, 2))), arch.qemu().memory_mib);
        }
    }
}
