//! The kernel a guest boots: its files and where it came from. Fetching and building kernels
//! is the host's (xtask); the guest layer only reads them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A kernel ready to boot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Kernel {
    /// The cache layout's version when the kernel was unpacked into xtask's cache; 0 elsewhere.
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

impl Kernel {
    /// Whether its config says it has PCI, which the shared-memory window is on; `false`
    /// without a config.
    pub fn has_pci(&self) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        std::fs::read(config)
            .map(|text| {
                text.split(|&b| b == b'\n')
                    .any(|line| line == b"CONFIG_PCI=y")
            })
            .unwrap_or(false)
    }

    /// The kernel's version, major and minor, from its `.config`'s header (`# Linux/x86 7.2.13
    /// Kernel Configuration`); `None` without a config or that line.
    pub fn version(&self) -> Option<(u32, u32)> {
        let config = std::fs::read(self.config.as_ref()?).ok()?;
        let head = String::from_utf8_lossy(&config[..config.len().min(512)]).into_owned();
        head.lines().take(5).find_map(config_version)
    }
}

/// `(7, 2)` from `# Linux/x86 7.2.13 Kernel Configuration`.
fn config_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("# Linux/")?;
    let version = rest.split_whitespace().nth(1)?;
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_with_config(text: Option<&str>) -> (Kernel, Option<tempfile::NamedTempFile>) {
        let file = text.map(|text| {
            let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            file
        });
        let kernel = Kernel {
            layout: 0,
            image: PathBuf::from("vmlinux"),
            config: file.as_ref().map(|f| f.path().to_owned()),
            test_bpf: PathBuf::from("test_bpf.ko"),
            extra_modules: Vec::new(),
            source: "test".into(),
            revision: None,
            config_hash: None,
        };
        (kernel, file)
    }

    #[test]
    fn pci_and_the_version_are_read_from_the_config() {
        let text = "#\n# Automatically generated file; DO NOT EDIT.\n\
                    # Linux/x86 7.2.13 Kernel Configuration\n#\nCONFIG_PCI=y\n";
        let (kernel, _file) = kernel_with_config(Some(text));
        assert!(kernel.has_pci());
        assert_eq!(kernel.version(), Some((7, 2)));
        let (kernel, _file) =
            kernel_with_config(Some("# CONFIG_PCI is not set\nCONFIG_PCI_MSI=y\n"));
        assert!(!kernel.has_pci());
        assert_eq!(kernel.version(), None);
        let (kernel, _file) = kernel_with_config(None);
        assert!(!kernel.has_pci());
    }

    #[test]
    fn the_version_comes_from_the_configs_header() {
        assert_eq!(
            config_version("# Linux/x86 7.2.13 Kernel Configuration"),
            Some((7, 2))
        );
        assert_eq!(
            config_version("# Linux/mips 6.1.192 Kernel Configuration"),
            Some((6, 1))
        );
        assert_eq!(
            config_version("# Linux/x86 7.3.0-rc2 Kernel Configuration"),
            Some((7, 3))
        );
        assert_eq!(config_version("# Automatically generated file"), None);
        assert_eq!(
            config_version("# Linux/x86 seven Kernel Configuration"),
            None
        );
    }
}
