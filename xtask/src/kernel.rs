//! Which kernel a run boots, and finding its three files: image, config, test_bpf.ko.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use runner::arch::Arch;
use sha2::Digest as _;
use xshell::Shell;

use crate::debian::{self, Apt};
use crate::lines::{Line, Packaging};
use crate::{cache, UsageError};

/// What `--kernel` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    /// One of Debian's packaged kernels: a line (`6.12`, `sid`) or an ABI (`6.1.0-50`,
    /// `6.12.95+deb12`); see `lines.rs`.
    Debian { name: String },
    /// A directory holding a kernel image, its config and test_bpf.ko (an unpacked package,
    /// a build tree, or the three files side by side).
    Dir(PathBuf),
    /// Built here from source (`--kernel-source`, or Debian's `linux-source-SERIES`).
    Build(crate::kbuild::BuildSpec),
}

impl FromStr for KernelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("debian:") {
            Some(name) if crate::lines::is_known(name) => Ok(KernelSpec::Debian {
                name: name.to_owned(),
            }),
            Some(name) => Err(crate::lines::LineError::Unknown(name.to_owned()).to_string()),
            // Debian's linux-source-SERIES, built here (a directory of that name is
            // `./linux-source-7.2`).
            None if s.starts_with("linux-source") => {
                Ok(KernelSpec::Build(crate::kbuild::BuildSpec {
                    source: crate::kbuild::Source::Package(s.parse()?),
                    ..Default::default()
                }))
            }
            None => Ok(KernelSpec::Dir(PathBuf::from(s))),
        }
    }
}

/// The kernel each architecture boots by default: a Debian kernel, pinned so that
/// baselines stay comparable (`--kernel debian:ABI` picks another), or, for the 32-bit MIPS
/// guests, one built from Debian's linux-source-6.1.
pub fn default_spec(arch: Arch) -> KernelSpec {
    match arch {
        // The 6.1 line's pins (`lines.rs`).
        Arch::X86_64 | Arch::Mips64el => KernelSpec::Debian { name: "6.1".into() },
        // Debian has no big-endian MIPS at all; its mipsel kernels are MIPS32 release 1
        // (4kc-malta), and built kernels keep the two 32-bit guests alike.
        Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => KernelSpec::Build(Default::default()),
    }
}

/// The flavour of Debian's kernel packages that ships test_bpf.ko and boots under QEMU.
fn debian_flavour(arch: Arch, packaging: Packaging) -> anyhow::Result<&'static str> {
    Ok(match arch {
        // The -cloud-amd64 flavour is smaller but has no test_bpf.ko. Split packages have
        // no -unsigned twin: their image is in linux-binary-*.
        Arch::X86_64 if packaging == Packaging::Split => "amd64",
        Arch::X86_64 => "amd64-unsigned",
        Arch::Mips64el => "5kc-malta",
        Arch::Mipsel => "4kc-malta",
        Arch::Mips | Arch::Mips64r6el => {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "Debian has no {arch} kernels; leave out --kernel to build one from \
                 linux-source-6.1, or give --kernel-source"
            )))
        }
    })
}

/// Version of an unpacked kernel's layout in the cache; an entry of another version is
/// unpacked again (2 added veth.ko).
const CACHE_LAYOUT: u32 = 2;

pub use runner::kernel::Kernel;

impl KernelSpec {
    pub fn resolve(
        &self,
        sh: &Shell,
        arch: Arch,
        cache: &Path,
        install: crate::tools::Install,
    ) -> anyhow::Result<Kernel> {
        let kernel = match self {
            KernelSpec::Debian { name } => fetch_debian(sh, arch, name, cache)?,
            KernelSpec::Dir(dir) => find_in_dir(dir, arch, cache).map_err(UsageError::wrap)?,
            KernelSpec::Build(spec) => crate::kbuild::build(sh, arch, spec, cache, install)?,
        };
        if let Some(config) = &kernel.config {
            check_config(config).map_err(UsageError::wrap)?;
        }
        let mut kernel = kernel;
        if kernel.layout != 0 {
            kernel.image = unwrapped(arch, &kernel.image)?;
        }
        Ok(kernel)
    }
}

/// The kernel inside a Debian `vmlinuz`, decompressed once into `vmlinux` beside it (see
/// `runner::vmlinux`): it boots seconds sooner under TCG. `vmlinuz` itself when it cannot be.
fn unwrapped(arch: Arch, vmlinuz: &Path) -> anyhow::Result<PathBuf> {
    let vmlinux = vmlinuz.with_file_name("vmlinux");
    if vmlinux.exists() {
        return Ok(vmlinux);
    }
    let wrapper =
        fs::read(vmlinuz).with_context(|| format!("cannot read {}", vmlinuz.display()))?;
    match runner::vmlinux::unwrap(arch, &wrapper)
        .with_context(|| format!("cannot unwrap {}", vmlinuz.display()))?
    {
        Some(elf) => {
            runner::report::write_atomically(&vmlinux, &elf)
                .with_context(|| format!("cannot write {}", vmlinux.display()))?;
            Ok(vmlinux)
        }
        None => Ok(vmlinuz.to_owned()),
    }
}

/// Fetches the kernel `name` (a line or an ABI, `lines.rs`) means for `arch` once; later runs
/// reuse the unpacked files.
fn fetch_debian(sh: &Shell, arch: Arch, name: &str, cache: &Path) -> anyhow::Result<Kernel> {
    let choice = crate::lines::choose(name, arch).map_err(UsageError::wrap)?;
    let (line, abi) = (choice.line, choice.abi.as_str());
    let flavour = debian_flavour(arch, line.packaging)?;
    let package = format!("linux-image-{abi}-{flavour}");
    let dir = cache.join("kernels").join(&package);
    if let Some(kernel) = unpacked(&dir) {
        return Ok(kernel);
    }
    let _lock = cache::Lock::acquire(
        cache,
        &format!("kernels/{package}"),
        &format!("fetching {package}"),
    )?;
    // Another run may have fetched it while this one waited.
    if let Some(kernel) = unpacked(&dir) {
        return Ok(kernel);
    }
    let apt = Apt::new(cache, arch.debian_name(), line)?;
    // What carries the files: the image package itself, or (7.x) the three it depends on,
    // the one with the image first (its version is the kernel's).
    let packages: Vec<String> = match line.packaging {
        Packaging::Image => vec![package.clone()],
        Packaging::Split => ["binary", "base", "modules"]
            .iter()
            .map(|part| format!("linux-{part}-{abi}-{flavour}"))
            .collect(),
    };
    let debs = download_kernel_packages(sh, &apt, arch, line, &packages)?;
    let kernel = publish_kernel(&debs, &packages, &package, &dir, cache)?;
    // The unpacked files are all we use; the packages are 50-110 MB each.
    for deb in &debs {
        let _ = fs::remove_file(deb);
    }
    Ok(kernel)
}

/// Downloads `packages`; a failure says which ABI of `line` the archive does carry.
fn download_kernel_packages(
    sh: &Shell,
    apt: &Apt,
    arch: Arch,
    line: &Line,
    packages: &[String],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut debs = Vec::new();
    for name in packages {
        match apt.download(sh, name) {
            Ok(deb) => debs.push(deb),
            Err(error) => {
                let hint = match available_abis(sh, apt, arch, line)
                    .ok()
                    .and_then(|a| a.last().cloned())
                {
                    Some(newest) => format!(
                        "the newest {} kernel of {line} the archive carries is {newest}: pass \
                         --kernel debian:{newest}",
                        arch.debian_name()
                    ),
                    None => {
                        format!("no kernel of this flavour was found in {line}'s package lists")
                    }
                };
                return Err(error.context(format!("cannot fetch {name}; {hint}")));
            }
        }
    }
    Ok(debs)
}

/// Unpacks the files of `package` a guest needs from `debs` and publishes them, with their
/// `kernel.json`, as the cache entry `dir`.
fn publish_kernel(
    debs: &[PathBuf],
    packages: &[String],
    package: &str,
    dir: &Path,
    cache: &Path,
) -> anyhow::Result<Kernel> {
    let version = debs
        .first()
        .and_then(|deb| debian::version_of(deb))
        .unwrap_or_else(|| "unknown".into());
    fs::create_dir_all(cache.join("kernels"))?;
    let staging = cache::staging_dir(&cache.join("kernels"))?;
    stage_kernel_files(staging.path(), debs, packages)?;
    let extra_modules = if staging.path().join("veth.ko").exists() {
        vec![dir.join("veth.ko")]
    } else {
        Vec::new()
    };
    let kernel = Kernel {
        layout: CACHE_LAYOUT,
        image: dir.join("vmlinuz"),
        config: Some(dir.join("config")),
        test_bpf: dir.join("test_bpf.ko"),
        extra_modules,
        source: format!("debian:{package}={version}"),
        revision: None,
        config_hash: None,
    };
    fs::write(
        staging.path().join("kernel.json"),
        serde_json::to_vec_pretty(&kernel)?,
    )?;
    // Publish the directory whole, so a run interrupted mid-unpack leaves nothing half done.
    let _ = fs::remove_dir_all(dir);
    let staged = staging.keep();
    fs::rename(&staged, dir)
        .with_context(|| format!("cannot move {} to {}", staged.display(), dir.display()))?;
    Ok(kernel)
}

/// Extracts the kernel files of `debs` (the `packages`) into `staging`, its modules
/// decompressed, and checks the image, config and test_bpf are among them.
fn stage_kernel_files(staging: &Path, debs: &[PathBuf], packages: &[String]) -> anyhow::Result<()> {
    let mut copied = Vec::new();
    for deb in debs {
        copied.extend(debian::extract(deb, |path| {
            kernel_file(path).map(|name| staging.join(name))
        })?);
    }
    for module in ["test_bpf", "veth"] {
        decompress_module(staging, module)?;
    }
    for needed in ["vmlinuz", "config", "test_bpf.ko"] {
        if !staging.join(needed).exists() {
            bail!(
                "{} have no {needed} (looked for boot/vmlinuz-*, usr/lib/modules/*/vmlinuz, \
                 boot/config-*, usr/lib/modules/*/config and */kernel/lib/test_bpf.ko[.xz|.zst|.gz]; \
                 found: {}); this flavour cannot run the JIT suite",
                packages.join(", "),
                copied.join(", ")
            );
        }
    }
    Ok(())
}

/// The extensions of the module compressions Debian's kernels use (`CONFIG_MODULE_COMPRESS_*`).
const MODULE_COMPRESSIONS: [&str; 4] = ["", ".xz", ".zst", ".gz"];

/// The name a file of a kernel package is kept under, if the harness needs it: the image, the
/// config, and the modules test_bpf and veth (compressed as they come), from either layout:
/// `boot/` + `lib/modules/` or merged `/usr` (`usr/lib/modules/VER/{vmlinuz,config}`).
fn kernel_file(path: &str) -> Option<String> {
    let in_modules = |name: &str| {
        let rest = path
            .strip_prefix("usr/")
            .unwrap_or(path)
            .strip_prefix("lib/modules/")?;
        let (_, file) = rest.split_once('/')?;
        (file == name).then(|| name.to_owned())
    };
    if path.starts_with("boot/vmlinuz-") {
        return Some("vmlinuz".into());
    }
    if path.starts_with("boot/config-") {
        return Some("config".into());
    }
    if let Some(name) = in_modules("vmlinuz").or_else(|| in_modules("config")) {
        return Some(name);
    }
    for (module, dir) in [
        ("test_bpf", "/kernel/lib/"),
        ("veth", "/kernel/drivers/net/"),
    ] {
        for ext in MODULE_COMPRESSIONS {
            if path.ends_with(&format!("{dir}{module}.ko{ext}")) {
                return Some(format!("{module}.ko{ext}"));
            }
        }
    }
    None
}

/// Makes `DIR/MODULE.ko` of a compressed `DIR/MODULE.ko.{xz,zst,gz}` and removes that; the
/// guest's init loads modules as they are, and gets them uncompressed.
fn decompress_module(dir: &Path, module: &str) -> anyhow::Result<()> {
    let plain = dir.join(format!("{module}.ko"));
    for ext in &MODULE_COMPRESSIONS[1..] {
        let packed = dir.join(format!("{module}.ko{ext}"));
        if !packed.exists() {
            continue;
        }
        let data = module_bytes(&packed)?;
        runner::report::write_atomically(&plain, &data)
            .with_context(|| format!("cannot write {}", plain.display()))?;
        fs::remove_file(&packed).with_context(|| format!("cannot remove {}", packed.display()))?;
    }
    Ok(())
}

/// The bytes of the module at `path`, decompressed by its extension (`.xz`, `.zst`, `.gz`).
pub fn module_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let name = path.to_string_lossy();
    let mut reader: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(file)
                .with_context(|| format!("{}: not a zstd stream", path.display()))?,
        )
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .with_context(|| format!("cannot decompress {}", path.display()))?;
    if !data.starts_with(b"\x7fELF") {
        bail!("{} is not an ELF module once decompressed", path.display());
    }
    Ok(data)
}

/// The kernel unpacked whole into `dir` by this layout of the cache, if it is.
fn unpacked(dir: &Path) -> Option<Kernel> {
    let kernel: Kernel = serde_json::from_slice(&fs::read(dir.join("kernel.json")).ok()?).ok()?;
    let whole = [&kernel.image, &kernel.test_bpf]
        .into_iter()
        .chain(&kernel.extra_modules)
        .all(|f| f.exists());
    (kernel.layout == CACHE_LAYOUT && whole).then_some(kernel)
}

/// The ABIs (`6.1.0-50`) of Debian's kernels for `arch` on `line` that the archive carries,
/// oldest first.
pub fn debian_abis(
    sh: &Shell,
    arch: Arch,
    line: &Line,
    cache: &Path,
) -> anyhow::Result<Vec<String>> {
    let apt = Apt::new(cache, arch.debian_name(), line)?;
    available_abis(sh, &apt, arch, line)
}

fn available_abis(sh: &Shell, apt: &Apt, arch: Arch, line: &Line) -> anyhow::Result<Vec<String>> {
    let suffix = format!("-{}", debian_flavour(arch, line.packaging)?);
    let names = apt.package_names(sh, "linux-image-")?;
    let mut abis: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("linux-image-")?.strip_suffix(&suffix))
        .filter(|abi| crate::lines::choose(abi, arch).is_ok_and(|c| c.line == line))
        .map(str::to_owned)
        .collect();
    abis.sort_by_key(|abi| version_key(abi));
    Ok(abis)
}

/// `6.1.0-50` or `6.12.95+deb12` as numbers, for ordering.
pub fn version_key(abi: &str) -> Vec<u64> {
    abi.split(['.', '-', '+'])
        .map(|p| p.trim_start_matches("deb").parse().unwrap_or(0))
        .collect()
}

/// Finds the kernel files in a directory: an unpacked Debian package (`boot/`, `lib/modules/`),
/// a kernel build tree, or the three files side by side.
fn find_in_dir(dir: &Path, arch: Arch, cache: &Path) -> anyhow::Result<Kernel> {
    if !dir.is_dir() {
        bail!(
            "--kernel {}: no such directory; give debian:ABI or a directory with a kernel \
             image, its config and test_bpf.ko",
            dir.display()
        );
    }
    let image_names: &[&str] = match arch {
        Arch::X86_64 => &[
            "bzImage",
            "arch/x86/boot/bzImage",
            "vmlinuz",
            "boot/vmlinuz-*",
            "usr/lib/modules/*/vmlinuz",
            "vmlinuz-*",
        ],
        // Malta boots the ELF image directly.
        Arch::Mips64el | Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => &[
            "vmlinux",
            "vmlinuz",
            "boot/vmlinuz-*",
            "usr/lib/modules/*/vmlinuz",
            "vmlinuz-*",
        ],
    };
    let image = first_match(dir, image_names).with_context(|| {
        format!(
            "{} has no kernel image (looked for {})",
            dir.display(),
            image_names.join(", ")
        )
    })?;
    let config = first_match(
        dir,
        &[
            ".config",
            "config",
            "boot/config-*",
            "usr/lib/modules/*/config",
            "config-*",
        ],
    )
    .ok();
    let module_names = module_patterns(&[
        "test_bpf.ko",
        "lib/test_bpf.ko",
        "lib/modules/*/kernel/lib/test_bpf.ko",
        "usr/lib/modules/*/kernel/lib/test_bpf.ko",
    ]);
    let patterns: Vec<&str> = module_names.iter().map(String::as_str).collect();
    let test_bpf = first_match(dir, &patterns).with_context(|| {
        format!(
            "{} has no test_bpf.ko (looked for {}); build the kernel with CONFIG_TEST_BPF=m",
            dir.display(),
            patterns.join(", ")
        )
    })?;
    let veth_names = module_patterns(&[
        "veth.ko",
        "drivers/net/veth.ko",
        "lib/modules/*/kernel/drivers/net/veth.ko",
        "usr/lib/modules/*/kernel/drivers/net/veth.ko",
    ]);
    let veth_patterns: Vec<&str> = veth_names.iter().map(String::as_str).collect();
    let veth = first_match(dir, &veth_patterns).ok();
    Ok(Kernel {
        layout: 0,
        image,
        config,
        test_bpf: uncompressed(&test_bpf, cache)?,
        extra_modules: match veth {
            Some(veth) => vec![uncompressed(&veth, cache)?],
            None => Vec::new(),
        },
        source: format!("dir:{}", dir.display()),
        revision: None,
        config_hash: None,
    })
}

/// Each pattern of a module, then compressed each way Debian's kernels compress modules.
fn module_patterns(plain: &[&str]) -> Vec<String> {
    MODULE_COMPRESSIONS
        .iter()
        .flat_map(|ext| plain.iter().map(move |p| format!("{p}{ext}")))
        .collect()
}

/// `module` itself when it is not compressed, else its bytes decompressed once into the cache
/// (`modules/HASH/NAME.ko`): a directory given with `--kernel` is never written to.
fn uncompressed(module: &Path, cache: &Path) -> anyhow::Result<PathBuf> {
    let name = module.file_name().unwrap_or_default().to_string_lossy();
    let Some(plain) = MODULE_COMPRESSIONS[1..]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
    else {
        return Ok(module.to_owned());
    };
    let packed = fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let hash = sha2::Sha256::digest(&packed);
    let key: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let dest = cache.join("modules").join(key).join(plain);
    if !dest.is_file() {
        let data = module_bytes(module)?;
        fs::create_dir_all(dest.parent().unwrap_or(cache))
            .with_context(|| format!("cannot create the directory of {}", dest.display()))?;
        runner::report::write_atomically(&dest, &data)
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    Ok(dest)
}

/// The first existing file among `patterns`, each a path relative to `dir` in which a `*`
/// stands for any part of one path component.
fn first_match(dir: &Path, patterns: &[&str]) -> anyhow::Result<PathBuf> {
    for pattern in patterns {
        let mut candidates = vec![dir.to_path_buf()];
        for part in pattern.split('/') {
            let mut next = Vec::new();
            for base in &candidates {
                match part.split_once('*') {
                    None => next.push(base.join(part)),
                    Some((prefix, suffix)) => {
                        let Ok(entries) = fs::read_dir(base) else {
                            continue;
                        };
                        let mut found: Vec<PathBuf> = entries
                            .flatten()
                            .filter(|e| {
                                let name = e.file_name();
                                let name = name.to_string_lossy();
                                name.starts_with(prefix) && name.ends_with(suffix)
                            })
                            .map(|e| e.path())
                            .collect();
                        found.sort();
                        next.extend(found);
                    }
                }
            }
            candidates = next;
        }
        if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    bail!("not found")
}

/// Refuses a kernel whose config cannot run the JIT suite.
fn check_config(config: &Path) -> anyhow::Result<()> {
    let text =
        fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    if !has("CONFIG_TEST_BPF=m") {
        bail!(
            "{}: CONFIG_TEST_BPF is not =m; the JIT suite needs the module (it depends on m, \
             inside RUNTIME_TESTING_MENU)",
            config.display()
        );
    }
    if !has("CONFIG_BPF_JIT=y") {
        bail!(
            "{}: CONFIG_BPF_JIT is not =y; this kernel has no JIT to test",
            config.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_specs_parse() {
        assert_eq!(
            "debian:6.1.0-50".parse(),
            Ok(KernelSpec::Debian {
                name: "6.1.0-50".into()
            })
        );
        assert_eq!("./build".parse(), Ok(KernelSpec::Dir("./build".into())));
        assert!("debian:latest".parse::<KernelSpec>().is_err());
        for name in ["6.12", "sid", "trixie", "6.12.95+deb12", "7.2.13+deb14"] {
            assert_eq!(
                format!("debian:{name}").parse(),
                Ok(KernelSpec::Debian { name: name.into() })
            );
        }
    }

    #[test]
    fn files_of_every_layout_are_kept_under_one_name() {
        let cases = [
            ("boot/vmlinuz-6.1.0-56-amd64", Some("vmlinuz")),
            ("boot/config-6.12.95+deb12-amd64", Some("config")),
            (
                "usr/lib/modules/7.2.13+deb14-amd64/vmlinuz",
                Some("vmlinuz"),
            ),
            ("usr/lib/modules/7.2.13+deb14-amd64/config", Some("config")),
            (
                "lib/modules/6.1.0-56-amd64/kernel/lib/test_bpf.ko",
                Some("test_bpf.ko"),
            ),
            (
                "lib/modules/6.12.95+deb12-amd64/kernel/lib/test_bpf.ko.xz",
                Some("test_bpf.ko.xz"),
            ),
            (
                "usr/lib/modules/7.2.13+deb14-amd64/kernel/drivers/net/veth.ko.zst",
                Some("veth.ko.zst"),
            ),
            ("usr/lib/modules/7.2.13+deb14-amd64/System.map", None),
            (
                "usr/lib/modules/7.2.13+deb14-amd64/kernel/lib/crc8.ko.xz",
                None,
            ),
        ];
        for (path, want) in cases {
            assert_eq!(kernel_file(path).as_deref(), want, "{path}");
        }
    }

    /// `ELF` bytes compressed as `ext` says.
    fn compressed(ext: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match ext {
            ".xz" => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            ".gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            ".zst" => {
                ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
            }
            _ => data.to_vec(),
        }
    }

    #[test]
    fn compressed_modules_of_6_12_and_split_7_x_packages_are_found_and_decompressed() {
        let module = b"\x7fELF a module";
        for ext in [".xz", ".zst", ".gz"] {
            // bookworm-backports' 6.12: boot/ and lib/modules/, modules compressed.
            let dir = tempfile::tempdir().unwrap();
            let (root, cache) = (dir.path().join("pkg"), dir.path().join("cache"));
            let release = "6.12.95+deb12-amd64";
            let lib = root.join(format!("lib/modules/{release}/kernel"));
            fs::create_dir_all(lib.join("lib")).unwrap();
            fs::create_dir_all(lib.join("drivers/net")).unwrap();
            fs::create_dir_all(root.join("boot")).unwrap();
            fs::write(root.join(format!("boot/vmlinuz-{release}")), b"k").unwrap();
            fs::write(root.join(format!("boot/config-{release}")), b"c").unwrap();
            let packed = compressed(ext, module);
            fs::write(lib.join(format!("lib/test_bpf.ko{ext}")), &packed).unwrap();
            fs::write(lib.join(format!("drivers/net/veth.ko{ext}")), &packed).unwrap();
            let listing = || {
                let mut files = Vec::new();
                for d in [lib.join("lib"), lib.join("drivers/net")] {
                    files.extend(fs::read_dir(d).unwrap().flatten().map(|e| e.path()));
                }
                files.sort();
                files
            };
            let before = listing();
            let kernel = find_in_dir(&root, Arch::X86_64, &cache).unwrap();
            assert_eq!(listing(), before, "--kernel DIR is never written to");
            assert!(kernel.test_bpf.starts_with(&cache), "{ext}: {kernel:?}");
            assert_eq!(fs::read(&kernel.test_bpf).unwrap(), module, "{ext}");
            assert_eq!(kernel.extra_modules.len(), 1, "{ext}");

            // sid's 7.x: linux-base, -binary and -modules unpacked together, merged /usr.
            let split = dir.path().join("split");
            let release = "7.2.13+deb14-amd64";
            let modules = split.join(format!("usr/lib/modules/{release}"));
            fs::create_dir_all(modules.join("kernel/lib")).unwrap();
            fs::write(modules.join("vmlinuz"), b"k").unwrap();
            fs::write(modules.join("config"), b"c").unwrap();
            fs::write(
                modules.join(format!("kernel/lib/test_bpf.ko{ext}")),
                &packed,
            )
            .unwrap();
            let kernel = find_in_dir(&split, Arch::X86_64, &cache).unwrap();
            assert!(
                kernel.image.ends_with(format!("{release}/vmlinuz")),
                "{kernel:?}"
            );
            assert!(kernel
                .config
                .is_some_and(|c| c.ends_with(format!("{release}/config"))));
            assert_eq!(fs::read(&kernel.test_bpf).unwrap(), module, "{ext}");
        }
        // Not a module once decompressed: said with the file.
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("test_bpf.ko.xz");
        fs::write(&bad, compressed(".xz", b"not elf")).unwrap();
        let error = module_bytes(&bad).unwrap_err().to_string();
        assert!(error.contains("is not an ELF module"), "{error}");
    }

    #[test]
    fn finds_files_in_an_unpacked_package() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("boot")).unwrap();
        fs::create_dir_all(root.join("lib/modules/6.1.0-50-5kc-malta/kernel/lib")).unwrap();
        fs::write(root.join("boot/vmlinuz-6.1.0-50-5kc-malta"), b"k").unwrap();
        fs::write(root.join("boot/config-6.1.0-50-5kc-malta"), b"c").unwrap();
        fs::write(
            root.join("lib/modules/6.1.0-50-5kc-malta/kernel/lib/test_bpf.ko"),
            b"m",
        )
        .unwrap();
        let kernel = find_in_dir(root, Arch::Mips64el, root).unwrap();
        assert!(kernel.image.ends_with("boot/vmlinuz-6.1.0-50-5kc-malta"));
        assert!(kernel
            .config
            .unwrap()
            .ends_with("boot/config-6.1.0-50-5kc-malta"));
        assert!(kernel.test_bpf.ends_with("kernel/lib/test_bpf.ko"));
    }

    #[test]
    fn missing_module_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bzImage"), b"k").unwrap();
        let err = find_in_dir(dir.path(), Arch::X86_64, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("has no test_bpf.ko"), "{err:#}");
    }

    #[test]
    fn config_without_test_bpf_module_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        fs::write(&config, "CONFIG_BPF_JIT=y\nCONFIG_TEST_BPF=y\n").unwrap();
        let err = check_config(&config).unwrap_err();
        assert!(
            err.to_string().contains("CONFIG_TEST_BPF is not =m"),
            "{err}"
        );
        fs::write(&config, "CONFIG_BPF_JIT=y\nCONFIG_TEST_BPF=m\n").unwrap();
        check_config(&config).unwrap();
    }

    #[test]
    fn newest_abi_orders_numerically() {
        let mut abis = ["6.1.0-9", "6.1.0-50", "6.1.0-47"];
        abis.sort_by_key(|a| version_key(a));
        assert_eq!(abis, ["6.1.0-9", "6.1.0-47", "6.1.0-50"]);
    }
}
