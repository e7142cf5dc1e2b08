//! Kernels built from source: Debian's `linux-source-SERIES` of a line (6.1 by default), or
//! the user's tree at a revision with patches, configured as `allnoconfig` plus the fragments in `images/kconfig/`, built
//! once per key and kept in the cache.
//!
//! The key is everything that decides the result: the source (package version, commit, or a
//! tree's state), the patches, the fragments, the arch and the compiler. A kept build
//! directory per arch and tree, and ccache, make the next revision an incremental build.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use runner::arch::Arch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::debian::Apt;
use crate::kernel::Kernel;
use crate::lines::SourcePackage;
use crate::tools::{self, Install, Tool};
use crate::{cache, orphans, project_root, UsageError};

/// What to build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildSpec {
    pub source: Source,
    /// A revision of `source` (a git tree), checked out into a worktree of the cache.
    pub rev: Option<String>,
    /// Patches applied on top, in order.
    pub patches: Vec<PathBuf>,
    /// Fragments added after the harness's own.
    pub fragments: Vec<PathBuf>,
}

/// The tree a build reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// One of Debian's `linux-source-SERIES` packages, fetched with its line's private apt
    /// state and unpacked into the cache.
    Package(SourcePackage),
    /// The user's tree (`--kernel-source`), as it is or at a revision.
    Tree(PathBuf),
}

impl Default for Source {
    fn default() -> Self {
        Source::Package(SourcePackage::default())
    }
}

/// Free space checked for before writing, from what 6.1 and 7.2 take: the source unpacked and
/// made a git repository is 1.7 to 2.1 GB, a checkout 1.5 GB, a build directory of the
/// harness's small configs 0.2 GB (with room for larger configs and ccache).
const UNPACKED_SOURCE_BYTES: u64 = 2_500_000_000;
const CHECKOUT_BYTES: u64 = 1_700_000_000;
const BUILD_BYTES: u64 = 1_000_000_000;

/// What a built kernel's directory in the cache records (`build.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Built {
    pub kernel: Kernel,
    pub arch: Arch,
    pub key: String,
    /// `uname -r` of the kernel.
    pub release: String,
    /// When the build finished, RFC 3339.
    pub built: String,
    /// Wall time of the `make` that built it.
    pub seconds: f64,
}

/// The host tools a kernel build needs, with the packages that bring them.
fn build_tools(arch: Arch) -> Vec<Tool<'static>> {
    let mut tools = vec![
        Tool {
            program: "make",
            packages: &["make"],
        },
        Tool {
            program: "flex",
            packages: &["flex"],
        },
        Tool {
            program: "bison",
            packages: &["bison"],
        },
        Tool {
            program: "bc",
            packages: &["bc"],
        },
        Tool {
            program: "ccache",
            packages: &["ccache"],
        },
        Tool {
            program: "git",
            packages: &["git"],
        },
        // tar unpacks Debian's linux-source-*.tar.xz with it.
        Tool {
            program: "xz",
            packages: &["xz-utils"],
        },
        // objtool (x86) and the module tools need these headers.
        Tool {
            program: "/usr/include/gelf.h",
            packages: &["libelf-dev"],
        },
        Tool {
            program: "/usr/include/openssl/ssl.h",
            packages: &["libssl-dev"],
        },
    ];
    let toolchain = arch.toolchain();
    tools.push(Tool {
        program: toolchain.cc,
        packages: toolchain.packages,
    });
    tools
}

/// Builds (or finds in the cache) the kernel `spec` names for `arch`.
pub fn build(
    sh: &Shell,
    arch: Arch,
    spec: &BuildSpec,
    cache: &Path,
    install: Install,
) -> anyhow::Result<Kernel> {
    let job = Job::prepare(sh, arch, spec, cache, install)?;
    let entry = format!("built-{arch}-{}", job.key);
    let dest = cache.join("kernels").join(&entry);
    let cached = || {
        let built = read_built(&dest)?;
        eprintln!(
            "kernel {} for {arch} is built already ({})",
            built.release,
            dest.display()
        );
        Some(built.kernel)
    };
    if let Some(kernel) = cached() {
        return Ok(kernel);
    }
    // Always in this order, so two builds never wait on each other: the entry, the tree
    // (checked out and patched for this build), its build directory for the arch.
    let _entry_lock = cache::Lock::acquire(
        cache,
        &format!("kernels/{entry}"),
        &format!("building {} for {arch}", job.tree.revision),
    )?;
    if let Some(kernel) = cached() {
        return Ok(kernel);
    }
    let configured = job.configure(sh, spec, cache)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    configured.make.run(
        "building vmlinux and modules",
        &[&format!("-j{jobs}"), "vmlinux", "modules"],
        None,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let out = &configured.make.out;
    let release = fs::read_to_string(out.join("include/config/kernel.release"))
        .context("the build wrote no include/config/kernel.release")?
        .trim()
        .to_owned();
    // The revision a report names: the source's, and the patches on top by name.
    let mut revision = job.tree.revision.clone();
    for patch in &spec.patches {
        let name = patch.file_name().unwrap_or(patch.as_os_str());
        let _ = write!(revision, " + {}", name.to_string_lossy());
    }
    let source = format!("built:{}", job.tree.identity);
    let built = publish(
        out,
        &dest,
        arch,
        &job.key,
        (source, revision),
        &configured.config_text,
        release,
        seconds,
    )?;
    eprintln!(
        "built {} for {arch} in {seconds:.0} s: {}",
        built.release,
        dest.display()
    );
    Ok(built.kernel)
}

/// Configures the kernel `spec` names for `arch` (`allnoconfig` and the fragments, each
/// line checked) without building it, and returns its `.config`.
pub fn configure(
    sh: &Shell,
    arch: Arch,
    spec: &BuildSpec,
    cache: &Path,
    install: Install,
) -> anyhow::Result<PathBuf> {
    let job = Job::prepare(sh, arch, spec, cache, install)?;
    let configured = job.configure(sh, spec, cache)?;
    Ok(configured.make.out.join(".config"))
}

/// A build's inputs, read and checked: the tree, the fragments and the key of the result.
struct Job {
    arch: Arch,
    tree: Tree,
    fragments: Fragments,
    /// What decides the result: source, patches, fragments, arch, compiler.
    key: String,
}

impl Job {
    fn prepare(
        sh: &Shell,
        arch: Arch,
        spec: &BuildSpec,
        cache: &Path,
        install: Install,
    ) -> anyhow::Result<Job> {
        tools::ensure(&build_tools(arch), install)?;
        for removed in orphans::prune(cache) {
            eprintln!("{removed}");
        }
        for patch in &spec.patches {
            if !patch.is_file() {
                return Err(UsageError::wrap(anyhow::anyhow!(
                    "--patch {}: no such file",
                    patch.display()
                )));
            }
        }
        let fragments = Fragments::read(arch, &spec.fragments)?;
        let compiler = format!("{}gcc", arch.kbuild().1);
        let compiler_version = cmd!(sh, "{compiler} --version")
            .quiet()
            .read()
            .with_context(|| format!("cannot run {compiler}"))?;
        let tree = Tree::prepare(sh, spec, cache)?;
        let mut key = Sha256::new();
        for part in [
            tree.identity.as_str(),
            &fragments.merged,
            arch.name(),
            compiler_version.lines().next().unwrap_or(""),
        ] {
            key.update(part.as_bytes());
            key.update(b"\0");
        }
        for patch in &spec.patches {
            key.update(
                fs::read(patch).with_context(|| format!("cannot read {}", patch.display()))?,
            );
        }
        let key = hex(&key.finalize())[..16].to_owned();
        Ok(Job {
            arch,
            tree,
            fragments,
            key,
        })
    }

    /// Checks the tree out for this build, takes its build directory and configures it;
    /// what is returned holds both until it is dropped.
    fn configure(&self, sh: &Shell, spec: &BuildSpec, cache: &Path) -> anyhow::Result<Configured> {
        let (arch, tree) = (self.arch, &self.tree);
        let what = format!("building {} for {arch}", tree.revision);
        let tree_lock = tree.hold(sh, spec, cache, &what)?;
        let build_dir = format!("build/{arch}-{}", tree.name);
        let build_lock = cache::Lock::acquire(cache, &build_dir, &what)?;
        let out = cache.join(build_dir);
        fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
        let record = out.join(orphans::TREE_RECORD);
        fs::write(&record, format!("{}\n", tree.dir.display()))
            .with_context(|| format!("cannot write {}", record.display()))?;
        cache::ensure_free(&out, BUILD_BYTES, &format!("building {}", tree.revision))?;
        let fragment_path = out.join("harness.config");
        fs::write(&fragment_path, &self.fragments.merged)
            .with_context(|| format!("cannot write {}", fragment_path.display()))?;
        let log = out.join("build.log");
        fs::write(&log, "").with_context(|| format!("cannot write {}", log.display()))?;
        let (arch_name, prefix) = arch.kbuild();
        let make = Make {
            tree: tree.dir.clone(),
            out,
            arch: arch_name,
            prefix,
            log,
        };
        make.run(
            "configuring (allnoconfig + fragments)",
            &["allnoconfig"],
            Some(&fragment_path),
        )?;
        let config = make.out.join(".config");
        let config_text = fs::read_to_string(&config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        self.fragments.check(&config_text, &tree.dir)?;
        Ok(Configured {
            make,
            config_text,
            _locks: (tree_lock, build_lock),
        })
    }
}

/// A build directory configured for a job, held until dropped.
struct Configured {
    make: Make,
    config_text: String,
    _locks: (cache::Lock, cache::Lock),
}

/// Copies what a guest needs out of the build directory into the cache entry `dest`, checks
/// the kernel is an ELF of the arch, and writes its manifest last.
#[allow(clippy::too_many_arguments)]
fn publish(
    out: &Path,
    dest: &Path,
    arch: Arch,
    key: &str,
    (source, revision): (String, String),
    config_text: &str,
    release: String,
    seconds: f64,
) -> anyhow::Result<Built> {
    let vmlinux = out.join("vmlinux");
    runner::elf::check_file(&vmlinux, arch)
        .with_context(|| format!("the built {} is not a kernel for {arch}", vmlinux.display()))?;
    let parent = dest.parent().unwrap_or(dest);
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = cache::staging_dir(parent)?;
    let copy = |from: &Path, name: &str| -> anyhow::Result<PathBuf> {
        fs::copy(from, staging.path().join(name))
            .with_context(|| format!("cannot copy {}", from.display()))?;
        Ok(dest.join(name))
    };
    let test_bpf = out.join("lib/test_bpf.ko");
    if !test_bpf.is_file() {
        bail!("the build made no lib/test_bpf.ko; check CONFIG_TEST_BPF=m in images/kconfig/bpf.config");
    }
    let veth = out.join("drivers/net/veth.ko");
    let config_hash = hex(&Sha256::digest(config_text.as_bytes()))[..16].to_owned();
    let kernel = Kernel {
        layout: 0,
        image: copy(&vmlinux, "vmlinux")?,
        config: Some(copy(&out.join(".config"), "config")?),
        test_bpf: copy(&test_bpf, "test_bpf.ko")?,
        extra_modules: match veth.is_file() {
            true => vec![copy(&veth, "veth.ko")?],
            false => Vec::new(),
        },
        source,
        revision: Some(revision),
        config_hash: Some(config_hash),
    };
    copy(&out.join("build.log"), "build.log")?;
    let built = Built {
        kernel,
        arch,
        key: key.to_owned(),
        release,
        built: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        seconds,
    };
    fs::write(
        staging.path().join("build.json"),
        serde_json::to_vec_pretty(&built)?,
    )?;
    let _ = fs::remove_dir_all(dest);
    let staged = staging.keep();
    fs::rename(&staged, dest)
        .with_context(|| format!("cannot move {} to {}", staged.display(), dest.display()))?;
    Ok(built)
}

fn read_built(dir: &Path) -> Option<Built> {
    let built: Built = serde_json::from_slice(&fs::read(dir.join("build.json")).ok()?).ok()?;
    let k = &built.kernel;
    let whole = [&k.image, &k.test_bpf]
        .into_iter()
        .chain(&k.extra_modules)
        .all(|f| f.is_file());
    whole.then_some(built)
}

/// Every kernel built into `cache`, newest first.
pub fn list(cache: &Path) -> Vec<(PathBuf, Built)> {
    let mut all: Vec<(PathBuf, Built)> = fs::read_dir(cache.join("kernels"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("built-"))
        .filter_map(|e| read_built(&e.path()).map(|b| (e.path(), b)))
        .collect();
    all.sort_by(|a, b| b.1.built.cmp(&a.1.built));
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The harness's fragments for an arch and the user's, merged.
struct Fragments {
    /// (file, line number, line) of every setting.
    lines: Vec<(PathBuf, usize, String)>,
    /// What Kconfig reads: the settings, comments dropped.
    merged: String,
}

impl Fragments {
    fn read(arch: Arch, extra: &[PathBuf]) -> anyhow::Result<Fragments> {
        let dir = project_root().join("images").join("kconfig");
        let mut files: Vec<PathBuf> = ["base", "bpf", arch.name()]
            .iter()
            .map(|n| dir.join(format!("{n}.config")))
            .collect();
        files.extend(extra.iter().cloned());
        let mut lines = Vec::new();
        let mut merged = String::new();
        for file in files {
            let text = fs::read_to_string(&file)
                .with_context(|| format!("cannot read the config fragment {}", file.display()))
                .map_err(UsageError::wrap)?;
            for (i, line) in text.lines().enumerate() {
                let setting = setting_of(line);
                if setting.is_empty() {
                    continue;
                }
                if !setting.starts_with("CONFIG_") && !setting.starts_with("# CONFIG_") {
                    return Err(UsageError::wrap(anyhow::anyhow!(
                        "{}:{}: `{line}` is not a Kconfig setting (CONFIG_X=y, =m, =\"text\", \
                         or `# CONFIG_X is not set`)",
                        file.display(),
                        i + 1
                    )));
                }
                merged.push_str(setting);
                merged.push('\n');
                lines.push((file.clone(), i + 1, setting.to_owned()));
            }
        }
        Ok(Fragments { lines, merged })
    }

    /// Every setting must be in the resolved `.config` as written; one that did not stick is
    /// an error naming it and what Kconfig says it depends on.
    fn check(&self, config: &str, tree: &Path) -> anyhow::Result<()> {
        let mut problems = String::new();
        for (file, line, setting) in &self.lines {
            let (symbol, wanted) = parse_setting(setting);
            let resolved = config
                .lines()
                .find(|l| parse_setting(l).0 == symbol)
                .map_or("not set", |l| parse_setting(l).1);
            if resolved == wanted {
                continue;
            }
            let _ = write!(
                problems,
                "\n  {}:{line}: {setting} did not stick: the resolved .config has {}",
                file.display(),
                match resolved {
                    "not set" => format!("{symbol} not set"),
                    value => format!("{symbol}={value}"),
                }
            );
            for dependency in kconfig_dependencies(tree, symbol.trim_start_matches("CONFIG_")) {
                let _ = write!(problems, "\n      Kconfig: {dependency}");
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(UsageError::wrap(anyhow::anyhow!(
            "config fragments that did not stick (fix the fragment, or enable what they \
             depend on):{problems}"
        )))
    }
}

/// A fragment line without its comment: `CONFIG_X=y`, `# CONFIG_X is not set`, or empty.
fn setting_of(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with('#') && !line.starts_with("# CONFIG_") {
        return "";
    }
    if line.starts_with("# CONFIG_") {
        return line
            .find(" is not set")
            .map_or(line, |end| &line[..end + " is not set".len()]);
    }
    match line.find('#') {
        Some(comment) if !line[..comment].contains('"') => line[..comment].trim(),
        Some(_) | None => line,
    }
}

/// (`CONFIG_X`, value) of a setting; the value of `# CONFIG_X is not set` is `not set`.
fn parse_setting(line: &str) -> (&str, &str) {
    if let Some(rest) = line.strip_prefix("# ") {
        if let Some(symbol) = rest.strip_suffix(" is not set") {
            return (symbol, "not set");
        }
    }
    match line.split_once('=') {
        Some((symbol, "n")) => (symbol, "not set"),
        Some((symbol, value)) => (symbol, value),
        None => ("", ""),
    }
}

/// The `depends on`, `select`ed-by-nothing and menu conditions Kconfig files give `symbol`:
/// the lines after `config SYMBOL` that say what it needs.
fn kconfig_dependencies(tree: &Path, symbol: &str) -> Vec<String> {
    let header = format!("config {symbol}");
    let mut found = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() && !name.starts_with('.') {
                stack.push(path);
            } else if name.starts_with("Kconfig") {
                let Ok(text) = fs::read_to_string(&path) else {
                    continue;
                };
                let mut lines = text.lines();
                while let Some(line) = lines.next() {
                    if line.trim() != header {
                        continue;
                    }
                    let at = path
                        .strip_prefix(tree)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    for next in lines.by_ref() {
                        let next = next.trim();
                        if next.starts_with("config ") || next.starts_with("menuconfig ") {
                            break;
                        }
                        if next.starts_with("depends on") || next.starts_with("select ") {
                            found.push(format!("{next} ({at})"));
                        }
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The source tree a build reads.
struct Tree {
    /// Where it is.
    dir: PathBuf,
    /// A short name for its build directory.
    name: String,
    /// What decides its content, for the key: the package version, a commit, or a tree's
    /// state.
    identity: String,
    /// What the report records: the package version or the commit.
    revision: String,
    /// The commit to check out in a worktree the harness owns, before patches; `None` for a
    /// tree built as it is.
    checkout: Option<String>,
}

impl Tree {
    fn prepare(sh: &Shell, spec: &BuildSpec, cache: &Path) -> anyhow::Result<Tree> {
        let source = match &spec.source {
            Source::Package(package) => return Tree::package(sh, spec, package, cache),
            Source::Tree(source) => source,
        };
        // With --rev or --patch the harness checks out its own worktree: a bare repository
        // (a mirror of net-next) will do. Built as it is, it must be a kernel tree.
        let as_it_is = spec.rev.is_none() && spec.patches.is_empty();
        if as_it_is && (!source.join("Makefile").is_file() || !source.join("Kconfig").is_file()) {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "--kernel-source {}: not a kernel tree (no Makefile and Kconfig at its top)",
                source.display()
            )));
        }
        let source = fs::canonicalize(source)
            .with_context(|| format!("cannot resolve {}", source.display()))?;
        let base = source
            .file_name()
            .map_or("tree".into(), |n| n.to_string_lossy().into_owned());
        let path_hash = hex(&Sha256::digest(source.to_string_lossy().as_bytes()))[..8].to_owned();
        let name = format!("{base}-{path_hash}");
        let is_git = cmd!(sh, "git -C {source} rev-parse --git-dir")
            .quiet()
            .ignore_stderr()
            .read()
            .is_ok();
        if as_it_is {
            return Tree::as_it_is(sh, source, name, is_git);
        }
        if !is_git {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "--rev and --patch need a git tree; {} is not one",
                source.display()
            )));
        }
        let rev = spec.rev.as_deref().unwrap_or("HEAD");
        let spec_rev = format!("{rev}^{{commit}}");
        let commit = cmd!(sh, "git -C {source} rev-parse --verify --quiet {spec_rev}")
            .quiet()
            .read()
            .map_err(|_| {
                UsageError::wrap(anyhow::anyhow!(
                    "--rev {rev}: no such revision in {}",
                    source.display()
                ))
            })?;
        Tree::worktree(sh, &source, name, commit, cache)
    }

    /// The tree `source` built in place, as it is: its identity is its commit and uncommitted
    /// changes when it is git.
    fn as_it_is(sh: &Shell, source: PathBuf, name: String, is_git: bool) -> anyhow::Result<Tree> {
        let identity = match is_git {
            true => {
                let head = cmd!(sh, "git -C {source} rev-parse HEAD").quiet().read()?;
                let diff = cmd!(sh, "git -C {source} diff HEAD").quiet().read()?;
                let status = cmd!(sh, "git -C {source} status --porcelain")
                    .quiet()
                    .read()?;
                let state = hex(&Sha256::digest(format!("{diff}\n{status}").as_bytes()));
                format!("tree:{}@{head}+{}", source.display(), &state[..12])
            }
            // Not git: nothing cheap tells two states apart, so every build runs make,
            // which rebuilds what changed.
            false => format!("tree:{}@{}", source.display(), unique_now()),
        };
        let revision = identity.rsplit('@').next().unwrap_or("").to_owned();
        Ok(Tree {
            dir: source,
            name,
            identity,
            revision,
            checkout: None,
        })
    }

    /// The harness's own worktree `name` of the git tree `source`, in the cache, added at
    /// `commit` the first time (`hold` moves it to the commit of each build).
    fn worktree(
        sh: &Shell,
        source: &Path,
        name: String,
        commit: String,
        cache: &Path,
    ) -> anyhow::Result<Tree> {
        // Never the user's checkout: a worktree of the cache, one per tree, moved from
        // revision to revision so that make sees only the files that changed.
        let worktree = cache.join("worktrees").join(&name);
        let _lock = match worktree.join(".git").exists() {
            true => None,
            false => Some(Tree::lock_named(
                cache,
                &name,
                &format!("adding a worktree of {}", source.display()),
            )?),
        };
        if !worktree.join(".git").exists() {
            let _ = fs::remove_dir_all(&worktree);
            fs::create_dir_all(cache.join("worktrees"))?;
            let what = format!("a worktree of {}", source.display());
            cache::ensure_free(&worktree, CHECKOUT_BYTES, &what)?;
            let added = cmd!(
                sh,
                "git -C {source} worktree add --quiet --detach --force {worktree} {commit}"
            )
            .quiet()
            .run();
            if let Err(e) = added {
                // Half a checkout is no use and may be most of the disk.
                let _ = fs::remove_dir_all(&worktree);
                let _ = cmd!(sh, "git -C {source} worktree prune").quiet().run();
                return Err(e).with_context(|| format!("cannot add {what}"));
            }
        }
        Ok(Tree {
            dir: worktree,
            name,
            identity: format!("git:{commit}"),
            revision: commit.clone(),
            checkout: Some(commit),
        })
    }

    /// Debian's `linux-source-SERIES`, fetched and unpacked once into the cache and made a
    /// git repository, so that patches apply on it and come off again.
    fn package(
        sh: &Shell,
        spec: &BuildSpec,
        package: &SourcePackage,
        cache: &Path,
    ) -> anyhow::Result<Tree> {
        let name = package.name();
        if spec.rev.is_some() {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "--rev needs --kernel-source: {name} has one revision"
            )));
        }
        let (line, version) = source_version(sh, package, cache)?;
        let dir = cache.join("src").join(format!("{name}={version}"));
        let _lock = match dir.join(".git").exists() {
            true => None,
            false => Some(Tree::lock_named(
                cache,
                &name,
                &format!("unpacking {name}={version}"),
            )?),
        };
        // Another build may have unpacked it while this one waited.
        if !dir.join(".git").exists() {
            let parent = cache.join("src");
            fs::create_dir_all(&parent)?;
            let what = format!("unpacking {name}={version}");
            cache::ensure_free(&parent, UNPACKED_SOURCE_BYTES, &what)?;
            let deb = Apt::new(cache, SOURCE_APT_ARCH, line)?
                .download(sh, &format!("{name}={version}"))?;
            let staging = cache::staging_dir(&parent)?;
            let at = staging.path();
            let tarball_name = format!("usr/src/{name}.tar.xz");
            let tarball = at.join(format!("{name}.tar.xz"));
            let copied = crate::debian::extract(&deb, |path| {
                (path == tarball_name).then(|| tarball.clone())
            })?;
            if copied.is_empty() {
                bail!("{} has no {tarball_name}", deb.display());
            }
            eprintln!("unpacking {name}={version} into {}", dir.display());
            let tree = at.join("tree");
            fs::create_dir(&tree)?;
            cmd!(sh, "tar xf {tarball} -C {tree} --strip-components=1")
                .quiet()
                .run()
                .with_context(|| format!("cannot unpack {tarball_name} of {}", deb.display()))?;
            fs::remove_file(&tarball)?;
            // The tree is what stays; the 160 MB package is no use once it is unpacked.
            let _ = fs::remove_file(&deb);
            git_commit_all(&tree, &format!("{name} {version}"))?;
            let _ = fs::remove_dir_all(&dir);
            fs::rename(&tree, &dir)
                .with_context(|| format!("cannot move the unpacked source to {}", dir.display()))?;
            // The versions before: each is 2 GB, and a line moves on.
            let others = fs::read_dir(&parent).into_iter().flatten().flatten();
            for other in others.map(|e| e.path()).filter(|p| *p != dir) {
                let other_name = other.file_name().unwrap_or_default().to_string_lossy();
                if other_name.starts_with(&format!("{name}=")) && fs::remove_dir_all(&other).is_ok()
                {
                    eprintln!("removed {}: {name} is now {version}", other.display());
                }
            }
        }
        let commit = cmd!(sh, "git -C {dir} rev-parse HEAD").quiet().read()?;
        Ok(Tree {
            dir,
            identity: format!("{name}={version}"),
            revision: format!("{name}={version}"),
            name,
            checkout: Some(commit),
        })
    }

    /// Puts the tree at the revision and patches of `spec` and holds it there until the
    /// lock returned is dropped: a share of the tree's lock, so that builds of the same
    /// checkout (the arches of one revision) run together, while one of another checkout
    /// waits for them to end and checks out alone.
    fn hold(
        &self,
        sh: &Shell,
        spec: &BuildSpec,
        cache: &Path,
        what: &str,
    ) -> anyhow::Result<cache::Lock> {
        let part = cache::tree_part(&self.name);
        let Some(commit) = &self.checkout else {
            // A tree built as it is: the harness never changes it.
            return cache::Lock::acquire_shared(cache, &part, what);
        };
        let mut wanted = format!("{commit}\n");
        for patch in &spec.patches {
            let text =
                fs::read(patch).with_context(|| format!("cannot read {}", patch.display()))?;
            wanted.push_str(&hex(&Sha256::digest(text)));
            wanted.push('\n');
        }
        // What the tree holds now, written once a checkout is whole.
        let state = cache.join("locks").join(format!("{part}.checkout"));
        let is_wanted = || fs::read_to_string(&state).is_ok_and(|s| s == wanted);
        loop {
            let shared = cache::Lock::acquire_shared(cache, &part, what)?;
            if is_wanted() {
                return Ok(shared);
            }
            drop(shared);
            let _alone = Tree::lock_named(cache, &self.name, what)?;
            if !is_wanted() {
                let _ = fs::remove_file(&state);
                self.checkout(sh, spec)?;
                fs::write(&state, &wanted)
                    .with_context(|| format!("cannot write {}", state.display()))?;
            }
        }
    }

    /// The lock of the tree named `name`, alone (unpacking one version of the source package
    /// removes the others, so they share one name).
    fn lock_named(cache: &Path, name: &str, what: &str) -> anyhow::Result<cache::Lock> {
        cache::Lock::acquire(cache, &cache::tree_part(name), what)
    }

    /// Puts the worktree at its revision, clean, with the patches applied; checks every patch
    /// first, so a patch that does not apply is said before anything changes.
    fn checkout(&self, sh: &Shell, spec: &BuildSpec) -> anyhow::Result<()> {
        let Some(commit) = &self.checkout else {
            return Ok(());
        };
        let dir = &self.dir;
        cmd!(
            sh,
            "git -C {dir} checkout --quiet --detach --force {commit}"
        )
        .quiet()
        .run()
        .with_context(|| format!("cannot check out {commit} in {}", dir.display()))?;
        cmd!(sh, "git -C {dir} clean -fdq").quiet().run()?;
        for patch in &spec.patches {
            let patch = fs::canonicalize(patch)?;
            let output = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["apply", "--check"])
                .arg(&patch)
                .output()
                .context("cannot run git apply")?;
            if !output.status.success() {
                return Err(UsageError::wrap(anyhow::anyhow!(
                    "--patch {} does not apply on {}:\n{}",
                    patch.display(),
                    self.revision,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            cmd!(sh, "git -C {dir} apply {patch}")
                .quiet()
                .run()
                .with_context(|| format!("cannot apply {}", patch.display()))?;
        }
        Ok(())
    }
}

/// The apt state source packages are fetched with: they are `Architecture: all`, listed for
/// every arch, and amd64's lists of a line are there already for its x86_64 kernels.
const SOURCE_APT_ARCH: &str = "amd64";

/// The line whose archive carries `package` and the version to fetch: the one asked for, or
/// the newest of the series' first line. Read from the lists alone when they are there, so a
/// source unpacked already costs no download.
fn source_version(
    sh: &Shell,
    package: &SourcePackage,
    cache: &Path,
) -> anyhow::Result<(&'static crate::lines::Line, String)> {
    let name = package.name();
    let mut carried = Vec::new();
    for line in package.lines() {
        let apt = Apt::new(cache, SOURCE_APT_ARCH, line)?;
        let mut versions = apt.versions(sh, &name)?;
        let wanted = |versions: &[String]| match &package.version {
            Some(v) => versions.contains(v).then(|| v.clone()),
            None => versions.first().cloned(),
        };
        if wanted(&versions).is_none() {
            // Lists from before the archive moved on.
            apt.update(sh)?;
            versions = apt.versions(sh, &name)?;
        }
        if let Some(version) = wanted(&versions) {
            return Ok((line, version));
        }
        carried.push(format!("{line}: {}", versions.join(", ")));
    }
    let asked = match &package.version {
        Some(v) => format!("{name}={v}"),
        None => name,
    };
    Err(UsageError::wrap(anyhow::anyhow!(
        "{asked}: Debian's archive does not carry it; it has {}",
        carried.join("; ")
    )))
}

/// `git init` and a commit of everything in `dir`.
fn git_commit_all(dir: &Path, message: &str) -> anyhow::Result<()> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=harness",
                "-c",
                "user.email=harness@localhost",
            ])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .map_err(anyhow::Error::from)
            .and_then(|s| match s.success() {
                true => Ok(()),
                false => bail!("git {} failed in {}", args.join(" "), dir.display()),
            })
    };
    git(&["init", "-q"])?;
    // Debian's tarball carries a .gitignore that ignores everything (`/*`).
    git(&["add", "-A", "--force"])?;
    git(&["commit", "-q", "-m", message])
}

/// A value that differs from one run to the next.
fn unique_now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// How often a running build says where it is.
const NOTE_EVERY: Duration = Duration::from_secs(15);

/// `make` in a tree, out of tree, its output into the build log.
struct Make {
    tree: PathBuf,
    out: PathBuf,
    arch: &'static str,
    prefix: &'static str,
    log: PathBuf,
}

impl Make {
    /// Runs `make TARGETS`, printing the step and its elapsed time every 15 s; on failure,
    /// the log's tail.
    fn run(&self, step: &str, targets: &[&str], allconfig: Option<&Path>) -> anyhow::Result<()> {
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        // A harness killed mid-build (SIGTERM, SIGKILL) takes make with it, through the
        // parent-death signal util-linux's setpriv sets: an orphaned make would go on writing
        // into a build directory whose lock is free again.
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "TERM", "--", "make"])
            .arg("-C")
            .arg(&self.tree)
            .arg(format!("O={}", self.out.display()))
            .arg(format!("ARCH={}", self.arch))
            .arg(format!("CROSS_COMPILE={}", self.prefix))
            .arg(format!("CC=ccache {}gcc", self.prefix))
            .args(targets)
            // The same source gives the same kernel, whoever builds it when.
            .env("KBUILD_BUILD_USER", "harness")
            .env("KBUILD_BUILD_HOST", "harness")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(fragment) = allconfig {
            command.env("KCONFIG_ALLCONFIG", fragment);
        }
        let started = Instant::now();
        eprintln!("kernel: {step}");
        let mut child = command.spawn().context("cannot run make")?;
        let mut next_note = started + NOTE_EVERY;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(200));
            if Instant::now() >= next_note {
                next_note += NOTE_EVERY;
                let elapsed = started.elapsed().as_secs();
                eprintln!("kernel: {step}, {elapsed} s: {}", tail(&self.log, 1));
            }
        };
        if status.success() {
            return Ok(());
        }
        bail!(
            "make {} failed ({status}); the full log is {}; its end:\n{}",
            targets.join(" "),
            self.log.display(),
            tail(&self.log, 30)
        )
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let Ok(file) = fs::File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_lines_lose_their_comments_but_not_their_meaning() {
        assert_eq!(setting_of("CONFIG_BPF=y   # why"), "CONFIG_BPF=y");
        assert_eq!(
            setting_of("# CONFIG_BPF_JIT_ALWAYS_ON is not set"),
            "# CONFIG_BPF_JIT_ALWAYS_ON is not set"
        );
        assert_eq!(setting_of("# ^ a comment"), "");
        assert_eq!(
            setting_of("CONFIG_CMDLINE=\"a # b\""),
            "CONFIG_CMDLINE=\"a # b\""
        );
        assert_eq!(setting_of("   "), "");
        assert_eq!(parse_setting("CONFIG_TEST_BPF=m"), ("CONFIG_TEST_BPF", "m"));
        assert_eq!(
            parse_setting("# CONFIG_TEST_BPF is not set"),
            ("CONFIG_TEST_BPF", "not set")
        );
    }
}
