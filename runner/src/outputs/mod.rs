//! The files a run writes beside `report.json`, each for one kind of consumer: `junit.xml`
//! for CI test views, `summary.md` for CI step summaries, `index.html` for people, and
//! `kcidb.json` for KernelCI.

pub mod html;
pub mod junit;
pub mod kcidb;
pub mod markdown;
