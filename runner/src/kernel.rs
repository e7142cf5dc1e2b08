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
