//! The files a run writes beside `report.json`, each for one kind of consumer: `junit.xml`
//! for CI test views, `summary.md` for CI step summaries, `index.html` for people, and
//! `kcidb.json` for KernelCI.

pub mod html;
pub mod junit;
pub mod kcidb;
pub mod markdown;

use std::path::Path;

use crate::diff::Class;
use crate::report::{write_atomically, Report};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render {file}: {message}")]
    Render { file: &'static str, message: String },
}

/// Writes a run's files into `dir`, each atomically: `report.json`, `junit.xml`,
/// `summary.md`, `index.html` and `kcidb.json`. `fail_on` is what the gate fails on.
pub fn write_all(dir: &Path, report: &Report, fail_on: &[Class]) -> Result<(), OutputError> {
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        write_atomically(&path, data).map_err(|source| OutputError::Write { path, source })
    };
    let path = dir.join("report.json");
    report
        .write(&path)
        .map_err(|source| OutputError::Write { path, source })?;
    let xml = junit::render(report).map_err(|e| OutputError::Render {
        file: "junit.xml",
        message: e.to_string(),
    })?;
    write("junit.xml", xml.as_bytes())?;
    write("summary.md", markdown::render(report, fail_on).as_bytes())?;
    write("index.html", html::render(&[report]).as_bytes())?;
    let kcidb = kcidb::render(report).map_err(|e| OutputError::Render {
        file: "kcidb.json",
        message: e.to_string(),
    })?;
    let mut kcidb = serde_json::to_vec_pretty(&kcidb).map_err(|e| OutputError::Render {
        file: "kcidb.json",
        message: e.to_string(),
    })?;
    kcidb.push(b'\n');
    write("kcidb.json", &kcidb)?;
    Ok(())
}
