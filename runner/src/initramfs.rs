//! A newc initramfs, written without the `cpio` binary and without root.
//!
//! Entries are kept sorted by path, with parents before children, and every timestamp and
//! owner is zero: the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

#[derive(Clone, Debug)]
enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDevice { major: u32, minor: u32 },
}

/// The contents of an initramfs, by path relative to its root (`init`, `bin/bpf-agent`).
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory and its missing parents.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        let mut prefix = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Entry::Dir);
        }
        self
    }

    /// Adds a regular file with permission bits `mode` (e.g. `0o755`), creating its parents.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> &mut Self {
        let mode = mode & 0o7777;
        self.insert(path, Entry::File { mode, data })
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let target = target.to_owned();
        self.insert(path, Entry::Symlink { target })
    }

    /// Adds a character device node: the kernel needs `/dev/console` to give init a console.
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        self.insert(path, Entry::CharDevice { major, minor })
    }

    /// Adds `entry` at `path`, creating its parent directories.
    fn insert(&mut self, path: &str, entry: Entry) -> &mut Self {
        let path = path.trim_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path.to_owned(), entry);
        self
    }

    /// Writes the uncompressed newc archive.
    pub fn write_cpio<W: Write>(&self, mut out: W) -> io::Result<W> {
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let builder = cpio::newc::Builder::new(path)
                .ino(ino as u32 + 1)
                .uid(0)
                .gid(0)
                .mtime(0);
            let (builder, data): (_, &[u8]) = match entry {
                Entry::Dir => (builder.mode(S_IFDIR | 0o755).nlink(2), &[]),
                Entry::File { mode, data } => (builder.mode(S_IFREG | mode).nlink(1), data),
                Entry::Symlink { target } => {
                    (builder.mode(S_IFLNK | 0o777).nlink(1), target.as_bytes())
                }
                Entry::CharDevice { major, minor } => (
                    builder
                        .mode(S_IFCHR | 0o600)
                        .nlink(1)
                        .rdev_major(*major)
                        .rdev_minor(*minor),
                    &[],
                ),
            };
            let size = u32::try_from(data.len()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{path} is larger than 4 GiB, the newc format's limit"),
                )
            })?;
            let mut writer = builder.write(out, size);
            writer.write_all(data)?;
            out = writer.finish()?;
        }
        cpio::newc::trailer(out)
    }

    /// Writes the archive, uncompressed, to `path` through a temporary file, so that a crash
    /// never leaves a truncated image behind. Uncompressed because the guest would spend longer
    /// inflating it under emulation than QEMU spends loading the extra bytes, and the host
    /// would spend a third of a second compressing it for every guest.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        crate::report::publish_mode(tmp.as_file())?;
        // Through the file, not the `NamedTempFile`, whose errors repeat themselves with the
        // temporary path.
        let writer = io::BufWriter::new(tmp.as_file());
        let file = self.write_cpio(writer)?;
        file.into_inner().map_err(io::IntoInnerError::into_error)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_output_is_deterministic() {
        let mut image = Initramfs::new();
        image
            .file("lib/modules/test_bpf.ko", 0o644, b"module".to_vec())
            .file("init", 0o755, b"#!/bin/sh\n".to_vec())
            .symlink("bin/sh", "busybox");
        let names: Vec<&str> = image.entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/test_bpf.ko"
            ]
        );
        let a = image.write_cpio(Vec::new()).unwrap();
        let b = image.clone().write_cpio(Vec::new()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn round_trips_through_the_cpio_crate_reader() {
        let mut image = Initramfs::new();
        image.file("init", 0o755, b"#!/bin/sh\necho hi\n".to_vec());
        image.symlink("bin/sh", "busybox");
        image.char_device("dev/console", 5, 1);
        let raw = image.write_cpio(Vec::new()).unwrap();
        let mut rest: &[u8] = &raw;
        let mut seen = Vec::new();
        loop {
            let mut reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let name = reader.entry().name().to_owned();
            let mode = reader.entry().mode();
            if name == "dev/console" {
                assert_eq!(
                    (reader.entry().rdev_major(), reader.entry().rdev_minor()),
                    (5, 1)
                );
            }
            let mut data = Vec::new();
            io::Read::read_to_end(&mut reader, &mut data).unwrap();
            seen.push((name, mode, data));
            rest = reader.finish().unwrap();
        }
        assert_eq!(
            seen,
            [
                ("bin".to_owned(), S_IFDIR | 0o755, vec![]),
                ("bin/sh".to_owned(), S_IFLNK | 0o777, b"busybox".to_vec()),
                ("dev".to_owned(), S_IFDIR | 0o755, vec![]),
                ("dev/console".to_owned(), S_IFCHR | 0o600, vec![]),
                (
                    "init".to_owned(),
                    S_IFREG | 0o755,
                    b"#!/bin/sh\necho hi\n".to_vec()
                ),
            ]
        );
    }
}
