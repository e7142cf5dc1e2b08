//! `cargo xtask kernel`: build a kernel from source without running anything, or list and
//! prune the kernels built into the cache.

use std::fs;

use runner::arch::Arch;
use xshell::Shell;

use crate::flags::KernelCmd;
use crate::kbuild;
use crate::tools::Install;
use crate::{cache, UsageError};

impl KernelCmd {
    pub fn run(self) -> anyhow::Result<u8> {
        let cache = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => cache::default_dir()?,
        };
        if self.list {
            for (dir, built) in kbuild::list(&cache) {
                println!(
                    "{:<9} {:<24} {:<22} {:>5.0} s  {}  {}",
                    built.arch.name(),
                    built.release,
                    built.built,
                    built.seconds,
                    built.kernel.revision.as_deref().unwrap_or("?"),
                    dir.display()
                );
            }
            // Where the disk goes: a worktree of Linux is 1.5 GB.
            let parts = ["kernels", "src", "worktrees", "build", "snapshots"];
            let sizes: Vec<String> = parts
                .iter()
                .map(|part| {
                    format!(
                        "{part} {}",
                        cache::gigabytes(cache::disk_use(&cache.join(part)))
                    )
                })
                .collect();
            println!("{}: {}", cache.display(), sizes.join(", "));
            return Ok(0);
        }
        if self.prune {
            for removed in crate::orphans::prune(&cache) {
                println!("{removed}");
            }
            let mut kept: Vec<(Arch, usize)> = Vec::new();
            for (dir, built) in kbuild::list(&cache) {
                let n = match kept.iter_mut().find(|(a, _)| *a == built.arch) {
                    Some((_, n)) => n,
                    None => {
                        kept.push((built.arch, 0));
                        &mut kept.last_mut().expect("just pushed").1
                    }
                };
                *n += 1;
                if *n > self.keep {
                    let name = dir.file_name().unwrap_or_default().to_string_lossy();
                    let part = format!("kernels/{name}");
                    match cache::Lock::try_acquire(&cache, &part, "removing it")? {
                        Some(_lock) => {
                            fs::remove_dir_all(&dir)?;
                            println!("removed {}", dir.display());
                        }
                        None => println!("kept {}: another process holds it", dir.display()),
                    }
                }
            }
            return Ok(0);
        }
        let Some(arch) = self.arch else {
            return Err(UsageError::wrap(anyhow::anyhow!("give --arch")));
        };
        let install = match self.no_install {
            true => Install::Forbidden,
            false => Install::Allowed,
        };
        let mut spec = self.build.spec();
        if let Some(package) = self.kernel {
            spec.source = kbuild::Source::Package(package);
        }
        let sh = Shell::new()?;
        if self.config_only {
            let config = kbuild::configure(&sh, arch, &spec, &cache, install)?;
            println!("{}", config.display());
            return Ok(0);
        }
        let kernel = kbuild::build(&sh, arch, &spec, &cache, install)?;
        println!("{}", kernel.image.display());
        Ok(0)
    }
}
