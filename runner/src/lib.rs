//! Boots BPF test guests under QEMU, supervises them, and turns their console into results.
//!
//! The flow of one run: a [`plan::Plan`] says which test module loads a guest performs;
//! [`initramfs::Initramfs`] carries it into the guest; [`session::run`] boots the guest through
//! [`qemu::Qemu`], splits its console into lines ([`console`]), follows the guest's protocol
//! ([`protocol`]) and the kernel's test output ([`test_bpf`]), and returns the results that
//! [`report::Report`] writes to disk. A whole campaign (many guests, resumed past crashes,
//! failures retried) is one call: [`engine::run`].

pub mod agent;
pub mod arch;
pub mod baseline;
pub mod bpf;
pub mod cases;
pub mod console;
pub mod diff;
pub mod disasm;
pub mod durations;
pub mod elf;
pub mod engine;
pub mod fuzz;
pub mod gdb;
pub mod image;
pub mod initramfs;
pub mod kernel;
pub mod known_differences;
pub mod merge;
pub mod model;
pub mod module_tests;
pub mod outputs;
pub mod plan;
pub mod protocol;
pub mod qemu;
pub mod qmp;
pub mod quarantine;
pub mod report;
pub mod retry;
pub mod reviewed_list;
pub mod session;
pub mod shard;
pub mod snapshot;
pub mod splat;
pub mod test_bpf;
pub mod track;
pub mod vmlinux;
