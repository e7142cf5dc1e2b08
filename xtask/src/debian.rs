//! Debian packages for any architecture, fetched without touching the host's apt state.
//!
//! apt runs with its own sources, package lists and cache under our cache directory (one per
//! Debian architecture and line of kernels), reading only the host's proxy settings. Packages
//! are unpacked in Rust, taking only the files we need, so no root and no `dpkg` are required.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context};
use xshell::{cmd, Shell};

use crate::lines::Line;

/// apt pointed at a private state directory for one Debian architecture and line of kernels,
/// which it holds the lock of: two apt-gets on one state directory fail rather than wait.
pub struct Apt {
    dir: PathBuf,
    arch: &'static str,
    _lock: crate::cache::Lock,
}

impl Apt {
    pub fn new(cache: &Path, arch: &'static str, line: &Line) -> anyhow::Result<Apt> {
        let part = format!("apt/{arch}-{}", line.names[0]);
        let lock = crate::cache::Lock::acquire(
            cache,
            &part,
            &format!("the {arch} package lists and downloads of {line}"),
        )?;
        let dir = cache.join(part);
        // The state of harnesses before lines, `apt/ARCH`, read the host's sources: no run
        // uses it again, and its lists are tens of MB.
        let before_lines = cache.join("apt").join(arch);
        if before_lines.join("lists").is_dir() && fs::remove_dir_all(&before_lines).is_ok() {
            eprintln!(
                "removed {}: apt state of an older harness",
                before_lines.display()
            );
        }
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        let sources = dir.join("sources.list");
        let wanted = crate::lines::sources_list(line);
        if fs::read_to_string(&sources).ok().as_deref() != Some(wanted.as_str()) {
            fs::write(&sources, &wanted)
                .with_context(|| format!("cannot write {}", sources.display()))?;
        }
        Ok(Apt {
            dir,
            arch,
            _lock: lock,
        })
    }

    fn options(&self) -> Vec<String> {
        let mut options = vec![
            format!(
                "-oDir::Etc::SourceList={}",
                self.dir.join("sources.list").display()
            ),
            "-oDir::Etc::SourceParts=/dev/null".to_owned(),
            format!("-oAPT::Architecture={}", self.arch),
            format!("-oAPT::Architectures={}", self.arch),
            format!("-oDir::State::Lists={}", self.dir.join("lists").display()),
            format!("-oDir::Cache={}", self.dir.join("cache").display()),
        ];
        if rustix::process::geteuid().is_root() {
            // apt drops to the `_apt` user for downloads, which cannot write into root's cache
            // directory; it falls back with a warning. Say up front that root downloads.
            options.push("-oAPT::Sandbox::User=root".into());
        }
        options
    }

    fn has_lists(&self) -> bool {
        fs::read_dir(self.dir.join("lists"))
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
            })
            .unwrap_or(false)
    }

    pub fn update(&self, sh: &Shell) -> anyhow::Result<()> {
        eprintln!(
            "updating the {} package lists (private to this tool)",
            self.arch
        );
        self.apt_get(sh, &["update"])
    }

    /// Runs `apt-get` with our options; a failure carries apt's own message.
    fn apt_get(&self, sh: &Shell, args: &[&str]) -> anyhow::Result<()> {
        let options = self.options();
        let output = cmd!(sh, "apt-get -q {options...} {args...}")
            .ignore_status()
            .output()
            .context("cannot run apt-get: is this a Debian host?")?;
        if !output.status.success() {
            bail!(
                "apt-get {} ({}) failed: {}",
                args.join(" "),
                self.arch,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Downloads `package` (the newest version the lists know) and returns the .deb's path.
    pub fn download(&self, sh: &Shell, package: &str) -> anyhow::Result<PathBuf> {
        if !self.has_lists() {
            self.update(sh)?;
        }
        let first = self.try_download(sh, package);
        let error = match first {
            Ok(deb) => return Ok(deb),
            Err(e) => e,
        };
        // Stale lists name files the mirror no longer has: refresh once and retry.
        self.update(sh)?;
        self.try_download(sh, package)
            .map_err(|second| second.context(format!("(first attempt: {error:#})")))
    }

    fn try_download(&self, sh: &Shell, package: &str) -> anyhow::Result<PathBuf> {
        let debs = self.dir.join("debs");
        let _cd = sh.push_dir(&debs);
        eprintln!("downloading {package} ({})", self.arch);
        self.apt_get(sh, &["download", package])?;
        // `PKG=VERSION` downloads `PKG_VERSION_ARCH.deb`.
        let prefix = format!("{}_", package.split('=').next().unwrap_or(package));
        fs::read_dir(&debs)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
            .ok_or_else(|| {
                format_err!(
                    "apt-get download {package} left no .deb in {}",
                    debs.display()
                )
            })
    }

    /// The versions of `package` the lists know, newest first.
    pub fn versions(&self, sh: &Shell, package: &str) -> anyhow::Result<Vec<String>> {
        // `linux-source-6.12 | 6.12.95-1~bpo12+1 | http://... Packages`
        let table = self.apt_cache(sh, &["madison", package])?;
        let mut versions: Vec<String> = Vec::new();
        for version in table.lines().filter_map(|l| l.split('|').nth(1)) {
            let version = version.trim().to_owned();
            if !versions.contains(&version) {
                versions.push(version);
            }
        }
        Ok(versions)
    }

    /// Names of the packages the lists know that start with `prefix`.
    pub fn package_names(&self, sh: &Shell, prefix: &str) -> anyhow::Result<Vec<String>> {
        let names = self.apt_cache(sh, &["pkgnames", prefix])?;
        Ok(names.lines().map(str::to_owned).collect())
    }

    /// What `apt-cache ARGS` prints from the lists (fetched first if there are none); nothing
    /// when it fails, as for a package the lists do not know.
    fn apt_cache(&self, sh: &Shell, args: &[&str]) -> anyhow::Result<String> {
        if !self.has_lists() {
            self.update(sh)?;
        }
        let options = self.options();
        Ok(cmd!(sh, "apt-cache {options...} {args...}")
            .quiet()
            .ignore_stderr()
            .read()
            .unwrap_or_default())
    }
}

/// The version in a .deb's file name, `PKG_VERSION_ARCH.deb` (apt escapes `:` as `%3a`).
pub fn version_of(deb: &Path) -> Option<String> {
    let name = deb.file_stem()?.to_str()?;
    let mut parts = name.split('_');
    let (_, version) = (parts.next()?, parts.next()?);
    Some(version.replace("%3a", ":"))
}

/// Copies the files of `deb` for which `select` names a destination, and returns the
/// package paths it copied.
pub fn extract(
    deb: &Path,
    mut select: impl FnMut(&str) -> Option<PathBuf>,
) -> anyhow::Result<Vec<String>> {
    let file = File::open(deb).with_context(|| format!("cannot open {}", deb.display()))?;
    let mut archive = ar::Archive::new(file);
    let mut copied = Vec::new();
    while let Some(member) = archive.next_entry() {
        let member = member.with_context(|| format!("{} is not a valid .deb", deb.display()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        let data: Box<dyn Read> = match name.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(member)),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            "data.tar.zst" => Box::new(
                ruzstd::decoding::StreamingDecoder::new(member)
                    .with_context(|| format!("{}: a bad zstd stream", deb.display()))?,
            ),
            "data.tar" => Box::new(member),
            other if other.starts_with("data.tar") => bail!(
                "{}: unsupported compression {other}; unpack it by hand and pass the directory \
                 with --kernel",
                deb.display()
            ),
            _ => continue,
        };
        let mut tar = tar::Archive::new(data);
        let entries = tar
            .entries()
            .with_context(|| format!("cannot read the files of {}", deb.display()))?;
        for entry in entries {
            let mut entry =
                entry.with_context(|| format!("cannot read the files of {}", deb.display()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            if let Some(dest) = select(&path) {
                let mut out = File::create(&dest)
                    .with_context(|| format!("cannot create {}", dest.display()))?;
                io::copy(&mut entry, &mut out)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                copied.push(path);
            }
        }
        return Ok(copied);
    }
    bail!("{} has no data.tar member: not a .deb", deb.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_file_name() {
        assert_eq!(
            version_of(Path::new(
                "/x/busybox-static_1%3a1.35.0-4+deb12u1+b1_mips64el.deb"
            )),
            Some("1:1.35.0-4+deb12u1+b1".into())
        );
        assert_eq!(
            version_of(Path::new(
                "linux-image-6.1.0-56-amd64-unsigned_6.1.192-2_amd64.deb"
            )),
            Some("6.1.192-2".into())
        );
    }
}
