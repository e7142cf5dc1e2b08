//! Which kernel a run boots, and finding its three files: image, config, test_bpf.ko.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use runner::arch::Arch;
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::debian::{self, Apt};
use crate::{cache, UsageError};

/// What `--kernel` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    /// One of Debian's packaged kernels, by ABI name (`6.1.0-50`).
    Debian { abi: String },
    /// A directory holding a kernel image, its config and test_bpf.ko (an unpacked package,
    /// a build tree, or the three files side by side).
    Dir(PathBuf),
    /// Built here from source (`--kernel-source`, or Debian's linux-source-6.1).
    Build(crate::kbuild::BuildSpec),
}

impl FromStr for KernelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("debian:") {
            Some(abi) if abi.starts_with(|c: char| c.is_ascii_digit()) => Ok(KernelSpec::Debian {
                abi: abi.to_owned(),
            }),
            Some(_) => Err(format!(
                "`{s}`: expected debian:ABI with an ABI such as 6.1.0-50"
            )),
            // Debian's linux-source-6.1, built here.
            None if s == "linux-source" => Ok(KernelSpec::Build(Default::default())),
            None => Ok(KernelSpec::Dir(PathBuf::from(s))),
        }
    }
}

/// The kernel each architecture boots by default: a Debian kernel, pinned so that
/// baselines stay comparable (`--kernel debian:ABI` picks another), or, for the 32-bit MIPS
/// guests, one built from Debian's linux-source-6.1.
pub fn default_spec(arch: Arch) -> KernelSpec {
    let abi = match arch {
        Arch::X86_64 => "6.1.0-56",
        // Debian's security archive no longer builds mips64el, so bookworm's newest
        // mips64el kernel is the point release's 6.1.0-50 (6.1.176).
        Arch::Mips64el => "6.1.0-50",
        // Debian has no big-endian MIPS at all; its mipsel kernels are MIPS32 release 1
        // (4kc-malta), and built kernels keep the two 32-bit guests alike.
        Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => {
            return KernelSpec::Build(Default::default())
        }
    };
    KernelSpec::Debian {
        abi: abi.to_owned(),
    }
}

/// The flavour of Debian's kernel packages that ships test_bpf.ko and boots under QEMU.
fn debian_flavour(arch: Arch) -> anyhow::Result<&'static str> {
    Ok(match arch {
        // The -cloud-amd64 flavour is smaller but has no test_bpf.ko.
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

/// A kernel ready to boot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kernel {
    /// [`CACHE_LAYOUT`] when the kernel was unpacked into the cache; 0 elsewhere.
    #[serde(default)]
    pub layout: u32,
    pub image: PathBuf,
    pub config: Option<PathBuf>,
    pub test_bpf: PathBuf,
    /// Modules the agent's cases need, loaded before it runs: veth, for real-device XDP.
    #[serde(default)]
    pub extra_modules: Vec<PathBuf>,
    /// Where it came from, for the report.
    pub source: String,
    /// The source revision of a kernel built here: a commit, or the source package's version.
    #[serde(default)]
    pub revision: Option<String>,
    /// A hash of the resolved `.config` of a kernel built here.
    #[serde(default)]
    pub config_hash: Option<String>,
}

impl KernelSpec {
    pub fn resolve(
        &self,
        sh: &Shell,
        arch: Arch,
        cache: &Path,
        install: crate::tools::Install,
    ) -> anyhow::Result<Kernel> {
        let kernel = match self {
            KernelSpec::Debian { abi } => fetch_debian(sh, arch, abi, cache)?,
            KernelSpec::Dir(dir) => find_in_dir(dir, arch).map_err(UsageError::wrap)?,
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

/// Fetches `linux-image-ABI-FLAVOUR` once; later runs reuse the unpacked files.
fn fetch_debian(sh: &Shell, arch: Arch, abi: &str, cache: &Path) -> anyhow::Result<Kernel> {
    let package = format!("linux-image-{abi}-{}", debian_flavour(arch)?);
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
    let apt = Apt::new(cache, arch.debian_name())?;
    let deb = match apt.download(sh, &package) {
        Ok(deb) => deb,
        Err(error) => {
            let newest = newest_debian_kernel(sh, &apt, arch);
            let hint = match newest {
                Some(abi) => format!(
                    "the newest {} kernel the archive carries is {abi}: pass --kernel debian:{abi}",
                    arch.debian_name()
                ),
                None => "no kernel of this flavour was found in the package lists".into(),
            };
            return Err(error.context(format!("cannot fetch {package}; {hint}")));
        }
    };
    let version = debian::version_of(&deb).unwrap_or_else(|| "unknown".into());
    fs::create_dir_all(cache.join("kernels"))?;
    let staging = cache::staging_dir(&cache.join("kernels"))?;
    let (image, config, module) = (
        dir.join("vmlinuz"),
        dir.join("config"),
        dir.join("test_bpf.ko"),
    );
    let names = [("vmlinuz", "boot/vmlinuz-"), ("config", "boot/config-")];
    let copied = debian::extract(&deb, |path| {
        if let Some((name, _)) = names.iter().find(|(_, prefix)| path.starts_with(prefix)) {
            return Some(staging.path().join(name));
        }
        if path.ends_with("/kernel/drivers/net/veth.ko") {
            return Some(staging.path().join("veth.ko"));
        }
        path.ends_with("/kernel/lib/test_bpf.ko")
            .then(|| staging.path().join("test_bpf.ko"))
    })?;
    for needed in ["vmlinuz", "config", "test_bpf.ko"] {
        if !staging.path().join(needed).exists() {
            bail!(
                "{} has no {needed} (found: {}); this flavour cannot run the JIT suite",
                deb.display(),
                copied.join(", ")
            );
        }
    }
    let extra_modules = if staging.path().join("veth.ko").exists() {
        vec![dir.join("veth.ko")]
    } else {
        Vec::new()
    };
    let kernel = Kernel {
        layout: CACHE_LAYOUT,
        image,
        config: Some(config),
        test_bpf: module,
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
    let _ = fs::remove_dir_all(&dir);
    let staged = staging.keep();
    fs::rename(&staged, &dir)
        .with_context(|| format!("cannot move {} to {}", staged.display(), dir.display()))?;
    // The unpacked files are all we use; the package is 50-70 MB.
    let _ = fs::remove_file(&deb);
    Ok(kernel)
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

fn newest_debian_kernel(sh: &Shell, apt: &Apt, arch: Arch) -> Option<String> {
    available_abis(sh, apt, arch).ok()?.pop()
}

/// The ABIs (`6.1.0-50`) of Debian's kernels for `arch` that the archive carries, oldest
/// first.
pub fn debian_abis(sh: &Shell, arch: Arch, cache: &Path) -> anyhow::Result<Vec<String>> {
    let apt = Apt::new(cache, arch.debian_name())?;
    available_abis(sh, &apt, arch)
}

fn available_abis(sh: &Shell, apt: &Apt, arch: Arch) -> anyhow::Result<Vec<String>> {
    let suffix = format!("-{}", debian_flavour(arch)?);
    let names = apt.package_names(sh, "linux-image-")?;
    let mut abis: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("linux-image-")?.strip_suffix(&suffix))
        .filter(|abi| abi.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    abis.sort_by_key(|abi| version_key(abi));
    Ok(abis)
}

/// `6.1.0-50` as numbers, for ordering.
pub fn version_key(abi: &str) -> Vec<u64> {
    abi.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Finds the kernel files in a directory: an unpacked Debian package (`boot/`, `lib/modules/`),
/// a kernel build tree, or the three files side by side.
fn find_in_dir(dir: &Path, arch: Arch) -> anyhow::Result<Kernel> {
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
            "vmlinuz-*",
        ],
        // Malta boots the ELF image directly.
        Arch::Mips64el | Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => {
            &["vmlinux", "vmlinuz", "boot/vmlinuz-*", "vmlinuz-*"]
        }
    };
    let image = first_match(dir, image_names).with_context(|| {
        format!(
            "{} has no kernel image (looked for {})",
            dir.display(),
            image_names.join(", ")
        )
    })?;
    let config = first_match(dir, &[".config", "config", "boot/config-*", "config-*"]).ok();
    let module_names = [
        "test_bpf.ko",
        "lib/test_bpf.ko",
        "lib/modules/*/kernel/lib/test_bpf.ko",
    ];
    let test_bpf = first_match(dir, &module_names).with_context(|| {
        format!(
            "{} has no test_bpf.ko (looked for {}); build the kernel with CONFIG_TEST_BPF=m",
            dir.display(),
            module_names.join(", ")
        )
    })?;
    let veth = [
        "veth.ko",
        "drivers/net/veth.ko",
        "lib/modules/*/kernel/drivers/net/veth.ko",
    ];
    Ok(Kernel {
        layout: 0,
        image,
        config,
        test_bpf,
        extra_modules: first_match(dir, &veth).into_iter().collect(),
        source: format!("dir:{}", dir.display()),
        revision: None,
        config_hash: None,
    })
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
                abi: "6.1.0-50".into()
            })
        );
        assert_eq!("./build".parse(), Ok(KernelSpec::Dir("./build".into())));
        assert!("debian:latest".parse::<KernelSpec>().is_err());
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
        let kernel = find_in_dir(root, Arch::Mips64el).unwrap();
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
        let err = find_in_dir(dir.path(), Arch::X86_64).unwrap_err();
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
