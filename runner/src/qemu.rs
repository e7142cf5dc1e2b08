//! Starting QEMU and ending it, whatever happens.
//!
//! QEMU runs in a process group of its own, so a Ctrl-C at the terminal reaches the harness
//! only, and the harness decides how QEMU ends: SIGTERM to the group, SIGKILL after a grace
//! period, and always a `wait()` so no zombie or orphan is left. [`Qemu`]'s `Drop` does the
//! same for every path that forgets to.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

use crate::arch::Arch;
use crate::gdb::{Gdb, GdbError};
use crate::qmp::{Qmp, QmpError};

/// How QEMU executes guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere, slowly.
    Tcg,
    /// Hardware virtualisation: only for a guest of the host's own architecture.
    Kvm,
}

impl Accel {
    /// KVM only when it can really work: same architecture, a usable `/dev/kvm` and a CPU that
    /// advertises virtualisation. On hosts where `/dev/kvm` exists without vmx/svm, QEMU with
    /// `-enable-kvm` hangs at "Booting from ROM..." instead of failing.
    pub fn detect(arch: Arch) -> Accel {
        let same_arch = arch == Arch::X86_64 && cfg!(target_arch = "x86_64");
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let cpu_flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virt = cpu_flags
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        if same_arch && kvm_usable && virt {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// `-accel`'s argument, with TCG's translation buffer of `tb_size_mib`.
    pub fn arg(self, tb_size_mib: u32) -> String {
        match self {
            Accel::Tcg => format!("tcg,tb-size={tb_size_mib}"),
            Accel::Kvm => "kvm".to_owned(),
        }
    }
}

/// TCG's translation buffer, in MiB. QEMU's default for system emulation is 1 GiB, and a
/// guest that JITs thousands of programs (test_bpf) fills it with translations of code it
/// never runs again. With the default, x86_64 Debian 7.2's test_bpf peaked at 1.39 GB resident
/// per guest, with 32 MiB at 235 MB; two guests at once, no longer competing for the host's
/// caches, went from 0.55-0.56 of one guest's time to 0.48-0.52 (docs/speed.md, "Translation
/// buffer"). A guest fills whatever size it is given, but at 16 MiB mips64el's test_bpf
/// took 3 to 6 % longer (two benches), more than the 2 % the 16 MB saved per guest may cost.
pub const TB_SIZE_MIB: u32 = 32;

/// The translation buffer of a guest that runs only the agent's cases, in MiB. They are short
/// programs around one hot path of the kernel (the verifier); x86_64 Debian 7.2's own suites
/// in every mode took 75 s at 16 MiB against 80 s at 32, and 483 s at 8, which retranslates
/// the verifier over and over (docs/speed.md, "Translation buffer").
pub const AGENT_TB_SIZE_MIB: u32 = 16;

/// One guest boot: kernel, initramfs and command line.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub arch: Arch,
    pub accel: Accel,
    pub kernel: PathBuf,
    /// `None` for a restored guest that needs none (see [`crate::vmlinux::stand_in`]).
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB (`-m`).
    pub memory_mib: u32,
    /// TCG's translation buffer in MiB: [`TB_SIZE_MIB`], or [`AGENT_TB_SIZE_MIB`].
    pub tb_size_mib: u32,
    /// Extra kernel command line, after the harness's own.
    pub append: String,
    /// Where the guest's second serial port (`ttyS1`, the agent's channel) is written.
    pub agent_output: Option<PathBuf>,
    /// Guest RAM kept in a file instead of QEMU's own memory: a template's, and its restores'.
    pub memory_file: Option<MemoryFile>,
    /// A snapshot to start from instead of booting: a guest booted once with the same command
    /// line, saved while it waited for its plan. QEMU waits for it (`-incoming defer`) until
    /// [`Qemu::spawn`] starts the load through `qmp`.
    pub restore: Option<PathBuf>,
    /// A QMP socket to create: to save a snapshot of this guest, or to restore it.
    pub qmp: Option<PathBuf>,
    /// Bytes for the guest's console input, written as QEMU starts: a restored guest's plan.
    pub input: Vec<u8>,
    /// The guest's shared-memory window; every guest of a template made with one has one.
    pub window: Option<Window>,
}

/// Guest RAM in a file (`memory-backend-file`). A template guest writes its memory into the
/// file, and its snapshot leaves that memory out; a guest restored from it maps the file
/// copy-on-write. So every restored guest reads the template's pages from the host's page
/// cache, one copy for all of them, and owns only the pages it writes: x86_64 Debian 6.12's
/// test_bpf peaked at 127 MiB against 166 when each restore loaded the template's memory into
/// its own (docs/speed.md, "Guests share the template's memory").
#[derive(Clone, Debug)]
pub struct MemoryFile {
    pub path: PathBuf,
    /// `true` for the template (`share=on`), `false` for a restored guest (`share=off`).
    pub shared: bool,
}

impl MemoryFile {
    /// The QEMU object of `memory_mib` of RAM in this file.
    fn backend(&self, memory_mib: u32) -> String {
        let share = if self.shared { "on" } else { "off" };
        format!(
            "memory-backend-file,id=ram,size={memory_mib}M,mem-path={},share={share}",
            qemu_value(&self.path)
        )
    }
}

/// The migration capability that leaves memory QEMU shares with a file out of a snapshot: the
/// template's RAM, which its file holds. Set on both sides, saving and restoring.
pub const LEAVE_OUT_FILE_MEMORY: &str = "x-ignore-shared";

/// `path` as a QEMU option's value, where a comma is written twice.
fn qemu_value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// A file the guest sees as shared memory (QEMU's `ivshmem-plain`, a PCI device whose BAR 2
/// maps it): how a guest restored from a snapshot gets its agent's bundle, which is megabytes,
/// where the console takes about 200 KB/s under TCG.
#[derive(Clone, Debug)]
pub struct Window {
    /// A file of [`WINDOW_BYTES`].
    pub path: PathBuf,
    /// What the host writes into it when the guest asks (`harness: bundle-wanted`), followed
    /// by a NUL.
    pub bundle: Vec<u8>,
}

/// The window's size: a PCI BAR's size is a power of two, and the guest enumerated the
/// template's, so every guest of a template has this one. A bundle that does not fit goes in
/// the guest's image instead.
pub const WINDOW_BYTES: u64 = 8 << 20;

impl Window {
    /// An empty window at `path`: the file created sparse, at the window's size.
    pub fn create(path: PathBuf, bundle: Vec<u8>) -> std::io::Result<Window> {
        std::fs::File::create(&path)?.set_len(WINDOW_BYTES)?;
        Ok(Window { path, bundle })
    }

    /// QEMU's arguments for the window. It comes after the guest's RAM: QEMU 9 and later,
    /// under TCG, clear the TLB's dirty bits for a block's offset taken as an address when
    /// saving; with the window as the first RAM block, that range spans two blocks and QEMU
    /// aborts (`tlb_reset_dirty_range_all`).
    fn qemu_args(&self, template: bool) -> Vec<String> {
        // A template's window is shared, so that its snapshot leaves it out as it does the
        // RAM. A restored guest's is private, though the host writes the bundle into the file:
        // restoring with `LEAVE_OUT_FILE_MEMORY`, QEMU checks that a shared block is where it
        // was saved, before the window's PCI BAR is mapped again, and refuses. Private and
        // not in the snapshot, the window is left alone by the restore, and shows the host's
        // write (Linux's page cache) to the guest, which only reads it.
        let share = if template { "on" } else { "off" };
        let window = format!(
            "memory-backend-file,id=window,share={share},mem-path={},size={WINDOW_BYTES}",
            qemu_value(&self.path)
        );
        // master=on: QEMU refuses to save a guest with any other ivshmem.
        let device = "ivshmem-plain,memdev=window,master=on";
        ["-object", &window, "-device", device]
            .map(String::from)
            .to_vec()
    }

    /// Whether `bundle` fits, with its NUL.
    pub fn fits(bundle: &[u8]) -> bool {
        (bundle.len() as u64) < WINDOW_BYTES
    }
}

impl QemuConfig {
    /// A guest that boots `kernel` with `initrd`: the arch's memory, no second serial port,
    /// no snapshot, no input; the accelerator the host can give it.
    pub fn boot(arch: Arch, kernel: PathBuf, initrd: PathBuf) -> QemuConfig {
        QemuConfig {
            arch,
            accel: Accel::detect(arch),
            kernel,
            initrd: Some(initrd),
            memory_mib: arch.qemu().memory_mib,
            tb_size_mib: TB_SIZE_MIB,
            append: String::new(),
            agent_output: None,
            memory_file: None,
            restore: None,
            qmp: None,
            input: Vec::new(),
            window: None,
        }
    }

    /// The gdbstub socket of a restored guest whose arch loses the CPU's timer in a restore
    /// ([`start_restore`] sets it through the stub), beside its QMP socket.
    pub fn gdb_socket(&self) -> Option<PathBuf> {
        let qmp = self.qmp.as_ref()?;
        let needed = self.restore.is_some() && self.arch.qemu().restore_loses_timer;
        needed.then(|| qmp.with_file_name("gdb.sock"))
    }

    /// The program and arguments that boot this guest.
    pub fn command_line(&self) -> (String, Vec<String>) {
        let qemu = self.arch.qemu();
        let mut args: Vec<String> = qemu.machine_args.iter().map(|s| s.to_string()).collect();
        let cmdline = format!(
            // panic=-1: reboot at once on panic, which -no-reboot turns into QEMU exiting.
            // loglevel=7: test_bpf reports with pr_info, which must reach the console.
            "console={} panic=-1 loglevel=7 {} {}",
            qemu.console, qemu.cmdline, self.append
        );
        args.extend(
            [
                "-accel",
                &self.accel.arg(self.tb_size_mib),
                "-m",
                &self.memory_mib.to_string(),
                "-smp",
                "1",
                // The serial console on stdout is the only channel; no window, no monitor.
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                "stdio",
                // No default device: no VGA, NIC, drives or parallel port. The guests need
                // none of them, and the defaults load ROMs that QEMU's Depends do not ship:
                // Malta's Cirrus VGA needs vgabios-cirrus.bin (seabios) and its pcnet NIC
                // efi-pcnet.rom (ipxe-qemu), both only Recommends of qemu-system-mips.
                "-nodefaults",
                "-no-reboot",
                "-kernel",
            ]
            .map(String::from),
        );
        args.push(self.kernel.display().to_string());
        if let Some(initrd) = &self.initrd {
            args.push("-initrd".into());
            args.push(initrd.display().to_string());
        }
        args.push("-append".into());
        args.push(cmdline.trim_end().to_owned());
        if let Some(path) = &self.agent_output {
            // A second UART: ttyS1 on both the PC and Malta boards, kept apart from printk.
            args.push("-serial".into());
            args.push(format!("file:{}", path.display()));
        }
        let ram = match &self.memory_file {
            Some(file) => Some(file.backend(self.memory_mib)),
            // Named, so that it is QEMU's first RAM block (see `Window::qemu_args`).
            None if self.window.is_some() => Some(format!(
                "memory-backend-ram,id=ram,size={}M",
                self.memory_mib
            )),
            None => None,
        };
        if let Some(ram) = ram {
            args.extend(["-object".into(), ram]);
            args.extend(["-machine".into(), "memory-backend=ram".into()]);
        }
        if let Some(window) = &self.window {
            let template = self.memory_file.as_ref().is_some_and(|m| m.shared);
            args.extend(window.qemu_args(template));
        }
        if self.restore.is_some() {
            args.extend(["-incoming".into(), "defer".into()]);
        }
        if let Some(gdb) = self.gdb_socket() {
            args.push("-S".into());
            args.push("-gdb".into());
            args.push(format!("unix:{},server=on,wait=off", gdb.display()));
        }
        if let Some(socket) = &self.qmp {
            args.push("-qmp".into());
            args.push(format!("unix:{},server=on,wait=off", socket.display()));
        }
        if self.accel == Accel::Kvm {
            args.extend(["-cpu".into(), "host".into()]);
        }
        (qemu.binary.to_owned(), args)
    }
}

/// What to do when QEMU's `stderr` says it could not find a firmware file: the file, the
/// Debian package that ships it, and the command that installs it. `None` for other errors.
fn firmware_advice(stderr: &str) -> Option<String> {
    // QEMU 7.2's words: a PCI device's ROM, the PC's BIOS, an option ROM, Malta's BIOS.
    let patterns = [
        ("failed to find romfile \"", '"'),
        ("could not load PC BIOS '", '\''),
        ("Could not open option rom '", '\''),
        ("Could not load MIPS bios '", '\''),
    ];
    let file = patterns.iter().find_map(|(start, end)| {
        let rest = &stderr[stderr.find(start)? + start.len()..];
        Some(&rest[..rest.find(*end)?])
    })?;
    let name = file.rsplit('/').next().unwrap_or(file);
    let package = if name.starts_with("vgabios") || name.starts_with("bios") {
        Some("seabios")
    } else if name.starts_with("efi-") || name.starts_with("pxe-") {
        Some("ipxe-qemu")
    } else if ["kvmvapic", "linuxboot", "multiboot", "pvh"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        Some("qemu-system-data")
    } else {
        None
    };
    Some(match package {
        Some(package) => format!(
            "QEMU needs the firmware file {name}, which Debian's {package} ships: \
             `apt-get install --no-install-recommends {package}`"
        ),
        None => format!(
            "QEMU needs the firmware file {name}: `apt-file search {name}` names the Debian \
             package that ships it"
        ),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not starting QEMU: the harness is ending")]
    Closing,
    #[error("a restored guest needs a QMP socket to load {snapshot}")]
    NoQmp { snapshot: String },
    #[error("cannot restore the guest from {snapshot}{said}")]
    Restore {
        snapshot: String,
        /// What QEMU said on stderr, as `; QEMU said: ...`, or nothing.
        said: String,
        #[source]
        source: RestoreError,
    },
}

/// How long a restored guest's QEMU may take to open its QMP socket.
const QMP_OPENS_WITHIN: Duration = Duration::from_secs(30);

/// Why a restored guest could not be started from its snapshot.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("the snapshot did not load within {} s", LOADS_WITHIN.as_secs())]
    Slow,
    #[error("cannot set the guest CPU's timer again after the load")]
    Timer(#[from] GdbError),
}

/// How long loading a snapshot may take: it holds the devices' state only, but a host under
/// load may be slow.
const LOADS_WITHIN: Duration = Duration::from_secs(60);

/// Loads `snapshot` into the QEMU of `config` behind the QMP `socket`, which waits for it
/// (`-incoming defer`), leaving the template's memory file out as its save did. An arch whose
/// restore loses the CPU's timer waits paused (`-S`) until [`rearm_timer`] has set it, and is
/// then started. `running` says whether that QEMU still runs, while its socket is awaited.
pub fn start_restore(
    config: &QemuConfig,
    snapshot: &Path,
    socket: &Path,
    running: &mut dyn FnMut() -> bool,
) -> Result<(), RestoreError> {
    let deadline = Instant::now() + QMP_OPENS_WITHIN;
    let mut qmp = loop {
        match Qmp::connect(socket, QMP_OPENS_WITHIN) {
            Ok(qmp) => break qmp,
            Err(QmpError::Connect { .. }) if running() && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    leave_out_file_memory(&mut qmp)?;
    // QEMU runs the URI with /bin/sh: the path goes in single quotes.
    let quoted = snapshot.display().to_string().replace('\'', "'\\''");
    qmp.execute(serde_json::json!({
        "execute": "migrate-incoming",
        "arguments": { "uri": format!("exec:cat '{quoted}'") }
    }))?;
    if let Some(gdb) = config.gdb_socket() {
        wait_paused(&mut qmp)?;
        rearm_timer(&gdb, config.arch.elf())?;
        qmp.execute(serde_json::json!({ "execute": "cont" }))?;
    }
    Ok(())
}

/// Waits until the QEMU behind `qmp`, started with `-S`, has loaded its snapshot.
fn wait_paused(qmp: &mut Qmp) -> Result<(), RestoreError> {
    let deadline = Instant::now() + LOADS_WITHIN;
    while Instant::now() < deadline {
        let reply = qmp.execute(serde_json::json!({ "execute": "query-status" }))?;
        if reply["return"]["status"] == "paused" {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(2));
    }
    Err(RestoreError::Slow)
}

/// Sets the timer of a paused MIPS guest's CPU that a load left out
/// ([`crate::arch::QemuSettings::restore_loses_timer`]): its Count register stopped and
/// started again (the Cause register's DC bit, written through QEMU's gdbstub) makes QEMU
/// set the timer for Compare. Every register ends as it was: the guest, paused, sees nothing.
fn rearm_timer(socket: &Path, elf: crate::arch::ElfIdent) -> Result<(), GdbError> {
    /// GDB's number for CP0 Cause among QEMU's MIPS registers: after the 32 general ones,
    /// Status, LO, HI and BadVAddr, all as wide as a general register.
    const CAUSE: usize = 36;
    /// Cause.DC, "disable count".
    const DC: u32 = 27;
    let width = if elf.is_64 { 8 } else { 4 };
    let mut gdb = Gdb::connect(socket, LOADS_WITHIN)?;
    let registers = gdb.read_registers()?;
    // Written back up to Cause: those before it as they are, Cause with DC flipped, then as it was.
    let wanted = (CAUSE + 1) * width;
    let through_cause = registers.get(..wanted).ok_or(GdbError::Short {
        got: registers.len(),
        wanted,
    })?;
    let mut flipped = through_cause.to_vec();
    crate::gdb::flip_bit(&mut flipped[CAUSE * width..], elf.endian, DC);
    gdb.write_registers(&flipped)?;
    gdb.write_registers(through_cause)?;
    gdb.detach()
}

/// Sets [`LEAVE_OUT_FILE_MEMORY`] for the migrations of the QEMU behind `qmp`.
pub fn leave_out_file_memory(qmp: &mut Qmp) -> Result<(), QmpError> {
    qmp.execute(serde_json::json!({
        "execute": "migrate-set-capabilities",
        "arguments": { "capabilities": [
            { "capability": LEAVE_OUT_FILE_MEMORY, "state": true }
        ] }
    }))?;
    Ok(())
}

/// What reading the console gave.
#[derive(Debug)]
pub enum Output {
    Bytes(Vec<u8>),
    /// Nothing arrived within the time asked for.
    Quiet,
    /// QEMU closed its stdout: it has exited or is about to.
    Closed,
}

/// A running QEMU, ended and reaped when dropped.
pub struct Qemu {
    child: Child,
    /// Kept open while QEMU runs: a closed console input is not what a guest expects.
    stdin: Option<std::process::ChildStdin>,
    window: Option<Window>,
    program: String,
    console: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// The highest peak resident memory (`VmHWM`) read so far, in KiB.
    peak_rss_kib: Option<u64>,
    /// The most anonymous memory (`RssAnon`) read so far, in KiB.
    peak_own_kib: Option<u64>,
    /// When `peak_rss_kib` was last read.
    sampled: Option<Instant>,
}

/// The process groups of every QEMU started and not yet reaped, for [`kill_all`]; `None`
/// once `kill_all` ran, so that no QEMU starts after it.
static LIVE: Mutex<Option<BTreeSet<u32>>> = Mutex::new(Some(BTreeSet::new()));

/// Kills every QEMU this process started and has not reaped, at once (SIGKILL to each
/// process group), and refuses to start any more: for a harness about to exit without the
/// usual ending, on a second Ctrl-C.
pub fn kill_all() {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for &pid in live.take().iter().flatten() {
        if let Some(pid) = Pid::from_raw(pid as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

/// How often [`Qemu::read`] reads QEMU's peak memory.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The value of `field` (such as `VmHWM:`) in `/proc/PID/status`, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix(field))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Most of QEMU's stderr kept for error messages.
const STDERR_LIMIT: usize = 64 * 1024;

/// What reads a QEMU's output: its console as it comes, its stderr kept, and the threads.
struct Readers {
    console: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
}

/// Threads that read `child`'s stdout (the console, sent on) and stderr (kept, up to
/// [`STDERR_LIMIT`]) until they close.
fn read_output(child: &mut Child) -> Readers {
    let (tx, console) = mpsc::channel();
    let mut threads = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let stderr = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = child.stderr.take() {
        let sink = Arc::clone(&stderr);
        threads.push(thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if let Ok(mut kept) = sink.lock() {
                    let room = STDERR_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }));
    }
    Readers {
        console,
        stderr,
        threads,
    }
}

impl Qemu {
    /// Starts the guest of `config`; a restored one has its snapshot loading when this returns.
    pub fn spawn(config: &QemuConfig) -> Result<Qemu, QemuError> {
        let (program, args) = config.command_line();
        let mut qemu = Self::spawn_with(
            Path::new(&program),
            &args,
            &config.input,
            config.window.clone(),
        )?;
        if let Some(snapshot) = &config.restore {
            let socket = config.qmp.as_deref().ok_or_else(|| QemuError::NoQmp {
                snapshot: snapshot.display().to_string(),
            })?;
            let loaded = start_restore(config, snapshot, socket, &mut || qemu.try_wait().is_none());
            if let Err(source) = loaded {
                // Its stderr says why, once it has exited.
                qemu.terminate(Duration::from_secs(1));
                return Err(QemuError::Restore {
                    snapshot: snapshot.display().to_string(),
                    said: qemu
                        .said()
                        .map(|s| format!("; QEMU said: {s}"))
                        .unwrap_or_default(),
                    source,
                });
            }
        }
        Ok(qemu)
    }

    /// Starts `program` as if it were QEMU (tests use fake ones).
    pub fn spawn_program(program: &Path, args: &[String]) -> Result<Qemu, QemuError> {
        Self::spawn_with(program, args, &[], None)
    }

    /// Starts `program` as if it were the QEMU of a guest with `window`.
    pub fn spawn_program_with_window(
        program: &Path,
        args: &[String],
        window: Window,
    ) -> Result<Qemu, QemuError> {
        Self::spawn_with(program, args, &[], Some(window))
    }

    /// Starts `program` with `input` written to its standard input, which stays open (QEMU's
    /// `-serial stdio` reads the guest's console input from it) when there is input or a
    /// window to answer for.
    fn spawn_with(
        program: &Path,
        args: &[String],
        input: &[u8],
        window: Option<Window>,
    ) -> Result<Qemu, QemuError> {
        // Held from spawn to registration, so that `kill_all` sees every QEMU.
        let mut guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let Some(live) = guard.as_mut() else {
            return Err(QemuError::Closing);
        };
        // QEMU asks for transparent huge pages for guest memory, so on a host with THP on
        // `madvise` (Debian's default) each 4 KiB page a guest touches makes 2 MiB resident:
        // a guest that touched 68 MiB of its 128 held 94 (171 MiB peak, x86_64).
        // The flag is the process's and its children keep it; it cannot be set between fork
        // and exec without `unsafe`, so it is set here, for this process too. Without huge
        // pages test_bpf ran no slower (docs/speed.md, "Guest memory").
        let _ = rustix::thread::disable_transparent_huge_pages(true);
        let mut child = Command::new(program)
            .args(args)
            .stdin(match input.is_empty() && window.is_none() {
                true => Stdio::null(),
                false => Stdio::piped(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| QemuError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        live.insert(child.id());
        drop(guard);
        let mut stdin = child.stdin.take();
        if let Some(pipe) = &mut stdin {
            // A plan is a few hundred bytes: the pipe takes it whole, whatever QEMU is doing.
            // A QEMU that died at once is seen on its console, not here.
            let _ = pipe.write_all(input);
        }
        let Readers {
            console,
            stderr,
            threads: readers,
        } = read_output(&mut child);
        Ok(Qemu {
            child,
            stdin,
            window,
            program: program.display().to_string(),
            console,
            stderr,
            readers,
            status: None,
            peak_rss_kib: None,
            peak_own_kib: None,
            sampled: None,
        })
    }

    /// Answers `harness: bundle-wanted`: writes the bundle into the guest's window, then says
    /// `bundle-ready` on its console. The guest asks once its restore is done, so nothing
    /// writes over it after.
    pub fn fill_window(&mut self) -> Result<(), String> {
        let window = self
            .window
            .as_ref()
            .ok_or("the guest asked for its bundle, but it has no shared-memory window")?;
        let mut content = window.bundle.clone();
        content.push(0);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&window.path)
            .and_then(|mut file| file.write_all(&content))
            .map_err(|e| {
                format!(
                    "cannot write the bundle into {}: {e}",
                    window.path.display()
                )
            })?;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("the guest's console input is closed")?;
        stdin
            .write_all(b"bundle-ready\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot tell the guest its bundle is ready: {e}"))
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// Waits up to `timeout` for console bytes. Reads QEMU's peak memory now and then.
    pub fn read(&mut self, timeout: Duration) -> Output {
        if self
            .sampled
            .is_none_or(|at| at.elapsed() >= MEMORY_SAMPLE_EVERY)
        {
            self.sample_memory();
        }
        match self.console.recv_timeout(timeout) {
            Ok(bytes) => Output::Bytes(bytes),
            Err(RecvTimeoutError::Timeout) => Output::Quiet,
            Err(RecvTimeoutError::Disconnected) => Output::Closed,
        }
    }

    /// What QEMU wrote to stderr so far, trimmed.
    pub fn stderr(&self) -> String {
        let kept = self.stderr.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&kept).trim().to_owned()
    }

    /// What QEMU said on stderr, and what to do when that names a firmware file it lacks;
    /// `None` when it said nothing.
    pub fn said(&self) -> Option<String> {
        let stderr = self.stderr();
        match (stderr.is_empty(), firmware_advice(&stderr)) {
            (true, _) => None,
            (false, Some(advice)) => Some(format!("{stderr}; {advice}")),
            (false, None) => Some(stderr),
        }
    }

    /// Waits up to `timeout` for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // QEMU mostly exits within milliseconds of closing its console, and every guest
            // waits here once.
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// QEMU's peak resident memory, in MiB, as last read: exact for a QEMU the harness ended
    /// (read just before), within [`MEMORY_SAMPLE_EVERY`] of its end for one that exited.
    /// `None` where `/proc` does not say.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.peak_rss_kib.map(|kib| kib as f64 / 1024.0)
    }

    /// The most memory QEMU held that is its alone, in MiB, as sampled (every
    /// [`MEMORY_SAMPLE_EVERY`], so a peak between two samples is missed): its anonymous memory,
    /// the guest RAM it wrote, its heaps and translation buffer. Not its pages of files: the
    /// template's memory that it only read (the host holds one copy for every guest of the
    /// template), QEMU's binary and libraries (one for every QEMU), its window's bundle.
    pub fn peak_own_mib(&self) -> Option<f64> {
        self.peak_own_kib.map(|kib| kib as f64 / 1024.0)
    }

    /// Reads QEMU's `VmHWM` (the kernel's own high-water mark of its resident memory) and
    /// `RssAnon`, unless QEMU has exited: a zombie has no memory to report.
    fn sample_memory(&mut self) {
        self.sampled = Some(Instant::now());
        if self.status.is_some() {
            return;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
        else {
            return;
        };
        // `None` orders below every `Some`: a field not read keeps the peak.
        self.peak_rss_kib = self.peak_rss_kib.max(status_kib(&status, "VmHWM:"));
        self.peak_own_kib = self.peak_own_kib.max(status_kib(&status, "RssAnon:"));
    }

    /// The process id of QEMU, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// QEMU's exit status if it has exited (without waiting).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Ends QEMU and everything in its process group: SIGTERM, then SIGKILL after `grace`.
    /// Always reaps it. Returns its exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.sample_memory();
        if let Some(status) = self.try_wait() {
            self.kill_group(Signal::KILL);
            self.join_readers();
            self.forget();
            return Some(status);
        }
        self.kill_group(Signal::TERM);
        let status = match self.wait_exit(grace) {
            Some(status) => Some(status),
            None => {
                self.kill_group(Signal::KILL);
                let status = self.child.wait().ok();
                self.status = status;
                status
            }
        };
        // Anything QEMU started that still holds the pipes goes too.
        self.kill_group(Signal::KILL);
        self.join_readers();
        self.forget();
        status
    }

    fn kill_group(&self, signal: Signal) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            // ESRCH once the group is gone: nothing left to end.
            let _ = kill_process_group(pid, signal);
        }
    }

    /// QEMU is reaped: its pid may be reused, so [`kill_all`] must not signal it.
    fn forget(&self) {
        if let Some(live) = LIVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            live.remove(&self.child.id());
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_firmware_file_is_named_with_its_package() {
        let cirrus = "qemu-system-mips64el: failed to find romfile \"vgabios-cirrus.bin\"\n";
        let advice = firmware_advice(cirrus).expect("a firmware error");
        assert_eq!(
            advice,
            "QEMU needs the firmware file vgabios-cirrus.bin, which Debian's seabios ships: \
             `apt-get install --no-install-recommends seabios`"
        );
        let bios = "qemu-system-x86_64: could not load PC BIOS 'bios-256k.bin'";
        assert!(firmware_advice(bios).is_some_and(|a| a.contains("seabios")));
        let nic = "qemu-system-mipsel: failed to find romfile \"efi-pcnet.rom\"";
        assert!(firmware_advice(nic).is_some_and(|a| a.contains("ipxe-qemu")));
        let other = "qemu: Could not open option rom '/opt/fw/odd.rom': No such file";
        assert!(firmware_advice(other).is_some_and(|a| a.contains("apt-file search odd.rom")));
        assert_eq!(firmware_advice("qemu: could not load kernel '/k'"), None);
    }

    #[test]
    fn a_guest_with_a_window_has_its_ram_as_the_first_memory_backend() {
        let mut config = QemuConfig::boot(Arch::X86_64, "/k".into(), "/i".into());
        let (_, plain) = config.command_line();
        assert!(!plain.iter().any(|a| a.starts_with("memory-backend-")));

        config.window = Some(Window {
            path: "/w".into(),
            bundle: Vec::new(),
        });
        let (_, args) = config.command_line();
        let backends: Vec<&String> = args
            .iter()
            .filter(|a| a.starts_with("memory-backend-"))
            .collect();
        let ram = format!("memory-backend-ram,id=ram,size={}M", config.memory_mib);
        assert_eq!(backends.len(), 2, "{args:?}");
        assert_eq!(backends[0], &ram);
        assert!(backends[1].starts_with("memory-backend-file,id=window,"));
        assert!(args
            .windows(2)
            .any(|w| w == ["-machine", "memory-backend=ram"]));
    }

    #[test]
    fn a_restored_guest_maps_the_template_memory_private_and_waits_for_its_snapshot() {
        let config = QemuConfig {
            memory_file: Some(MemoryFile {
                path: "/t/mem,ory".into(),
                shared: false,
            }),
            window: Some(Window {
                path: "/g/window".into(),
                bundle: Vec::new(),
            }),
            restore: Some("/t/snapshot.bin".into()),
            ..QemuConfig::boot(Arch::Mips64el, "/k".into(), "/i".into())
        };
        let (_, args) = config.command_line();
        let backends: Vec<&String> = args
            .iter()
            .filter(|a| a.starts_with("memory-backend-"))
            .collect();
        let ram = "memory-backend-file,id=ram,size=128M,mem-path=/t/mem,,ory,share=off";
        assert_eq!(backends, [ram, WINDOW_BACKEND_OF_G], "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-incoming", "defer"]));
        assert!(!args.iter().any(|a| a.contains("snapshot.bin")), "{args:?}");

        let template = QemuConfig {
            memory_file: Some(MemoryFile {
                path: "/s/memory".into(),
                shared: true,
            }),
            restore: None,
            ..config
        };
        let (_, args) = template.command_line();
        assert!(args
            .iter()
            .any(|a| a.ends_with("mem-path=/s/memory,share=on")));
        // Its window is left out of its snapshot too.
        let window = "memory-backend-file,id=window,share=on,mem-path=/g/window,size=8388608";
        assert!(args.iter().any(|a| a == window), "{args:?}");
        assert!(!args.iter().any(|a| a == "-incoming"));
    }

    #[test]
    fn a_restored_mips_guest_waits_paused_with_a_gdbstub_to_have_its_timer_set() {
        let restored = |arch| QemuConfig {
            restore: Some("/t/snapshot.bin".into()),
            qmp: Some("/g/qmp.sock".into()),
            ..QemuConfig::boot(arch, "/k".into(), "/i".into())
        };
        for arch in [Arch::Mips64el, Arch::Mipsel, Arch::Mips, Arch::Mips64r6el] {
            let (_, args) = restored(arch).command_line();
            assert!(args.iter().any(|a| a == "-S"), "{arch}: {args:?}");
            let gdb = ["-gdb", "unix:/g/gdb.sock,server=on,wait=off"];
            assert!(args.windows(2).any(|w| w == gdb), "{arch}: {args:?}");
        }
        // The PC's timers are in its snapshot; a guest that boots needs no stub.
        let booted = QemuConfig {
            restore: None,
            ..restored(Arch::Mips64el)
        };
        for config in [restored(Arch::X86_64), booted] {
            let (_, args) = config.command_line();
            assert!(!args.iter().any(|a| a == "-S" || a == "-gdb"), "{args:?}");
        }
    }

    /// The window backend of a guest whose window is `/g/window`.
    const WINDOW_BACKEND_OF_G: &str =
        "memory-backend-file,id=window,share=off,mem-path=/g/window,size=8388608";

    #[test]
    fn peak_memory_is_read_from_proc_while_qemu_runs() {
        let status = "Name:\tqemu\nVmHWM:\t  153600 kB\nVmRSS:\t 1 kB\nRssAnon:\t 90112 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(153_600));
        assert_eq!(status_kib(status, "RssAnon:"), Some(90_112));
        let zombie = "Name:\tzombie\nState:\tZ (zombie)\n";
        assert_eq!(status_kib(zombie, "VmHWM:"), None);

        let args = ["-c".to_owned(), "sleep 5".to_owned()];
        let mut qemu = Qemu::spawn_program(Path::new("/bin/sh"), &args).expect("sh starts");
        assert!(matches!(
            qemu.read(Duration::from_millis(10)),
            Output::Quiet
        ));
        let started = qemu.peak_rss_mib().expect("/proc says");
        qemu.terminate(Duration::from_secs(1));
        let ended = qemu.peak_rss_mib().expect("/proc said");
        assert!(started > 0.0 && ended >= started, "{started} then {ended}");
        let own = qemu.peak_own_mib().expect("/proc said");
        assert!(own > 0.0 && own <= ended, "{own} of {ended}");
    }
}
